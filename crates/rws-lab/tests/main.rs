//! rws-lab's integration tests, one module per area, linked into one test binary: each binary
//! links tract and candle, so one instead of several saves minutes of linking; and the harness
//! spreads the slow tests of every area over all cores at once.

mod cli;
mod corruptions;
mod data_loaders;
mod demo_signatures;
mod experiments;
mod extract;
mod oracle;
// Training with candle is behind the `train` feature.
#[cfg(feature = "train")]
mod train;

/// Runs the `rws` binary: (exit code, stdout, stderr).
pub fn rws(args: &[&str]) -> (i32, String, String) {
    rws_testkit::run(env!("CARGO_BIN_EXE_rws"), args)
}
