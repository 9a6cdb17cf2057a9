//! `rws`: the offline and maintenance command line for Robust Weight Signatures.
//!
//! Each subcommand lives in its own module and returns an exit status; errors are reported here,
//! once, with their context chain. Exit codes: 0 success, 1 a check found problems (e.g. `verify`
//! mismatches), 2 an error (bad input, unreadable file).

/// `println!` that returns the write's error instead of panicking: a reader that went away
/// (`rws inspect --json … | head -c 64`) ends the command, and `main` exits quietly on it, as
/// ripgrep does.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` likewise.
#[allow(unused_macros)]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod anatomy;
mod bench;
mod calibrate;
mod corrupt;
mod eval;
mod extract;
mod inspect;
mod levers;
mod mode;
mod moved;
mod oracle;
mod patch;
#[cfg(feature = "train")]
mod train;
mod trust;
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
    Calibrate(calibrate::Args),
    Inspect(inspect::Args),
    Keygen(trust::KeygenArgs),
    Layers(anatomy::LayersArgs),
    Levers(levers::Args),
    Corrupt(corrupt::Args),
    Extract(extract::Args),
    Eval(eval::Args),
    Oracle(oracle::Args),
    Patch(patch::Args),
    Sign(trust::SignArgs),
    Similarity(anatomy::SimilarityArgs),
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
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Corrupt(args) => corrupt::run(&args),
        Command::Extract(args) => extract::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Oracle(args) => oracle::run(&args),
        Command::Patch(args) => patch::run(&args),
        Command::Keygen(args) => trust::keygen(&args),
        Command::Layers(args) => anatomy::layers(&args),
        Command::Levers(args) => levers::run(&args),
        Command::Similarity(args) => anatomy::similarity(&args),
        Command::Sign(args) => trust::sign(&args),
        Command::Replay(_) => moved::run("replay"),
        Command::Status(_) => moved::run("status"),
        Command::Override(_) => moved::run("override"),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run(&args),
        Command::Verify(args) => verify::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rws: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether the error is a write to a reader that went away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
