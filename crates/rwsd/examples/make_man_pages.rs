//! Writes the manual pages of `rwsd` and `rwsctl` (and each `rwsctl` subcommand) into
//! `crates/rwsd/debian/man/`, from the same clap definitions the binaries parse (`rwsd::cli`).
//! Run after changing a command line: `cargo run -p rwsd --example make_man_pages`; the test
//! `packaging::man_pages_are_current` fails until the committed pages match.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/man");
    let mut pages = rws_testkit::man::pages(rwsd::cli::Rwsd::command());
    pages.extend(rws_testkit::man::pages(rwsd::cli::Rwsctl::command()));
    for (name, text) in pages {
        let path = dir.join(&name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("make_man_pages: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
