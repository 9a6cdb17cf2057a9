//! The command lines of `rwsd` and `rwsctl`: one definition, parsed by the binaries and rendered
//! into their manual pages (`crates/rwsd/debian/man/`, made by `cargo run -p rwsd --example
//! make_man_pages`; a test checks they are current), so `--help` and `man` cannot drift apart.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::protocol::DEFAULT_SOCKET;

/// Run camera frames through a model patched for the weather and camera faults the sensors report.
///
/// Replays the shipped demo with `rwsd --config firmware-config/demo.toml`. Log verbosity follows
/// RUST_LOG (default `info`); frame results are JSON lines on stdout (or `output.path`).
#[derive(Parser, Debug)]
#[command(name = "rwsd", version, after_long_help = RWSD_FILES)]
pub struct Rwsd {
    /// The daemon config (`firmware-config/*.toml`).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Check the config, model and signatures (building the runtime) and what a start would use
    /// (socket, frame source, output, sensors), print a summary and exit. Changes nothing: no
    /// file is created or truncated, nothing is bound, opened or started.
    #[arg(long)]
    pub check: bool,
    /// Stop after this many frames.
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Write the coefficient trace (one line per frame: t and every policy signature's α) to
    /// this file, in place of the config's `output.trace`.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

/// What `rwsd --help` and the manual page say after the options: signals, exit codes, files.
const RWSD_FILES: &str = "\
Signals: SIGHUP reloads the config and signatures (a bad one keeps the running state); SIGTERM and SIGINT finish the frame and exit 0.

Exit codes: 0 stopped as asked; 2 an error at start (the message names file, field and reason).

Files (Debian package): /etc/rwsd/rwsd.toml (the service's config), /var/lib/rwsd/signatures (the set it loads; the package links it to the demo set), /usr/share/rwsd/firmware-config/demo.toml (the demo: rwsd --config that file), /run/rwsd/rwsd.sock (the control socket; rwsctl status).

Docs: /usr/share/doc/rwsd/deploy.md, /usr/share/doc/rwsd/protocols.md.";

/// Query and steer a running rwsd, replay sensor logs through a policy, check configs.
#[derive(Parser, Debug)]
#[command(name = "rwsctl", version)]
pub struct Rwsctl {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Status(StatusArgs),
    Override(OverrideArgs),
    Replay(ReplayArgs),
    Check(CheckArgs),
}

/// Show a running rwsd's coefficients, sensor health and counters (exit 1 if a sensor is stale
/// or the last reload failed).
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The daemon's control socket (`control.socket` in its config).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Set or clear a manual coefficient override on a running rwsd.
///
/// `rwsctl override fog=0.8 --ttl 600` holds fog at 0.8 for ten minutes; `rwsctl override
/// fog=off` clears one; `rwsctl override --clear` clears all (including the config's).
#[derive(clap::Args, Debug)]
pub struct OverrideArgs {
    #[arg(long, default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// `signature=alpha` or `signature=off`.
    #[arg(required_unless_present = "clear")]
    pub setting: Option<String>,
    /// Seconds the override lasts (default: until cleared).
    #[arg(long)]
    pub ttl: Option<f64>,
    /// Clear every override.
    #[arg(long, conflicts_with = "setting")]
    pub clear: bool,
}

/// Print the coefficient trace of recorded sensor logs under a config's policy.
///
/// Every sensor of the config must read a file with timestamps (`file = "...", timestamps =
/// true`). The trace has one line per second of log time at which a coefficient changed, then
/// one counter line per sensor; `tests/data/*.trace` are made with this command.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The daemon config whose sensors and policy to replay.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Seconds evaluated after the last reading (to show staleness and ramps ending).
    #[arg(long, default_value_t = 20.0)]
    pub tail: f64,
}

/// Check a config before loading it: the config, the manifest's checksums, every signature the
/// policy uses, the model, and that each signature fits it (without building the model; `rwsd
/// --check` also builds it).
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[arg(long, short)]
    pub config: PathBuf,
}
