//! The tract backend: the only module of rws that calls tract.
//!
//! Prefix builds substitute the patched constants in a cached *typed* prefix and optimize it
//! (a few milliseconds, public tract API only: `../../docs/design.md` §4 says why this beats the
//! alternatives). Two things tract does while typing force a slower start from the prefix's
//! protobuf instead: folding a patched tensor into other constants (BatchNorm parameters become a
//! per-channel scale and offset), and merging bit-identical initializers (all-zero biases), after
//! which one substituted node would feed several tensors. [`WholeModel`] is a whole model as one
//! plan: the offline evaluator and the baseline the split is measured against.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;

use crate::backend::{Backend, PatchTarget};
use crate::onnx::{self, pb};
use crate::split::{CutSource, Split};
use crate::RuntimeError;

/// An optimized tract plan.
pub type Plan = TypedSimplePlan;
/// tract's per-run state of a [`Plan`].
pub type State = TypedSimpleState;

/// The split model prepared for tract.
pub struct Tract {
    path: PathBuf,
    input_shape: Vec<usize>,
    source: PrefixSource,
    clean_prefix: Arc<Plan>,
    suffix: Option<Arc<Plan>>,
    suffix_inputs: Vec<CutSource>,
}

/// Where prefix builds start.
enum PrefixSource {
    /// The typed prefix and the id of each target's `Const` node in it.
    Typed {
        model: Box<TypedModel>,
        nodes: Vec<usize>,
    },
    /// The prefix protobuf and the index of each target's initializer in it.
    Proto {
        model: Box<pb::ModelProto>,
        initializers: Vec<usize>,
    },
}

/// A patched tensor tract folded into other constants while typing.
struct Folded(String);

/// tract's ONNX reader with its operator registry, built once per process: building it (a few
/// hundred operators registered) cost about a millisecond per call, paid by every load, every
/// typed model and every prefix build that starts from the protobuf.
fn onnx() -> &'static tract_onnx::Onnx {
    static ONNX: std::sync::OnceLock<tract_onnx::Onnx> = std::sync::OnceLock::new();
    ONNX.get_or_init(|| tract_onnx::onnx().with_ignore_value_info(true))
}

fn tract_err<'p>(path: &'p Path, stage: &'static str) -> impl Fn(TractError) -> RuntimeError + 'p {
    move |e| RuntimeError::Backend {
        path: path.to_path_buf(),
        stage,
        reason: format!("{e:#}"),
    }
}

impl Backend for Tract {
    type Plan = Plan;
    type State = State;
    const NAME: &'static str = "tract";

    fn prepare(
        path: &Path,
        split: Split,
        input_shape: &[usize],
        targets: &[PatchTarget<'_>],
    ) -> Result<Self, RuntimeError> {
        let t = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
        let typed_prefix = type_model(path, &split.prefix, input_shape)?;
        log::debug!("{}: prefix typed in {:.1} ms", path.display(), ms(t));
        let t = std::time::Instant::now();
        let suffix = match split.suffix {
            None => None,
            Some(proto) => Some(build_suffix(
                path,
                &typed_prefix,
                input_shape,
                proto,
                &split.suffix_inputs,
            )?),
        };
        log::debug!("{}: suffix built in {:.1} ms", path.display(), ms(t));
        let t = std::time::Instant::now();
        let clean_prefix = optimize(path, typed_prefix.clone())?;
        let source = prefix_source(path, typed_prefix, split.prefix, targets)?;
        log::debug!("{}: clean prefix built in {:.1} ms", path.display(), ms(t));
        Ok(Tract {
            path: path.to_path_buf(),
            input_shape: input_shape.to_vec(),
            source,
            clean_prefix,
            suffix,
            suffix_inputs: split.suffix_inputs,
        })
    }

    fn clean_prefix(&self) -> &Arc<Plan> {
        &self.clean_prefix
    }

    fn build_prefix(&self, patched: Vec<Vec<f32>>) -> Result<Arc<Plan>, RuntimeError> {
        let typed = match &self.source {
            PrefixSource::Typed { model, nodes } => {
                let mut typed = (**model).clone();
                for (&node, values) in nodes.iter().zip(patched) {
                    substitute(&self.path, &mut typed, node, values)?;
                }
                typed
            }
            PrefixSource::Proto {
                model,
                initializers,
            } => {
                let mut proto = (**model).clone();
                if let Some(g) = proto.graph.as_mut() {
                    for (&i, values) in initializers.iter().zip(&patched) {
                        onnx::store_f32(&mut g.initializer[i], values);
                    }
                }
                type_model(&self.path, &proto, &self.input_shape)?
            }
        };
        optimize(&self.path, typed)
    }

    fn prefix_mode(&self) -> &'static str {
        match self.source {
            PrefixSource::Typed { .. } => "typed",
            PrefixSource::Proto { .. } => "protobuf",
        }
    }

