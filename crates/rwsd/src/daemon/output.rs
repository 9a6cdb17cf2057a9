//! What rwsd writes per frame: one JSON line ([`FrameRecord`], or [`FrameErrorRecord`] for a
//! frame that could not be read), to stdout or `output.path`, and optionally a coefficient trace
//! line. Fields are declared in alphabetical order, the order of the keys on the line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One frame's result.
#[derive(Debug, Serialize)]
pub struct FrameRecord<'a> {
    /// Non-zero coefficients the frame ran on, by corruption.
    pub alpha: BTreeMap<&'a str, f64>,
    /// With `label_from_name`: whether the top label is the one the file name gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<&'a str>,
    pub frame: u64,
    pub generation: u64,
    pub latency_ms: f64,
    pub name: &'a str,
    pub t: f64,
    pub top: Vec<Top<'a>>,
}

/// One of the top-k classes.
#[derive(Debug, Serialize)]
pub struct Top<'a> {
    pub label: Label<'a>,
    pub score: f64,
}

/// A class label: the config's name for it, or its index.
#[derive(Debug, PartialEq)]
pub enum Label<'a> {
    Name(&'a str),
    Index(usize),
}

impl Serialize for Label<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Label::Name(n) => s.serialize_str(n),
            Label::Index(i) => s.collect_str(i),
        }
    }
}

impl Label<'_> {
    fn is(&self, text: &str) -> bool {
        match self {
            Label::Name(n) => *n == text,
            Label::Index(i) => i.to_string() == text,
        }
    }
}

/// A frame that could not be read or run.
#[derive(Debug, Serialize)]
pub struct FrameErrorRecord<'a> {
    pub error: &'a str,
    pub frame: u64,
    pub name: &'a str,
    pub t: f64,
}

/// Rounds to `digits` decimals (the output's precision).
pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Softmax probabilities of `logits`.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// The `k` most probable classes, most probable first (ties: lower index first).
pub fn top_k<'a>(logits: &[f32], k: usize, labels: &'a [String]) -> Vec<Top<'a>> {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .iter()
        .take(k)
        .map(|&i| Top {
            label: labels
                .get(i)
                .map_or(Label::Index(i), |l| Label::Name(l.as_str())),
            score: round(f64::from(probs[i]), 4),
        })
        .collect()
}

/// The label a frame's file name gives: the stem's last `-`-separated part (`0011-fog-3.png`
/// is a 3).
pub fn label_from_name(name: &str) -> Option<&str> {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('-').next())
}

/// Whether the most probable class is `expected`.
pub fn is_correct(top: &[Top<'_>], expected: &str) -> bool {
    top.first().is_some_and(|t| t.label.is(expected))
}

/// Where frame lines go.
pub struct Output {
    w: Box<dyn Write + Send>,
}

impl Output {
    pub fn new(w: Box<dyn Write + Send>) -> Self {
        Output { w }
    }

    /// Writes one JSON line and flushes it (a reader of a pipe sees every frame at once).
    pub fn emit<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.w, record).map_err(std::io::Error::other)?;
        self.w.write_all(b"\n")?;
        self.w.flush()
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_line_has_the_documented_keys_in_order() {
        let labels: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let mut logits = vec![0.0f32; 10];
        logits[3] = 4.0;
        logits[8] = 2.0;
        let top = top_k(&logits, 2, &labels);
        assert!(is_correct(&top, "3"));
        let mut alpha = BTreeMap::new();
        alpha.insert("fog", 0.5);
        let r = FrameRecord {
            alpha,
            correct: Some(true),
            expected: Some("3"),
            frame: 11,
            generation: 2,
            latency_ms: 0.25,
            name: "0011-fog-3.png",
            t: 11.0,
            top,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"alpha":{"fog":0.5},"correct":true,"expected":"3","frame":11,"generation":2,"latency_ms":0.25,"name":"0011-fog-3.png","t":11.0,"top":[{"label":"3","score":0.7801},{"label":"8","score":0.1056}]}"#
        );
        // The same as the JSON-value route the daemon used before, key for key.
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), line);
    }

    #[test]
    fn labels_fall_back_to_indices_and_names_give_the_expected_label() {
        let top = top_k(&[0.1, 0.9, 0.3], 5, &[]);
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].label, Label::Index(1));
        assert!(is_correct(&top, "1") && !is_correct(&top, "01x"));
        assert_eq!(label_from_name("0011-fog-3.png"), Some("3"));
        assert_eq!(label_from_name("raw:7"), Some("raw:7"));
        let e = FrameErrorRecord {
            error: "bad PNG",
            frame: 4,
            name: "x.png",
            t: 4.0,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":"bad PNG","frame":4,"name":"x.png","t":4.0}"#
        );
    }
}
