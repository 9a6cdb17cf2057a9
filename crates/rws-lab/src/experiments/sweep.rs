//! The α × severity sweep (the paper's Fig. 7): per corruption, robust accuracy with its own
//! signature at each α and severity, test accuracy (clean images) at each α, and the best α per
//! severity. [`super::calibrate`] reads this to set the daemon's policy curves.

use indicatif::ProgressBar;

use super::{first_max, mean, ExperimentError, Lab, Provenance};

/// The sweep's grid.
#[derive(Clone, Debug)]
pub struct Grid {
    pub alphas: Vec<f32>,
    pub severities: Vec<u8>,
}

impl Grid {
    /// The grid: α = 0, 0.25, …, 2 and severities 1–5.
    pub fn paper() -> Grid {
        Grid {
            alphas: (0..=8).map(|i| i as f32 * 0.25).collect(),
            severities: (1..=5).collect(),
        }
    }

    /// The grid, refused when it cannot give a best α: no α, an α outside 0..=4 or not
    /// increasing, a severity outside 1–5 or repeated.
    pub fn check(self) -> Result<Grid, ExperimentError> {
        let bad = |m: String| Err(ExperimentError::Invalid(m));
        if self.alphas.is_empty() || self.severities.is_empty() {
            return bad("the sweep needs at least one α and one severity".into());
        }
        if self.alphas.iter().any(|a| !(0.0..=4.0).contains(a)) {
            return bad(format!("α values {:?}: each must be in 0..=4", self.alphas));
        }
        if self.alphas.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("α values {:?}: must increase", self.alphas));
        }
        if self.severities.iter().any(|s| !(1..=5).contains(s))
            || self.severities.windows(2).any(|w| w[0] >= w[1])
        {
            return bad(format!(
                "severities {:?}: must increase, within 1–5",
                self.severities
            ));
        }
        Ok(self)
    }
}

/// One corruption's measurements.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub corruption: String,
    pub group: String,
    /// `ra[s][a]`: robust accuracy at `severities[s]` with the signature at `alphas[a]`.
    pub ra: Vec<Vec<f64>>,
    /// `ta[a]`: accuracy on the clean test images with the signature at `alphas[a]`.
    pub ta: Vec<f64>,
    /// Per severity, the α with the highest RA (the smallest of equals).
    pub best_alpha: Vec<f32>,
}

/// The whole sweep, as `rws eval --mode sweep --json` prints it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sweep {
    pub experiment: String,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub alphas: Vec<f32>,
    pub severities: Vec<u8>,
    /// Accuracy of the clean model on the clean test images.
    pub ta_clean: f64,
    pub rows: Vec<Row>,
    /// `mean_ra[s][a]`: RA averaged over the corruptions.
    pub mean_ra: Vec<Vec<f64>>,
    /// Per severity, the α with the best mean RA (the paper's Fig. 7 reading).
    pub best_alpha_per_severity: Vec<f32>,
    /// Per severity, the mean over corruptions of each one's best α.
    pub mean_best_alpha: Vec<f64>,
    /// Whether `best_alpha_per_severity` never falls as severity rises.
    pub best_alpha_non_decreasing: bool,
}

impl Sweep {
    /// The row of a corruption.
    pub fn row(&self, corruption: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.corruption == corruption)
    }
}

/// Runs the sweep over every signature of `lab`; `bar` advances once per (corruption, step).
pub fn run(
    lab: &Lab,
    grid: &Grid,
    dataset: &str,
    bar: &ProgressBar,
) -> Result<Sweep, ExperimentError> {
    let base = lab.classifier(&[])?;
    let ta_clean = base.score(&lab.test)?;
    let mut rows = Vec::new();
    for (c, sig) in &lab.signatures {
        bar.set_message(c.name());
        // One optimized model per α, scored on each severity's images (corrupted once).
        let models = grid
            .alphas
            .iter()
            .map(|&a| lab.classifier(&[(sig, a)]))
            .collect::<Result<Vec<_>, _>>()?;
        let ta = models
            .iter()
            .map(|m| m.score(&lab.test))
            .collect::<Result<Vec<_>, _>>()?;
        bar.inc(1);
        let mut ra = Vec::new();
        for &s in &grid.severities {
            let images = lab.corrupted(*c, s)?;
            ra.push(
                models
                    .iter()
                    .map(|m| m.score(&images))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            bar.inc(1);
        }
        let best_alpha = ra.iter().map(|r| grid.alphas[first_max(r)]).collect();
        rows.push(Row {
            corruption: c.name().into(),
            group: c.group().to_string(),
            ra,
            ta,
            best_alpha,
        });
    }
    Ok(summarize(lab.provenance(dataset), grid, ta_clean, rows))
}

/// Steps [`run`] reports: per signature, one for the clean images and one per severity.
pub fn steps(lab: &Lab, grid: &Grid) -> u64 {
    (lab.signatures.len() * (1 + grid.severities.len())) as u64
}

fn summarize(provenance: Provenance, grid: &Grid, ta_clean: f64, rows: Vec<Row>) -> Sweep {
    let (ns, na) = (grid.severities.len(), grid.alphas.len());
    let mean_ra: Vec<Vec<f64>> = (0..ns)
        .map(|s| {
            (0..na)
                .map(|a| mean(rows.iter().map(|r| r.ra[s][a])))
                .collect()
        })
        .collect();
    let best_alpha_per_severity: Vec<f32> =
        mean_ra.iter().map(|r| grid.alphas[first_max(r)]).collect();
    let mean_best_alpha = (0..ns)
        .map(|s| mean(rows.iter().map(|r| f64::from(r.best_alpha[s]))))
        .collect();
    Sweep {
        experiment: "sweep".into(),
        provenance,
        alphas: grid.alphas.clone(),
        severities: grid.severities.clone(),
        ta_clean,
        best_alpha_non_decreasing: best_alpha_per_severity.windows(2).all(|w| w[0] <= w[1]),
        rows,
        mean_ra,
        best_alpha_per_severity,
        mean_best_alpha,
    }
}
