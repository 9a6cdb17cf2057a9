//! Prometheus metrics as a node_exporter textfile (`[metrics]`): what the status says, in the
//! exposition format fleets already scrape, written every `interval_s` by a thread of its own
//! (so a slow SD card never delays a frame), atomically (a temporary beside the file, then a
//! rename: the collector never reads half a file), once at start and once more at stop.
//!
//! This module owns the names (`docs/protocols.md#metrics`): `rwsd_` prefix, counters end in
//! `_total`, times in seconds. A client of the status, like the control socket: it reads the
//! snapshot the frame loop publishes and takes no lock the frame loop waits on for longer than
//! that copy.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Metrics;
use crate::control::Shared;
use crate::health::{self, Health};
use crate::protocol::{
    FrameLatency, MetricsStatus, SensorStatus, SourceState, Status, ThreadState,
    FRAME_SECONDS_BUCKETS,
};
use crate::ratelimit::RateLimit;
use crate::source::Stop;
use rws_signature::format::writer::write_atomic;

/// The running writer; dropping it stops the thread after one last write.
pub struct Writer {
    stop: Stop,
    handle: Option<JoinHandle<()>>,
    state: Arc<Mutex<MetricsStatus>>,
}

impl Writer {
    /// Writes `cfg.textfile` now, then every `cfg.interval` on a supervised thread (a panic
    /// there restarts it, as any of the daemon's threads).
    pub fn start(
        cfg: &Metrics,
        shared: Arc<Shared>,
        health: &Arc<Health>,
    ) -> std::io::Result<Self> {
        let stop = Stop::new();
        let (path, every, s) = (cfg.textfile.clone(), cfg.interval, stop.clone());
        let state = Arc::new(Mutex::new(MetricsStatus {
            textfile: path.display().to_string(),
            ..Default::default()
        }));
        let mut log = Logged {
            limit: RateLimit::standard(),
            state: state.clone(),
        };
        // The first write before the thread, so the file is there once the daemon has started.
        write_now(&path, &shared, &mut log);
        let handle = health::supervise("metrics", health.clone(), stop.clone(), move || {
            while !s.stopped() {
                // Stopped while waiting: one last write, with the final counts.
                let stopped = s.sleep(every);
                write_now(&path, &shared, &mut log);
                if stopped {
                    return;
                }
            }
        })?;
        Ok(Writer {
            stop,
            handle: Some(handle),
            state,
        })
    }

    /// How the writes have gone, for the status.
    pub fn status(&self) -> MetricsStatus {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Where a write's outcome goes: the status, and the log (rate-limited).
struct Logged {
    limit: RateLimit,
    state: Arc<Mutex<MetricsStatus>>,
}

impl Logged {
    fn record(&mut self, result: std::io::Result<()>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                st.writes += 1;
                st.last_error = None;
            }
            Err(e) => {
                st.failures += 1;
                if self.limit.note().is_some() {
                    log::error!("rwsd: metrics: {e} ({} failed writes so far)", st.failures);
                }
                st.last_error = Some(e.to_string());
            }
        }
    }
}

/// One write of the status as it is now; a failure (a full disk, a missing directory) shows in
/// the status and the log, and the next interval tries again.
fn write_now(path: &Path, shared: &Shared, log: &mut Logged) {
    let status = shared.status().clone();
    log.record(write_atomically(path, &render(&status, unix_now())));
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Replaces `path` with `text` the way `.rws` files are written
/// ([`write_atomic`]: a temporary beside it, synced, renamed; its name, `.NAME.tmpPID`, is not a
/// `*.prom` the collector would read), with the path in the error.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    write_atomic(path, text.as_bytes())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The exposition text for `s`, stamped with `now` (Unix seconds).
pub fn render(s: &Status, now: f64) -> String {
    let mut out = String::with_capacity(4096);
    daemon_metrics(&mut out, s, now);
    frame_metrics(&mut out, s);
    latency_metrics(&mut out, &s.frame_seconds);
    alpha_metrics(&mut out, s);
    sensor_metrics(&mut out, &s.sensors);
    thread_metrics(&mut out, s);
    out
}

/// One metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample; `labels` as (name, value) pairs, values escaped.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A single unlabelled sample with its family lines.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    family(out, name, kind, help);
    sample(out, name, &[], value);
}

