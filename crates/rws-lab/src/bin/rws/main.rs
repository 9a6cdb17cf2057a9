//! `rws`: the offline and maintenance command line for Robust Weight Signatures.
//!
//! Each subcommand lives in its own module and returns an exit status; errors are reported here,
//! once, with their context chain. Exit codes: 0 success, 1 a check found problems (e.g. `verify`
//! mismatches), 2 an error (bad input, unreadable file).

mod bench;
mod corrupt;
mod eval;
mod extract;
mod inspect;
mod moved;
mod patch;
#[cfg(feature = "train")]
mod train;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Robust Weight Signatures: inspect and verify weight patches that give vision models robustness to
/// weather and camera faults, and make the corrupted images they are trained and tested on.
#[derive(Parser, Debug)]
#[command(name = "rws", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Bench(bench::Args),
    Inspect(inspect::Args),
    Corrupt(corrupt::Args),
    Extract(extract::Args),
    Eval(eval::Args),
    Patch(patch::Args),
    /// Moved to `rwsctl replay` (the device client).
    #[command(hide = true)]
    Replay(moved::Args),
    /// Moved to `rwsctl status`.
    #[command(hide = true)]
    Status(moved::Args),
    /// Moved to `rwsctl override`.
    #[command(hide = true)]
    Override(moved::Args),
    #[cfg(feature = "train")]
    Train(train::Args),
    Verify(verify::Args),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Corrupt(args) => corrupt::run(&args),
        Command::Extract(args) => extract::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Patch(args) => patch::run(&args),
        Command::Replay(_) => moved::run("replay"),
        Command::Status(_) => moved::run("status"),
        Command::Override(_) => moved::run("override"),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run(&args),
        Command::Verify(args) => verify::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rws: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
