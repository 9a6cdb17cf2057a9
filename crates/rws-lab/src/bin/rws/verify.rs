//! `rws verify`: does a signature fit a model (every tensor present, f32, same shape).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rws_runtime::onnx::OnnxModel;
use rws_signature::SignatureFile;

/// Check that signatures fit a model.
///
/// Check that each signature patches only tensors that exist in the model, as f32 initializers of
/// the same shape whose data can be read (what the runtime and `rws patch` require). Exit 0 if all fit; exit 1 and list every mismatch otherwise.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.rws` file(s) to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The clean ONNX model the signatures will patch.
    #[arg(long, short)]
    model: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let model = OnnxModel::open(&args.model)?;
    let mut all_ok = true;
    for path in &args.files {
        let sig = SignatureFile::open(path)?;
        // What the runtime and `rws patch` check, data included.
        let problems = rws_runtime::compat::check_model(&sig, &model)?;
        if problems.is_empty() {
            outln!(
                "ok: {} fits {} ({} tensors)",
                path.display(),
                args.model.display(),
                sig.tensors().len()
            )?;
        } else {
            all_ok = false;
            outln!(
                "MISMATCH: {} does not fit {}: {}",
                path.display(),
                args.model.display(),
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
