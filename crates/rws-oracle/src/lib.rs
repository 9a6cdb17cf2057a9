//! rws-oracle: which corruption a frame shows, and how strongly, from the frame alone.
//!
//! The paper assumes an oracle that knows the corruption; rwsd's sensors are one, this crate is
//! the other, for devices with nothing but a camera. It owns these parts, all device side:
//!
//! - [`features`]: a bank of cheap blind estimators (noise σ, impulse and duplicate-pixel
//!   fractions, blockiness, Laplacian and directional gradient energy, dark channel, …) computed
//!   in one pass over the model-input image, without allocating;
//! - [`head`]: the small learned classifier that maps those features to P(clean), P(corruption)
//!   and an estimated severity per corruption, with buffers allocated once at load;
//! - [`track`]: smoothing over frames and hysteresis on the engaged class, so a fixed camera's
//!   stream does not flap;
//! - [`frame`]: the whole per-frame step (model input back to pixels, features, head, tracker)
//!   as rwsd runs it and `rws bench` times it;
//! - [`format`]: the head's versioned, checksummed file (`oracle.rwo`), bound to the signature
//!   set it was trained for, and its strict reader.
//!
//! Training the head is offline (`rws oracle train`, crate rws-lab); the daemon turns the head's
//! outputs into signals (`oracle.fog`, `oracle.fog.severity`) that its policy rules read.

pub mod features;
pub mod format;
pub mod frame;
pub mod head;
pub mod track;

pub use features::{Features, N_FEATURES};
pub use format::{OracleError, OracleFile};
pub use frame::FrameOracle;
pub use head::{Head, Prediction, CLEAN};
pub use track::{Hysteresis, Tracker};
