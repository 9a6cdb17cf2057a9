//! `rws eval --mode sweep|cross|compose|storage|ksweep|transfer`: opens the signature set and the test split as
//! `rws eval` does, runs the experiment of [`rws_lab::experiments`], prints JSON (`--json`) or a
//! short table, and draws the figure (`--plot`).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rws_lab::corrupt::Preset;
use rws_lab::data;
use rws_lab::experiments::{self, compose, cross, plot, storage, sweep, transfer, Lab};
use rws_signature::manifest::Manifest;

use crate::eval::{Args, Mode};

/// The command as typed, from `rws` on, recorded in every result so it can be rerun.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("rws {}", args.join(" "))
}

pub fn open(args: &Args) -> Result<Lab> {
    let preset: Preset = args.preset.parse()?;
    let mut test = data::open_split(&args.dataset, args.data.as_deref())?.test;
    if let Some(n) = args.limit {
        test = test.spread(n);
    }
    Ok(Lab::open(&args.signatures, test, preset)?)
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.transfer_from.is_some() != (args.mode == Mode::Transfer) {
        bail!("--mode transfer needs --transfer-from DIR (the source set), and only it takes one");
    }
    if matches!(args.mode, Mode::Storage | Mode::Ksweep) {
        return run_storage(args);
    }
    if args.models.is_some() {
        bail!("--models is for --mode table, storage and ksweep");
    }
    let lab = open(args)?;
    match args.mode {
        Mode::Sweep => run_sweep(args, &lab),
        Mode::Cross => run_cross(args, &lab),
        Mode::Compose => run_compose(args, &lab),
        Mode::Transfer => run_transfer(args, &lab),
        Mode::Table | Mode::Storage | Mode::Ksweep => unreachable!("dispatched above"),
    }
}

