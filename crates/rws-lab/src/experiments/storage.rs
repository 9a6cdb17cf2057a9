//! Signatures extracted again from the trained models in other forms: the storage variants of
//! the paper's Table 1 (the shallowest K = 5 layers or all of them; f32, f16 or int8) and the
//! number of patched layers (Fig. 6, K = 1 … all), each with its size and its mean TA and RA.
//! Needs the training run's models (`rws train --recipe demo --out DIR`: theta0.onnx,
//! standard.onnx, robust/<corruption>.onnx); the variants are written under `DIR/variants/`.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rws_runtime::onnx::OnnxModel;
use rws_signature::{DType, SignatureFile};

use super::{mean, ExperimentError, Provenance};
use crate::corrupt::{Corruption, Preset};
use crate::data::{Dataset, SIDE};
use crate::eval::Classifier;
use crate::extract::{extract, ExtractError, Options, Selection};

/// One way of storing the signatures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Form {
    /// Layers patched; `None` = every weight-bearing layer.
    pub layers: Option<usize>,
    pub dtype: DType,
}

impl Form {
    fn label(&self) -> String {
        let k = self.layers.map_or("all".to_string(), |k| format!("k{k}"));
        format!("{k}-{}", self.dtype)
    }
}

/// One variant's measurements.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    pub label: String,
    /// Weight layers patched (resolved when `all`).
    pub layers: usize,
    pub all_layers: bool,
    pub dtype: String,
    /// Mean size of one signature file, in kB (1000 bytes).
    pub kb_per_signature: f64,
    /// Parameters in one signature.
    pub parameters: usize,
    /// Largest relative L2 quantization error over every tensor of every signature.
    pub worst_rel_quant_error: f64,
    /// Mean over the signatures of TA and of RA on their corruption, each at `alpha`.
    pub mean_ta: f64,
    pub mean_ra: f64,
}

/// `rws eval --mode storage|ksweep --json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Storage {
    pub experiment: String,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub severity: u8,
    pub alpha: f32,
    /// The clean model's TA and mean RA on the same images.
    pub ta_clean: f64,
    pub mean_ra_clean: f64,
    /// Weight-bearing layers of the model.
    pub weight_layers: usize,
    pub variants: Vec<Variant>,
}

/// Table 1's storage variants.
pub fn table1_forms() -> Vec<Form> {
    [Some(5), None]
        .into_iter()
        .flat_map(|layers| [DType::F32, DType::F16, DType::I8].map(|dtype| Form { layers, dtype }))
        .collect()
}

/// Fig. 6: K = 1 … every weight layer, int8.
pub fn k_forms(weight_layers: usize) -> Vec<Form> {
    (1..=weight_layers)
        .map(|k| Form {
            layers: Some(k),
            dtype: DType::I8,
        })
        .collect()
}

/// The inputs of a variant run.
pub struct Run<'a> {
    pub models: &'a Path,
    pub test: &'a Dataset,
    pub preset: Preset,
    pub seed: u64,
    pub severity: u8,
    pub alpha: f32,
    pub dataset: &'a str,
}

fn missing(path: &Path) -> ExperimentError {
    ExperimentError::Invalid(format!(
        "{}: missing; --models must be the directory of `rws train --recipe demo --out DIR`",
        path.display()
    ))
}

/// The models directory's robust models, one per corruption, in the paper's order.
fn robust(models: &Path) -> Result<Vec<(String, PathBuf)>, ExperimentError> {
    Corruption::ALL
        .iter()
        .map(|c| {
            let p = models.join("robust").join(format!("{}.onnx", c.name()));
            if p.exists() {
                Ok((c.name().to_string(), p))
            } else {
                Err(missing(&p))
            }
        })
        .collect()
}

fn extract_err(e: ExtractError) -> ExperimentError {
    ExperimentError::Invalid(e.to_string())
}