    fn spawn(&self, plan: &Arc<Plan>) -> Result<State, RuntimeError> {
        spawn(&self.path, plan)
    }

    fn spawn_suffix(&self) -> Result<Option<State>, RuntimeError> {
        self.suffix.as_ref().map(|s| self.spawn(s)).transpose()
    }

    fn run(
        &self,
        prefix: &mut State,
        suffix: Option<&mut State>,
        input: &[f32],
        out: &mut Vec<f32>,
    ) -> Result<(), RuntimeError> {
        let input = Tensor::from_shape(&self.input_shape, input)
            .map_err(tract_err(&self.path, "making the input"))?
            .into_tvalue();
        let mid = prefix
            .run(tvec!(input.clone()))
            .map_err(tract_err(&self.path, "running the prefix"))?;
        let outputs = match suffix {
            None => mid,
            Some(suffix) => {
                let feed: TVec<TValue> = self
                    .suffix_inputs
                    .iter()
                    .map(|s| match s {
                        CutSource::Prefix(i) => mid[*i].clone(),
                        CutSource::Model(_) => input.clone(),
                    })
                    .collect();
                suffix
                    .run(feed)
                    .map_err(tract_err(&self.path, "running the suffix"))?
            }
        };
        first_output(&self.path, &outputs, out)
    }
}

/// Copies the first output of a run into `out`; a model without outputs is an error, not a
/// panic (the split refuses such models, but a backend must not trust its caller for that).
fn first_output(path: &Path, outputs: &[TValue], out: &mut Vec<f32>) -> Result<(), RuntimeError> {
    let first = outputs.first().ok_or_else(|| RuntimeError::Shape {
        path: path.to_path_buf(),
        field: "graph.output".into(),
        reason: "the model produced no output".into(),
    })?;
    let view = first
        .to_plain_array_view::<f32>()
        .map_err(tract_err(path, "reading the output"))?;
    out.clear();
    out.extend(view.iter().copied());
    Ok(())
}

