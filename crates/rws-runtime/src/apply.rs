//! Applying signatures to a whole ONNX model offline: `rws patch` (a patched model for
//! onnxruntime or TensorRT), evaluation and tests.
//!
//! Checks and binds the signatures with [`crate::compat::bind`] (all mismatches reported
//! together), runs the patch engine over the clean initializers and writes the results back.
//! Tensors no signature touches are left exactly as they were.

use rws_signature::SignatureFile;

use crate::compat;
use crate::onnx::OnnxModel;
use crate::RuntimeError;

/// Returns a copy of `clean` with `Σ α·signature` added to the initializers the signatures name.
pub fn patch_model(
    clean: &OnnxModel,
    sigs: &[(&SignatureFile, f32)],
) -> Result<OnnxModel, RuntimeError> {
    let refs: Vec<&SignatureFile> = sigs.iter().map(|(s, _)| *s).collect();
    let patcher = compat::bind(clean, &refs)?;
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
