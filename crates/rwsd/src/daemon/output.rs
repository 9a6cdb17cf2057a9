//! What rwsd writes per frame: one JSON line ([`FrameRecord`], or [`FrameErrorRecord`] for a
//! frame that could not be read), to stdout or `output.path`, and optionally a coefficient trace
//! line. Fields are declared in alphabetical order, the order of the keys on the line.

use std::io::Write;
use std::path::Path;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::Serialize;

use crate::frames::FrameName;

/// One frame's result, serialized straight from the frame loop's buffers (no intermediate
/// value tree, no string per signature: writing a line allocates nothing).
#[derive(Debug, Serialize)]
pub struct FrameRecord<'a> {
    /// Non-zero coefficients the frame ran on, by corruption.
    pub alpha: Alphas<'a>,
    /// With `label_from_name`: whether the top label is the one the file name gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<&'a str>,
    pub frame: u64,
    pub generation: u64,
    pub latency_ms: f64,
    pub name: &'a FrameName,
    /// With `[oracle]`: what the camera-only oracle makes of the stream at this frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<crate::oracle::View<'a>>,
    pub t: f64,
    pub top: TopK<'a>,
}

/// The non-zero coefficients of a frame as a JSON object, keys in name order.
#[derive(Debug)]
pub struct Alphas<'a> {
    /// Per runtime signature, its corruption name.
    pub names: &'a [String],
    /// Runtime signature indices in name order.
    pub order: &'a [usize],
    /// Per runtime signature, the coefficient the frame ran on.
    pub values: &'a [f32],
}

impl Serialize for Alphas<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let on = |&&i: &&usize| self.values.get(i).is_some_and(|&a| a != 0.0);
        let mut m = s.serialize_map(Some(self.order.iter().filter(on).count()))?;
        for &i in self.order.iter().filter(on) {
            m.serialize_entry(&self.names[i], &round(f64::from(self.values[i]), 3))?;
        }
        m.end()
    }
}

/// The top classes of a frame: (class index, probability), most probable first.
#[derive(Debug)]
pub struct TopK<'a> {
    pub entries: &'a [(usize, f32)],
    pub labels: &'a [String],
}

impl Serialize for TopK<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.entries.len()))?;
        for &(i, p) in self.entries {
            seq.serialize_element(&Top {
                label: label(self.labels, i),
                score: round(f64::from(p), 4),
            })?;
        }
        seq.end()
    }
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
    /// Whether the label reads `text` (an index as its decimal digits, nothing else).
    fn is(&self, text: &str) -> bool {
        match self {
            Label::Name(n) => *n == text,
            Label::Index(i) => {
                let canonical = text == "0" || !text.starts_with(['0', '+']);
                canonical && text.parse::<usize>().ok() == Some(*i)
            }
        }
    }
}

/// Class `i`'s label: the config's name, or the index.
pub fn label(labels: &[String], i: usize) -> Label<'_> {
    labels
        .get(i)
        .map_or(Label::Index(i), |l| Label::Name(l.as_str()))
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

/// Softmax of `logits` into `probs` (reused).
pub fn softmax_into(logits: &[f32], probs: &mut Vec<f32>) {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    probs.clear();
    probs.extend(logits.iter().map(|x| (x - m).exp()));
    let s: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|x| *x /= s);
}

/// The `k` most probable classes of `probs` into `top` (reused), most probable first (ties:
/// lower index first), by insertion into a list of at most `k`: O(classes × k), no sort of all
/// classes and no allocation once `top` has room for `k`.
pub fn top_k_into(probs: &[f32], k: usize, top: &mut Vec<(usize, f32)>) {
    top.clear();
    if k == 0 {
        return;
    }
    for (i, &p) in probs.iter().enumerate() {
        if top.len() == k && top[k - 1].1.total_cmp(&p).is_ge() {
            continue;
        }
        // After every entry at least as probable: equal ones keep index order.
        let at = top.partition_point(|e| e.1.total_cmp(&p).is_ge());
        if top.len() == k {
            top.pop();
        }
        top.insert(at, (i, p));
    }
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
pub fn is_correct(top: &[(usize, f32)], labels: &[String], expected: &str) -> bool {
    top.first()
        .is_some_and(|&(i, _)| label(labels, i).is(expected))
}

/// Where frame lines go. Each line is serialized into a buffer kept from line to line and
/// written with one `write` (a reader of a pipe sees every frame at once, whole); a line that
/// cannot be written is lost alone, with nothing of it left to mix into the next.
pub struct Output {
    w: Box<dyn Write + Send>,
    line: Vec<u8>,
}

impl Output {
    pub fn new(w: Box<dyn Write + Send>) -> Self {
        Output {
            w,
            line: Vec::with_capacity(512),
        }
    }

    /// Writes one JSON line and flushes it.
    pub fn emit<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(std::io::Error::other)?;
        self.line.push(b'\n');
        self.w.write_all(&self.line)?;
        self.w.flush()
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `k` most probable classes of `logits`, through the frame loop's two steps.
    fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut probs = Vec::new();
        softmax_into(logits, &mut probs);
        let mut top = Vec::new();
        top_k_into(&probs, k, &mut top);
        top
    }

    #[test]
    fn frame_line_has_the_documented_keys_in_order() {
        let labels: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let mut logits = vec![0.0f32; 10];
        logits[3] = 4.0;
        logits[8] = 2.0;
        let top = top_k(&logits, 2);
        assert!(is_correct(&top, &labels, "3"));
        let names = ["snow".to_string(), "fog".to_string()];
        let name = FrameName::File("0011-fog-3.png".into());
        let r = FrameRecord {
            alpha: Alphas {
                names: &names,
                order: &[1, 0],
                values: &[0.0, 0.5],
            },
            correct: Some(true),
            expected: Some("3"),
            frame: 11,
            generation: 2,
            latency_ms: 0.25,
            name: &name,
            oracle: None,
            t: 11.0,
            top: TopK {
                entries: &top,
                labels: &labels,
            },
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
    fn top_k_by_insertion_equals_a_stable_full_sort() {
        let mut rng = rws_rng::Rng::new(7);
        for n in [1usize, 3, 10, 100] {
            // Few distinct values, so ties are common.
            let probs: Vec<f32> = (0..n)
                .map(|_| (rng.uniform() * 4.0).floor() as f32)
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            for k in [0usize, 1, 2, 5, n, n + 3] {
                let mut top = Vec::new();
                top_k_into(&probs, k, &mut top);
                let want: Vec<usize> = order.iter().copied().take(k).collect();
                let got: Vec<usize> = top.iter().map(|e| e.0).collect();
                assert_eq!(got, want, "n {n} k {k}");
            }
        }
    }

    #[test]
    fn labels_fall_back_to_indices_and_names_give_the_expected_label() {
        let top = top_k(&[0.1, 0.9, 0.3], 5);
        assert_eq!(top.len(), 3);
        assert_eq!(label(&[], top[0].0), Label::Index(1));
        assert!(is_correct(&top, &[], "1") && !is_correct(&top, &[], "01x"));
        assert!(!is_correct(&top, &[], "01") && !is_correct(&top, &[], "+1"));
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
