//! rws-runtime: running a clean ONNX model with Robust Weight Signatures patched in.
//!
//! This crate owns everything between a model file and a frame's logits, and is the one place in
//! rws that knows the inference engine (tract), behind the [`backend::Backend`] seam:
//! - [`onnx`]: reading and writing ONNX as data (initializers, builders; no inference);
//! - [`compat`]: does a signature fit a model, and the one check-then-bind step;
//! - [`split`]: cutting a graph after its deepest patched layer;
//! - [`runtime`]: [`Runtime`], the split model with its signatures and prefix builds;
//! - [`session`]: [`Session`], the frame loop's view: non-blocking coefficient requests, plans
//!   built on a worker and swapped between frames;
//! - [`apply`]: signatures applied to a whole model offline (`rws patch`);
//! - [`backend`] and [`tract`]: the engine seam and its tract implementation, with
//!   [`WholeModel`] (a whole model as one plan: the offline evaluator and the baseline).
//!
//! What it does not own: the `.rws` format and the patch arithmetic (`rws-signature`), where
//! frames and coefficients come from (`rwsd`), training and evaluation (`rws-lab`).

pub mod apply;
pub mod backend;
pub mod compat;
pub mod onnx;
pub mod runtime;
pub mod session;
pub mod split;
pub mod tract;

pub use runtime::{read_model_checked, read_model_mapped, Runtime, RuntimeError, RuntimeOptions};
pub use session::{Controller, FrameInfo, FrameOutput, Session, SessionStats};
pub use split::{CutSource, Split, SplitError};
pub use tract::WholeModel;
