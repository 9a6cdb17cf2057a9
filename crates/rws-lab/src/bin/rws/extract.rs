//! `rws extract`: one signature per robust model, from ONNX files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_lab::extract::{extract, Options, Selection};
use rws_signature::DType;

/// Extract Robust Weight Signatures from ONNX models.
///
/// For each robust model θc (fine-tuned from θ0 on one corruption), writes OUT/NAME.rws holding,
/// per selected tensor, d_c − proj_{d_std}(d_c) with d = θ − θ0. Tensors: the shallowest K
/// weight-bearing layers (with biases and BatchNorm tensors), or those matching --tensors.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shared initialization θ0.
    #[arg(long)]
    init: PathBuf,
    /// The clean model θstd, trained from θ0.
    #[arg(long)]
    standard: PathBuf,
    /// A robust model as NAME=PATH (NAME is the corruption, e.g. fog=fog.onnx). Repeat.
    #[arg(long = "robust", required = true, value_parser = parse_robust)]
    robust: Vec<(String, PathBuf)>,
    /// Number of shallowest weight-bearing layers to cover (the paper's K).
    #[arg(long, default_value_t = 5, conflicts_with = "tensors")]
    layers: usize,
    /// Instead of --layers: every f32 initializer whose name matches this regular expression.
    #[arg(long)]
    tensors: Option<String>,
    /// Storage type of the signatures: i8 (per-channel), f16 or f32.
    #[arg(long, default_value = "i8")]
    dtype: DType,
    /// Severity the robust models were trained at (0 = mixed or unknown).
    #[arg(long, default_value_t = 5)]
    severity: u8,
    /// Name of the training dataset, recorded in the metadata.
    #[arg(long, default_value = "")]
    dataset: String,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn parse_robust(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=PATH"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let selection = match &args.tensors {
        Some(re) => {
            Selection::Matching(regex::Regex::new(re).with_context(|| format!("--tensors '{re}'"))?)
        }
        None => Selection::Layers(args.layers),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let opts = Options {
        selection,
        dtype: args.dtype,
        severity: args.severity,
        dataset: args.dataset.clone(),
        out_dir: args.out.clone(),
    };
    let mut bar = rws_lab::progress::Lazy::new("extract");
    let done = extract(
        &args.init,
        &args.standard,
        &args.robust,
        &opts,
        |i, n, name| bar.step(i, n, name),
    )?;
    bar.finish();
    for e in &done {
        let worst = e
            .report
            .tensors
            .iter()
            .map(|t| t.2.rel_l2_err)
            .fold(0f32, f32::max);
        outln!(
            "{}: {} tensors, {} bytes, worst relative quantization error {:.2e}",
            e.path.display(),
            e.report.tensors.len(),
            e.report.file_len,
            worst
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
