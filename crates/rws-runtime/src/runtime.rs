//! The device runtime: a clean ONNX model with signatures patched in between frames.
//!
//! `docs/design.md` §4 measured the ways of getting changed weights into an inference engine;
//! this module implements the split: the model is cut after the deepest patched layer
//! ([`crate::split`]), the suffix is optimized once, and only the small prefix is rebuilt when
//! coefficients change. A prefix build is "patch the clean weights (the patch engine), hand them
//! to the backend, which makes a plan": no per-frame cost, a few milliseconds per change.
//!
//! What the runtime keeps in memory: the backend's optimized suffix and whatever its prefix
//! builds start from; one f32 copy of the clean values of the patched tensors; the clean prefix
//! plan, built once and used whenever every coefficient is zero (so taking all signatures off is
//! the clean model, bit for bit). Signatures stay memory-mapped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rws_signature::fit::Mismatches;
use rws_signature::patch::PatchError;
use rws_signature::SignatureFile;

use crate::backend::{Backend, PatchTarget};
use crate::compat;
use crate::onnx::{pb, OnnxError, OnnxModel};
use crate::split::{self, SplitError};
use crate::tract::Tract;

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
    /// The inference engine refused the model or failed to run it.
    #[error("{}: {stage}: {reason}", path.display())]
    Backend {
        path: PathBuf,
        stage: &'static str,
        reason: String,
    },
    /// One coefficient of a request is unusable.
    #[error("coefficient for signature {index}: {reason}")]
    Coefficient { index: usize, reason: String },
    /// A dense coefficient vector of the wrong length.
    #[error("{got} coefficients for {expected} signatures")]
    CoefficientCount { expected: usize, got: usize },
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The model file is not the one its manifest or config names.
    #[error(transparent)]
    Checksum(#[from] rws_signature::manifest::ManifestError),
    /// The prefix worker thread could not be started.
    #[error("starting the prefix worker thread: {0}")]
    WorkerSpawn(String),
}

/// Options for [`Runtime::load`].
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// The input shape, when the model declares symbolic dimensions other than a leading batch
    /// dimension (which is taken as 1).
    pub input_shape: Option<Vec<usize>>,
    /// What the model file must be (from the manifest or the config), checked on the mapped
    /// bytes just before they are decoded: one read of the file does both.
    pub model_expected: Option<rws_signature::manifest::Expected>,
}

/// A loaded model with its signatures, ready to build prefix plans. Shared by sessions.
pub struct Runtime<B: Backend = Tract> {
    path: PathBuf,
    sigs: Vec<SignatureFile>,
    input_shape: Vec<usize>,
    /// Names of the patched tensors, in `Patcher::targets` order.
    targets: Vec<String>,
    /// Clean values of the patched tensors (the one f32 copy).
    clean: Vec<Vec<f32>>,
    backend: B,
    cut: Vec<String>,
}

impl<B: Backend> std::fmt::Debug for Runtime<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("model", &self.path)
            .field("backend", &B::NAME)
            .field("signatures", &self.sigs.len())
            .field("targets", &self.targets)
            .field("cut", &self.cut)
            .finish()
    }
}

/// Reads an ONNX file through a read-only memory map; the protobuf decoder copies what it keeps,
/// so the map is released once the model is parsed.
pub fn read_model_mapped(path: &Path) -> Result<OnnxModel, RuntimeError> {
    read_model_checked(path, None)
}

/// [`read_model_mapped`], first checking the mapped bytes against `expected`: the checksum pass
/// pages the file in, and the decoder reads the same pages, so the file is read from storage
/// once.
pub fn read_model_checked(
    path: &Path,
    expected: Option<&rws_signature::manifest::Expected>,
) -> Result<OnnxModel, RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only private map, decoded at once; model files are replaced by rename, never
    // rewritten in place (docs/deploy.md).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    if let Some(e) = expected {
        e.check_bytes(path, &map)?;
    }
    Ok(OnnxModel::from_bytes(&map, path)?)
}

