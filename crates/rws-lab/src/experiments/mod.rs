//! The paper's experiments on a shipped signature set, as data: the α × severity sweep (Fig. 7),
//! the cross-corruption matrix (§2.3: a signature on corruptions it was not made for) and
//! compound corruptions (Fig. 8), and [`storage`] (Table 1, Fig. 6) and [`transfer`] (Table 3)
//! on the trained models or another dataset's set. Each returns a serializable result that `rws eval --mode …
//! --json` prints, [`plot`] draws and [`calibrate`] turns into policy curves.
//!
//! [`oracle`] measures the camera-only oracle (`rws eval --oracle`) against the perfect one.
//!
//! [`anatomy`] reads the signatures themselves (Fig. 2's per-layer norms, Fig. 4's similarity).
//!
//! [`levers`] compares whole training runs (issue 16's levers on the gain), each scored as Table 1.
//!
//! Everything is deterministic: the test split is fixed, image `i` is corrupted with seed
//! `seed + i`, and each (corruption, severity) set is corrupted once and scored by every model
//! that is compared on it.

pub mod anatomy;
pub mod calibrate;
pub mod compose;
pub mod cross;
pub mod levers;
pub mod oracle;
pub mod plot;
pub mod storage;
pub mod sweep;
pub mod transfer;

use std::path::{Path, PathBuf};

use rws_runtime::onnx::OnnxModel;
use rws_signature::manifest::Manifest;
use rws_signature::SignatureFile;

use crate::corrupt::{Corruption, Preset};
use crate::data::{Dataset, SIDE};
use crate::eval::{Classifier, EvalError};

/// An experiment could not run: a file of the signature set, or a model.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Manifest(#[from] rws_signature::manifest::ManifestError),
    #[error(transparent)]
    Signature(#[from] rws_signature::format::FormatError),
    #[error(transparent)]
    Onnx(#[from] rws_runtime::onnx::OnnxError),
    #[error(transparent)]
    Runtime(#[from] rws_runtime::RuntimeError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("{}: signature {name:?}: {reason}", path.display())]
    Entry {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A signature set opened for experiments: the clean model, its signatures by corruption, and
/// the test images with how they are corrupted.
pub struct Lab {
    pub clean: OnnxModel,
    pub signatures: Vec<(Corruption, SignatureFile)>,
    pub test: Dataset,
    pub preset: Preset,
    pub seed: u64,
}

/// The seed of the evaluation corruptions (image `i` gets `SEED + i`), as in `rws eval`.
pub const SEED: u64 = 12345;

impl Lab {
    /// Opens the set in `dir` ([`open_set`]) for experiments on `test`.
    pub fn open(dir: &Path, test: Dataset, preset: Preset) -> Result<Lab, ExperimentError> {
        let (clean, signatures) = open_set(dir)?;
        Ok(Lab {
            clean,
            signatures,
            test,
            preset,
            seed: SEED,
        })
    }

    /// The signature made for `c`, if the set has one.
    pub fn signature(&self, c: Corruption) -> Option<&SignatureFile> {
        self.signatures
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, s)| s)
    }

    /// The clean model with `Σ α·signature` applied, optimized for scoring.
    pub fn classifier(
        &self,
        coeffs: &[(&SignatureFile, f32)],
    ) -> Result<Classifier, ExperimentError> {
        let model = if coeffs.iter().all(|(_, a)| *a == 0.0) {
            // α = 0 everywhere is the clean model, bit for bit; no patch pass needed.
            self.clean.to_bytes()
        } else {
            rws_runtime::apply::patch_model(&self.clean, coeffs)?.to_bytes()
        };
        Ok(Classifier::from_onnx(&model, SIDE)?)
    }

    /// The test images under `c` at `severity`.
    pub fn corrupted(&self, c: Corruption, severity: u8) -> Result<Dataset, ExperimentError> {
        Ok(crate::eval::corrupted(
            &self.test,
            c,
            severity,
            self.preset,
            self.seed,
        )?)
    }

    /// What every result records about its inputs.
    pub fn provenance(&self, dataset: &str) -> Provenance {
        Provenance {
            dataset: dataset.to_string(),
            images: self.test.len(),
            preset: self.preset.name().to_string(),
            seed: self.seed,
        }
    }
}

/// Opens `dir/manifest.json`, its clean model and every signature it lists.
pub fn open_set(
    dir: &Path,
) -> Result<(OnnxModel, Vec<(Corruption, SignatureFile)>), ExperimentError> {
    let manifest_path = dir.join("manifest.json");
    let manifest = Manifest::load(&manifest_path)?;
    let clean = OnnxModel::open(dir.join(&manifest.model.file))?;
    let mut signatures = Vec::new();
    for entry in &manifest.signatures {
        let c: Corruption = entry
            .corruption
            .parse()
            .map_err(|e| ExperimentError::Entry {
                path: manifest_path.clone(),
                name: entry.corruption.clone(),
                reason: format!("{e}"),
            })?;
        signatures.push((c, SignatureFile::open(dir.join(&entry.file))?));
    }
    Ok((clean, signatures))
}

/// The inputs a result was measured on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    pub dataset: String,
    pub images: usize,
    pub preset: String,
    pub seed: u64,
}

/// Index of the largest value; on ties (equal accuracies) the first, i.e. the smallest α.
pub(crate) fn first_max(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The mean of `v` (0 for an empty slice).
pub(crate) fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in v {
        sum += x;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}
