//! The seam between the runtime and an inference engine.
//!
//! Everything the runtime does that is not engine work — decoding the ONNX file, checking and
//! binding signatures, keeping the clean values of the patched tensors, patching them, cutting
//! the graph, the frame loop's plan swaps — is written once against this trait. An engine
//! implements four things: preparing a split model (a patchable prefix, its clean plan, the
//! optimized suffix), building a prefix plan from patched tensor values, making per-run state for
//! a plan, and running one frame through prefix and suffix. [`crate::tract::Tract`] is the one
//! implementation; a second engine (onnxruntime, TensorRT on a Jetson) would be another, and
//! nothing above this module would change.

use std::path::Path;
use std::sync::Arc;

use crate::split::Split;
use crate::RuntimeError;

/// One tensor a prefix build replaces: its initializer name and shape.
#[derive(Clone, Copy, Debug)]
pub struct PatchTarget<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
}

/// An inference engine behind the runtime. Methods report errors with the model's path, which
/// the implementation keeps from [`Backend::prepare`].
pub trait Backend: Send + Sync + Sized + 'static {
    /// An optimized, runnable (sub)model. Shared between the worker that builds it and the frame
    /// loop that runs it.
    type Plan: Send + Sync + 'static;
    /// Per-run buffers of a plan, kept across frames.
    type State: Send + 'static;

    /// The engine's name in reports.
    const NAME: &'static str;

    /// Prepares `split` for an f32 input of `input_shape`: whatever prefix builds start from,
    /// the clean prefix plan (built once) and the optimized suffix.
    fn prepare(
        path: &Path,
        split: Split,
        input_shape: &[usize],
        targets: &[PatchTarget<'_>],
    ) -> Result<Self, RuntimeError>;

    /// The clean prefix plan (every coefficient zero).
    fn clean_prefix(&self) -> &Arc<Self::Plan>;

    /// A prefix plan whose targets hold `patched` (one vector per target, in [`Backend::prepare`]
    /// order, each of its target's element count).
    fn build_prefix(&self, patched: Vec<Vec<f32>>) -> Result<Arc<Self::Plan>, RuntimeError>;

    /// How prefix builds start, for reports (e.g. `typed`, `protobuf`).
    fn prefix_mode(&self) -> &'static str;

    /// Run state for `plan`.
    fn spawn(&self, plan: &Arc<Self::Plan>) -> Result<Self::State, RuntimeError>;

    /// Run state for the suffix; `None` when the prefix is the whole model.
    fn spawn_suffix(&self) -> Result<Option<Self::State>, RuntimeError>;

    /// Runs one frame (`input` of the prepared shape, row-major) through the prefix state and
    /// the suffix state, and writes the model's first output into `out`.
    fn run(
        &self,
        prefix: &mut Self::State,
        suffix: Option<&mut Self::State>,
        input: &[f32],
        out: &mut Vec<f32>,
    ) -> Result<(), RuntimeError>;
}
