//! `rws patch`: write an ONNX model with signatures applied to its initializers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_runtime::onnx::OnnxModel;
use rws_signature::SignatureFile;

/// Apply signatures to a model and write the patched ONNX file.
///
/// Each --sig is FILE.rws or FILE.rws:ALPHA (default α = 1); the output has
/// initializer = clean + Σ α·signature, for use in any runtime (onnxruntime, TensorRT). Signatures
/// that do not fit the model are refused with the list of mismatches, and nothing is written.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The clean ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// A signature, optionally with its coefficient: fog.rws or fog.rws:0.7. Repeat to compose.
    #[arg(long = "sig", required = true, value_parser = parse_sig)]
    sigs: Vec<(PathBuf, f32)>,
    /// Where to write the patched model.
    #[arg(long)]
    out: PathBuf,
}

fn parse_sig(s: &str) -> Result<(PathBuf, f32), String> {
    if let Some((path, alpha)) = s.rsplit_once(':') {
        if let Ok(a) = alpha.parse::<f32>() {
            if !a.is_finite() {
                return Err(format!("α in '{s}' is not finite"));
            }
            return Ok((PathBuf::from(path), a));
        }
    }
    Ok((PathBuf::from(s), 1.0))
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let model = OnnxModel::open(&args.model)?;
    let sigs: Vec<SignatureFile> = args
        .sigs
        .iter()
        .map(|(p, _)| SignatureFile::open(p))
        .collect::<Result<_, _>>()?;
    let terms: Vec<(&SignatureFile, f32)> = sigs
        .iter()
        .zip(&args.sigs)
        .map(|(s, (_, a))| (s, *a))
        .collect();
    let patched = rws_runtime::apply::patch_model(&model, &terms)
        .with_context(|| format!("cannot patch {}", args.model.display()))?;
    rws_signature::format::writer::write_atomic(&args.out, &patched.to_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let tensors: std::collections::BTreeSet<&str> = sigs
        .iter()
        .flat_map(|s| s.tensors().iter().map(|t| t.name.as_str()))
        .collect();
    outln!(
        "{}: {} tensors patched by {} signature(s)",
        args.out.display(),
        tensors.len(),
        sigs.len()
    )?;
    Ok(ExitCode::SUCCESS)
}
