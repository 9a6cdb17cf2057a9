//! `rws verify`: does a signature fit a model (every tensor present, f32, same shape); for a
//! whole set, also its files against the manifest and the manifest's seal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_runtime::onnx::OnnxModel;
use rws_signature::manifest::Manifest;
use rws_signature::SignatureFile;
use rws_trust::{PublicKey, Verdict};

/// Check that signatures fit a model, or that a signature set is intact and signed.
///
/// With .rws files and --model: check that each signature patches only tensors that exist in the
/// model, as f32 initializers of the same shape whose data can be read (what the runtime and `rws
/// patch` require).
///
/// With one directory (a set: manifest.json, the model, the .rws files): check every listed file
/// against its length, CRC-32C and (signed sets) SHA-256, report the seal (manifest.json.sig) —
/// verified against each --key, or "not checked" without one — and check every signature against
/// the set's model.
///
/// Exit 0 if all is well; exit 1 and list every problem otherwise.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.rws` file(s) to check, or one signature-set directory.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The clean ONNX model the signatures will patch (not needed for a set).
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// A trusted public key (`rws keygen`'s KEY.pub) to verify a set's seal with; repeat it for
    /// each key trusted during a rollover.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if let [dir] = args.files.as_slice() {
        if dir.is_dir() {
            return verify_set(dir, &args.keys);
        }
    }
    let model = args
        .model
        .as_deref()
        .context("--model is needed to check .rws files (or give one set directory)")?;
    let files: Vec<&Path> = args.files.iter().map(PathBuf::as_path).collect();
    fit(&files, model)
}

/// A set: files, seal, fit.
fn verify_set(dir: &Path, keys: &[PathBuf]) -> Result<ExitCode> {
    let keys = keys
        .iter()
        .map(|k| PublicKey::load(k))
        .collect::<Result<Vec<_>, _>>()?;
    let path = dir.join("manifest.json");
    let bytes = Manifest::read(&path)?;
    let manifest = Manifest::parse(&path, &bytes)?;
    let mut ok = true;
    match manifest.verify_files(dir) {
        Ok(()) => {
            let digests = if manifest.missing_digest().is_none() {
                "length, CRC-32C and SHA-256"
            } else {
                "length and CRC-32C"
            };
            outln!(
                "ok: {} files match {} ({digests})",
                manifest.signatures.len() + 1,
                path.display()
            )?;
        }
        Err(e) => {
            ok = false;
            outln!("MISMATCH: {e}")?;
        }
    }
    match rws_trust::verify_manifest(&path, &bytes, &manifest, &keys) {
        Ok(v @ Verdict::Verified(_)) => outln!("ok: seal {v}")?,
        Ok(v) if !keys.is_empty() => {
            ok = false;
            outln!("REFUSED: seal: {v}, and --key asks for one it verifies")?;
        }
        Ok(v) => outln!("seal: {v}")?,
        Err(e) => {
            ok = false;
            outln!("REFUSED: {e}")?;
        }
    }
    let sigs: Vec<PathBuf> = manifest
        .signatures
        .iter()
        .map(|s| dir.join(&s.file))
        .collect();
    let sigs: Vec<&Path> = sigs.iter().map(PathBuf::as_path).collect();
    let fits = fit(&sigs, &dir.join(&manifest.model.file))?;
    Ok(if ok { fits } else { ExitCode::from(1) })
}

/// Each signature against the model.
fn fit(files: &[&Path], model_path: &Path) -> Result<ExitCode> {
    let model = OnnxModel::open(model_path)?;
    let mut all_ok = true;
    for &path in files {
        let sig = SignatureFile::open(path)?;
        // What the runtime and `rws patch` check, data included.
        let problems = rws_runtime::compat::check_model(&sig, &model)?;
        if problems.is_empty() {
            outln!(
                "ok: {} fits {} ({} tensors)",
                path.display(),
                model_path.display(),
                sig.tensors().len()
            )?;
        } else {
            all_ok = false;
            outln!(
                "MISMATCH: {} does not fit {}: {}",
                path.display(),
                model_path.display(),
                rws_signature::fit::Mismatches(problems)
            )?;
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
