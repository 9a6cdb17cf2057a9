//! `rws calibrate`: policy curves for rwsd from a measured sweep and the user's declared
//! signal ↔ severity table ([`rws_lab::experiments::calibrate`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_lab::experiments::calibrate::{self, Calibration};
use rws_lab::experiments::sweep::Sweep;

/// Turn a sweep's best α per severity into rwsd policy rules.
///
/// --map declares, per rule, which signal value means which corruption severity (e.g.
/// visibility 1000 m = off … 150 m = severity 5); the sweep (`rws eval --mode sweep --json`)
/// gives the best α at each severity. Prints `[[policy.rule]]` TOML (or --json), or rewrites the
/// block between "# BEGIN rws calibrate" and "# END rws calibrate" of each --update config,
/// keeping the rules that block lists.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sweep's JSON.
    #[arg(long, default_value = "docs/results/sweep.json")]
    sweep: PathBuf,
    /// The signal ↔ severity table.
    #[arg(long, default_value = "firmware-config/severity-map.toml")]
    map: PathBuf,
    /// Rewrite the calibrated block of these configs in place.
    #[arg(long, num_args = 1..)]
    update: Vec<PathBuf>,
    /// RA within this fraction of the best counts as the best; the smallest such α is used.
    #[arg(long, default_value_t = calibrate::TOLERANCE)]
    tolerance: f64,
    /// Print the calibration as JSON (best α, RA, curves) instead of TOML.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.sweep)
        .with_context(|| format!("reading {}", args.sweep.display()))?;
    let sweep: Sweep = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a sweep (rws eval --mode sweep --json)",
            args.sweep.display()
        )
    })?;
    let map = calibrate::load_map(&args.map)?;
    let cal = calibrate::calibrate(&sweep, &args.sweep, &map, args.tolerance)?;
    for r in cal.rules.iter().filter(|r| !r.monotone) {
        eprintln!("rws calibrate: note: {}: α {:?} falls somewhere as severity rises; the curve follows the measurement", r.signature, r.best_alpha);
    }
    if !args.update.is_empty() {
        for path in &args.update {
            update(path, &cal, &calibrate::header(&args.sweep, &args.map, &cal))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&cal)?)?;
    } else {
        outln!("{}\n", calibrate::header(&args.sweep, &args.map, &cal))?;
        out!("{}", calibrate::to_toml(&cal, &[]))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn update(path: &PathBuf, cal: &Calibration, header: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let new = calibrate::update_block(path, &text, cal, header)?;
    if new != text {
        // Written beside and renamed, so a config is never left half-written.
        let tmp = path.with_extension("toml.calibrate-tmp");
        std::fs::write(&tmp, &new).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        eprintln!("updated {}", path.display());
    } else {
        eprintln!("{}: already current", path.display());
    }
    Ok(())
}
