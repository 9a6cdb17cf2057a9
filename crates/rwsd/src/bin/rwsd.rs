//! `rwsd`: the sensor-driven robustness daemon.
//!
//! Reads weather and camera-fault sensors, maps their signals to signature coefficients with the
//! policy of a `firmware-config/*.toml`, and runs every camera frame on the clean model patched
//! with those coefficients (the `rws-runtime` split model). One JSON line per frame goes to
//! stdout or a file; a UNIX socket serves status and manual overrides (`rwsctl status`,
//! `rwsctl override`). SIGHUP reloads the config and signatures, prepared on a thread of its own
//! while frames go on, then swapped in between two frames (a bad new config keeps the old one);
//! SIGTERM and SIGINT finish the current frame and exit 0. The logic is the `rwsd` library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use rwsd::daemon::{self, Daemon, Signals};

/// Run camera frames through a model patched for the weather and camera faults the sensors report.
///
/// Replays the shipped demo with `rwsd --config firmware-config/demo.toml`. Log verbosity follows
/// RUST_LOG (default `info`); frame results are JSON lines on stdout (or `output.path`).
#[derive(Parser, Debug)]
#[command(name = "rwsd", version)]
struct Args {
    /// The daemon config (`firmware-config/*.toml`).
    #[arg(long, short)]
    config: PathBuf,
    /// Check the config, model and signatures (building the runtime) and what a start would use
    /// (socket, frame source, output, sensors), print a summary and exit. Changes nothing: no
    /// file is created or truncated, nothing is bound, opened or started.
    #[arg(long)]
    check: bool,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
}

fn main() -> ExitCode {
    // Before any thread exists: every thread's allocations then share two arenas.
    rwsd::source::bound_malloc_arenas();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            eprintln!("rwsd: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if args.check {
        println!("{}", daemon::check(&args.config)?);
        return Ok(());
    }
    let signals = Signals::install()?;
    let mut d = Daemon::start(&args.config)?;
    d.run(&signals, args.max_frames)
}
