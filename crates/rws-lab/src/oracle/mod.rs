//! Training the camera-only oracle (`rws oracle train`): corrupted training images become
//! labelled feature rows ([`samples`]), two head forms are fitted on part of them and measured on
//! the rest ([`train`]), and the better one (mean of held-out group accuracy at severities 3–5
//! and clean accuracy) is refitted on all rows and written, bound to the
//! signature set, as `oracle.rwo` (format: `rws_oracle::format`).
//!
//! Rows come from the training split only (the test split is what `rws eval --oracle` measures
//! on). Image `i` of the chosen subset gives one clean row and one row per corruption and
//! severity, corrupted with seed `seed + 1000·i + 10·k + s`; the clean class gets a loss weight
//! equal to the number of severities, so "clean" weighs as much as any one corruption.

pub mod fit;

use rws_image::Image;
use rws_oracle::features::{extract, Features};
use rws_oracle::head::{Dense, Head, Parts, CLEAN};
use rws_oracle::OracleFile;

use crate::corrupt::{corrupt, CorruptError, Corruption, Preset};
use crate::data::Dataset;
use fit::Fit;

/// Labelled feature rows: class 0 = clean, class `k + 1` = `Corruption::ALL[k]`.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub rows: Vec<Features>,
    pub class: Vec<usize>,
    /// 0 for clean rows.
    pub severity: Vec<u8>,
}

/// The class names a head trained here has: `clean`, then the 19 corruptions in
/// [`Corruption::ALL`] order.
pub fn class_names() -> Vec<String> {
    std::iter::once(CLEAN.to_string())
        .chain(Corruption::ALL.iter().map(|c| c.name().to_string()))
        .collect()
}

/// The corruption of class `k` (`None` for clean).
pub fn corruption_of(class: usize) -> Option<Corruption> {
    class
        .checked_sub(1)
        .and_then(|k| Corruption::ALL.get(k).copied())
}

/// One clean row and one row per corruption × severity for each image.
pub fn samples(
    images: &[Image],
    severities: &[u8],
    preset: Preset,
    seed: u64,
) -> Result<Samples, CorruptError> {
    let mut s = Samples::default();
    let bar = crate::progress::bar(images.len() as u64, "oracle rows");
    for (i, img) in images.iter().enumerate() {
        s.push(extract(img), 0, 0);
        for (k, &c) in Corruption::ALL.iter().enumerate() {
            for &sev in severities {
                let seed = seed + 1000 * i as u64 + 10 * k as u64 + u64::from(sev);
                s.push(extract(&corrupt(img, c, sev, preset, seed)?), k + 1, sev);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(s)
}

impl Samples {
    fn push(&mut self, f: Features, class: usize, severity: u8) {
        self.rows.push(f);
        self.class.push(class);
        self.severity.push(severity);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Loss weights: clean rows count `weight` times.
    fn weights(&self, clean_weight: f32) -> Vec<f32> {
        self.class
            .iter()
            .map(|&c| if c == 0 { clean_weight } else { 1.0 })
            .collect()
    }
}

/// Why a head could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corrupt(#[from] CorruptError),
    /// The fitted head is unusable (a fit that diverged to non-finite weights).
    #[error("the fitted head is unusable: {0} (try a smaller learning rate)")]
    Fit(String),
}

/// What `rws oracle train` is asked to do.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    /// Training-split images the rows are made from (spread over the classes).
    pub images: usize,
    /// Of those, the share held out to choose between the head forms.
    pub holdout: f64,
    pub severities: Vec<u8>,
    pub preset: String,
    pub seed: u64,
    /// The head forms compared.
    pub candidates: Vec<Fit>,
    /// Ridge penalty of the severity regressions.
    pub ridge: f64,
}

impl Config {
    /// The shipped recipe: 300 images, logistic regression against one 32-unit tanh layer.
    pub fn standard(seed: u64) -> Config {
        let fit = |hidden, lr| Fit {
            hidden,
            epochs: 40,
            batch: 128,
            lr,
            l2: 1e-4,
            seed,
        };
        Config {
            images: 300,
            holdout: 0.25,
            severities: vec![1, 2, 3, 4, 5],
            preset: "imagenet".into(),
            seed,
            candidates: vec![fit(0, 0.02), fit(32, 0.01)],
            ridge: 1.0,
        }
    }
}

/// How one head form measured on the held-out rows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    pub fit: Fit,
    /// Right corruption type (or clean), all severities.
    pub type_accuracy: f64,
    /// Right group at severities 3–5 (the target's range).
    pub group_accuracy_3_5: f64,
    /// Clean rows called clean.
    pub clean_accuracy: f64,
}

/// The result of training: the head and why it is the one.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub config: Config,
    pub rows: usize,
    pub candidates: Vec<Candidate>,
    /// Index into `candidates` of the form shipped (refitted on all rows).
    pub chosen: usize,
    pub why: String,
    /// Severity MAE of the regressions on the held-out rows of their own corruption.
    pub severity_mae: f64,
}

