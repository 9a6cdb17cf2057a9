//! Coefficient traces from recorded sensor logs: the policy engine driven by log time, the way
//! gpsd's regression tests drive its decoders. The same events always give the same trace, so
//! `tests/data/*.trace` can be compared byte for byte.
//!
//! A trace has one line per second of log time at which some coefficient changed (at 3 decimals),
//! plus the first: `t=12 fog=0.500 snow=0.000`. Bad lines and disconnects are counted into a final
//! `# sensor …` summary line per sensor.

use std::fmt::Write;

use crate::policy::Engine;
use crate::sensors::driver::{Event, EventKind};
use crate::sensors::Counters;

/// Where a recorded sensor log came from, written as its first lines (as gpsd's regression
/// logs carry theirs): replay skips `#` lines, so the header travels with the data.
pub struct Provenance<'a> {
    /// The log's path in the repository.
    pub log: &'a str,
    /// The command that writes it.
    pub generator: &'a str,
    /// When the generator's content was last changed (the output does not depend on the date).
    pub date: &'a str,
    /// The device it stands for, and its protocol.
    pub device: &'a str,
    /// What the log exercises, one item a line.
    pub exercises: &'a [&'a str],
}

/// The header lines every committed sensor log starts with (each `# Key: value`, under the
/// line reader's limit; `tests/sensors.rs` checks every log has them).
pub const PROVENANCE_KEYS: [&str; 5] = ["Log", "Generator", "Date", "Device", "Exercises"];

impl std::fmt::Display for Provenance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "# Log: {}", self.log)?;
        writeln!(f, "# Generator: {} (deterministic)", self.generator)?;
        writeln!(f, "# Date: {}", self.date)?;
        writeln!(f, "# Device: {}", self.device)?;
        writeln!(f, "# Exercises: {}", self.exercises.first().unwrap_or(&"-"))?;
        for e in self.exercises.iter().skip(1) {
            writeln!(f, "#   {e}")?;
        }
        writeln!(f, "# Format: <seconds> <line as the device sends it>")
    }
}

/// One trace line for time `t` (`t=12 fog=0.500 snow=0.000`), formatted where it is written:
/// the daemon's trace writes it straight to its file, with no string per frame.
pub struct TraceLine<'a> {
    pub t: f64,
    pub names: &'a [String],
    pub alphas: &'a [f64],
}

impl std::fmt::Display for TraceLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t={}", self.t)?;
        for (n, a) in self.names.iter().zip(self.alphas) {
            write!(f, " {n}={a:.3}")?;
        }
        Ok(())
    }
}

/// One formatted trace line for time `t`.
pub fn line(t: f64, names: &[String], alphas: &[f64]) -> String {
    TraceLine { t, names, alphas }.to_string()
}

/// The trace of `events` (each with a log time; events without one count but do not move the
/// clock), evaluated every second from 0 to `tail` seconds past the last event.
pub fn trace(engine: &mut Engine, sensor_names: &[String], events: &[Event], tail: f64) -> String {
    let mut counters = vec![Counters::default(); sensor_names.len()];
    let mut timed: Vec<(f64, &Event)> = Vec::new();
    for e in events {
        if let Some(c) = counters.get_mut(e.sensor) {
            c.count(&e.kind);
        }
        if let (Some(t), EventKind::Reading(_)) = (e.t, &e.kind) {
            timed.push((t, e));
        }
    }
    // Stable: events at the same time keep their arrival order per sensor.
    timed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.sensor.cmp(&b.1.sensor)));
    let end = timed.last().map_or(0.0, |e| e.0) + tail;
    let names = engine.signatures().to_vec();
    let mut out = String::new();
    let mut last: Option<String> = None;
    let mut next = timed.iter().peekable();
    let mut t = 0.0f64;
    while t <= end {
        while let Some((te, e)) = next.peek() {
            if *te > t {
                break;
            }
            if let EventKind::Reading(v) = &e.kind {
                engine.observe(e.sensor, *te, v);
            }
            next.next();
        }
        let a = engine.evaluate(t);
        let values = line(0.0, &names, &a);
        let values = values.trim_start_matches("t=0").to_string();
        if last.as_deref() != Some(values.as_str()) {
            let _ = writeln!(out, "t={t}{values}");
            last = Some(values);
        }
        t += 1.0;
    }
    for (name, c) in sensor_names.iter().zip(&counters) {
        let _ = writeln!(
            out,
            "# sensor {name}: readings={} bad={} checksum={} too_long={} binary={}",
            c.readings, c.bad, c.checksum, c.too_long, c.binary
        );
    }
    out
}

/// Every event of one sensor read from `reader` to its end (a log file or a pseudo-terminal).
pub fn read_events<R: std::io::Read>(
    spec: &crate::sensors::driver::SensorSpec,
    reader: R,
) -> std::io::Result<Vec<Event>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::atomic::AtomicBool::new(false);
    crate::sensors::driver::pump(spec, reader, &tx, &stop)?;
    drop(tx);
    Ok(rx.iter().collect())
}

/// Why a config's sensor logs could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("sensor {0}: replay needs `file = ...`")]
    NotAFile(String),
    #[error("sensor {0}: replay needs `timestamps = true`")]
    NoTimestamps(String),
    #[error("sensor {sensor}: {}: {reason}", path.display())]
    Io {
        sensor: String,
        path: std::path::PathBuf,
        reason: String,
    },
}

/// The trace `cfg`'s policy gives for its sensors' recorded logs (`rwsctl replay`), evaluated
/// until `tail` seconds past the last reading. Every sensor must read a timestamped file.
pub fn config_trace(cfg: &crate::config::Config, tail: f64) -> Result<String, ReplayError> {
    use crate::sensors::driver::Source;
    let mut events = Vec::new();
    for spec in &cfg.sensors {
        let Source::File(path) = &spec.source else {
            return Err(ReplayError::NotAFile(spec.name.clone()));
        };
        if !spec.timestamps {
            return Err(ReplayError::NoTimestamps(spec.name.clone()));
        }
        let io = |e: std::io::Error| ReplayError::Io {
            sensor: spec.name.clone(),
            path: path.clone(),
            reason: e.to_string(),
        };
        let f = std::fs::File::open(path).map_err(io)?;
        events.extend(read_events(spec, f).map_err(io)?);
    }
    let mut engine = Engine::new(cfg.policy.clone(), cfg.stale_after.clone());
    let names: Vec<String> = cfg.sensors.iter().map(|s| s.name.clone()).collect();
    Ok(trace(&mut engine, &names, &events, tail))
}
