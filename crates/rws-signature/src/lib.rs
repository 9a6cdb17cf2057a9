//! rws-signature: the Robust Weight Signature file format and the patch engine.
//!
//! A Robust Weight Signature (Cai, Zhang, Wang, ICML 2023) is the part of a robust model's weight
//! change that is orthogonal to ordinary training, `RWS_c = d_c − proj_{d_std}(d_c)`, on the
//! shallowest layers. Adding `α · RWS_c` to a clean model's weights gives it robustness to
//! corruption `c`; setting α back to 0 restores the clean model exactly.
//!
//! This crate owns what a signature *is* and how it is applied, with no inference engine, image
//! codec or training framework behind it (its dependencies: half, bytemuck, memmap2, crc32c,
//! serde, thiserror):
//! - [`format`]: the `.rws` file (write, validate, use in place from a memory map);
//! - [`quant`]: i8 per-channel / f16 / f32 quantization and its error;
//! - [`patch`]: the patch engine, `clean + Σ α·signature` into preallocated buffers;
//! - [`fit`]: why signatures do not fit a model or each other (the mismatch list);
//! - [`manifest`]: which signature file serves which corruption, with checksums.
//!
//! What it does not own: reading ONNX models and checking a signature against one
//! (`rws-runtime`), extraction and evaluation (`rws-lab`).

pub mod fit;
pub mod format;
pub mod manifest;
pub mod patch;
pub mod quant;

pub use format::{DType, Metadata, Role, SignatureFile};
pub use patch::{patch_into, Patcher, Term};