/// Writes the figure if `--plot` asked for one.
pub fn write_plot(
    args: &Args,
    svg: impl FnOnce() -> Result<String, experiments::ExperimentError>,
) -> Result<()> {
    if let Some(path) = &args.plot {
        std::fs::write(path, svg()?).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Prints `value` as one JSON object with the command line first.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut v = serde_json::to_value(value)?;
    if let Some(map) = v.as_object_mut() {
        map.insert("command".into(), command_line().into());
    }
    outln!("{}", serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

fn run_sweep(args: &Args, lab: &Lab) -> Result<ExitCode> {
    let paper = sweep::Grid::paper();
    let grid = sweep::Grid {
        alphas: if args.alphas.is_empty() {
            paper.alphas
        } else {
            args.alphas.clone()
        },
        severities: if args.severities.is_empty() {
            paper.severities
        } else {
            args.severities.clone()
        },
    }
    .check()?;
    let bar = rws_lab::progress::bar(sweep::steps(lab, &grid), "sweep");
    let s = sweep::run(lab, &grid, &args.dataset, &bar)?;
    bar.finish_and_clear();
    write_plot(args, || plot::sweep(&s))?;
    if args.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Mean RA (%) over {} corruptions, {} test images; rows severity, columns α:\n",
        s.rows.len(),
        s.provenance.images
    )?;
    let head: Vec<String> = s.alphas.iter().map(|a| format!("{a}")).collect();
    outln!("| severity | {} | best α |", head.join(" | "))?;
    outln!("|---|{}---:|", "---:|".repeat(s.alphas.len()))?;
    for ((sev, ra), best) in s
        .severities
        .iter()
        .zip(&s.mean_ra)
        .zip(&s.best_alpha_per_severity)
    {
        let cells: Vec<String> = ra.iter().map(|r| format!("{:.1}", r * 100.0)).collect();
        outln!("| {sev} | {} | {best} |", cells.join(" | "))?;
    }
    outln!(
        "\nBest α non-decreasing with severity: {}",
        s.best_alpha_non_decreasing
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_cross(args: &Args, lab: &Lab) -> Result<ExitCode> {
    let bar = rws_lab::progress::bar(lab.signatures.len() as u64, "cross");
    let c = cross::run(lab, args.severity, args.alpha, &args.dataset, &bar)?;
    bar.finish_and_clear();
    write_plot(args, || plot::cross(&c))?;
    if args.json {
        print_json(&c)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Mean RA gain (points), severity {}, α = {}: own signature {:+.1}, another of its group {:+.1}, another group {:+.1}\n",
        c.severity,
        c.alpha,
        c.mean_gain_own * 100.0,
        c.mean_gain_same_group * 100.0,
        c.mean_gain_other_group * 100.0
    )?;
    outln!("| corruption | own gain | best other signature | its gain |")?;
    outln!("|---|---:|---|---:|")?;
    for b in &c.best_other {
        outln!(
            "| {} | {:+.1} | {} | {:+.1} |",
            b.corruption,
            b.own_gain * 100.0,
            b.signature,
            b.gain * 100.0
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_compose(args: &Args, lab: &Lab) -> Result<ExitCode> {
    let alphas = if args.alphas.is_empty() {
        vec![0.0, 0.5, 1.0, 1.5]
    } else {
        args.alphas.clone()
    };
    let bar = rws_lab::progress::bar((compose::PAIRS.len() * alphas.len()) as u64, "compose");
    let c = compose::run(
        lab,
        &compose::PAIRS,
        &alphas,
        args.severity,
        &args.dataset,
        &bar,
    )?;
    bar.finish_and_clear();
    write_plot(args, || plot::compose(&c))?;
    if args.json {
        print_json(&c)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("Compound corruptions at severity {}, RA (%):\n", c.severity)?;
    outln!("| first then second | clean | first only | second only | best (α₁, α₂) | RA | beats both |")?;
    outln!("|---|---:|---:|---:|---|---:|---|")?;
    for p in &c.pairs {
        outln!(
            "| {} + {} | {:.1} | {:.1} | {:.1} | ({}, {}) | {:.1} | {} |",
            p.first,
            p.second,
            p.clean * 100.0,
            p.best_first_only * 100.0,
            p.best_second_only * 100.0,
            p.best.0,
            p.best.1,
            p.best_ra * 100.0,
            p.beats_both
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_storage(args: &Args) -> Result<ExitCode> {
    let Some(models) = &args.models else {
        bail!("--mode storage and ksweep extract the signatures again: give --models DIR (the directory of `rws train --recipe demo --out DIR`)");
    };
    if args.plot.is_some() && args.mode == Mode::Storage {
        bail!("--mode storage prints a table; --plot draws sweep, cross, compose and ksweep");
    }
    let preset: Preset = args.preset.parse()?;
    let mut test = data::open_split(&args.dataset, args.data.as_deref())?.test;
    if let Some(n) = args.limit {
        test = test.spread(n);
    }
    let forms = if args.mode == Mode::Storage {
        storage::table1_forms()
    } else {
        storage::k_forms(storage::weight_layers(models)?)
    };
    let run = storage::Run {
        models,
        test: &test,
        preset,
        seed: experiments::SEED,
        severity: args.severity,
        alpha: args.alpha,
        dataset: &args.dataset,
    };
    let bar = rws_lab::progress::bar(forms.len() as u64, "variants");
    let mut s = storage::run(&run, &forms, &bar)?;
    bar.finish_and_clear();
    if args.mode == Mode::Ksweep {
        s.experiment = "ksweep".into();
        write_plot(args, || plot::ksweep(&s))?;
    }
    if args.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Clean model: TA {:.1} %, mean RA {:.1} % (severity {}, {} images); signatures at α = {}:\n",
        s.ta_clean * 100.0,
        s.mean_ra_clean * 100.0,
        s.severity,
        s.provenance.images,
        s.alpha
    )?;
    outln!("| variant | layers | dtype | kB per signature | parameters | worst quant. error | mean TA | mean RA |")?;
    outln!("|---|---:|---|---:|---:|---:|---:|---:|")?;
    for v in &s.variants {
        outln!(
            "| {} | {}{} | {} | {:.1} | {} | {:.1e} | {:.1} | {:.1} |",
            v.label,
            v.layers,
            if v.all_layers { " (all)" } else { "" },
            v.dtype,
            v.kb_per_signature,
            v.parameters,
            v.worst_rel_quant_error,
            v.mean_ta * 100.0,
            v.mean_ra * 100.0
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_transfer(args: &Args, lab: &Lab) -> Result<ExitCode> {
    let Some(source_dir) = &args.transfer_from else {
        bail!("--mode transfer needs --transfer-from DIR");
    };
    if args.plot.is_some() {
        bail!("--mode transfer prints a table; --plot draws sweep, cross, compose and ksweep");
    }
    let dataset_of = |dir: &std::path::Path| -> Result<String> {
        Ok(Manifest::load(dir.join("manifest.json"))?.model.dataset)
    };
    let (_, source) = experiments::open_set(source_dir)?;
    let (source_name, target_name) = (dataset_of(source_dir)?, dataset_of(&args.signatures)?);
    let bar = rws_lab::progress::bar(lab.signatures.len() as u64, "transfer");
    let datasets = transfer::Datasets {
        source: &source_name,
        target: &target_name,
    };
    let t = transfer::run(lab, &source, datasets, args.severity, args.alpha, &bar)?;
    bar.finish_and_clear();
    if args.json {
        print_json(&t)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "Signatures of {} on the {} model, severity {}, α = {}, {} images; RA (%):\n",
        t.source_dataset,
        t.target_dataset,
        t.severity,
        t.alpha,
        t.provenance.images
    )?;
    outln!("| corruption | group | clean | own signature | transferred |")?;
    outln!("|---|---|---:|---:|---:|")?;
    for r in &t.rows {
        outln!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            r.corruption,
            r.group,
            r.clean * 100.0,
            r.in_domain * 100.0,
            r.transfer * 100.0
        )?;
    }
    outln!(
        "| **mean** | | **{:.1}** | **{:.1}** | **{:.1}** |",
        t.mean_ra_clean * 100.0,
        t.mean_ra_in_domain * 100.0,
        t.mean_ra_transfer * 100.0
    )?;
    if let Some(share) = t.transfer_share {
        outln!(
            "\nTransfer keeps {:.0} % of the in-domain gain.",
            share * 100.0
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
