//! `rws layers` and `rws similarity`: the signatures as weights, read from the set alone
//! ([`rws_lab::experiments::anatomy`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_lab::experiments::{anatomy, open_set, plot};

/// Per weight layer, each signature's norm against the clean weight's (the paper's Fig. 2).
///
/// Prints a table (or --json), and with --plot draws it as SVG.
#[derive(clap::Args, Debug)]
pub struct LayersArgs {
    /// Directory with manifest.json, the clean model and the signatures.
    #[arg(long, default_value = "signatures")]
    signatures: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the figure into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Cosine similarity of every pair of signatures, ordered by group (the paper's Fig. 4).
///
/// Prints the group means and each signature's nearest other (or --json), and with --plot draws
/// the matrix as SVG.
#[derive(clap::Args, Debug)]
pub struct SimilarityArgs {
    /// Directory with manifest.json, the clean model and the signatures.
    #[arg(long, default_value = "signatures")]
    signatures: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the figure into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn write_plot(path: &Option<PathBuf>, svg: String) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, svg).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut v = serde_json::to_value(v)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("command".into(), crate::mode::command_line().into());
    }
    outln!("{}", serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

pub fn layers(args: &LayersArgs) -> Result<ExitCode> {
    let (clean, sigs) = open_set(&args.signatures)?;
    let l = anatomy::layers(&clean, &sigs)?;
    write_plot(&args.plot, plot::layers(&l)?)?;
    if args.json {
        print_json(&l)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("| layer | mean ‖RWS‖/‖W‖ | mean share of the signature's norm² |")?;
    outln!("|---|---:|---:|")?;
    for ((name, r), s) in l.layers.iter().zip(&l.mean_ratio).zip(&l.mean_share) {
        outln!("| {name} | {r:.4} | {:.1} % |", s * 100.0)?;
    }
    outln!("\nFalls with depth: {}", l.ratio_falls_with_depth)?;
    Ok(ExitCode::SUCCESS)
}

pub fn similarity(args: &SimilarityArgs) -> Result<ExitCode> {
    let (_, sigs) = open_set(&args.signatures)?;
    let s = anatomy::similarity(&sigs)?;
    write_plot(&args.plot, plot::similarity(&s)?)?;
    if args.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Mean cosine similarity: same group {:.3}, across groups {:.3}\n",
        s.mean_same_group,
        s.mean_cross_group
    )?;
    outln!("| signature | group | nearest other | cosine |")?;
    outln!("|---|---|---|---:|")?;
    for (i, row) in s.cosine.iter().enumerate() {
        let j = (0..row.len())
            .filter(|&j| j != i)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap_or(i);
        outln!(
            "| {} | {} | {} | {:.3} |",
            s.names[i],
            s.groups[i],
            s.names[j],
            row[j]
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
