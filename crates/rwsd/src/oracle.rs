//! The camera-only oracle in the daemon (`[oracle]`): per frame, the blind image statistics of
//! the model's input ([`rws_oracle::features`]), the head's prediction, the tracker's smoothing
//! and hysteresis ([`rws_oracle::Tracker`], the same type `rws eval --oracle` measures), and the
//! signals the policy reads:
//! - `oracle.<class>`: the smoothed probability of the engaged corruption, 0 for every other;
//! - `oracle.<class>.severity`: its smoothed severity estimate (1–5), 0 when not engaged;
//! - `oracle.clean`: the smoothed probability that the frame is clean.
//!
//! The oracle is one more source of signals for the policy engine, with a sensor slot of its own
//! after the configured sensors: rules on `oracle.*` combine with sensor rules by the engine's
//! semantics (per signature the largest rule wins, `and` takes the minimum) and go stale like a
//! sensor's when frames stop. Only the engaged class publishes non-zero values, so the tracker's
//! hysteresis is what the policy sees: a clean stream cannot flap a signature on and off.

use std::path::Path;

use anyhow::Result;
use rws_image::tensor::Normalize;
use rws_oracle::{FrameOracle, Head, OracleFile, CLEAN};
use serde::ser::SerializeMap;
use serde::Serialize;

use crate::config::OracleSpec;
use crate::policy::Engine;
use crate::protocol::{OracleClass, OracleStatus};

/// Every oracle signal starts with this.
pub const PREFIX: &str = "oracle.";
/// The severity signal of a class ends with this.
pub const SEVERITY: &str = ".severity";
/// Classes listed in the status, most probable first.
const STATUS_TOP: usize = 3;

/// A loaded oracle and its state over frames.
pub struct Oracle {
    /// Head, tracker and frame buffer: the features are computed on what the model sees, at
    /// the size the head was trained at, whatever the camera's size.
    frame: FrameOracle,
    /// (signal, value), filled in place each frame: `oracle.clean`, then per corruption class
    /// `oracle.<class>` and `oracle.<class>.severity`.
    signals: Vec<(String, f64)>,
    /// The engine's sensor slot for the oracle's readings.
    sensor: usize,
    file: String,
    frames: u64,
    engagements: u64,
    switches: u64,
}

impl Oracle {
    /// Reads the head `spec` names, checks it against the manifest (length, CRC-32C, SHA-256
    /// where given), parses it and checks that it was trained for this signature set at the
    /// model's `input` size (height, width). `sensor` is its slot in the policy engine.
    pub fn load(spec: &OracleSpec, input: (usize, usize), sensor: usize) -> Result<Oracle> {
        let path = spec.path.as_path();
        let bytes = OracleFile::read(path)?;
        spec.expected.check_bytes(path, &bytes)?;
        let file = OracleFile::parse(path, &bytes)?;
        file.check_set(path, spec.set_model_crc32c, input, |c| {
            spec.set.iter().any(|s| s == c)
        })?;
        Ok(Oracle::new(file.head, input, sensor, spec, path))
    }

    fn new(
        head: Head,
        input: (usize, usize),
        sensor: usize,
        spec: &OracleSpec,
        path: &Path,
    ) -> Self {
        let mut signals = vec![(format!("{PREFIX}{CLEAN}"), 0.0)];
        for c in &head.classes()[1..] {
            signals.push((format!("{PREFIX}{c}"), 0.0));
            signals.push((format!("{PREFIX}{c}{SEVERITY}"), 0.0));
        }
        Oracle {
            frame: FrameOracle::new(head, input, spec.hysteresis),
            signals,
            sensor,
            file: path.display().to_string(),
            frames: 0,
            engagements: 0,
            switches: 0,
        }
    }

    /// One line for `rwsd --check`.
    pub fn describe(&self) -> String {
        let h = self.frame.tracker().hysteresis();
        let model = match self.frame.head().hidden_units() {
            0 => "logistic regression".to_string(),
            n => format!("{n} hidden units"),
        };
        format!(
            "{} ({} classes, {model}; engages at {} held {} frames, releases below {})",
            self.file,
            self.frame.head().classes().len(),
            h.on,
            h.confirm,
            h.off
        )
    }

