//! The device runtime: a clean ONNX model run by tract with signatures patched in between frames.
//!
//! `../shared/DESIGN.md` §4 measured the ways of getting changed weights into tract; this module
//! implements the split: the model is cut after the deepest patched layer ([`split`]), the suffix
//! is optimized once, and only the small prefix is rebuilt when coefficients change. A prefix
//! build is "patch the clean weights (the patch engine), put them in the cached typed prefix
//! model, optimize it": no per-frame cost, a few milliseconds per change, public tract API only.
//!
//! What the runtime keeps in memory: the optimized suffix; the typed (unoptimized) prefix, reused
//! for every build; one f32 copy of the clean values of the patched tensors; the clean prefix
//! plan, built once and used whenever every coefficient is zero (so taking all signatures off is
//! the clean model, bit for bit). Signatures stay memory-mapped.
//!
//! [`Session`](session::Session) adds the frame loop: coefficient requests are handed to a worker
//! thread and finished plans are swapped in between frames.

pub mod session;
pub mod split;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;

use crate::compat::{self, Mismatches};
use crate::format::SignatureFile;
use crate::onnx::{OnnxError, OnnxModel};
use crate::patch::{PatchError, Patcher};

pub use session::{FrameOutput, Session, SessionStats};
pub use split::{CutSource, Split, SplitError};

/// Why a model or signature cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("{}: does not fit {}: {mismatches}", sig.display(), model.display())]
    Mismatch {
        sig: PathBuf,
        model: PathBuf,
        mismatches: Mismatches,
    },
    #[error("{}: cannot split for patching: {source}", path.display())]
    Split { path: PathBuf, source: SplitError },
    #[error("{}: {field}: {reason}", path.display())]
    Shape {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{}: tract: {stage}: {reason}", path.display())]
    Tract {
        path: PathBuf,
        stage: &'static str,
        reason: String,
    },
    #[error("coefficient for signature {index}: {reason}")]
    Coefficient { index: usize, reason: String },
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("the prefix worker thread stopped")]
    WorkerGone,
}

/// Options for [`Runtime::load`].
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// The input shape, when the model declares symbolic dimensions other than a leading batch
    /// dimension (which is taken as 1).
    pub input_shape: Option<Vec<usize>>,
}

/// A loaded model with its signatures, ready to build prefix plans. Shared by sessions.
pub struct Runtime {
    path: PathBuf,
    sigs: Vec<SignatureFile>,
    input_shape: Vec<usize>,
    /// Names of the patched tensors, in [`Patcher::targets`] order.
    targets: Vec<String>,
    /// Clean values of the patched tensors (the one f32 copy).
    clean: Vec<Vec<f32>>,
    /// What a prefix build starts from.
    source: PrefixSource,
    suffix: Option<Arc<TypedSimplePlan>>,
    suffix_inputs: Vec<CutSource>,
    clean_prefix: Arc<TypedSimplePlan>,
    cut: Vec<String>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("model", &self.path)
            .field("signatures", &self.sigs.len())
            .field("targets", &self.targets)
            .field("cut", &self.cut)
            .finish()
    }
}

/// Where prefix builds start. Substituting constants in the cached typed prefix is fastest; a
/// tensor that tract folds into other constants while typing (BatchNorm parameters become a
/// per-channel scale and offset) can only be patched before typing, from the prefix's protobuf.
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

fn tract_err<'p>(path: &'p Path, stage: &'static str) -> impl Fn(TractError) -> RuntimeError + 'p {
    move |e| RuntimeError::Tract {
        path: path.to_path_buf(),
        stage,
        reason: format!("{e:#}"),
    }
}

/// Reads an ONNX file through a read-only memory map (the protobuf decoder copies what it keeps,
/// so the map is released once the model is parsed).
pub fn read_model_mapped(path: &Path) -> Result<pb::ModelProto, RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only private map, decoded at once; model files are replaced by rename, never
    // rewritten in place (docs/deploy.md).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let model = OnnxModel::from_bytes(&map, path)?;
    Ok(model.proto().clone())
}