/// Decides how prefix builds start: substituting `Const` nodes of the typed prefix when every
/// target has one of its own, else replacing initializers of the prefix protobuf.
fn prefix_source(
    path: &Path,
    typed_prefix: TypedModel,
    prefix: pb::ModelProto,
    targets: &[PatchTarget<'_>],
) -> Result<PrefixSource, RuntimeError> {
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    let nodes: Result<Vec<usize>, Folded> = match shared_value(&prefix, &names) {
        // tract merges bit-identical constants while typing (e.g. all-zero biases), so a
        // substituted node could feed another tensor too.
        Some(name) => Err(Folded(name)),
        None => names.iter().map(|t| const_node(&typed_prefix, t)).collect(),
    };
    match nodes {
        Ok(nodes) => Ok(PrefixSource::Typed {
            model: Box::new(typed_prefix),
            nodes,
        }),
        Err(Folded(name)) => {
            log::debug!("'{name}' is folded while typing; prefix builds start from protobuf");
            let initializers = names
                .iter()
                .map(|t| {
                    initializer_index(&prefix, t).ok_or_else(|| RuntimeError::Shape {
                        path: path.to_path_buf(),
                        field: format!("initializer '{t}'"),
                        reason: "not in the prefix".into(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PrefixSource::Proto {
                model: Box::new(prefix),
                initializers,
            })
        }
    }
}

/// Replaces the constant of typed node `node` by `values` (the node's shape is kept).
fn substitute(
    path: &Path,
    typed: &mut TypedModel,
    node: usize,
    values: Vec<f32>,
) -> Result<(), RuntimeError> {
    let shape: TVec<usize> = typed.node(node).outputs[0]
        .fact
        .shape
        .as_concrete()
        .map(|s| s.into())
        .ok_or_else(|| RuntimeError::Shape {
            path: path.to_path_buf(),
            field: format!("node {}", typed.node(node).name),
            reason: "the constant's shape is not concrete".into(),
        })?;
    let tensor = Tensor::from_shape(&shape, &values)
        .map_err(tract_err(path, "making a patched tensor"))?
        .into_arc_tensor();
    let op = Const::new(tensor.clone()).map_err(tract_err(path, "patching"))?;
    let fact = TypedFact::try_from(tensor).map_err(tract_err(path, "patching a fact"))?;
    let n = typed.node_mut(node);
    n.op = Box::new(op);
    n.outputs[0].fact = fact;
    Ok(())
}

/// The optimized suffix. Its inputs get their element type here (ONNX graph inputs must have
/// one); their shapes come from the typed prefix. The protobuf is dropped as soon as tract has
/// read it, before typing and optimizing, so its weights are never held three times.
fn build_suffix(
    path: &Path,
    typed_prefix: &TypedModel,
    input_shape: &[usize],
    mut proto: pb::ModelProto,
    sources: &[CutSource],
) -> Result<Arc<Plan>, RuntimeError> {
    if let Some(g) = proto.graph.as_mut() {
        for input in &mut g.input {
            *input = onnx::build::value_info(&input.name, &[]);
            if let Some(pb::type_proto::Value::TensorType(t)) =
                input.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape = None;
            }
        }
    }
    let mut suffix = onnx()
        .model_for_proto_model(&proto)
        .map_err(tract_err(path, "reading the suffix"))?;
    drop(proto);
    for (i, src) in sources.iter().enumerate() {
        let fact = cut_fact(path, typed_prefix, input_shape, src)?;
        suffix = suffix
            .with_input_fact(i, fact)
            .map_err(tract_err(path, "setting a suffix input"))?;
    }
    let typed = suffix
        .into_typed()
        .map_err(tract_err(path, "typing the suffix"))?;
    optimize(path, typed)
}

/// The fact (type and shape) of one tensor crossing the cut.
fn cut_fact(
    path: &Path,
    typed_prefix: &TypedModel,
    input_shape: &[usize],
    src: &CutSource,
) -> Result<InferenceFact, RuntimeError> {
    let o = match src {
        CutSource::Model(_) => return Ok(f32::fact(input_shape).into()),
        CutSource::Prefix(o) => *o,
    };
    let f = typed_prefix
        .output_fact(o)
        .map_err(tract_err(path, "reading a cut fact"))?;
    let shape = f.shape.as_concrete().ok_or_else(|| RuntimeError::Shape {
        path: path.to_path_buf(),
        field: format!("cut tensor {o}"),
        reason: format!("shape {:?} is not concrete", f.shape),
    })?;
    if f.datum_type != f32::datum_type() {
        return Err(RuntimeError::Shape {
            path: path.to_path_buf(),
            field: format!("cut tensor {o}"),
            reason: format!("is {:?}; only f32 tensors can cross the cut", f.datum_type),
        });
    }
    Ok(InferenceFact::dt_shape(f.datum_type, shape))
}

/// Id of the `Const` node holding initializer `name` in a typed model, checked to feed at least
/// one node (a tensor that tract folded into another constant could not be patched this way).
fn const_node(model: &TypedModel, name: &str) -> Result<usize, Folded> {
    // tract names an initializer's node "<name>.0" after typing.
    let Ok(id) = model.node_id_by_name(&format!("{name}.0")) else {
        return Err(Folded(name.to_string()));
    };
    let node = model.node(id);
    if node.op_as::<Const>().is_none() || node.outputs[0].successors.is_empty() {
        return Err(Folded(name.to_string()));
    }
    Ok(id)
}

fn optimize(path: &Path, typed: TypedModel) -> Result<Arc<Plan>, RuntimeError> {
    typed
        .into_optimized()
        .map_err(tract_err(path, "optimizing"))?
        .into_runnable()
        .map_err(tract_err(path, "making a plan"))
}

fn spawn(path: &Path, plan: &Arc<Plan>) -> Result<State, RuntimeError> {
    plan.spawn().map_err(tract_err(path, "starting a plan"))
}

/// The first target whose clean value is bit-identical to another initializer of the prefix.
fn shared_value(prefix: &pb::ModelProto, targets: &[&str]) -> Option<String> {
    let inits = &prefix.graph.as_ref()?.initializer;
    targets.iter().find_map(|name| {
        let t = inits.iter().find(|i| i.name == *name)?;
        let tb = onnx::data_bytes(t);
        inits
            .iter()
            .any(|o| {
                o.name != t.name
                    && o.data_type == t.data_type
                    && o.dims == t.dims
                    && onnx::data_bytes(o) == tb
            })
            .then(|| name.to_string())
    })
}

fn initializer_index(model: &pb::ModelProto, name: &str) -> Option<usize> {
    model
        .graph
        .as_ref()?
        .initializer
        .iter()
        .position(|t| t.name == name)
}

/// Parses and types a model for a fixed f32 input shape.
fn type_model(
    path: &Path,
    proto: &pb::ModelProto,
    input_shape: &[usize],
) -> Result<TypedModel, RuntimeError> {
    onnx()
        .model_for_proto_model(proto)
        .map_err(tract_err(path, "reading the model"))?
        .with_input_fact(0, f32::fact(input_shape).into())
        .map_err(tract_err(path, "setting the input shape"))?
        .into_typed()
        .map_err(tract_err(path, "typing the model"))
}

/// A whole model optimized as one plan, for an f32 input of a fixed shape: the offline evaluator
/// (`rws eval`), and the baseline the split runtime is tested and benchmarked against.
pub struct WholeModel {
    path: PathBuf,
    input_shape: Vec<usize>,
    plan: Arc<Plan>,
}

/// Reusable run buffers of a [`WholeModel`], for running many inputs.
pub struct WholeState<'m> {
    model: &'m WholeModel,
    state: State,
}

impl WholeModel {
    /// Optimizes `proto` for `input_shape`; `path` names it in errors.
    pub fn from_proto(
        path: &Path,
        proto: &pb::ModelProto,
        input_shape: &[usize],
    ) -> Result<Self, RuntimeError> {
        let plan = optimize(path, type_model(path, proto, input_shape)?)?;
        Ok(WholeModel {
            path: path.to_path_buf(),
            input_shape: input_shape.to_vec(),
            plan,
        })
    }

    /// Decodes ONNX bytes and optimizes them; `label` names the model in errors.
    pub fn from_bytes(
        bytes: &[u8],
        label: impl AsRef<Path>,
        input_shape: &[usize],
    ) -> Result<Self, RuntimeError> {
        let label = label.as_ref();
        let model = onnx::OnnxModel::from_bytes(bytes, label)?;
        Self::from_proto(label, model.proto(), input_shape)
    }

    /// The input shape the plan was optimized for.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Run buffers for repeated [`WholeState::run`] calls.
    pub fn state(&self) -> Result<WholeState<'_>, RuntimeError> {
        Ok(WholeState {
            model: self,
            state: spawn(&self.path, &self.plan)?,
        })
    }

    /// The first output for one input (fresh run buffers; use [`Self::state`] for many).
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, RuntimeError> {
        let mut out = Vec::new();
        self.state()?.run(input, &mut out)?;
        Ok(out)
    }
}

impl WholeState<'_> {
    /// Runs one input (row-major, of the model's input shape); the first output goes to `out`.
    pub fn run(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), RuntimeError> {
        let m = self.model;
        let expected: usize = m.input_shape.iter().product();
        if input.len() != expected {
            return Err(RuntimeError::Shape {
                path: m.path.clone(),
                field: "input".into(),
                reason: format!(
                    "{} values for input shape {:?} ({expected} values)",
                    input.len(),
                    m.input_shape
                ),
            });
        }
        let tensor = Tensor::from_shape(&m.input_shape, input)
            .map_err(tract_err(&m.path, "making the input"))?;
        let outputs = self
            .state
            .run(tvec!(tensor.into_tvalue()))
            .map_err(tract_err(&m.path, "running"))?;
        first_output(&m.path, &outputs, out)
    }
}