    /// Takes over a previous oracle's state over frames when it has the same classes and
    /// constants' slot (a reload keeps an engaged signature engaged, and its counts).
    pub fn carry_from(&mut self, old: &Oracle) {
        if old.frame.head().classes() == self.frame.head().classes() {
            let t = self.frame.tracker_mut();
            let h = t.hysteresis();
            *t = old.frame.tracker().clone();
            t.set_hysteresis(h);
        }
        self.frames = old.frames;
        self.engagements = old.engagements;
        self.switches = old.switches;
    }

    /// Folds in the frame whose model input (`[3, h, w]` planes, normalized by `norm`) is
    /// `input` and publishes the signals at time `t`. Allocates nothing.
    pub fn observe(&mut self, input: &[f32], norm: &Normalize, t: f64, engine: &mut Engine) {
        let before = self.frame.tracker().engaged();
        let engaged = self.frame.observe(input, norm);
        self.frames += 1;
        match (before, engaged) {
            (None, Some(_)) => self.engagements += 1,
            (Some(a), Some(b)) if a != b => self.switches += 1,
            _ => {}
        }
        let tracker = self.frame.tracker();
        let (probs, severity) = (tracker.probs(), tracker.severity());
        self.signals[0].1 = f64::from(probs[0]);
        for c in 1..probs.len() {
            let on = engaged == Some(c);
            self.signals[2 * c - 1].1 = if on { f64::from(probs[c]) } else { 0.0 };
            self.signals[2 * c].1 = if on { f64::from(severity[c]) } else { 0.0 };
        }
        engine.observe(self.sensor, t, &self.signals);
    }

    /// What a frame's line says of the oracle.
    pub fn view(&self) -> View<'_> {
        let (top, p) = self.top_corruption();
        View {
            clean: self.frame.tracker().probs().first().copied().unwrap_or(0.0),
            engaged: self.frame.tracker().engaged().map(|c| self.class(c)),
            p,
            severity: self
                .frame
                .tracker()
                .severity()
                .get(top)
                .copied()
                .unwrap_or(0.0),
            top: self.class(top),
        }
    }

    /// The oracle's part of the status.
    pub fn status(&self) -> OracleStatus {
        let probs = self.frame.tracker().probs();
        let mut order: Vec<usize> = (1..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let round = |x: f32| crate::daemon::output::round(f64::from(x), 3);
        OracleStatus {
            file: self.file.clone(),
            frames: self.frames,
            engaged: self
                .frame
                .tracker()
                .engaged()
                .map(|c| self.class(c).to_string()),
            clean: round(probs.first().copied().unwrap_or(0.0)),
            top: order
                .iter()
                .take(STATUS_TOP)
                .map(|&c| OracleClass {
                    class: self.class(c).to_string(),
                    p: round(probs[c]),
                    severity: round(self.frame.tracker().severity()[c]),
                })
                .collect(),
            engagements: self.engagements,
            switches: self.switches,
        }
    }

    fn class(&self, c: usize) -> &str {
        self.frame
            .head()
            .classes()
            .get(c)
            .map_or("", String::as_str)
    }

    /// The most probable corruption class (never `clean`) and its smoothed probability.
    fn top_corruption(&self) -> (usize, f32) {
        let probs = self.frame.tracker().probs();
        let (i, p) = rws_oracle::head::argmax(probs.get(1..).unwrap_or(&[]));
        (i + 1, p)
    }
}

/// The oracle's view of one frame, for its JSON line: the smoothed probability of `clean`, the
/// engaged corruption (or null), and the most probable corruption with its smoothed
/// probability and severity.
#[derive(Debug)]
pub struct View<'a> {
    pub clean: f32,
    pub engaged: Option<&'a str>,
    pub p: f32,
    pub severity: f32,
    pub top: &'a str,
}

impl Serialize for View<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let round = |x: f32| crate::daemon::output::round(f64::from(x), 3);
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("clean", &round(self.clean))?;
        m.serialize_entry("engaged", &self.engaged)?;
        m.serialize_entry("p", &round(self.p))?;
        m.serialize_entry("severity", &round(self.severity))?;
        m.serialize_entry("top", self.top)?;
        m.end()
    }
}

#[cfg(test)]
mod tests;
