//! Training with candle (cargo feature `train`): the clean model θstd and the robust variants θc,
//! all from one shared initialization θ0, as the paper's method needs.
//!
//! Every random choice (initialization, shuffling, corruption noise) comes from
//! [`rws_rng::Rng`] with explicit seeds, because candle's CPU generator cannot be seeded; a
//! recipe run twice gives the same models. Weights move between candle and ONNX through
//! [`crate::arch::Weights`], keyed by the exported initializer names.

use candle_core::{DType as CDType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::arch::{Arch, Param, Stage, Weights};
use crate::corrupt::{corrupt, Corruption, Preset};
use rws_image::Image;
use rws_rng::Rng;

/// Training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("weights: {0}")]
    Weights(String),
    #[error(transparent)]
    Corrupt(#[from] crate::corrupt::CorruptError),
}

/// A network being trained: the architecture and one candle `Var` per parameter.
pub struct Net {
    arch: Arch,
    vars: Vec<(String, Var)>,
    device: Device,
}

impl Net {
    /// A trainable copy of `weights` (which must match `arch`).
    pub fn new(arch: &Arch, weights: &Weights, device: &Device) -> Result<Self, TrainError> {
        let vars = arch
            .param_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let p = weights
                    .get(&name)
                    .ok_or_else(|| TrainError::Weights(format!("missing '{name}'")))?;
                if p.shape != shape {
                    return Err(TrainError::Weights(format!(
                        "'{name}' is {:?}, expected {shape:?}",
                        p.shape
                    )));
                }
                let var = Var::from_slice(&p.values, shape.as_slice(), device)?;
                Ok((name, var))
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(Net {
            arch: arch.clone(),
            vars,
            device: device.clone(),
        })
    }

    fn var(&self, name: &str) -> Result<&Tensor, TrainError> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .ok_or_else(|| TrainError::Weights(format!("no parameter '{name}'")))
    }

    /// Logits `[N, classes]` for a batch `[N, 3, side, side]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let mut x = x.clone();
        let mut idx = 0;
        for s in &self.arch.stages {
            match *s {
                Stage::Conv(c) => {
                    let w = self.var(&format!("features.{idx}.weight"))?;
                    let b = self
                        .var(&format!("features.{idx}.bias"))?
                        .reshape((1, c, 1, 1))?;
                    x = x.conv2d(w, 1, 1, 1, 1)?.broadcast_add(&b)?.relu()?;
                    idx += 2;
                }
                Stage::Pool => {
                    x = x.max_pool2d(2)?;
                    idx += 1;
                }
            }
        }
        let x = x.flatten_from(1)?;
        let w = self.var("classifier.weight")?;
        let b = self.var("classifier.bias")?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }

    /// The current weights.
    pub fn weights(&self) -> Result<Weights, TrainError> {
        self.vars
            .iter()
            .map(|(name, v)| {
                let shape = v.dims().to_vec();
                let values = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                Ok((name.clone(), Param { shape, values }))
            })
            .collect()
    }

    /// A batch tensor from images.
    pub fn batch(&self, images: &[&Image]) -> Result<Tensor, TrainError> {
        let s = self.arch.side;
        let mut data: Vec<f32> = Vec::with_capacity(images.len() * 3 * s * s);
        for img in images {
            for c in 0..3 {
                data.extend(img.data.iter().skip(c).step_by(3));
            }
        }
        Ok(Tensor::from_vec(
            data,
            (images.len(), 3, s, s),
            &self.device,
        )?)
    }

    /// Accuracy on labelled images (batched candle forward).
    pub fn accuracy(&self, images: &[Image], labels: &[u8]) -> Result<f64, TrainError> {
        let mut correct = 0usize;
        for (imgs, labs) in images.chunks(256).zip(labels.chunks(256)) {
            let refs: Vec<&Image> = imgs.iter().collect();
            let pred = self
                .forward(&self.batch(&refs)?)?
                .argmax(1)?
                .to_vec1::<u32>()?;
            correct += pred
                .iter()
                .zip(labs)
                .filter(|(p, l)| **p == u32::from(**l))
                .count();
        }
        Ok(correct as f64 / labels.len().max(1) as f64)
    }
}

/// What images a training run sees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Augment {
    /// The clean images.
    Clean,
    /// Every image corrupted by one corruption at the given severities (fresh noise each epoch).
    One(Corruption, Severities),
    /// Every image corrupted by a corruption drawn uniformly from all 19, at the given severities.
    Mixed(Severities),
}

/// The training severities of a robust or augmented run: one level (the paper's default, 5) or
/// a range drawn uniformly per image and epoch (the "mix of 3–5" lever of issue 16). Written
/// `5` or `3-5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Severities {
    lo: u8,
    hi: u8,
}

/// A severity range that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("severity '{given}': {reason}")]
pub struct SeverityError {
    given: String,
    reason: &'static str,
}

impl Severities {
    /// One level.
    pub fn one(level: u8) -> Result<Self, SeverityError> {
        Self::range(level, level)
    }

