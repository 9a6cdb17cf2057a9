//! Issue 16's lever study as data: one full demo training per lever (`scripts/levers`), each
//! scored as Table 1 (`rws eval --json`), gathered here into one table against the shipped run.
//!
//! A run file is `{"lever", "what", "train", "table"}` where `table` is `rws eval --json`'s
//! output (table1.json's schema). This module only reads and compares them; the training and the
//! evaluation are the ordinary commands, so every row can be reproduced alone.

use serde::{Deserialize, Serialize};

use super::ExperimentError;

/// One lever's run file.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Run {
    /// Short name (`mix35`, `deep`, …; `shipped` is the baseline).
    pub lever: String,
    /// What was changed, in words.
    pub what: String,
    /// The training command.
    pub train: String,
    /// Its Table 1.
    pub table: Table,
}

/// The fields of `rws eval --json` (Table 1) the comparison needs.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Table {
    pub ta_clean: f64,
    pub ta_rws_off: f64,
    pub mean_ra_clean: f64,
    pub mean_ra_rws: f64,
    pub mean_ra_all_models: f64,
    pub severity: u8,
    pub alpha: f64,
    pub images: usize,
}

/// One row of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub lever: String,
    pub what: String,
    pub train: String,
    pub ta_clean: f64,
    /// TA with every signature bound at α = 0 (must equal `ta_clean`).
    pub ta_rws_off: f64,
    pub mean_ra_clean: f64,
    pub mean_ra_rws: f64,
    pub mean_ra_all_models: f64,
    /// (RWS − clean) / (All Models − clean), this run's own models.
    pub gain_share: f64,
    /// Mean RA with the signatures, minus the shipped run's, in points of accuracy.
    pub ra_rws_vs_shipped: f64,
}

/// The lever table.
#[derive(Clone, Debug, Serialize)]
pub struct Levers {
    pub severity: u8,
    pub alpha: f64,
    pub images: usize,
    pub rows: Vec<Row>,
    /// The lever with the highest mean RA with signatures.
    pub best: String,
}

/// The comparison of `runs`; one must be the baseline `shipped`, and all must be scored alike
/// (severity, α, images), or the rows would not compare.
pub fn compare(runs: &[Run]) -> Result<Levers, ExperimentError> {
    let base = runs
        .iter()
        .find(|r| r.lever == "shipped")
        .ok_or_else(|| ExperimentError::Invalid("no run named 'shipped' (the baseline)".into()))?;
    let t0 = &base.table;
    for r in runs {
        let t = &r.table;
        if (t.severity, t.images) != (t0.severity, t0.images) || t.alpha != t0.alpha {
            return Err(ExperimentError::Invalid(format!(
                "lever '{}': scored at severity {}, α {}, {} images; the baseline at {}, {}, {}",
                r.lever, t.severity, t.alpha, t.images, t0.severity, t0.alpha, t0.images
            )));
        }
    }
    let rows: Vec<Row> = runs.iter().map(|r| row(r, t0)).collect();
    let best = rows
        .iter()
        .max_by(|a, b| a.mean_ra_rws.total_cmp(&b.mean_ra_rws))
        .map(|r| r.lever.clone())
        .unwrap_or_default();
    Ok(Levers {
        severity: t0.severity,
        alpha: t0.alpha,
        images: t0.images,
        rows,
        best,
    })
}

fn row(r: &Run, base: &Table) -> Row {
    let t = &r.table;
    let room = t.mean_ra_all_models - t.mean_ra_clean;
    Row {
        lever: r.lever.clone(),
        what: r.what.clone(),
        train: r.train.clone(),
        ta_clean: t.ta_clean,
        ta_rws_off: t.ta_rws_off,
        mean_ra_clean: t.mean_ra_clean,
        mean_ra_rws: t.mean_ra_rws,
        mean_ra_all_models: t.mean_ra_all_models,
        gain_share: if room > 0.0 {
            (t.mean_ra_rws - t.mean_ra_clean) / room
        } else {
            0.0
        },
        ra_rws_vs_shipped: (t.mean_ra_rws - base.mean_ra_rws) * 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lever: &str, clean: f64, rws: f64, all: f64, images: usize) -> Run {
        Run {
            lever: lever.into(),
            what: String::new(),
            train: String::new(),
            table: Table {
                ta_clean: 0.97,
                ta_rws_off: 0.97,
                mean_ra_clean: clean,
                mean_ra_rws: rws,
                mean_ra_all_models: all,
                severity: 5,
                alpha: 1.0,
                images,
            },
        }
    }

    #[test]
    fn shares_and_differences_are_against_each_runs_own_models_and_the_shipped_run() {
        let l = compare(&[
            run("shipped", 0.5, 0.6, 0.9, 1000),
            run("deep", 0.4, 0.7, 0.8, 1000),
        ])
        .expect("compare");
        assert!((l.rows[0].gain_share - 0.25).abs() < 1e-12);
        assert!((l.rows[1].gain_share - 0.75).abs() < 1e-12);
        assert!((l.rows[1].ra_rws_vs_shipped - 10.0).abs() < 1e-9);
        assert_eq!(l.best, "deep");
    }

    #[test]
    fn runs_scored_differently_or_without_a_baseline_are_refused() {
        let e = compare(&[run("deep", 0.4, 0.7, 0.8, 1000)]).expect_err("no baseline");
        assert!(e.to_string().contains("shipped"), "{e}");
        let e = compare(&[
            run("shipped", 0.5, 0.6, 0.9, 1000),
            run("x", 0.5, 0.6, 0.9, 200),
        ])
        .expect_err("other subset");
        assert!(e.to_string().contains("lever 'x'"), "{e}");
    }
}