/// Weight-bearing layers of the standard model.
pub fn weight_layers(models: &Path) -> Result<usize, ExperimentError> {
    let standard = models.join("standard.onnx");
    if !standard.exists() {
        return Err(missing(&standard));
    }
    crate::extract::weight_layers(&OnnxModel::open(&standard)?).map_err(extract_err)
}

/// Extracts and measures each form; `bar` advances once per form.
pub fn run(run: &Run<'_>, forms: &[Form], bar: &ProgressBar) -> Result<Storage, ExperimentError> {
    let (init, standard) = (
        run.models.join("theta0.onnx"),
        run.models.join("standard.onnx"),
    );
    for p in [&init, &standard] {
        if !p.exists() {
            return Err(missing(p));
        }
    }
    let robust = robust(run.models)?;
    let all = weight_layers(run.models)?;
    let clean = OnnxModel::open(&standard)?;
    let base = Classifier::from_onnx(&clean.to_bytes(), SIDE)?;
    // Every variant is scored on the same corrupted images, made once.
    let images = Corruption::ALL
        .iter()
        .map(|&c| crate::eval::corrupted(run.test, c, run.severity, run.preset, run.seed))
        .collect::<Result<Vec<_>, _>>()?;
    let ta_clean = base.score(run.test)?;
    let mean_ra_clean = mean(
        images
            .iter()
            .map(|d| base.score(d))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let mut variants = Vec::new();
    for form in forms {
        bar.set_message(form.label());
        variants.push(variant(
            run,
            form,
            all,
            (&init, &standard),
            &robust,
            &clean,
            &images,
        )?);
        bar.inc(1);
    }
    Ok(Storage {
        experiment: "storage".into(),
        provenance: Provenance {
            dataset: run.dataset.to_string(),
            images: run.test.len(),
            preset: run.preset.name().to_string(),
            seed: run.seed,
        },
        severity: run.severity,
        alpha: run.alpha,
        ta_clean,
        mean_ra_clean,
        weight_layers: all,
        variants,
    })
}

fn variant(
    run: &Run<'_>,
    form: &Form,
    all: usize,
    (init, standard): (&Path, &Path),
    robust: &[(String, PathBuf)],
    clean: &OnnxModel,
    images: &[Dataset],
) -> Result<Variant, ExperimentError> {
    let layers = form.layers.unwrap_or(all).min(all);
    let opts = Options {
        selection: Selection::Layers(layers),
        dtype: form.dtype,
        severity: run.severity,
        dataset: run.dataset.to_string(),
        out_dir: run.models.join("variants").join(form.label()),
    };
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| ExperimentError::Invalid(format!("{}: {e}", opts.out_dir.display())))?;
    let done = extract(init, standard, robust, &opts, |_, _, _| {}).map_err(extract_err)?;
    let (mut ta, mut ra, mut bytes, mut worst) = (Vec::new(), Vec::new(), 0u64, 0f64);
    let mut parameters = 0;
    for (e, set) in done.iter().zip(images) {
        let sig = SignatureFile::open(&e.path)?;
        parameters = sig.tensors().iter().map(|t| t.numel()).sum();
        let m = Classifier::from_onnx(
            &rws_runtime::apply::patch_model(clean, &[(&sig, run.alpha)])?.to_bytes(),
            SIDE,
        )?;
        ta.push(m.score(run.test)?);
        ra.push(m.score(set)?);
        bytes += e.report.file_len as u64;
        worst = e
            .report
            .tensors
            .iter()
            .map(|t| f64::from(t.2.rel_l2_err))
            .fold(worst, f64::max);
    }
    Ok(Variant {
        label: form.label(),
        layers,
        all_layers: form.layers.is_none(),
        dtype: form.dtype.to_string(),
        kb_per_signature: bytes as f64 / done.len().max(1) as f64 / 1000.0,
        parameters,
        worst_rel_quant_error: worst,
        mean_ta: mean(ta),
        mean_ra: mean(ra),
    })
}
