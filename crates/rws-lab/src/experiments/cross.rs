//! The cross-corruption matrix (the paper's §2.3): each signature applied to every corruption,
//! the fallback an imperfect oracle relies on when it names a corruption "similar" to the true
//! one. Gains are against the clean model on the same images.

use indicatif::ProgressBar;

use super::{first_max, mean, ExperimentError, Lab, Provenance};
use crate::corrupt::Corruption;

/// The matrix, as `rws eval --mode cross --json` prints it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cross {
    pub experiment: String,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub severity: u8,
    pub alpha: f32,
    /// The signatures (rows) and the corruptions (columns), in the set's order.
    pub names: Vec<String>,
    pub groups: Vec<String>,
    /// `clean[j]`: the clean model's RA on corruption `j`.
    pub clean: Vec<f64>,
    /// `ra[i][j]`: RA on corruption `j` with signature `i` at `alpha`.
    pub ra: Vec<Vec<f64>>,
    /// Per corruption, the other signature that helps it most, and its gain.
    pub best_other: Vec<BestOther>,
    /// Mean gain of a signature on its own corruption, on another of its group, on another group.
    pub mean_gain_own: f64,
    pub mean_gain_same_group: f64,
    pub mean_gain_other_group: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BestOther {
    pub corruption: String,
    pub signature: String,
    pub gain: f64,
    pub own_gain: f64,
}

/// Runs the matrix; `bar` advances once per corruption (column).
pub fn run(
    lab: &Lab,
    severity: u8,
    alpha: f32,
    dataset: &str,
    bar: &ProgressBar,
) -> Result<Cross, ExperimentError> {
    let base = lab.classifier(&[])?;
    let models = lab
        .signatures
        .iter()
        .map(|(_, s)| lab.classifier(&[(s, alpha)]))
        .collect::<Result<Vec<_>, _>>()?;
    let n = lab.signatures.len();
    let (mut clean, mut ra) = (Vec::new(), vec![Vec::new(); n]);
    for (c, _) in &lab.signatures {
        bar.set_message(c.name());
        let images = lab.corrupted(*c, severity)?;
        clean.push(base.score(&images)?);
        for (row, m) in ra.iter_mut().zip(&models) {
            row.push(m.score(&images)?);
        }
        bar.inc(1);
    }
    let kinds: Vec<Corruption> = lab.signatures.iter().map(|(c, _)| *c).collect();
    Ok(summarize(
        lab.provenance(dataset),
        severity,
        alpha,
        &kinds,
        clean,
        ra,
    ))
}

fn summarize(
    provenance: Provenance,
    severity: u8,
    alpha: f32,
    kinds: &[Corruption],
    clean: Vec<f64>,
    ra: Vec<Vec<f64>>,
) -> Cross {
    let n = kinds.len();
    let gain = |i: usize, j: usize| ra[i][j] - clean[j];
    let best_other = (0..n)
        .map(|j| {
            let others: Vec<f64> = (0..n)
                .map(|i| {
                    if i == j {
                        f64::NEG_INFINITY
                    } else {
                        gain(i, j)
                    }
                })
                .collect();
            let i = first_max(&others);
            BestOther {
                corruption: kinds[j].name().into(),
                signature: kinds[i].name().into(),
                gain: if n > 1 { others[i] } else { 0.0 },
                own_gain: gain(j, j),
            }
        })
        .collect();
    let pairs = |same: bool| {
        let v: Vec<f64> = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| i != j && (kinds[i].group() == kinds[j].group()) == same)
            .map(|(i, j)| gain(i, j))
            .collect();
        mean(v)
    };
    Cross {
        experiment: "cross".into(),
        provenance,
        severity,
        alpha,
        names: kinds.iter().map(|c| c.name().to_string()).collect(),
        groups: kinds.iter().map(|c| c.group().to_string()).collect(),
        mean_gain_own: mean((0..n).map(|i| gain(i, i))),
        mean_gain_same_group: pairs(true),
        mean_gain_other_group: pairs(false),
        best_other,
        clean,
        ra,
    }
}
