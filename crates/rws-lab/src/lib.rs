//! rws-lab: the offline half of rws, behind the `rws` tool: everything that makes signatures and
//! measures them, on a workstation or a CUDA host. None of it runs on a device.
//!
//! - [`corrupt`]: the 19 Hendrycks–Dietterich corruptions, CIFAR-10-C and ImageNet-C constants;
//! - [`data`]: MNIST-5k and sklearn digits with fixed splits, as 32×32×3 images; [`cifar`]:
//!   CIFAR-10's binary batches, for paper-scale runs;
//! - [`arch`]: VGG-style architectures and their ONNX export;
//! - [`train`] (feature `train`): candle training from a shared init;
//! - [`extract`]: signatures from θ0, θstd and robust models (the projection residual);
//! - [`eval`]: accuracy of an ONNX classifier, clean and corrupted;
//! - [`experiments`]: the paper's sweeps and matrices on a signature set, their plots, and the
//!   policy curves calibrated from them;
//! - [`oracle`]: training the camera-only oracle's head (`rws oracle train`);
//! - [`progress`]: progress bars on stderr for the long commands;
//! - [`bench`]: timings of the patch kernel and the runtime against their baselines.
//!
//! It builds on the device crates (`rws-signature` for the format and the patch engine,
//! `rws-runtime` for ONNX and inference, `rws-image` for images) and never the other way round.

pub mod arch;
pub mod bench;
pub mod cifar;
pub mod corrupt;
pub mod data;
pub mod eval;
pub mod experiments;
pub mod extract;
pub mod oracle;
pub mod progress;
#[cfg(feature = "train")]
pub mod train;