/// Label values escape backslash, double quote and newline (the exposition format's rule).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Numbers as the format spells them (`+Inf`, `NaN`; integers without a fraction).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn daemon_metrics(out: &mut String, s: &Status, now: f64) {
    family(
        out,
        "rwsd_info",
        "gauge",
        "The running config, model and signature set (always 1).",
    );
    let labels = [
        ("config", s.config.as_str()),
        ("model", s.model.as_str()),
        ("signature_set", s.signature_set.as_str()),
    ];
    sample(out, "rwsd_info", &labels, 1.0);
    let healthy = "1 when every sensor is fresh, the last reload succeeded, no thread is down and the frame source is not failing (rwsctl status exits 0).";
    single(out, "rwsd_healthy", "gauge", healthy, flag(s.healthy()));
    let written = "When this file was written (Unix time): alert when it stops moving.";
    single(
        out,
        "rwsd_metrics_written_timestamp_seconds",
        "gauge",
        written,
        now,
    );
    single(
        out,
        "rwsd_reloads_total",
        "counter",
        "Successful reloads (SIGHUP).",
        s.reloads as f64,
    );
    let last = "1 unless the last reload failed (the running set stays; see rwsctl status).";
    let ok = s.last_reload_error.is_none();
    single(out, "rwsd_last_reload_success", "gauge", last, flag(ok));
    let builds = "Clean-prefix builds by the runtime (one per change of the active signatures).";
    single(
        out,
        "rwsd_prefix_builds_total",
        "counter",
        builds,
        s.prefix_builds as f64,
    );
    let failed = "Prefix builds that failed (the frame ran on the previous coefficients).";
    let n = s.prefix_build_failures as f64;
    single(
        out,
        "rwsd_prefix_build_failures_total",
        "counter",
        failed,
        n,
    );
    if let Some(m) = &s.metrics {
        let help = "Writes of this file that failed before this one (the status says why).";
        let n = m.failures as f64;
        single(out, "rwsd_metrics_write_failures_total", "counter", help, n);
    }
}

fn frame_metrics(out: &mut String, s: &Status) {
    single(
        out,
        "rwsd_frames_total",
        "counter",
        "Frames answered.",
        s.frames as f64,
    );
    let errors = "Frames that could not be prepared or run (an error line was written).";
    single(
        out,
        "rwsd_frame_errors_total",
        "counter",
        errors,
        s.frame_errors as f64,
    );
    let lost = "Frame result lines that could not be written (a full disk, a closed pipe).";
    single(
        out,
        "rwsd_output_errors_total",
        "counter",
        lost,
        s.output_errors as f64,
    );
    let src = &s.frame_source;
    family(
        out,
        "rwsd_frame_source_state",
        "gauge",
        "The frame source's state (1 for the current one).",
    );
    for (name, state) in [
        ("waiting", SourceState::Waiting),
        ("receiving", SourceState::Receiving),
        ("down", SourceState::Down),
        ("ended", SourceState::Ended),
    ] {
        sample(
            out,
            "rwsd_frame_source_state",
            &[("state", name)],
            flag(src.state == state),
        );
    }
    let again = "Times the frame source was reopened.";
    single(
        out,
        "rwsd_frame_source_reconnects_total",
        "counter",
        again,
        src.reconnects as f64,
    );
    if let Some(age) = src.since_last_frame_s {
        let help = "Seconds since the last frame arrived.";
        single(
            out,
            "rwsd_frame_source_last_frame_age_seconds",
            "gauge",
            help,
            age,
        );
    }
}

