//! Running a classifier exported to ONNX on images with tract, and measuring accuracy, clean and
//! under corruption. This is the offline evaluator; the device runtime (patching before each
//! frame without re-optimizing) is separate.

use tract_onnx::prelude::*;

use crate::corrupt::{corrupt, CorruptError, Corruption, Preset};
use crate::data::Dataset;
use crate::image::Image;

/// An optimized tract plan of a classifier with input `[1, 3, H, W]`.
pub struct Classifier {
    plan: std::sync::Arc<TypedSimplePlan>,
    side: usize,
}

/// A model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("tract: {0}")]
    Tract(String),
    #[error("image is {0}x{1}, the model takes {2}x{2}")]
    Size(usize, usize, usize),
    #[error(transparent)]
    Corrupt(#[from] CorruptError),
}

fn tract_err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Tract(format!("{e:#}"))
}

impl Classifier {
    /// Loads ONNX bytes (any input side; the first input must be `[1, 3, side, side]`).
    pub fn from_onnx(bytes: &[u8], side: usize) -> Result<Self, EvalError> {
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(tract_err)?
            .with_input_fact(0, f32::fact([1, 3, side, side]).into())
            .map_err(tract_err)?;
        let plan = model
            .into_optimized()
            .map_err(tract_err)?
            .into_runnable()
            .map_err(tract_err)?;
        Ok(Classifier { plan, side })
    }

    /// Logits for one image.
    pub fn logits(&self, image: &Image) -> Result<Vec<f32>, EvalError> {
        if image.height != self.side || image.width != self.side {
            return Err(EvalError::Size(image.height, image.width, self.side));
        }
        let s = self.side;
        let mut chw = vec![0f32; 3 * s * s];
        for (i, px) in image.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * s * s + i] = px[c];
            }
        }
        let input = tract_ndarray::Array4::from_shape_vec((1, 3, s, s), chw)
            .map_err(tract_err)?
            .into_tensor();
        let out = self
            .plan
            .run(tvec!(input.into_tvalue()))
            .map_err(tract_err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(tract_err)?;
        Ok(view.iter().copied().collect())
    }

    /// Predicted class.
    pub fn predict(&self, image: &Image) -> Result<usize, EvalError> {
        let l = self.logits(image)?;
        Ok(argmax(&l))
    }

    /// Fraction of `data` classified correctly, optionally under a corruption (severity, seed
    /// per image = `seed + index`) with the given constant set.
    pub fn accuracy(
        &self,
        data: &Dataset,
        corruption: Option<(Corruption, u8, Preset)>,
        seed: u64,
    ) -> Result<f64, EvalError> {
        match corruption {
            Some((c, s, p)) => self.score(&corrupted(data, c, s, p, seed)?),
            None => self.score(data),
        }
    }

    /// Fraction of `data` classified as labelled, on the images as they are.
    pub fn score(&self, data: &Dataset) -> Result<f64, EvalError> {
        let mut correct = 0usize;
        for (img, &label) in data.images.iter().zip(&data.labels) {
            correct += usize::from(self.predict(img)? == usize::from(label));
        }
        Ok(correct as f64 / data.len().max(1) as f64)
    }
}

/// `data` with image `i` corrupted at `severity` with seed `seed + i`: the images
/// [`Classifier::accuracy`] scores. Corrupting once and calling [`Classifier::score`] on several
/// models compares them on the same images for the price of one corruption pass (some
/// corruptions, such as glass blur, cost more than the model).
pub fn corrupted(
    data: &Dataset,
    c: Corruption,
    severity: u8,
    preset: Preset,
    seed: u64,
) -> Result<Dataset, EvalError> {
    let images = data
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| corrupt(img, c, severity, preset, seed + i as u64))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dataset {
        name: data.name.clone(),
        images,
        labels: data.labels.clone(),
    })
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}
