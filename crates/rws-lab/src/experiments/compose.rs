//! Compound corruptions (the paper's Fig. 8): one corruption applied after the other, and the
//! two signatures composed with coefficients (α₁, α₂) on a grid. The paper's claim to check:
//! the best composition beats either signature alone.

use indicatif::ProgressBar;

use super::{ExperimentError, Lab, Provenance};
use crate::corrupt::{corrupt, Corruption};
use crate::data::Dataset;

/// The pairs the issue names: weather and a camera fault each.
pub const PAIRS: [(Corruption, Corruption); 3] = [
    (Corruption::Fog, Corruption::GaussianNoise),
    (Corruption::Snow, Corruption::MotionBlur),
    (Corruption::Contrast, Corruption::ImpulseNoise),
];

/// Seed offset of the second corruption, so its noise is independent of the first's.
const SECOND_SEED: u64 = 1 << 32;

/// One pair's grid.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub first: String,
    pub second: String,
    /// `ra[i][j]`: RA with the first signature at `alphas[i]` and the second at `alphas[j]`.
    pub ra: Vec<Vec<f64>>,
    pub best: (f32, f32),
    pub best_ra: f64,
    /// The best with only the first signature (α₂ = 0), with only the second (α₁ = 0).
    pub best_first_only: f64,
    pub best_second_only: f64,
    pub clean: f64,
    /// Whether the best composition beats both single signatures.
    pub beats_both: bool,
}

/// All pairs, as `rws eval --mode compose --json` prints them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Compose {
    pub experiment: String,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub severity: u8,
    pub alphas: Vec<f32>,
    pub pairs: Vec<Pair>,
}

/// `data` with `first` then `second` applied at `severity`.
fn compound(
    lab: &Lab,
    first: Corruption,
    second: Corruption,
    severity: u8,
) -> Result<Dataset, ExperimentError> {
    let once = lab.corrupted(first, severity)?;
    let images = once
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            corrupt(
                img,
                second,
                severity,
                lab.preset,
                lab.seed + SECOND_SEED + i as u64,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::eval::EvalError::from)?;
    Ok(Dataset { images, ..once })
}

/// Runs each pair over `alphas` × `alphas`; `bar` advances once per grid row.
pub fn run(
    lab: &Lab,
    pairs: &[(Corruption, Corruption)],
    alphas: &[f32],
    severity: u8,
    dataset: &str,
    bar: &ProgressBar,
) -> Result<Compose, ExperimentError> {
    if !alphas.contains(&0.0) || alphas.iter().any(|a| !(0.0..=4.0).contains(a)) {
        return Err(ExperimentError::Invalid(format!(
            "α values {alphas:?}: need 0 (the single signatures are the grid's edges) and each in 0..=4"
        )));
    }
    let mut out = Vec::new();
    for &(first, second) in pairs {
        let missing = |c: Corruption| {
            ExperimentError::Invalid(format!("the set has no {} signature", c.name()))
        };
        let s1 = lab.signature(first).ok_or_else(|| missing(first))?;
        let s2 = lab.signature(second).ok_or_else(|| missing(second))?;
        bar.set_message(format!("{} + {}", first.name(), second.name()));
        let images = compound(lab, first, second, severity)?;
        let mut ra = Vec::new();
        for &a1 in alphas {
            let row = alphas
                .iter()
                .map(|&a2| {
                    lab.classifier(&[(s1, a1), (s2, a2)])?
                        .score(&images)
                        .map_err(Into::into)
                })
                .collect::<Result<Vec<f64>, ExperimentError>>()?;
            ra.push(row);
            bar.inc(1);
        }
        out.push(pair(first, second, alphas, ra));
    }
    Ok(Compose {
        experiment: "compose".into(),
        provenance: lab.provenance(dataset),
        severity,
        alphas: alphas.to_vec(),
        pairs: out,
    })
}

fn pair(first: Corruption, second: Corruption, alphas: &[f32], ra: Vec<Vec<f64>>) -> Pair {
    let (mut bi, mut bj) = (0, 0);
    for (i, row) in ra.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if v > ra[bi][bj] {
                (bi, bj) = (i, j);
            }
        }
    }
    // `run` requires α = 0 in the grid.
    let z = alphas.iter().position(|&a| a == 0.0).unwrap_or(0);
    let best_first_only = ra.iter().map(|r| r[z]).fold(f64::MIN, f64::max);
    let best_second_only = ra[z].iter().copied().fold(f64::MIN, f64::max);
    let clean = ra[z][z];
    let best_ra = ra[bi][bj];
    Pair {
        first: first.name().into(),
        second: second.name().into(),
        best: (alphas[bi], alphas[bj]),
        best_ra,
        beats_both: best_ra > best_first_only && best_ra > best_second_only,
        best_first_only,
        best_second_only,
        clean,
        ra,
    }
}