/// The input shape the model declares, with a symbolic leading dimension taken as batch 1.
fn input_shape(path: &Path, model: &pb::ModelProto) -> Result<Vec<usize>, RuntimeError> {
    use pb::tensor_shape_proto::dimension::Value;
    let err = |reason: String| RuntimeError::Shape {
        path: path.to_path_buf(),
        field: "graph.input[0]".into(),
        reason,
    };
    let input = model
        .graph
        .as_ref()
        .and_then(|g| g.input.first())
        .ok_or_else(|| err("the model has no input".into()))?;
    let dims = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| &s.dim),
        _ => None,
    }
    .ok_or_else(|| err(format!("'{}' declares no tensor shape", input.name)))?;
    dims.iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(Value::DimValue(v)) if *v > 0 && *v <= 1 << 20 => Ok(*v as usize),
            _ if i == 0 => Ok(1),
            other => Err(err(format!(
                "dimension {i} of '{}' is {other:?}; give the input shape explicitly",
                input.name
            ))),
        })
        .collect()
}

impl Runtime {
    /// Loads the model at `path` (memory-mapped) with `sigs` in this order; coefficient vectors
    /// are indexed the same way. Every signature is checked against the model first and all
    /// mismatches are reported together.
    pub fn load(
        path: &Path,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Runtime, RuntimeError> {
        let proto = read_model_mapped(path)?;
        Self::from_proto(path, proto, sigs, opts)
    }

    /// As [`Runtime::load`], from a decoded model; `path` labels it in errors.
    pub fn from_proto(
        path: &Path,
        proto: pb::ModelProto,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Runtime, RuntimeError> {
        let model = OnnxModel::from_proto(proto, path);
        let inits = model.initializers()?;
        let constants = model.constant_outputs();
        for sig in &sigs {
            let problems = compat::check(sig, &inits, &constants);
            if !problems.is_empty() {
                return Err(RuntimeError::Mismatch {
                    sig: sig.path().to_path_buf(),
                    model: path.to_path_buf(),
                    mismatches: Mismatches(problems),
                });
            }
        }
        let refs: Vec<&SignatureFile> = sigs.iter().collect();
        let patcher = Patcher::new(&refs).map_err(|m| RuntimeError::Mismatch {
            sig: sigs
                .first()
                .map(|s| s.path().to_path_buf())
                .unwrap_or_default(),
            model: path.to_path_buf(),
            mismatches: m,
        })?;
        let targets: Vec<String> = patcher.targets().iter().map(|t| t.name.clone()).collect();
        let clean = targets
            .iter()
            .map(|t| model.initializer_f32(t))
            .collect::<Result<Vec<_>, _>>()?;
        let input_shape = match &opts.input_shape {
            Some(s) => s.clone(),
            None => input_shape(path, model.proto())?,
        };
        let patched: HashSet<String> = targets.iter().cloned().collect();
        let cut = split::split(model.proto(), &patched).map_err(|source| RuntimeError::Split {
            path: path.to_path_buf(),
            source,
        })?;
        drop(model);
        Self::assemble(path, sigs, input_shape, targets, clean, cut)
    }

    fn assemble(
        path: &Path,
        sigs: Vec<SignatureFile>,
        input_shape: Vec<usize>,
        targets: Vec<String>,
        clean: Vec<Vec<f32>>,
        cut: Split,
    ) -> Result<Runtime, RuntimeError> {
        let typed_prefix = type_model(path, &cut.prefix, &input_shape)?;
        let suffix = match &cut.suffix {
            None => None,
            Some(proto) => Some(Self::build_suffix(
                path,
                &typed_prefix,
                &input_shape,
                proto,
                &cut.suffix_inputs,
            )?),
        };
        let clean_prefix = optimize(path, typed_prefix.clone())?;
        let mut nodes: Result<Vec<usize>, Folded> = targets
            .iter()
            .map(|t| const_node(path, &typed_prefix, t))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .collect();
        if let Some(name) = shared_value(&cut.prefix, &targets) {
            // tract merges bit-identical constants while typing (e.g. all-zero biases), so a
            // substituted node could feed another tensor too.
            nodes = Err(Folded(name));
        }
        let source = match nodes {
            Ok(nodes) => PrefixSource::Typed {
                model: Box::new(typed_prefix),
                nodes,
            },
            Err(Folded(name)) => {
                log::debug!("'{name}' is folded while typing; prefix builds start from protobuf");
                let initializers = targets
                    .iter()
                    .map(|t| {
                        initializer_index(&cut.prefix, t).ok_or_else(|| RuntimeError::Shape {
                            path: path.to_path_buf(),
                            field: format!("initializer '{t}'"),
                            reason: "not in the prefix".into(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                PrefixSource::Proto {
                    model: Box::new(cut.prefix),
                    initializers,
                }
            }
        };
        Ok(Runtime {
            path: path.to_path_buf(),
            sigs,
            input_shape,
            targets,
            clean,
            source,
            suffix,
            suffix_inputs: cut.suffix_inputs,
            clean_prefix,
            cut: cut.cut,
        })
    }

    fn build_suffix(
        path: &Path,
        typed_prefix: &TypedModel,
        input_shape: &[usize],
        proto: &pb::ModelProto,
        sources: &[CutSource],
    ) -> Result<Arc<TypedSimplePlan>, RuntimeError> {
        // Suffix inputs get their element type here (ONNX graph inputs must have one); their
        // shapes come from the typed prefix below.
        let mut proto = proto.clone();
        if let Some(g) = proto.graph.as_mut() {
            for input in &mut g.input {
                *input = crate::arch::value_info(&input.name, &[]);
                if let Some(pb::type_proto::Value::TensorType(t)) =
                    input.r#type.as_mut().and_then(|t| t.value.as_mut())
                {
                    t.shape = None;
                }
            }
        }
        let mut suffix = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_proto_model(&proto)
            .map_err(tract_err(path, "reading the suffix"))?;
        for (i, src) in sources.iter().enumerate() {
            let fact: InferenceFact = match src {
                CutSource::Model(_) => f32::fact(input_shape).into(),
                CutSource::Prefix(o) => {
                    let f = typed_prefix
                        .output_fact(*o)
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
                            reason: format!(
                                "is {:?}; only f32 tensors can cross the cut",
                                f.datum_type
                            ),
                        });
                    }
                    InferenceFact::dt_shape(f.datum_type, shape)
                }
            };
            suffix = suffix
                .with_input_fact(i, fact)
                .map_err(tract_err(path, "setting a suffix input"))?;
        }
        let typed = suffix
            .into_typed()
            .map_err(tract_err(path, "typing the suffix"))?;
        optimize(path, typed)
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signatures, in coefficient order.
    pub fn signatures(&self) -> &[SignatureFile] {
        &self.sigs
    }

    /// Index of the signature whose metadata names `corruption`.
    pub fn signature_index(&self, corruption: &str) -> Option<usize> {
        self.sigs
            .iter()
            .position(|s| s.metadata().corruption == corruption)
    }

    /// The input shape frames must have.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Names of the tensors crossing the cut (empty when the prefix is the whole model).
    pub fn cut(&self) -> &[String] {
        &self.cut
    }

    /// Clean values of the patched tensors, in [`Self::targets`] order (the runtime's one copy).
    pub fn clean_values(&self) -> &[Vec<f32>] {
        &self.clean
    }

    /// The patched tensors.
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// How prefix builds start: `typed` (constants substituted in the cached typed prefix) or
    /// `protobuf` (initializers replaced, then parsed and typed again; BatchNorm parameters or
    /// bit-identical initializers need it).
    pub fn prefix_mode(&self) -> &'static str {
        match self.source {
            PrefixSource::Typed { .. } => "typed",
            PrefixSource::Proto { .. } => "protobuf",
        }
    }

    /// The clean prefix plan (all coefficients zero).
    pub fn clean_prefix(&self) -> &Arc<TypedSimplePlan> {
        &self.clean_prefix
    }

    /// Builds the prefix plan for dense `alphas` (one per signature): patch, substitute, optimize.
    /// All-zero coefficients return the clean prefix without building anything.
    pub fn build_prefix(&self, alphas: &[f32]) -> Result<Arc<TypedSimplePlan>, RuntimeError> {
        if alphas.len() != self.sigs.len() {
            return Err(RuntimeError::Coefficient {
                index: alphas.len(),
                reason: format!(
                    "{} coefficients for {} signatures",
                    alphas.len(),
                    self.sigs.len()
                ),
            });
        }
        if alphas.iter().all(|&a| a == 0.0) {
            return Ok(self.clean_prefix.clone());
        }
        let refs: Vec<&SignatureFile> = self.sigs.iter().collect();
        // Binding is a table walk over tensor names, cheap next to optimizing the prefix.
        let patcher = Patcher::new(&refs).map_err(|m| RuntimeError::Mismatch {
            sig: PathBuf::new(),
            model: self.path.clone(),
            mismatches: m,
        })?;
        let clean: Vec<&[f32]> = self.clean.iter().map(Vec::as_slice).collect();
        let mut out: Vec<Vec<f32>> = self.clean.iter().map(|c| vec![0f32; c.len()]).collect();
        patcher.patch(&clean, alphas, &mut out)?;
        let typed = match &self.source {
            PrefixSource::Typed { model, nodes } => {
                let mut typed = (**model).clone();
                for ((&node, values), target) in nodes.iter().zip(out).zip(patcher.targets()) {
                    let tensor = Tensor::from_shape(&target.shape, &values)
                        .map_err(tract_err(&self.path, "making a patched tensor"))?
                        .into_arc_tensor();
                    let op =
                        Const::new(tensor.clone()).map_err(tract_err(&self.path, "patching"))?;
                    let fact = TypedFact::try_from(tensor)
                        .map_err(tract_err(&self.path, "patching a fact"))?;
                    let n = typed.node_mut(node);
                    n.op = Box::new(op);
                    n.outputs[0].fact = fact;
                }
                typed
            }
            PrefixSource::Proto {
                model,
                initializers,
            } => {
                let mut proto = (**model).clone();
                if let Some(g) = proto.graph.as_mut() {
                    for (&i, values) in initializers.iter().zip(&out) {
                        g.initializer[i].float_data.clear();
                        g.initializer[i].raw_data = bytemuck::cast_slice(values).to_vec();
                    }
                }
                type_model(&self.path, &proto, &self.input_shape)?
            }
        };
        optimize(&self.path, typed)
    }

    /// Runs one frame through `prefix` and the suffix (fresh run states; the session keeps
    /// its states across frames instead).
    pub fn run_with(
        &self,
        prefix: &Arc<TypedSimplePlan>,
        input: Tensor,
    ) -> Result<Vec<f32>, RuntimeError> {
        let mut p = self.spawn(prefix)?;
        let mut s = self.spawn_suffix()?;
        self.run_states(&mut p, s.as_mut(), input)
    }

    /// A run state for a prefix plan: tract's per-run buffers, reusable across frames.
    pub fn spawn(&self, plan: &Arc<TypedSimplePlan>) -> Result<TypedSimpleState, RuntimeError> {
        plan.spawn()
            .map_err(tract_err(&self.path, "starting a plan"))
    }

    /// A run state for the suffix (`None` when the prefix is the whole model).
    pub fn spawn_suffix(&self) -> Result<Option<TypedSimpleState>, RuntimeError> {
        self.suffix.as_ref().map(|s| self.spawn(s)).transpose()
    }

    /// Runs one frame with the given run states (`suffix` from [`Self::spawn_suffix`]).
    pub fn run_states(
        &self,
        prefix: &mut TypedSimpleState,
        suffix: Option<&mut TypedSimpleState>,
        input: Tensor,
    ) -> Result<Vec<f32>, RuntimeError> {
        if input.shape() != self.input_shape.as_slice() {
            return Err(RuntimeError::Shape {
                path: self.path.clone(),
                field: "frame".into(),
                reason: format!(
                    "frame has shape {:?}, the model takes {:?}",
                    input.shape(),
                    self.input_shape
                ),
            });
        }
        let input = input.into_tvalue();
        let mid = prefix
            .run(tvec!(input.clone()))
            .map_err(tract_err(&self.path, "running the prefix"))?;
        let out = match suffix {
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
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(tract_err(&self.path, "reading the output"))?;
        Ok(view.iter().copied().collect())
    }
}

/// Id of the `Const` node holding initializer `name` in a typed model, checked to feed at least
/// one node (a tensor that tract folded into another constant could not be patched this way).
/// A patched tensor tract folded into other constants while typing.
struct Folded(String);

fn const_node(
    _path: &Path,
    model: &TypedModel,
    name: &str,
) -> Result<Result<usize, Folded>, RuntimeError> {
    // tract names an initializer's node "<name>.0" after typing.
    let Ok(id) = model.node_id_by_name(&format!("{name}.0")) else {
        return Ok(Err(Folded(name.to_string())));
    };
    let node = model.node(id);
    if node.op_as::<Const>().is_none() || node.outputs[0].successors.is_empty() {
        return Ok(Err(Folded(name.to_string())));
    }
    Ok(Ok(id))
}

fn optimize(path: &Path, typed: TypedModel) -> Result<Arc<TypedSimplePlan>, RuntimeError> {
    typed
        .into_optimized()
        .map_err(tract_err(path, "optimizing"))?
        .into_runnable()
        .map_err(tract_err(path, "making a plan"))
}

/// The first target whose clean value is bit-identical to another initializer of the prefix.
fn shared_value(prefix: &pb::ModelProto, targets: &[String]) -> Option<String> {
    let inits = &prefix.graph.as_ref()?.initializer;
    let bytes = |t: &pb::TensorProto| -> Vec<u8> {
        if t.raw_data.is_empty() {
            bytemuck::cast_slice(&t.float_data).to_vec()
        } else {
            t.raw_data.clone()
        }
    };
    targets.iter().find_map(|name| {
        let t = inits.iter().find(|i| &i.name == name)?;
        let tb = bytes(t);
        inits
            .iter()
            .any(|o| {
                o.name != t.name && o.data_type == t.data_type && o.dims == t.dims && bytes(o) == tb
            })
            .then(|| name.clone())
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

/// Parses and types a model for a fixed input shape.
fn type_model(
    path: &Path,
    proto: &pb::ModelProto,
    input_shape: &[usize],
) -> Result<TypedModel, RuntimeError> {
    tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_proto_model(proto)
        .map_err(tract_err(path, "reading the model"))?
        .with_input_fact(0, f32::fact(input_shape).into())
        .map_err(tract_err(path, "setting the input shape"))?
        .into_typed()
        .map_err(tract_err(path, "typing the model"))
}

/// The whole clean model optimized as one plan: the baseline the split is measured and tested
/// against, and the "one full model per corruption" alternative.
pub fn full_plan(
    path: &Path,
    proto: &pb::ModelProto,
    input_shape: &[usize],
) -> Result<Arc<TypedSimplePlan>, RuntimeError> {
    optimize(path, type_model(path, proto, input_shape)?)
}

/// Runs a plan's run state on one input and returns the first output as f32.
pub fn run_state(
    path: &Path,
    state: &mut TypedSimpleState,
    input: Tensor,
) -> Result<Vec<f32>, RuntimeError> {
    let out = state
        .run(tvec!(input.into_tvalue()))
        .map_err(tract_err(path, "running"))?;
    let view = out[0]
        .to_plain_array_view::<f32>()
        .map_err(tract_err(path, "reading the output"))?;
    Ok(view.iter().copied().collect())
}

/// Runs `plan` on one input and returns the first output as f32.
pub fn run_plan(
    path: &Path,
    plan: &Arc<TypedSimplePlan>,
    input: Tensor,
) -> Result<Vec<f32>, RuntimeError> {
    let mut state = plan.spawn().map_err(tract_err(path, "starting a plan"))?;
    run_state(path, &mut state, input)
}

/// An image (height × width × RGB in [0, 1]) as an NCHW tensor of `shape` `[1, 3, H, W]`.
pub fn image_tensor(image: &crate::image::Image, shape: &[usize]) -> Result<Tensor, RuntimeError> {
    let (h, w) = (image.height, image.width);
    if shape.len() != 4 || shape[0] != 1 || shape[1] != 3 || shape[2] != h || shape[3] != w {
        return Err(RuntimeError::Shape {
            path: PathBuf::from("frame"),
            field: "image".into(),
            reason: format!("image is {h}x{w} RGB, the model takes {shape:?}"),
        });
    }
    let mut chw = vec![0f32; 3 * h * w];
    for (i, px) in image.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * h * w + i] = px[c];
        }
    }
    Tensor::from_shape(shape, &chw).map_err(tract_err(Path::new("frame"), "making the input"))
}
