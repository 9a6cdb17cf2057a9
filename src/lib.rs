//! rws: Robust Weight Signatures for edge vision models.
//!
//! A Robust Weight Signature (Cai, Zhang, Wang, ICML 2023) is the part of a robust model's weight
//! change that is orthogonal to ordinary training: `RWS_c = d_c − proj_{d_std}(d_c)` on the
//! shallowest layers. Adding `α · RWS_c` to a clean model's weights gives it robustness to
//! corruption `c`; setting α back to 0 restores the clean model exactly.
//!
//! The library is usable without the daemon:
//! - [`format`]: the `.rws` file (write, validate, use in place from a memory map);
//! - [`quant`]: i8 per-channel / f16 / f32 quantization and its error;
//! - [`patch`]: the patch engine, `clean + Σ α·signature` into preallocated buffers;
//! - [`extract`]: signatures from θ0, θstd and robust models (the projection residual);
//! - [`manifest`]: which signature file serves which corruption, with checksums;
//! - [`onnx`]: reading and rewriting ONNX initializers;
//! - [`compat`]: does a signature fit a model;
//! - [`image`]: RGB images in [0, 1], PNG/JPEG in and out;
//! - [`corrupt`]: the 19 Hendrycks–Dietterich corruptions, CIFAR-10-C and ImageNet-C constants;
//! - [`data`]: MNIST-5k and sklearn digits with fixed splits, as 32×32×3 images;
//! - [`rng`]: the seeded generator behind every random choice;
//! - [`apply`]: signatures applied to a whole ONNX model (`rws patch`);
//! - [`arch`]: VGG-style architectures and their ONNX export;
//! - [`eval`]: accuracy of an ONNX classifier with tract, clean and corrupted;
//! - [`train`] (feature `train`): candle training from a shared init;
//! - [`runtime`]: the device runtime: split model, prefix plans rebuilt off the frame path;
//! - [`sensors`]: weather and camera-fault sensor protocols and their driver threads;
//! - [`policy`]: sensor signals to coefficients (curves, staleness, hysteresis, ramp, cap);
//! - [`replay`]: coefficient traces from recorded sensor logs;
//! - [`config`]: the daemon's `firmware-config/*.toml`;
//! - [`frames`]: camera frames in, model input out;
//! - [`bench`]: timings of the patch kernel and the runtime against their baselines.

pub mod apply;
pub mod arch;
pub mod bench;
pub mod compat;
pub mod config;
pub mod corrupt;
pub mod data;
pub mod eval;
pub mod extract;
pub mod format;
pub mod frames;
pub mod image;
pub mod manifest;
pub mod onnx;
pub mod patch;
pub mod policy;
pub mod quant;
pub mod replay;
pub mod rng;
pub mod runtime;
pub mod sensors;
#[cfg(feature = "train")]
pub mod train;

pub use format::{DType, Metadata, Role, SignatureFile};
pub use patch::{patch_into, Patcher, Term};
