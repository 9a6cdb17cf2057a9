//! `rws eval`: the paper's Table 1 for a signature set — per corruption, the clean model's robust
//! accuracy, with its signature at α, and (when the trained models are at hand) the dedicated
//! robust model ("All Models") and the data-augmentation model. `--mode sweep|cross|compose`
//! runs the experiments of [`rws_lab::experiments`] instead (mode.rs).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_lab::corrupt::{Corruption, Preset};
use rws_lab::data;
use rws_lab::eval::Classifier;
use rws_runtime::onnx::OnnxModel;
use rws_signature::manifest::Manifest;
use rws_signature::SignatureFile;

/// Measure test and robust accuracy with and without signatures.
///
/// Reads the manifest in --signatures, evaluates on the dataset's fixed test split corrupted at
/// --severity (seeded), and prints a Markdown table (or JSON). Other modes: `sweep` (RA per
/// corruption over --alphas × --severities, the best α per severity; the paper's Fig. 7),
/// `cross` (each signature on every corruption at --severity and --alpha; §2.3), `compose`
/// (compound corruptions, two signatures over --alphas × --alphas; Fig. 8), `storage` (the
/// signatures extracted again from the models in --models as K = 5 or all layers × f32, f16,
/// int8; Table 1), `ksweep` (K = 1 … all layers, int8; Fig. 6) and `transfer` (the signatures
/// of --transfer-from, extracted on another dataset, on the clean model of --signatures, against
/// its own signatures; Table 3).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to measure: table, sweep, cross, compose, storage, ksweep or transfer.
    #[arg(long, value_enum, default_value_t = Mode::Table)]
    pub mode: Mode,
    /// α grid of sweep (default 0,0.25,…,2) and compose (default 0,0.5,1,1.5).
    #[arg(long, value_delimiter = ',')]
    pub alphas: Vec<f32>,
    /// Severities of sweep (default 1,2,3,4,5).
    #[arg(long, value_delimiter = ',')]
    pub severities: Vec<u8>,
    /// Also draw the mode's figure into this SVG file (sweep, cross, compose, ksweep).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Directory with manifest.json, the clean model and the signatures.
    #[arg(long, default_value = "signatures")]
    pub signatures: PathBuf,
    /// transfer: the signature set extracted on the other (source) dataset; --signatures is
    /// then the target set, whose clean model and own signatures it is compared on.
    #[arg(long)]
    pub transfer_from: Option<PathBuf>,
    /// Directory of `rws train --recipe demo` (robust/<name>.onnx, augmented.onnx), for the
    /// "All Models" and "Data Augmentation" columns.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Dataset: mnist-5k, digits, or cifar10 (with --data DIR).
    #[arg(long, default_value = "mnist-5k")]
    pub dataset: String,
    /// Dataset file (default: the committed copy under data/), or CIFAR-10's directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Corruption severity of the test images.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub severity: u8,
    /// Corruption constants of the test images: imagenet, cifar or auto.
    #[arg(long, default_value = "imagenet")]
    pub preset: String,
    /// Coefficient of the signature.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f32,
    /// Evaluate on N test images only, spread evenly over the split (every class kept).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure the camera-only oracle of the set (its manifest's `oracle` head) against the
    /// perfect oracle, over --severities (default 1-5), with a stream test; --plot draws its
    /// confusion matrix.
    #[arg(long)]
    pub oracle: bool,
    /// --oracle: the probability at which the oracle engages its most probable corruption.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
}

#[derive(serde::Serialize)]
struct Row {
    corruption: String,
    group: String,
    clean_model: f64,
    with_rws: f64,
    all_models: Option<f64>,
    augmentation: Option<f64>,
}

