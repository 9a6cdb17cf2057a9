//! `rws eval --oracle`: how well the camera-only oracle identifies corruptions on the test split,
//! and what its choices are worth against the perfect oracle (the paper's assumption).
//!
//! Per frame, the oracle engages the signature of its most probable class when that class is not
//! `clean` and its probability is at least `threshold`, at coefficient `alpha`; the perfect
//! oracle engages the true corruption's signature at the same α. *Regret* is the perfect
//! oracle's RA minus the oracle's. Frames are independent here (no smoothing); [`stream`] runs a
//! temporally correlated sequence through the tracker rwsd uses.

use rws_oracle::features::extract;
use rws_oracle::{Head, Hysteresis, Tracker};

use super::{mean, ExperimentError, Lab, Provenance};
use crate::corrupt::Corruption;
use crate::data::Dataset;
use crate::eval::Classifier;
use crate::oracle::{class_names, same_group};

/// One corruption at one severity.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub corruption: String,
    pub group: String,
    pub severity: u8,
    pub type_accuracy: f64,
    pub group_accuracy: f64,
    /// Mean |estimated − true| severity (the estimate for the true corruption).
    pub severity_mae: f64,
    pub ra_clean: f64,
    /// With the true corruption's signature (perfect oracle).
    pub ra_rws: f64,
    pub ra_oracle: f64,
    pub regret: f64,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OracleEval {
    pub provenance: Provenance,
    pub command: String,
    pub head_hidden_units: usize,
    pub threshold: f32,
    pub alpha: f32,
    /// Clean test images: the clean model, and the clean model with the oracle choosing.
    pub ta_clean: f64,
    pub ta_oracle: f64,
    /// Clean test images the oracle leaves on the clean model.
    pub clean_kept: f64,
    /// Means over the corruptions at the highest severity measured (5 by default).
    pub mean_ra_clean: f64,
    pub mean_ra_rws: f64,
    pub mean_ra_oracle: f64,
    pub mean_regret: f64,
    /// (mean_ra_oracle − mean_ra_clean) / (mean_ra_rws − mean_ra_clean).
    pub gain_kept: f64,
    /// Over the corruptions at severities 3–5 (those measured).
    pub type_accuracy: f64,
    pub group_accuracy: f64,
    pub severity_mae: f64,
    pub rows: Vec<Row>,
    /// Class names of the confusion matrix (`clean` first).
    pub classes: Vec<String>,
    /// `confusion[true][predicted]` frame counts: clean test frames, and corrupted ones at
    /// severities 3–5.
    pub confusion: Vec<Vec<u32>>,
    pub stream: Stream,
}

/// The models a frame can be run through: the clean model and each signature at α.
struct Models {
    by_class: Vec<Classifier>,
}

impl Models {
    fn new(lab: &Lab, alpha: f32) -> Result<Models, ExperimentError> {
        let mut by_class = vec![lab.classifier(&[])?];
        for c in Corruption::ALL {
            by_class.push(match lab.signature(c) {
                Some(sig) => lab.classifier(&[(sig, alpha)])?,
                None => lab.classifier(&[])?,
            });
        }
        Ok(Models { by_class })
    }

    fn right(
        &self,
        class: usize,
        img: &rws_image::Image,
        label: u8,
    ) -> Result<bool, ExperimentError> {
        Ok(self.by_class[class].predict(img)? == usize::from(label))
    }
}

/// The class the oracle engages for one frame (0 = none).
fn engaged(
    head: &mut Head,
    img: &rws_image::Image,
    threshold: f32,
) -> (usize, usize, f32, Vec<f32>) {
    let p = head.predict(&extract(img));
    let (best, prob) = p.best();
    let sev = p.severity.to_vec();
    let chosen = if best != 0 && prob >= threshold {
        best
    } else {
        0
    };
    (chosen, best, prob, sev)
}