fn latency_metrics(out: &mut String, h: &FrameLatency) {
    let name = "rwsd_frame_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from taking a frame off the queue to its line written.",
    );
    let mut cumulative = 0;
    for (le, n) in FRAME_SECONDS_BUCKETS.iter().zip(h.buckets) {
        cumulative += n;
        sample(
            out,
            "rwsd_frame_seconds_bucket",
            &[("le", &number(*le))],
            cumulative as f64,
        );
    }
    sample(
        out,
        "rwsd_frame_seconds_bucket",
        &[("le", "+Inf")],
        h.count as f64,
    );
    sample(out, "rwsd_frame_seconds_sum", &[], h.sum_s);
    sample(out, "rwsd_frame_seconds_count", &[], h.count as f64);
}

fn alpha_metrics(out: &mut String, s: &Status) {
    let help = "Coefficient of each loaded signature on the last frame (0 = off).";
    family(out, "rwsd_signature_alpha", "gauge", help);
    for (sig, a) in &s.alpha {
        sample(out, "rwsd_signature_alpha", &[("signature", sig)], *a);
    }
    let generation = "Generation of the coefficient set the last frame ran on.";
    single(
        out,
        "rwsd_coefficient_generation",
        "gauge",
        generation,
        s.generation as f64,
    );
    let overrides = "Manual overrides in force (rwsctl set).";
    single(
        out,
        "rwsd_overrides",
        "gauge",
        overrides,
        s.overrides.len() as f64,
    );
}

fn sensor_metrics(out: &mut String, sensors: &[SensorStatus]) {
    type Field = fn(&SensorStatus) -> f64;
    let per_sensor: [(&str, &str, &str, Field); 5] = [
        (
            "rwsd_sensor_connected",
            "gauge",
            "1 while the sensor's port or file is open.",
            |s| flag(s.connected),
        ),
        (
            "rwsd_sensor_fresh",
            "gauge",
            "1 while its last good reading is within stale_after_s.",
            |s| flag(s.fresh),
        ),
        (
            "rwsd_sensor_readings_total",
            "counter",
            "Good readings.",
            |s| s.counters.readings as f64,
        ),
        (
            "rwsd_sensor_connects_total",
            "counter",
            "Times the sensor was opened.",
            |s| s.counters.connects as f64,
        ),
        (
            "rwsd_sensor_disconnects_total",
            "counter",
            "Times the sensor went away.",
            |s| s.counters.disconnects as f64,
        ),
    ];
    for (name, kind, help, field) in per_sensor {
        family(out, name, kind, help);
        for s in sensors {
            sample(out, name, &[("sensor", &s.name)], field(s));
        }
    }
    let age = "rwsd_sensor_last_reading_age_seconds";
    family(
        out,
        age,
        "gauge",
        "Seconds since the sensor's last good reading (absent before the first).",
    );
    for s in sensors {
        if let Some(a) = s.last_reading_age_s {
            sample(out, age, &[("sensor", &s.name)], a);
        }
    }
    let bad = "rwsd_sensor_bad_lines_total";
    family(out, bad, "counter", "Lines refused, by reason.");
    for s in sensors {
        let c = &s.counters;
        let other = c.bad.saturating_sub(c.checksum + c.too_long + c.binary);
        for (kind, n) in [
            ("checksum", c.checksum),
            ("too_long", c.too_long),
            ("binary", c.binary),
            ("other", other),
        ] {
            sample(out, bad, &[("sensor", &s.name), ("kind", kind)], n as f64);
        }
    }
}

fn thread_metrics(out: &mut String, s: &Status) {
    let panics = "rwsd_thread_panics_total";
    family(
        out,
        panics,
        "counter",
        "Panics caught in a supervised thread (each followed by a restart).",
    );
    for t in &s.threads {
        sample(out, panics, &[("thread", &t.name)], t.panics as f64);
    }
    let down = "rwsd_thread_restarting";
    family(
        out,
        down,
        "gauge",
        "1 while a supervised thread waits to be restarted.",
    );
    for t in &s.threads {
        sample(
            out,
            down,
            &[("thread", &t.name)],
            flag(t.state == ThreadState::Restarting),
        );
    }
}

#[cfg(test)]
mod tests;