/// The input shape the model declares, with a symbolic leading dimension taken as batch 1.
fn declared_input_shape(path: &Path, model: &pb::ModelProto) -> Result<Vec<usize>, RuntimeError> {
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

impl Runtime<Tract> {
    /// Loads the model at `path` (memory-mapped) with `sigs` in this order; coefficient vectors
    /// are indexed the same way. Every signature is checked against the model first and all
    /// mismatches are reported together.
    pub fn load(
        path: &Path,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Self, RuntimeError> {
        Self::load_with(path, sigs, opts)
    }

    /// As [`Runtime::load`], from a decoded model; `path` labels it in errors.
    pub fn from_proto(
        path: &Path,
        proto: pb::ModelProto,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Self, RuntimeError> {
        Self::from_proto_with(path, proto, sigs, opts)
    }
}

impl<B: Backend> Runtime<B> {
    /// [`Runtime::load`] on any backend.
    pub fn load_with(
        path: &Path,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Self, RuntimeError> {
        let t = std::time::Instant::now();
        let model = read_model_checked(path, opts.model_expected.as_ref())?;
        log::debug!(
            "{}: read and decoded in {:.1} ms",
            path.display(),
            t.elapsed().as_secs_f64() * 1e3
        );
        Self::from_model(model, sigs, opts)
    }

    /// [`Runtime::from_proto`] on any backend.
    pub fn from_proto_with(
        path: &Path,
        proto: pb::ModelProto,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Self, RuntimeError> {
        Self::from_model(OnnxModel::from_proto(proto, path), sigs, opts)
    }

    fn from_model(
        model: OnnxModel,
        sigs: Vec<SignatureFile>,
        opts: &RuntimeOptions,
    ) -> Result<Self, RuntimeError> {
        let path = model.path().to_path_buf();
        if model
            .proto()
            .graph
            .as_ref()
            .is_none_or(|g| g.output.is_empty())
        {
            return Err(RuntimeError::Shape {
                path,
                field: "graph.output".into(),
                reason: "the model declares no output".into(),
            });
        }
        let (targets, clean) = {
            let refs: Vec<&SignatureFile> = sigs.iter().collect();
            let patcher = compat::bind(&model, &refs)?;
            let targets: Vec<(String, Vec<usize>)> = patcher
                .targets()
                .iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect();
            let clean = targets
                .iter()
                .map(|(t, _)| model.initializer_f32(t))
                .collect::<Result<Vec<_>, _>>()?;
            (targets, clean)
        };
        let input_shape = match &opts.input_shape {
            Some(s) => s.clone(),
            None => declared_input_shape(&path, model.proto())?,
        };
        let patched: HashSet<String> = targets.iter().map(|(t, _)| t.clone()).collect();
        let split =
            split::split(model.into_proto(), &patched).map_err(|source| RuntimeError::Split {
                path: path.clone(),
                source,
            })?;
        let cut = split.cut.clone();
        let patch_targets: Vec<PatchTarget<'_>> = targets
            .iter()
            .map(|(name, shape)| PatchTarget { name, shape })
            .collect();
        let backend = B::prepare(&path, split, &input_shape, &patch_targets)?;
        Ok(Runtime {
            path,
            sigs,
            input_shape,
            targets: targets.into_iter().map(|(t, _)| t).collect(),
            clean,
            backend,
            cut,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signatures, in coefficient order.
    pub fn signatures(&self) -> &[SignatureFile] {
        &self.sigs
    }

    /// The input shape frames must have.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Number of f32 values in one frame's input.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
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

    /// How prefix builds start (the backend's word for it, e.g. `typed` or `protobuf`).
    pub fn prefix_mode(&self) -> &'static str {
        self.backend.prefix_mode()
    }

    /// The backend's prepared model.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The clean prefix plan (all coefficients zero).
    pub fn clean_prefix(&self) -> &Arc<B::Plan> {
        self.backend.clean_prefix()
    }

    /// Builds the prefix plan for dense `alphas` (one per signature): patch, then the backend's
    /// build. All-zero coefficients return the clean prefix without building anything.
    pub fn build_prefix(&self, alphas: &[f32]) -> Result<Arc<B::Plan>, RuntimeError> {
        if alphas.len() != self.sigs.len() {
            return Err(RuntimeError::CoefficientCount {
                expected: self.sigs.len(),
                got: alphas.len(),
            });
        }
        if Self::is_clean(alphas) {
            return Ok(self.clean_prefix().clone());
        }
        let refs: Vec<&SignatureFile> = self.sigs.iter().collect();
        // Binding is a table walk over tensor names, cheap next to optimizing the prefix; the
        // signatures were checked against each other and the model at load.
        let patcher =
            rws_signature::Patcher::new(&refs).map_err(|mismatches| RuntimeError::Mismatch {
                sig: PathBuf::new(),
                model: self.path.clone(),
                mismatches,
            })?;
        let clean: Vec<&[f32]> = self.clean.iter().map(Vec::as_slice).collect();
        let mut out: Vec<Vec<f32>> = self.clean.iter().map(|c| vec![0f32; c.len()]).collect();
        patcher.patch(&clean, alphas, &mut out)?;
        self.backend.build_prefix(out)
    }

    /// Whether `alphas` take every signature off (the clean prefix, never built).
    pub fn is_clean(alphas: &[f32]) -> bool {
        alphas.iter().all(|&a| a == 0.0)
    }

    /// A run state for a prefix plan: the backend's per-run buffers, reusable across frames.
    pub fn spawn(&self, plan: &Arc<B::Plan>) -> Result<B::State, RuntimeError> {
        self.backend.spawn(plan)
    }

    /// A run state for the suffix (`None` when the prefix is the whole model).
    pub fn spawn_suffix(&self) -> Result<Option<B::State>, RuntimeError> {
        self.backend.spawn_suffix()
    }

    /// Runs one frame with the given run states (`suffix` from [`Self::spawn_suffix`]); the
    /// model's first output goes to `out`.
    pub fn run_states(
        &self,
        prefix: &mut B::State,
        suffix: Option<&mut B::State>,
        input: &[f32],
        out: &mut Vec<f32>,
    ) -> Result<(), RuntimeError> {
        if input.len() != self.input_len() {
            return Err(RuntimeError::Shape {
                path: self.path.clone(),
                field: "frame".into(),
                reason: format!(
                    "frame has {} values, the model takes {:?} ({} values)",
                    input.len(),
                    self.input_shape,
                    self.input_len()
                ),
            });
        }
        self.backend.run(prefix, suffix, input, out)
    }

    /// Runs one frame through `prefix` and the suffix with fresh run states (tests, tools; the
    /// session keeps its states across frames instead).
    pub fn run_with(&self, prefix: &Arc<B::Plan>, input: &[f32]) -> Result<Vec<f32>, RuntimeError> {
        let mut p = self.spawn(prefix)?;
        let mut s = self.spawn_suffix()?;
        let mut out = Vec::new();
        self.run_states(&mut p, s.as_mut(), input, &mut out)?;
        Ok(out)
    }
}