/// Runs the evaluation over `severities` on the lab's test split.
pub fn run(
    lab: &Lab,
    head: &mut Head,
    severities: &[u8],
    threshold: f32,
    alpha: f32,
    command: String,
) -> Result<OracleEval, ExperimentError> {
    check_classes(head)?;
    let models = Models::new(lab, alpha)?;
    let classes = class_names();
    let mut confusion = vec![vec![0u32; classes.len()]; classes.len()];
    let (mut ta_clean, mut ta_oracle, mut kept) = (0usize, 0usize, 0usize);
    for (img, &label) in lab.test.images.iter().zip(&lab.test.labels) {
        let (chosen, best, _, _) = engaged(head, img, threshold);
        confusion[0][best] += 1;
        kept += usize::from(chosen == 0);
        ta_clean += usize::from(models.right(0, img, label)?);
        ta_oracle += usize::from(models.right(chosen, img, label)?);
    }
    let n = lab.test.len().max(1) as f64;
    let mut rows = Vec::new();
    let bar = crate::progress::bar((Corruption::ALL.len() * severities.len()) as u64, "oracle");
    for (k, &c) in Corruption::ALL.iter().enumerate() {
        for &s in severities {
            bar.set_message(format!("{} {s}", c.name()));
            let images = lab.corrupted(c, s)?;
            rows.push(row(
                &models,
                head,
                &images,
                c,
                k + 1,
                s,
                threshold,
                &mut confusion,
            )?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let top = severities.iter().copied().max().unwrap_or(5);
    let at_top: Vec<&Row> = rows.iter().filter(|r| r.severity == top).collect();
    let mid: Vec<&Row> = rows.iter().filter(|r| r.severity >= 3).collect();
    let (ra_clean, ra_rws, ra_oracle) = (
        mean(at_top.iter().map(|r| r.ra_clean)),
        mean(at_top.iter().map(|r| r.ra_rws)),
        mean(at_top.iter().map(|r| r.ra_oracle)),
    );
    let gain = ra_rws - ra_clean;
    Ok(OracleEval {
        provenance: lab.provenance(&lab.test.name),
        command,
        head_hidden_units: head.hidden_units(),
        threshold,
        alpha,
        ta_clean: ta_clean as f64 / n,
        ta_oracle: ta_oracle as f64 / n,
        clean_kept: kept as f64 / n,
        mean_ra_clean: ra_clean,
        mean_ra_rws: ra_rws,
        mean_ra_oracle: ra_oracle,
        mean_regret: ra_rws - ra_oracle,
        gain_kept: if gain.abs() > 1e-12 {
            (ra_oracle - ra_clean) / gain
        } else {
            0.0
        },
        type_accuracy: mean(mid.iter().map(|r| r.type_accuracy)),
        group_accuracy: mean(mid.iter().map(|r| r.group_accuracy)),
        severity_mae: mean(mid.iter().map(|r| r.severity_mae)),
        rows,
        classes,
        confusion,
        stream: stream(lab, head, &models, Hysteresis::DEFAULT)?,
    })
}

/// A head must have this build's classes in this build's order (what `rws oracle train` makes).
fn check_classes(head: &Head) -> Result<(), ExperimentError> {
    if head.classes() != class_names().as_slice() {
        return Err(ExperimentError::Invalid(format!(
            "the head's classes {:?} are not clean + the 19 corruptions in order",
            head.classes()
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn row(
    models: &Models,
    head: &mut Head,
    images: &Dataset,
    c: Corruption,
    class: usize,
    s: u8,
    threshold: f32,
    confusion: &mut [Vec<u32>],
) -> Result<Row, ExperimentError> {
    let (mut ty, mut gr, mut mae, mut rc, mut rr, mut ro) =
        (0usize, 0usize, 0.0, 0usize, 0usize, 0usize);
    for (img, &label) in images.images.iter().zip(&images.labels) {
        let (chosen, best, _, sev) = engaged(head, img, threshold);
        ty += usize::from(best == class);
        gr += usize::from(same_group(best, class));
        mae += f64::from((sev[class] - f32::from(s)).abs());
        if s >= 3 {
            confusion[class][best] += 1;
        }
        let clean = models.right(0, img, label)?;
        let perfect = models.right(class, img, label)?;
        rc += usize::from(clean);
        rr += usize::from(perfect);
        ro += usize::from(match chosen {
            0 => clean,
            k if k == class => perfect,
            k => models.right(k, img, label)?,
        });
    }
    let n = images.len().max(1) as f64;
    Ok(Row {
        corruption: c.name().to_string(),
        group: c.group().to_string(),
        severity: s,
        type_accuracy: ty as f64 / n,
        group_accuracy: gr as f64 / n,
        severity_mae: mae / n,
        ra_clean: rc as f64 / n,
        ra_rws: rr as f64 / n,
        ra_oracle: ro as f64 / n,
        regret: (rr as f64 - ro as f64) / n,
    })
}

/// One stretch of the stream: a corruption (or none) at a severity for some frames.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stretch {
    pub corruption: Option<String>,
    pub severity: u8,
    pub frames: usize,
    /// Frames whose prediction was right with the tracker's choice / with the clean model.
    pub ra_oracle: f64,
    pub ra_clean: f64,
    /// Frames from the stretch's start until the right signature was engaged (None: never).
    pub frames_to_engage: Option<usize>,
    /// Clear stretches: frames from the start until the previous stretch's signature let go.
    pub frames_to_release: Option<usize>,
    /// Frames on which a signature other than the stretch's own was engaged (clear stretches:
    /// after the release).
    pub wrong_engaged: usize,
    /// Times the engaged class changed within the stretch (clear stretches: after the release).
    pub switches: usize,
}

/// The temporally correlated sequence: clear → fog ramp (severity 1 … 5) → clear → gaussian
/// noise (severity 4) → clear: test images (frame `f` shows image `7919·f mod n`, each frame's
/// corruption seeded with `seed + f`), through [`Tracker`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stream {
    pub stretches: Vec<Stretch>,
    /// Over the whole stream.
    pub ra_oracle: f64,
    pub ra_clean: f64,
    /// Engagements (any signature) on clear stretches, in frames.
    pub false_engaged_frames: usize,
    /// Engaged-class changes on clear stretches.
    pub clear_switches: usize,
    /// The engaged signature per frame ("" = none), the trace the tracker produced.
    pub trace: Vec<String>,
}

/// The stream's stretches: (corruption, severity, frames).
pub const STREAM: [(Option<Corruption>, u8, usize); 9] = [
    (None, 0, 30),
    (Some(Corruption::Fog), 1, 10),
    (Some(Corruption::Fog), 2, 10),
    (Some(Corruption::Fog), 3, 10),
    (Some(Corruption::Fog), 4, 10),
    (Some(Corruption::Fog), 5, 10),
    (None, 0, 30),
    (Some(Corruption::GaussianNoise), 4, 30),
    (None, 0, 30),
];

fn stream(
    lab: &Lab,
    head: &mut Head,
    models: &Models,
    h: Hysteresis,
) -> Result<Stream, ExperimentError> {
    let mut tracker = Tracker::new(head.classes().len(), h);
    let names = class_names();
    let (mut stretches, mut trace) = (Vec::new(), Vec::new());
    let mut frame = 0usize;
    for (c, s, frames) in STREAM {
        let own = c.map(|c| 1 + Corruption::ALL.iter().position(|&k| k == c).unwrap_or(0));
        let (mut ro, mut rc, mut wrong, mut switches, mut first) = (0, 0, 0, 0, None);
        let mut last = tracker.engaged();
        // A clear stretch counts flapping only once the last stretch's signature has let go.
        let mut release = (own.is_none() && last.is_none()).then_some(0);
        for i in 0..frames {
            // A stride through the class-ordered split, so each stretch shows many digits.
            let idx = (frame * 7919) % lab.test.len().max(1);
            frame += 1;
            let (img, label) = (&lab.test.images[idx], lab.test.labels[idx]);
            let img = match c {
                Some(c) => crate::corrupt::corrupt(img, c, s, lab.preset, lab.seed + frame as u64)
                    .map_err(crate::eval::EvalError::from)?,
                None => img.clone(),
            };
            let engaged = tracker.update(&head.predict(&extract(&img)));
            trace.push(engaged.map(|k| names[k].clone()).unwrap_or_default());
            if own.is_none() && release.is_none() && engaged.is_none() {
                release = Some(i);
                last = None;
            }
            let counted = own.is_some() || release.is_some();
            if engaged != last && counted {
                switches += 1;
            }
            last = engaged;
            let k = engaged.unwrap_or(0);
            if engaged.is_some() && engaged != own && counted {
                wrong += 1;
            }
            if first.is_none() && own.is_some() && engaged == own {
                first = Some(i);
            }
            ro += usize::from(models.right(k, &img, label)?);
            rc += usize::from(models.right(0, &img, label)?);
        }
        stretches.push(Stretch {
            corruption: c.map(|c| c.name().to_string()),
            severity: s,
            frames,
            ra_oracle: ro as f64 / frames as f64,
            ra_clean: rc as f64 / frames as f64,
            frames_to_engage: first,
            frames_to_release: if own.is_none() { release } else { None },
            wrong_engaged: wrong,
            switches,
        });
    }
    let total: usize = stretches.iter().map(|s| s.frames).sum();
    let weighted = |f: fn(&Stretch) -> f64| {
        stretches
            .iter()
            .map(|s| f(s) * s.frames as f64)
            .sum::<f64>()
            / total.max(1) as f64
    };
    let clear = stretches.iter().filter(|s| s.corruption.is_none());
    Ok(Stream {
        ra_oracle: weighted(|s| s.ra_oracle),
        ra_clean: weighted(|s| s.ra_clean),
        false_engaged_frames: clear.clone().map(|s| s.wrong_engaged).sum(),
        clear_switches: clear.map(|s| s.switches).sum(),
        stretches,
        trace,
    })
}
