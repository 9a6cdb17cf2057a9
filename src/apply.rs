//! Applying signatures to a whole ONNX model offline: `rws patch`, evaluation and tests.
//!
//! Checks every signature against the model first (all mismatches reported together), then runs
//! the patch engine over the clean initializers and writes the results back. Tensors no signature
//! touches are left exactly as they were.

use crate::compat::{self, Mismatches};
use crate::format::SignatureFile;
use crate::onnx::{OnnxError, OnnxModel};
use crate::patch::{PatchError, Patcher};

/// Why a model could not be patched.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}: {mismatches}", sig.display())]
    Mismatch {
        sig: std::path::PathBuf,
        mismatches: Mismatches,
    },
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Patch(#[from] PatchError),
}

/// Returns a copy of `clean` with `Σ α·signature` added to the initializers the signatures name.
pub fn patch_model(
    clean: &OnnxModel,
    sigs: &[(&SignatureFile, f32)],
) -> Result<OnnxModel, ApplyError> {
    let inits = clean.initializers()?;
    let constants = clean.constant_outputs();
    for (sig, _) in sigs {
        let problems = compat::check(sig, &inits, &constants);
        if !problems.is_empty() {
            return Err(ApplyError::Mismatch {
                sig: sig.path().to_path_buf(),
                mismatches: Mismatches(problems),
            });
        }
    }
    let refs: Vec<&SignatureFile> = sigs.iter().map(|(s, _)| *s).collect();
    let patcher = Patcher::new(&refs).map_err(|m| ApplyError::Mismatch {
        sig: refs
            .first()
            .map(|s| s.path().to_path_buf())
            .unwrap_or_default(),
        mismatches: m,
    })?;
    let base: Vec<Vec<f32>> = patcher
        .targets()
        .iter()
        .map(|t| clean.initializer_f32(&t.name))
        .collect::<Result<_, _>>()?;
    let base_refs: Vec<&[f32]> = base.iter().map(Vec::as_slice).collect();
    let mut out: Vec<Vec<f32>> = base.iter().map(|b| vec![0.0; b.len()]).collect();
    let alphas: Vec<f32> = sigs.iter().map(|(_, a)| *a).collect();
    patcher.patch(&base_refs, &alphas, &mut out)?;
    let mut model = OnnxModel::from_proto(clean.proto().clone(), clean.path());
    for (t, v) in patcher.targets().iter().zip(&out) {
        model.set_initializer_f32(&t.name, v)?;
    }
    Ok(model)
}
