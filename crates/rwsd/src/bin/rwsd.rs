//! `rwsd`: the sensor-driven robustness daemon.
//!
//! Reads weather and camera-fault sensors, maps their signals to signature coefficients with the
//! policy of a `firmware-config/*.toml`, and runs every camera frame on the clean model patched
//! with those coefficients (the `rws-runtime` split model). One JSON line per frame goes to
//! stdout or a file; a UNIX socket serves status and manual overrides (`rwsctl status`,
//! `rwsctl override`). SIGHUP reloads the config and signatures, prepared on a thread of its own
//! while frames go on, then swapped in between two frames (a bad new config keeps the old one);
//! SIGTERM and SIGINT finish the current frame and exit 0. The logic is the `rwsd` library.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use rwsd::cli::Rwsd;
use rwsd::daemon::{self, Daemon, Signals};

fn main() -> ExitCode {
    // Before any thread exists: every thread's allocations then share two arenas.
    rwsd::source::bound_malloc_arenas();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Rwsd::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            eprintln!("rwsd: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Rwsd) -> Result<()> {
    if args.check {
        println!("{}", daemon::check(&args.config)?);
        return Ok(());
    }
    let signals = Signals::install()?;
    let mut d = Daemon::start(&args.config)?;
    if let Some(trace) = &args.trace {
        d.trace_to(trace)?;
    }
    d.run(&signals, args.max_frames)
}
