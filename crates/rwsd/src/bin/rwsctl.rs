//! `rwsctl`: the device client of rwsd. Small (it never builds a model): status and overrides
//! over the control socket, replayed coefficient traces, and config checks before a SIGHUP.
//!
//! Exit codes: 0 success, 1 a check found problems (a stale sensor, a failed reload), 2 an error
//! (no daemon on the socket, bad input; the message says which).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use rwsd::cli::{CheckArgs, Command, OverrideArgs, ReplayArgs, Rwsctl, StatusArgs};
use rwsd::config::Config;
use rwsd::protocol::Request;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Rwsctl::parse();
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
