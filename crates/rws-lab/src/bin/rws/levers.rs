//! `rws levers`: the table of issue 16's lever study from its run files
//! ([`rws_lab::experiments::levers`]); `scripts/levers` trains and scores the runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_lab::experiments::levers::{compare, Run};
use rws_lab::experiments::plot;

/// Compare whole training runs, each scored as Table 1, against the shipped one.
///
/// Each RUN file is `{"lever", "what", "train", "table"}` with `table` the output of
/// `rws eval --models DIR --signatures DIR/signatures --json`; one must be the baseline, lever
/// `shipped`. `scripts/levers` writes them under docs/results/levers/. Prints a table (or --json),
/// and with --plot draws the grouped bars.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run files (docs/results/levers/*.json).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the figure into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<Run> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a lever run file", path.display()))
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let runs = args.runs.iter().map(read).collect::<Result<Vec<_>>>()?;
    let l = compare(&runs)?;
    if let Some(p) = &args.plot {
        std::fs::write(p, plot::levers(&l)?).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if args.json {
        let mut v = serde_json::to_value(&l)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("command".into(), crate::mode::command_line().into());
        }
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("| lever | what | TA | RA clean | RA + RWS | RA All Models | gain share | RA + RWS vs shipped |")?;
    outln!("|---|---|---:|---:|---:|---:|---:|---:|")?;
    for r in &l.rows {
        outln!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} % | {:+.1} |",
            r.lever,
            r.what,
            r.ta_clean * 100.0,
            r.mean_ra_clean * 100.0,
            r.mean_ra_rws * 100.0,
            r.mean_ra_all_models * 100.0,
            r.gain_share * 100.0,
            r.ra_rws_vs_shipped
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
