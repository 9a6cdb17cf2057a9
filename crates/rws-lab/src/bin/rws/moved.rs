//! `rws status`, `rws override` and `rws replay` moved to `rwsctl`, the device client (it needs
//! none of the offline code, so a device carries a small binary instead of this one). The old
//! names stay, hidden, to say where each went; they exit 2 without doing anything.

use std::process::ExitCode;

use anyhow::{bail, Result};

/// Whatever the old command was given.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(command: &str) -> Result<ExitCode> {
    bail!(
        "`rws {command}` moved to `rwsctl {command}` (same arguments; rwsctl is built with \
         `cargo build --release -p rwsd` and installed on devices beside rwsd)"
    )
}