/// Trains on `train` (the training split), binds the head to the set whose clean model has CRC
/// `model_crc32c` and input `side`×`side`.
pub fn train(
    train: &Dataset,
    config: &Config,
    model_crc32c: u32,
    side: usize,
) -> Result<(OracleFile, Report), TrainError> {
    let preset: Preset = config.preset.parse()?;
    let picked = train.spread(config.images);
    let cut = ((1.0 - config.holdout) * picked.len() as f64).round() as usize;
    // spread() orders by class; interleave so both parts keep every class.
    let (fit_imgs, hold_imgs): (Vec<_>, Vec<_>) = picked
        .images
        .iter()
        .enumerate()
        .partition(|(i, _)| (i * 7919) % picked.len().max(1) < cut);
    let fit_imgs: Vec<Image> = fit_imgs.into_iter().map(|(_, im)| im.clone()).collect();
    let hold_imgs: Vec<Image> = hold_imgs.into_iter().map(|(_, im)| im.clone()).collect();
    let fit_rows = samples(&fit_imgs, &config.severities, preset, config.seed)?;
    let hold_rows = samples(&hold_imgs, &config.severities, preset, config.seed + 7)?;
    let clean_weight = config.severities.len() as f32;
    let mut candidates = Vec::new();
    for f in &config.candidates {
        let head = fit_head(&fit_rows, f, config.ridge, clean_weight)?;
        candidates.push(measure(head, &hold_rows, f));
    }
    let chosen = choose(&candidates);
    let severity_mae = severity_mae(
        &mut fit_head(
            &fit_rows,
            &config.candidates[chosen],
            config.ridge,
            clean_weight,
        )?,
        &hold_rows,
    );
    let mut all = fit_rows;
    all.rows.extend(hold_rows.rows);
    all.class.extend(hold_rows.class);
    all.severity.extend(hold_rows.severity);
    let head = fit_head(&all, &config.candidates[chosen], config.ridge, clean_weight)?;
    let why = why(&candidates, chosen);
    let report = Report {
        config: config.clone(),
        rows: all.len(),
        candidates,
        chosen,
        why,
        severity_mae,
    };
    let file = OracleFile {
        head,
        input: (side, side),
        model_crc32c,
    };
    Ok((file, report))
}