    /// Every level from `lo` to `hi`, inclusive.
    pub fn range(lo: u8, hi: u8) -> Result<Self, SeverityError> {
        let err = |reason| {
            Err(SeverityError {
                given: format!("{lo}-{hi}"),
                reason,
            })
        };
        if !(1..=5).contains(&lo) || !(1..=5).contains(&hi) {
            return err("levels are 1 to 5");
        }
        if lo > hi {
            return err("the range runs from low to high");
        }
        Ok(Severities { lo, hi })
    }

    /// The highest level: what a manifest and a `.rws` header record as the training severity.
    pub fn max(self) -> u8 {
        self.hi
    }

    /// The level for the image corrupted with noise seed `seed`. A single level draws nothing,
    /// so single-severity runs (the shipped demo) make the same images as before ranges existed.
    fn pick(self, seed: u64) -> u8 {
        if self.lo == self.hi {
            return self.lo;
        }
        let span = u64::from(self.hi - self.lo) + 1;
        // A stream apart from the one that picks Mixed's corruption from the same seed.
        let draw = Rng::new(seed ^ 0x5EE5_5EE5_5EE5_5EE5).below(span);
        self.lo + draw as u8
    }
}

impl std::str::FromStr for Severities {
    type Err = SeverityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let level = |t: &str| {
            t.trim().parse::<u8>().map_err(|_| SeverityError {
                given: s.to_string(),
                reason: "write one level (5) or a range (3-5)",
            })
        };
        match s.split_once('-') {
            None => Self::one(level(s)?),
            Some((lo, hi)) => Self::range(level(lo)?, level(hi)?),
        }
        .map_err(|e| SeverityError {
            given: s.to_string(),
            ..e
        })
    }
}

impl std::fmt::Display for Severities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Hyperparameters of one run.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// Seeds shuffling and corruption noise.
    pub seed: u64,
    /// Corruption constants for the augmented images.
    pub preset: Preset,
}

/// Trains `net` in place; `log` gets (epoch, mean loss).
pub fn train(
    net: &mut Net,
    images: &[Image],
    labels: &[u8],
    augment: Augment,
    sched: Schedule,
    mut log: impl FnMut(usize, f64),
) -> Result<(), TrainError> {
    let params = ParamsAdamW {
        lr: sched.lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let vars: Vec<Var> = net.vars.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(vars, params)?;
    let mut rng = Rng::new(sched.seed);
    for epoch in 0..sched.epochs {
        let epoch_images = augmented(images, augment, sched.preset, sched.seed, epoch)?;
        let mut order: Vec<usize> = (0..images.len()).collect();
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(sched.batch) {
            let imgs: Vec<&Image> = chunk.iter().map(|&i| &epoch_images[i]).collect();
            let labs: Vec<u32> = chunk.iter().map(|&i| u32::from(labels[i])).collect();
            let x = net.batch(&imgs)?;
            let y = Tensor::from_vec(labs, chunk.len(), &net.device)?;
            let loss = candle_nn::loss::cross_entropy(&net.forward(&x)?, &y)?;
            opt.backward_step(&loss)?;
            total += f64::from(loss.to_dtype(CDType::F32)?.to_scalar::<f32>()?);
            batches += 1;
        }
        log(epoch, total / batches.max(1) as f64);
    }
    Ok(())
}

/// The images of one epoch under `augment`; corruption seeds depend on (seed, epoch, index).
pub fn augmented(
    images: &[Image],
    augment: Augment,
    preset: Preset,
    seed: u64,
    epoch: usize,
) -> Result<Vec<Image>, TrainError> {
    let base = seed
        .wrapping_mul(1_000_003)
        .wrapping_add(epoch as u64 * 1_000_000_007);
    images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let s = base.wrapping_add(i as u64);
            Ok(match augment {
                Augment::Clean => img.clone(),
                Augment::One(c, sev) => corrupt(img, c, sev.pick(s), preset, s)?,
                Augment::Mixed(sev) => {
                    let c = Corruption::ALL[Rng::new(s).below(19) as usize];
                    corrupt(img, c, sev.pick(s), preset, s)?
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_parse_one_level_or_a_range() {
        assert_eq!("5".parse(), Severities::one(5));
        assert_eq!(
            "3-5".parse::<Severities>().map(|s| s.to_string()),
            Ok("3-5".into())
        );
        for bad in ["0", "6", "5-3", "3-", "x", "2-9", ""] {
            let err = bad.parse::<Severities>().expect_err(bad);
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn a_range_draws_every_level_and_only_those() {
        let mix = Severities::range(3, 5).expect("range");
        let mut seen = [0usize; 6];
        for seed in 0..600 {
            seen[usize::from(mix.pick(seed))] += 1;
        }
        assert_eq!(&seen[..3], &[0, 0, 0]);
        assert!(
            seen[3..].iter().all(|&n| (150..250).contains(&n)),
            "{seen:?}"
        );
        assert_eq!(Severities::one(4).expect("one").pick(7), 4);
    }
}
