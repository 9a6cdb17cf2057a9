//! Running a classifier exported to ONNX on images (as one optimized plan, `rws_runtime`'s
//! [`WholeModel`]) and measuring accuracy, clean and under corruption. This is the offline
//! evaluator; the device runtime (patching before each frame without re-optimizing) is separate.

use rws_image::tensor::{to_input, Normalize};
use rws_image::Image;
use rws_runtime::{RuntimeError, WholeModel};

use crate::corrupt::{corrupt, CorruptError, Corruption, Preset};
use crate::data::Dataset;

/// A classifier with input `[1, 3, side, side]`, optimized as one plan.
pub struct Classifier {
    model: WholeModel,
    side: usize,
}

/// A model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] RuntimeError),
    #[error("image is {0}x{1}, the model takes {2}x{2}")]
    Size(usize, usize, usize),
    #[error(transparent)]
    Image(#[from] rws_image::ImageError),
    #[error(transparent)]
    Corrupt(#[from] CorruptError),
}

impl Classifier {
    /// Loads ONNX bytes (any input side; the first input must be `[1, 3, side, side]`).
    pub fn from_onnx(bytes: &[u8], side: usize) -> Result<Self, EvalError> {
        let model = WholeModel::from_bytes(bytes, "classifier.onnx", &[1, 3, side, side])?;
        Ok(Classifier { model, side })
    }

    /// Logits for one image.
    pub fn logits(&self, image: &Image) -> Result<Vec<f32>, EvalError> {
        if image.height != self.side || image.width != self.side {
            return Err(EvalError::Size(image.height, image.width, self.side));
        }
        let mut input = Vec::new();
        to_input(
            image,
            (self.side, self.side),
            &Normalize::IDENTITY,
            &mut input,
        )?;
        Ok(self.model.run(&input)?)
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
