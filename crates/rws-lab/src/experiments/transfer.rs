//! Transfer across datasets (the paper's Table 3): signatures extracted on one dataset (the
//! *source* set, e.g. MNIST-5k) added to a clean model of the same architecture trained on
//! another (the *target* set's model, e.g. sklearn digits), against the target set's own
//! signatures. Both are scored on the target's test images, corrupted once per corruption.
//!
//! The share that matters is how much of the in-domain gain the foreign signature keeps:
//! `(RA_transfer − RA_clean) / (RA_in_domain − RA_clean)`, over the mean of the corruptions.

use indicatif::ProgressBar;
use rws_signature::SignatureFile;

use super::{mean, ExperimentError, Lab, Provenance};
use crate::corrupt::Corruption;

/// The comparison, as `rws eval --mode transfer --json` prints it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    pub experiment: String,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub severity: u8,
    pub alpha: f32,
    /// Dataset the source signatures were extracted on (their header), and the target's.
    pub source_dataset: String,
    pub target_dataset: String,
    /// The target clean model's test accuracy on clean images.
    pub ta_clean: f64,
    pub rows: Vec<Row>,
    pub mean_ra_clean: f64,
    pub mean_ra_in_domain: f64,
    pub mean_ra_transfer: f64,
    /// `(mean_ra_transfer − mean_ra_clean) / (mean_ra_in_domain − mean_ra_clean)`; absent when
    /// the in-domain signatures gain nothing (no share to keep).
    pub transfer_share: Option<f64>,
}

/// One corruption: the target clean model alone, with its own signature, with the source's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub corruption: String,
    pub group: String,
    pub clean: f64,
    pub in_domain: f64,
    pub transfer: f64,
}

/// Datasets named by the two sets' signature headers (`source`, `target`).
pub struct Datasets<'a> {
    pub source: &'a str,
    pub target: &'a str,
}

/// Runs every corruption both sets have; `bar` advances once per corruption. `target` holds the
/// target model, its own signatures and its test images; `source` the foreign signatures.
pub fn run(
    target: &Lab,
    source: &[(Corruption, SignatureFile)],
    datasets: Datasets<'_>,
    severity: u8,
    alpha: f32,
    bar: &ProgressBar,
) -> Result<Transfer, ExperimentError> {
    let base = target.classifier(&[])?;
    let mut rows = Vec::new();
    for (c, own) in &target.signatures {
        let Some((_, foreign)) = source.iter().find(|(k, _)| k == c) else {
            continue;
        };
        bar.set_message(c.name());
        let images = target.corrupted(*c, severity)?;
        rows.push(Row {
            corruption: c.name().into(),
            group: c.group().to_string(),
            clean: base.score(&images)?,
            in_domain: target.classifier(&[(own, alpha)])?.score(&images)?,
            transfer: target.classifier(&[(foreign, alpha)])?.score(&images)?,
        });
        bar.inc(1);
    }
    if rows.is_empty() {
        return Err(ExperimentError::Invalid(
            "the source and target sets share no corruption".into(),
        ));
    }
    let m = |f: fn(&Row) -> f64| mean(rows.iter().map(f));
    let (clean, own, foreign) = (m(|r| r.clean), m(|r| r.in_domain), m(|r| r.transfer));
    Ok(Transfer {
        experiment: "transfer".into(),
        provenance: target.provenance(datasets.target),
        severity,
        alpha,
        source_dataset: datasets.source.to_string(),
        target_dataset: datasets.target.to_string(),
        ta_clean: base.score(&target.test)?,
        mean_ra_clean: clean,
        mean_ra_in_domain: own,
        mean_ra_transfer: foreign,
        transfer_share: (own > clean).then(|| (foreign - clean) / (own - clean)),
        rows,
    })
}
