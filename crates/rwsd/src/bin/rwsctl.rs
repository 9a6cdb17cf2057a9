//! `rwsctl`: the device client of rwsd. Small (it never builds a model): status and overrides
//! over the control socket, replayed coefficient traces, and config checks before a SIGHUP.
//!
//! Exit codes: 0 success, 1 a check found problems (a stale sensor, a failed reload), 2 an error
//! (no daemon on the socket, bad input; the message says which).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rwsd::config::Config;
use rwsd::protocol::{Request, DEFAULT_SOCKET};

/// Query and steer a running rwsd, replay sensor logs through a policy, check configs.
#[derive(Parser, Debug)]
#[command(name = "rwsctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Status(StatusArgs),
    Override(OverrideArgs),
    Replay(ReplayArgs),
    Check(CheckArgs),
}

/// Show a running rwsd's coefficients, sensor health and counters (exit 1 if a sensor is stale
/// or the last reload failed).
#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// The daemon's control socket (`control.socket` in its config).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

/// Set or clear a manual coefficient override on a running rwsd.
///
/// `rwsctl override fog=0.8 --ttl 600` holds fog at 0.8 for ten minutes; `rwsctl override
/// fog=off` clears one; `rwsctl override --clear` clears all (including the config's).
#[derive(clap::Args, Debug)]
struct OverrideArgs {
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// `signature=alpha` or `signature=off`.
    #[arg(required_unless_present = "clear")]
    setting: Option<String>,
    /// Seconds the override lasts (default: until cleared).
    #[arg(long)]
    ttl: Option<f64>,
    /// Clear every override.
    #[arg(long, conflicts_with = "setting")]
    clear: bool,
}

/// Print the coefficient trace of recorded sensor logs under a config's policy.
///
/// Every sensor of the config must read a file with timestamps (`file = "...", timestamps =
/// true`). The trace has one line per second of log time at which a coefficient changed, then
/// one counter line per sensor; `tests/data/*.trace` are made with this command.
#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// The daemon config whose sensors and policy to replay.
    #[arg(long, short)]
    config: PathBuf,
    /// Seconds evaluated after the last reading (to show staleness and ramps ending).
    #[arg(long, default_value_t = 20.0)]
    tail: f64,
}

/// Check a config before loading it: the config, the manifest's checksums, every signature the
/// policy uses, the model, and that each signature fits it (without building the model; `rwsd
/// --check` also builds it).
#[derive(clap::Args, Debug)]
struct CheckArgs {
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Status(a) => status(a),
        Command::Override(a) => set_override(a),
        Command::Replay(a) => replay(a),
        Command::Check(a) => check(a),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rwsctl: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A reader that went away (`rwsctl status | head -1`) is not an error, as in ripgrep.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn status(a: &StatusArgs) -> Result<ExitCode> {
    let s = rwsd::client::status(&a.socket)?;
    if a.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
    } else {
        print(&rwsd::client::format_status(&s))?;
    }
    Ok(if s.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn set_override(a: &OverrideArgs) -> Result<ExitCode> {
    let req = if a.clear {
        Request::ClearOverrides
    } else {
        rwsd::client::override_request(a.setting.as_deref().unwrap_or_default(), a.ttl)?
    };
    let r = rwsd::client::request(&a.socket, &req)?;
    match r.note {
        Some(note) => print(&format!("ok ({note})\n"))?,
        None => print("ok\n")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(a: &ReplayArgs) -> Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let trace = rwsd::replay::config_trace(&cfg, a.tail)
        .with_context(|| format!("replaying {}", a.config.display()))?;
    print(&trace)?;
    Ok(ExitCode::SUCCESS)
}

fn check(a: &CheckArgs) -> Result<ExitCode> {
    let cfg = Config::load(&a.config)?;
    let summary = rwsd::check::check(&cfg)?;
    print(&format!("{summary}\n"))?;
    Ok(ExitCode::SUCCESS)
}
