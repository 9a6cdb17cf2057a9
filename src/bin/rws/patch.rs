//! `rws patch`: write an ONNX model with signatures applied to its initializers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rws::onnx::OnnxModel;
use rws::{Patcher, SignatureFile};

/// Apply signatures to a model and write the patched ONNX file.
///
/// Each --sig is FILE.rws or FILE.rws:ALPHA (default α = 1); the output has
/// initializer = clean + Σ α·signature, for use in any runtime (onnxruntime, TensorRT). Signatures
/// that do not fit the model are refused with the list of mismatches.
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
    let mut model = OnnxModel::open(&args.model)?;
    let inits = model.initializers()?;
    let constants = model.constant_outputs();
    let sigs: Vec<SignatureFile> = args
        .sigs
        .iter()
        .map(|(p, _)| SignatureFile::open(p))
        .collect::<Result<_, _>>()?;
    let mut refused = Vec::new();
    for sig in &sigs {
        let problems = rws::compat::check(sig, &inits, &constants);
        if !problems.is_empty() {
            refused.push(format!(
                "{} does not fit {}: {}",
                sig.path().display(),
                args.model.display(),
                rws::compat::Mismatches(problems)
            ));
        }
    }
    if !refused.is_empty() {
        bail!("{}", refused.join("\n"));
    }
    let refs: Vec<&SignatureFile> = sigs.iter().collect();
    let patcher = Patcher::new(&refs)?;
    let clean: Vec<Vec<f32>> = patcher
        .targets()
        .iter()
        .map(|t| model.initializer_f32(&t.name))
        .collect::<Result<_, _>>()?;
    let clean_refs: Vec<&[f32]> = clean.iter().map(Vec::as_slice).collect();
    let mut out: Vec<Vec<f32>> = clean.iter().map(|c| vec![0.0; c.len()]).collect();
    let alphas: Vec<f32> = args.sigs.iter().map(|(_, a)| *a).collect();
    patcher.patch(&clean_refs, &alphas, &mut out)?;
    for (t, values) in patcher.targets().iter().zip(&out) {
        model.set_initializer_f32(&t.name, values)?;
    }
    rws::format::writer::write_atomic(&args.out, &model.to_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} tensors patched by {} signature(s)",
        args.out.display(),
        patcher.targets().len(),
        sigs.len()
    );
    Ok(ExitCode::SUCCESS)
}
