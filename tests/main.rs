//! The integration tests, one module per area, linked into one test binary: each binary links
//! tract (and the `rws` library), so one instead of ten saves minutes of linking in CI, where
//! the suite is built for x86-64, aarch64 and armv7; and the harness spreads the slow tests of
//! every area over all cores at once.

mod common;

mod cli;
mod corruptions;
mod data_loaders;
mod demo_signatures;
mod extract;
mod format;
mod patch;
mod runtime;
mod sensors;
// Training with candle is behind the `train` feature (the daemon-side ARM builds leave it out).
#[cfg(feature = "train")]
mod train;