/// `--mode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Table,
    Sweep,
    Cross,
    Compose,
    Storage,
    Ksweep,
    Transfer,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.oracle {
        return crate::oracle::eval(args);
    }
    if args.mode != Mode::Table {
        return crate::mode::run(args);
    }
    if args.transfer_from.is_some() {
        anyhow::bail!("--transfer-from is for --mode transfer");
    }
    if args.plot.is_some() {
        anyhow::bail!("--plot draws the figures of --mode sweep, cross, compose and ksweep");
    }
    let preset: Preset = args.preset.parse()?;
    let manifest = Manifest::load(args.signatures.join("manifest.json"))?;
    let mut test = data::open_split(&args.dataset, args.data.as_deref())?.test;
    if let Some(n) = args.limit {
        test = test.spread(n);
    }
    let clean = OnnxModel::open(args.signatures.join(&manifest.model.file))?;
    let side = 32;
    let base = Classifier::from_onnx(&clean.to_bytes(), side)?;
    let aug = match &args.models {
        Some(dir) => Some(Classifier::from_onnx(
            &std::fs::read(dir.join("augmented.onnx")).context("augmented.onnx")?,
            side,
        )?),
        None => None,
    };
    let seed = 12345;
    let ta = base.score(&test)?;
    let ta_aug = aug.as_ref().map(|a| a.score(&test)).transpose()?;
    let mut rows = Vec::new();
    let bar = rws_lab::progress::bar(manifest.signatures.len() as u64, "eval");
    for entry in &manifest.signatures {
        bar.set_message(entry.corruption.clone());
        let c: Corruption = entry.corruption.parse()?;
        let sig = SignatureFile::open(args.signatures.join(&entry.file))?;
        let patched = rws_runtime::apply::patch_model(&clean, &[(&sig, args.alpha)])?;
        let with = Classifier::from_onnx(&patched.to_bytes(), side)?;
        // Every model is scored on the same corrupted images, corrupted once.
        let images = rws_lab::eval::corrupted(&test, c, args.severity, preset, seed)?;
        let dedicated = match &args.models {
            Some(dir) => {
                let p = dir.join("robust").join(format!("{}.onnx", c.name()));
                let m = Classifier::from_onnx(
                    &std::fs::read(&p).with_context(|| p.display().to_string())?,
                    side,
                )?;
                Some(m.score(&images)?)
            }
            None => None,
        };
        let row = Row {
            corruption: c.name().into(),
            group: c.group().to_string(),
            clean_model: base.score(&images)?,
            with_rws: with.score(&images)?,
            all_models: dedicated,
            augmentation: aug.as_ref().map(|a| a.score(&images)).transpose()?,
        };
        bar.suspend(|| {
            eprintln!(
                "{}: {:.1}% -> {:.1}%",
                row.corruption,
                row.clean_model * 100.0,
                row.with_rws * 100.0
            )
        });
        bar.inc(1);
        rows.push(row);
    }
    bar.finish_and_clear();
    if args.json {
        // TA with every signature bound at α = 0 goes through the patch engine (no shortcut):
        // the clean model, bit for bit, so this must equal `ta_clean`.
        let sigs = manifest
            .signatures
            .iter()
            .map(|e| SignatureFile::open(args.signatures.join(&e.file)))
            .collect::<Result<Vec<_>, _>>()?;
        let off: Vec<(&SignatureFile, f32)> = sigs.iter().map(|s| (s, 0.0)).collect();
        let ta_off = Classifier::from_onnx(
            &rws_runtime::apply::patch_model(&clean, &off)?.to_bytes(),
            side,
        )?
        .score(&test)?;
        let n = rows.len().max(1) as f64;
        let mean_of = |f: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
            let v: Vec<f64> = rows.iter().filter_map(f).collect();
            (v.len() == rows.len()).then(|| v.iter().sum::<f64>() / n)
        };
        let (m_clean, m_rws) = (
            mean_of(&|r| Some(r.clean_model)),
            mean_of(&|r| Some(r.with_rws)),
        );
        let m_all = mean_of(&|r| r.all_models);
        let share = m_all
            .zip(m_clean.zip(m_rws))
            .filter(|(all, (c, _))| all > c)
            .map(|(all, (c, r))| (r - c) / (all - c));
        outln!(
            "{}",
            serde_json::json!({
                "experiment": "table",
                "command": crate::mode::command_line(),
                "dataset": args.dataset, "images": test.len(), "preset": args.preset,
                "severity": args.severity, "alpha": args.alpha,
                "ta_clean": ta, "ta_rws_off": ta_off, "test_accuracy": ta,
                "test_accuracy_augmentation": ta_aug,
                "mean_ra_clean": m_clean, "mean_ra_rws": m_rws, "mean_ra_all_models": m_all,
                "mean_ra_augmentation": mean_of(&|r| r.augmentation),
                "gain_share_of_all_models": share,
                "rows": rows})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}", v * 100.0));
    outln!(
        "Test accuracy (clean images): standard {:.1}%{}",
        ta * 100.0,
        ta_aug.map_or(String::new(), |a| format!(
            ", data augmentation {:.1}%",
            a * 100.0
        ))
    )?;
    outln!(
        "Robust accuracy (%) at severity {}, {} test images, α = {}:\n",
        args.severity,
        test.len(),
        args.alpha
    )?;
    outln!("| corruption | group | standard | standard + RWS | diff | all models | data augmentation |")?;
    outln!("|---|---|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        outln!(
            "| {} | {} | {:.1} | {:.1} | {:+.1} | {} | {} |",
            r.corruption,
            r.group,
            r.clean_model * 100.0,
            r.with_rws * 100.0,
            (r.with_rws - r.clean_model) * 100.0,
            pct(r.all_models),
            pct(r.augmentation)
        )?;
    }
    let n = rows.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = rows.iter().filter_map(f).collect();
        (v.len() == rows.len()).then(|| v.iter().sum::<f64>() / n)
    };
    let (a, b) = (
        mean(&|r| Some(r.clean_model)).unwrap_or(0.0),
        mean(&|r| Some(r.with_rws)).unwrap_or(0.0),
    );
    outln!(
        "| **mean** | | **{:.1}** | **{:.1}** | **{:+.1}** | {} | {} |",
        a * 100.0,
        b * 100.0,
        (b - a) * 100.0,
        pct(mean(&|r| r.all_models)),
        pct(mean(&|r| r.augmentation))
    )?;
    Ok(ExitCode::SUCCESS)
}
