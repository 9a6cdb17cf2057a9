//! Whether a signature fits a model: every tensor it patches must exist in the model as an f32
//! initializer of the same shape.
//!
//! Compatibility is by names and shapes, not by the fingerprint alone: the paper's transfer claim
//! is that a signature extracted on one model patches another of the same architecture (another
//! dataset, an updated model), and that is exactly "same initializer names and shapes".

use rws_signature::fit::{Mismatch, Mismatches};
use rws_signature::{Patcher, SignatureFile};

use crate::onnx::{InitializerInfo, OnnxDataType, OnnxModel};
use crate::RuntimeError;

/// Lists every way `sig` does not fit a model with these initializers and `Constant`-node
/// outputs. Empty means compatible.
pub fn check(
    sig: &SignatureFile,
    initializers: &[InitializerInfo],
    constant_outputs: &[String],
) -> Vec<Mismatch> {
    sig.tensors()
        .iter()
        .filter_map(|t| {
            let name = t.name.clone();
            match initializers.iter().find(|i| i.name == t.name) {
                None if constant_outputs.contains(&t.name) => {
                    Some(Mismatch::InConstantNode { name })
                }
                None => Some(Mismatch::Missing { name }),
                Some(i) if i.dtype != OnnxDataType::Float => Some(Mismatch::NotFloat {
                    name,
                    dtype: i.dtype.to_string(),
                }),
                Some(i) if i.shape != t.shape => Some(Mismatch::Shape {
                    name,
                    expected: i.shape.clone(),
                    found: t.shape.clone(),
                }),
                Some(_) => None,
            }
        })
        .collect()
}

/// Everything [`check`] finds, and then what reading the tensors' data would find: what the
/// runtime and `rws patch` will use, so `rws verify` says "fits" only when they will accept it.
pub fn check_model(sig: &SignatureFile, model: &OnnxModel) -> Result<Vec<Mismatch>, RuntimeError> {
    let inits = model.initializers()?;
    let mut problems = check(sig, &inits, &model.constant_outputs());
    for t in sig.tensors() {
        if problems.iter().all(|p| mismatch_name(p) != t.name) {
            if let Err(e) = model.initializer_f32(&t.name) {
                problems.push(Mismatch::Unreadable {
                    name: t.name.clone(),
                    reason: e.reason,
                });
            }
        }
    }
    Ok(problems)
}

fn mismatch_name(m: &Mismatch) -> &str {
    match m {
        Mismatch::Missing { name }
        | Mismatch::Shape { name, .. }
        | Mismatch::NotFloat { name, .. }
        | Mismatch::InConstantNode { name }
        | Mismatch::Unreadable { name, .. } => name,
    }
}

/// Checks every signature against `model` (all mismatches of the first signature that does not
/// fit, listed together) and binds them to each other: the one check-then-bind step of the
/// runtime, `rws patch` and `rws verify`.
pub fn bind<'s>(
    model: &OnnxModel,
    sigs: &[&'s SignatureFile],
) -> Result<Patcher<'s>, RuntimeError> {
    for sig in sigs {
        let problems = check_model(sig, model)?;
        if !problems.is_empty() {
            return Err(RuntimeError::Mismatch {
                sig: sig.path().to_path_buf(),
                model: model.path().to_path_buf(),
                mismatches: Mismatches(problems),
            });
        }
    }
    Patcher::new(sigs).map_err(|mismatches| RuntimeError::Mismatch {
        sig: sigs
            .first()
            .map(|s| s.path().to_path_buf())
            .unwrap_or_default(),
        model: model.path().to_path_buf(),
        mismatches,
    })
}
