//! What the signatures look like as weights, from the shipped files alone (no images): how
//! large each layer's signature is against the layer's clean weight (the paper's Fig. 2,
//! `rws layers`) and how alike the signatures are (Fig. 4, `rws similarity`).

use rws_runtime::onnx::OnnxModel;
use rws_signature::{Role, SignatureFile};

use super::{mean, ExperimentError};
use crate::corrupt::Corruption;

/// `rws layers --json`: per weight tensor (graph order), ‖RWS‖ / ‖W‖.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layers {
    pub experiment: String,
    /// The patched weight tensors, shallowest first.
    pub layers: Vec<String>,
    pub signatures: Vec<String>,
    /// `ratio[s][l]`: ‖signature s on layer l‖₂ / ‖clean weight of layer l‖₂.
    pub ratio: Vec<Vec<f64>>,
    /// `share[s][l]`: layer l's part of signature s's squared norm (rows sum to 1).
    pub share: Vec<Vec<f64>>,
    pub mean_ratio: Vec<f64>,
    pub mean_share: Vec<f64>,
    /// Whether the mean ratio never rises from one layer to the next.
    pub ratio_falls_with_depth: bool,
}

/// `rws similarity --json`: cosine similarity of the signatures as flat vectors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Similarity {
    pub experiment: String,
    /// In the paper's group order (noise, blur, weather, digital).
    pub names: Vec<String>,
    pub groups: Vec<String>,
    pub cosine: Vec<Vec<f64>>,
    /// Mean off-diagonal cosine within a group and across groups.
    pub mean_same_group: f64,
    pub mean_cross_group: f64,
}

fn norm2(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// The weight tensors of `sig` with their dequantized values, in file order.
fn weights(sig: &SignatureFile) -> Vec<(String, Vec<f32>)> {
    sig.tensors()
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == Role::Weight)
        .map(|(i, t)| (t.name.clone(), sig.data(i).to_f32()))
        .collect()
}

/// Fig. 2 over `sigs` (all must patch the same weight tensors of `clean`).
pub fn layers(
    clean: &OnnxModel,
    sigs: &[(Corruption, SignatureFile)],
) -> Result<Layers, ExperimentError> {
    let first = sigs
        .first()
        .ok_or_else(|| ExperimentError::Invalid("no signatures".into()))?;
    let names: Vec<String> = weights(&first.1).into_iter().map(|(n, _)| n).collect();
    let clean_norms = names
        .iter()
        .map(|n| Ok(norm2(&clean.initializer_f32(n)?).sqrt()))
        .collect::<Result<Vec<f64>, ExperimentError>>()?;
    let (mut ratio, mut share) = (Vec::new(), Vec::new());
    for (c, sig) in sigs {
        let w = weights(sig);
        if w.iter().map(|(n, _)| n).ne(names.iter()) {
            return Err(ExperimentError::Invalid(format!(
                "{}: patches other weight tensors than {}",
                c.name(),
                first.0.name()
            )));
        }
        let sq: Vec<f64> = w.iter().map(|(_, v)| norm2(v)).collect();
        let total: f64 = sq.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        ratio.push(
            sq.iter()
                .zip(&clean_norms)
                .map(|(s, c)| s.sqrt() / c.max(f64::MIN_POSITIVE))
                .collect(),
        );
        share.push(sq.iter().map(|s| s / total).collect());
    }
    let col = |m: &Vec<Vec<f64>>, l: usize| mean(m.iter().map(|r: &Vec<f64>| r[l]));
    let mean_ratio: Vec<f64> = (0..names.len()).map(|l| col(&ratio, l)).collect();
    let mean_share = (0..names.len()).map(|l| col(&share, l)).collect();
    Ok(Layers {
        experiment: "layers".into(),
        ratio_falls_with_depth: mean_ratio.windows(2).all(|w| w[1] <= w[0]),
        layers: names,
        signatures: sigs.iter().map(|(c, _)| c.name().to_string()).collect(),
        ratio,
        share,
        mean_ratio,
        mean_share,
    })
}

/// Fig. 4 over `sigs`, reordered by group.
pub fn similarity(sigs: &[(Corruption, SignatureFile)]) -> Result<Similarity, ExperimentError> {
    let mut order: Vec<&(Corruption, SignatureFile)> = sigs.iter().collect();
    order.sort_by_key(|(c, _)| Corruption::ALL.iter().position(|k| k == c));
    let flat: Vec<Vec<f32>> = order
        .iter()
        .map(|(_, s)| {
            (0..s.tensors().len())
                .flat_map(|i| s.data(i).to_f32())
                .collect()
        })
        .collect();
    if flat.windows(2).any(|w| w[0].len() != w[1].len()) {
        return Err(ExperimentError::Invalid(
            "the signatures patch tensors of different sizes".into(),
        ));
    }
    let norms: Vec<f64> = flat
        .iter()
        .map(|v| norm2(v).sqrt().max(f64::MIN_POSITIVE))
        .collect();
    let n = flat.len();
    let cosine: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let dot: f64 = flat[i]
                        .iter()
                        .zip(&flat[j])
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    dot / (norms[i] * norms[j])
                })
                .collect()
        })
        .collect();
    let groups: Vec<String> = order.iter().map(|(c, _)| c.group().to_string()).collect();
    let pairs = |same: bool| {
        mean(
            (0..n)
                .flat_map(|i| (0..n).map(move |j| (i, j)))
                .filter(|&(i, j)| i != j && (groups[i] == groups[j]) == same)
                .map(|(i, j)| cosine[i][j]),
        )
    };
    Ok(Similarity {
        experiment: "similarity".into(),
        names: order.iter().map(|(c, _)| c.name().to_string()).collect(),
        mean_same_group: pairs(true),
        mean_cross_group: pairs(false),
        groups,
        cosine,
    })
}