/// Fits standardization, the classifier and one severity regression per corruption.
fn fit_head(s: &Samples, f: &Fit, ridge: f64, clean_weight: f32) -> Result<Head, TrainError> {
    let (mean, scale) = fit::standardize(&s.rows);
    let z = fit::apply(&s.rows, &mean, &scale);
    let classes = class_names();
    let (hidden, out) = fit::classifier(&z, &s.class, &s.weights(clean_weight), classes.len(), f);
    let mut severity = Dense::zeros(rws_oracle::N_FEATURES, classes.len() - 1);
    for k in 1..classes.len() {
        let (zs, ys): (Vec<Features>, Vec<f32>) = z
            .iter()
            .zip(&s.class)
            .zip(&s.severity)
            .filter(|((_, &c), _)| c == k)
            .map(|((r, _), &sev)| (*r, f32::from(sev)))
            .unzip();
        let (w, b) = fit::ridge(&zs, &ys, ridge);
        let n = rws_oracle::N_FEATURES;
        severity.w[(k - 1) * n..k * n].copy_from_slice(&w);
        severity.b[k - 1] = b;
    }
    let parts = Parts {
        classes,
        mean,
        scale,
        hidden,
        out,
        severity,
    };
    // Shapes are this function's own; a non-finite weight is a fit that diverged.
    Head::new(parts).map_err(TrainError::Fit)
}

fn measure(mut head: Head, s: &Samples, f: &Fit) -> Candidate {
    let (mut right, mut group_right, mut group_n, mut clean_right, mut clean_n) = (0, 0, 0, 0, 0);
    for ((row, &c), &sev) in s.rows.iter().zip(&s.class).zip(&s.severity) {
        let (best, _) = head.predict(row).best();
        right += usize::from(best == c);
        if c == 0 {
            clean_n += 1;
            clean_right += usize::from(best == 0);
        } else if sev >= 3 {
            group_n += 1;
            group_right += usize::from(same_group(best, c));
        }
    }
    let frac = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    Candidate {
        fit: *f,
        type_accuracy: frac(right, s.len()),
        group_accuracy_3_5: frac(group_right, group_n),
        clean_accuracy: frac(clean_right, clean_n),
    }
}

/// True when class `a` (a prediction) is in the group of class `b` (a corruption).
pub fn same_group(a: usize, b: usize) -> bool {
    match (corruption_of(a), corruption_of(b)) {
        (Some(x), Some(y)) => x.group() == y.group(),
        _ => false,
    }
}

/// The candidate with the best held-out score, the mean of its group accuracy at severities
/// 3–5 and its clean accuracy (what the targets measure: identifying a corruption, and leaving
/// clean frames on the clean model); within 0.5 pt, the simpler (fewer hidden units) one.
fn choose(c: &[Candidate]) -> usize {
    let best = c.iter().map(score).fold(f64::NEG_INFINITY, f64::max);
    (0..c.len())
        .filter(|&i| score(&c[i]) >= best - 0.005)
        .min_by_key(|&i| c[i].fit.hidden)
        .unwrap_or(0)
}

fn score(c: &Candidate) -> f64 {
    (c.group_accuracy_3_5 + c.clean_accuracy) / 2.0
}

fn why(c: &[Candidate], chosen: usize) -> String {
    let name = |f: &Fit| {
        if f.hidden == 0 {
            "logistic regression".to_string()
        } else {
            format!("a {}-unit tanh layer", f.hidden)
        }
    };
    let others: Vec<String> = c
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != chosen)
        .map(|(_, o)| {
            format!(
                "{} {:.1} / {:.1} %",
                name(&o.fit),
                100.0 * o.group_accuracy_3_5,
                100.0 * o.clean_accuracy
            )
        })
        .collect();
    format!(
        "{} has held-out group accuracy (severities 3-5) / clean accuracy {:.1} / {:.1} % (against {}); the best mean of the two wins, within 0.5 pt the smaller head",
        name(&c[chosen].fit),
        100.0 * c[chosen].group_accuracy_3_5,
        100.0 * c[chosen].clean_accuracy,
        others.join(", ")
    )
}

/// Mean |estimated − true| severity over the corrupted rows.
fn severity_mae(head: &mut Head, s: &Samples) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for ((row, &c), &sev) in s.rows.iter().zip(&s.class).zip(&s.severity) {
        if c > 0 {
            sum += f64::from((head.predict(row).severity[c] - f32::from(sev)).abs());
            n += 1;
        }
    }
    sum / n.max(1) as f64
}
