//! The daemon: the frame loop and everything around it.
//!
//! Per frame: sensor events in ([`sensors::SensorHub`]), the policy evaluated, coefficients
//! requested from the session (never blocking: the session's worker builds the plan), the frame
//! read, run and written as one JSON line ([`output`]), the status refreshed. Between frames:
//! signals, and a finished reload ([`reload::Reloader`]) swapped in whole. SIGTERM and SIGINT
//! finish the current frame and exit.
//!
//! State lives in three places, each with one owner: the loaded config, session and signature
//! map ([`loaded::Loaded`], owned by the frame loop), the policy engine and the served status
//! ([`crate::control::Shared`], shared with the control socket), and the sensor threads and
//! their buffered events ([`sensors::SensorHub`]).

pub mod loaded;
pub mod output;
pub mod reload;
pub mod sensors;
mod signals;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{Clock, Config, FrameSource};
use crate::control::{self, Shared};
use crate::frames::{self, FrameError, Frames};
use crate::policy::Engine;
use crate::protocol::{OverrideStatus, Status};
use loaded::Loaded;
use output::{FrameErrorRecord, FrameRecord, Output};
use reload::Reloader;
use sensors::SensorHub;

pub use signals::Signals;

/// The status served on the socket is rebuilt at most this often, not on every frame.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// Counters of the daemon's life, reported in the status.
#[derive(Debug, Default)]
struct Counts {
    frames: u64,
    frame_errors: u64,
    reloads: u64,
    last_reload_error: Option<String>,
    /// Labelled frames (`label_from_name`): (top-1 right, seen).
    labelled: (u64, u64),
}

/// A running daemon.
pub struct Daemon {
    path: PathBuf,
    loaded: Loaded,
    shared: Arc<Shared>,
    _server: Option<control::Server>,
    sensors: SensorHub,
    frames: Box<dyn Frames>,
    out: Output,
    trace: Option<std::fs::File>,
    started: Instant,
    requested: Option<Vec<(usize, f32)>>,
    counts: Counts,
    reloader: Reloader<(Loaded, Engine)>,
    /// When the status was last rebuilt (it is refreshed at most every [`STATUS_EVERY`]).
    status_at: Option<Instant>,
    /// The frame's model input, reused from frame to frame.
    input: Vec<f32>,
}

/// Loads `path` on the reload thread; a failure is published in the status at once, even while
/// the frame thread waits for its next frame.
fn prepare_reload(path: PathBuf, shared: Arc<Shared>) -> reload::Prepare<(Loaded, Engine)> {
    Arc::new(move || {
        loaded::load(&path)
            .with_context(|| format!("reloading {}", path.display()))
            .map_err(|e| {
                let msg = format!("{e:#}");
                shared.status().last_reload_error = Some(msg.clone());
                msg
            })
    })
}

fn open_output(cfg: &Config) -> Result<Output> {
    Ok(match &cfg.output {
        None => Output::new(Box::new(std::io::stdout())),
        Some(p) if p == Path::new("-") => Output::new(Box::new(std::io::stdout())),
        Some(p) => Output::new(Box::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
    })
}

impl Daemon {
    /// Loads `path` and starts everything: the control socket, the frame source, the output,
    /// the sensor threads.
    pub fn start(path: &Path) -> Result<Daemon> {
        let (loaded, engine) =
            loaded::load(path).with_context(|| format!("loading {}", path.display()))?;
        let shared = Arc::new(Shared::new(engine));
        let server = match &loaded.cfg.socket {
            Some(p) => Some(control::serve(p, shared.clone())?),
            None => None,
        };
        let frames = frames::open(&loaded.cfg.frames)?;
        let out = open_output(&loaded.cfg)?;
        let trace = match &loaded.cfg.trace {
            Some(p) => Some(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
            None => None,
        };
        let sensors = SensorHub::start(&loaded.cfg)?;
        log::info!(
            "rwsd: model {}, {} signatures, {} sensors, clock {:?}",
            loaded.cfg.model.display(),
            loaded.cfg.signatures.len(),
            loaded.cfg.sensors.len(),
            loaded.cfg.clock
        );
        Ok(Daemon {
            path: path.to_path_buf(),
            reloader: Reloader::new(prepare_reload(path.to_path_buf(), shared.clone())),
            loaded,
            shared,
            _server: server,
            sensors,
            frames,
            out,
            trace,
            started: Instant::now(),
            requested: None,
            counts: Counts::default(),
            status_at: None,
            input: Vec::new(),
        })
    }

    /// One paragraph about what was loaded (`rwsd --check`).
    pub fn summary(&self) -> String {
        self.loaded.summary()
    }

    /// The status as the socket serves it now.
    pub fn status(&self) -> Status {
        self.shared.status().clone()
    }

    fn now(&self) -> f64 {
        match self.loaded.cfg.clock {
            Clock::Replay => {
                self.counts.frames as f64 * self.loaded.cfg.frame_interval_ms as f64 / 1000.0
            }
            Clock::Live => self.started.elapsed().as_secs_f64(),
        }
    }

    /// Runs frames until the source ends, `max_frames` ran, or SIGTERM/SIGINT.
    pub fn run(&mut self, signals: &Signals, max_frames: Option<u64>) -> Result<()> {
        loop {
            if signals.terminated() {
                log::info!(
                    "rwsd: stopping on signal after {} frames",
                    self.counts.frames
                );
                break;
            }
            if signals.take_hangup() {
                self.request_reload();
            }
            self.finish_reload();
            if max_frames.is_some_and(|m| self.counts.frames >= m) {
                break;
            }
            let frame_start = Instant::now();
            if !self.step()? {
                log::info!(
                    "rwsd: frame source ended after {} frames",
                    self.counts.frames
                );
                break;
            }
            self.pace(frame_start);
        }
        self.finish();
        Ok(())
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
        self.sensors.stop();
        let (ok, n) = self.counts.labelled;
        if n > 0 {
            log::info!(
                "rwsd: {} frames, top-1 correct on {ok}/{n} labelled frames",
                self.counts.frames
            );
        }
    }

    /// Live clock with a directory source: frames at `interval_ms`. Other sources pace
    /// themselves (a camera pipe delivers at its own rate); replay runs as fast as it can.
    fn pace(&self, frame_start: Instant) {
        let c = &self.loaded.cfg;
        if c.clock == Clock::Live && matches!(c.frames, FrameSource::Dir(_)) {
            let period = Duration::from_millis(c.frame_interval_ms);
            if let Some(rest) = period.checked_sub(frame_start.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    /// SIGHUP: starts preparing a reload (parsing the config, mapping and checking the
    /// signatures and optimizing the model take ~10 ms for the demo and ~100 ms for VGG-16,
    /// frames the camera would otherwise have to hold back).
    pub fn request_reload(&mut self) {
        log::info!("rwsd: SIGHUP, reloading {}", self.path.display());
        if let Err(e) = self.reloader.request() {
            self.reload_failed(e);
            self.publish_reload_status();
        }
    }

    /// Between frames: takes a finished reload, if any, and swaps it in whole; on any error
    /// everything stays as it was. Returns whether a reload finished.
    pub fn finish_reload(&mut self) -> bool {
        let Some(result) = self.reloader.poll() else {
            return false;
        };
        match result {
            Err(e) => self.reload_failed(e),
            Ok(new) => self.swap_in(new),
        }
        self.publish_reload_status();
        true
    }

    fn reload_failed(&mut self, msg: String) {
        log::error!("rwsd: reload failed, keeping the running config: {msg}");
        self.counts.last_reload_error = Some(msg);
    }

    fn swap_in(&mut self, (new, mut engine): (Loaded, Engine)) {
        {
            let mut running = self.shared.engine();
            engine.carry_from(&running);
            *running = engine;
        }
        let old_cfg = &self.loaded.cfg;
        if new.cfg.frames != old_cfg.frames || new.cfg.output != old_cfg.output {
            log::warn!("rwsd: frame source and output changes take effect on restart");
        }
        if new.cfg.sensors != self.sensors.specs() {
            match SensorHub::start(&new.cfg) {
                Ok(s) => std::mem::replace(&mut self.sensors, s).stop(),
                Err(e) => log::error!("rwsd: restarting sensors failed: {e:#}"),
            }
        }
        let old = std::mem::replace(&mut self.loaded, new);
        // The old session's worker is joined off the frame thread.
        let _ = std::thread::Builder::new()
            .name("rwsd-drop".into())
            .spawn(move || drop(old));
        self.requested = None;
        // The next frame rebuilds the whole status from the new state.
        self.status_at = None;
        self.counts.reloads += 1;
        self.counts.last_reload_error = None;
        log::info!(
            "rwsd: reloaded ({} signatures)",
            self.loaded.cfg.signatures.len()
        );
    }

    /// Status shows the outcome at once, not only after the next frame.
    fn publish_reload_status(&self) {
        let mut status = self.shared.status();
        status.reloads = self.counts.reloads;
        status.last_reload_error = self.counts.last_reload_error.clone();
    }

    /// Applies due sensor events and evaluates the policy at `t`; requests the coefficients
    /// from the session when they changed.
    fn update_coefficients(&mut self, t: f64) -> Result<Vec<f64>> {
        let clock = self.loaded.cfg.clock;
        let alphas = {
            let mut engine = self.shared.engine();
            self.sensors.apply(t, clock, &mut engine);
            self.shared.set_now(t);
            engine.evaluate(t)
        };
        let coeffs = self.loaded.coefficients(&alphas);
        if self.requested.as_ref() != Some(&coeffs) {
            self.loaded.session.set_coefficients(&coeffs)?;
            if clock == Clock::Replay {
                // Deterministic replay: every frame runs on the coefficients of its own time.
                self.loaded.session.wait_ready(Duration::from_secs(30));
            }
            self.requested = Some(coeffs);
        }
        Ok(alphas)
    }

    /// Runs one frame; `false` when the frame source has ended.
    pub fn step(&mut self) -> Result<bool> {
        let t = self.now();
        let alphas = self.update_coefficients(t)?;
        let frame = match self.frames.next_frame() {
            Ok(None) => return Ok(false),
            Ok(Some(f)) => f,
            Err(FrameError::Bad { name, reason }) => {
                self.frame_failed(t, &name, &reason);
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        let started = Instant::now();
        frames::to_input(&frame.image, &self.loaded.cfg.input, &mut self.input)?;
        let out = match self.loaded.session.run(&self.input) {
            Ok(o) => o,
            Err(e) => {
                log::warn!("rwsd: frame {} failed: {e}", frame.name);
                self.counts.frame_errors += 1;
                self.counts.frames += 1;
                return Ok(true);
            }
        };
        let latency = started.elapsed().as_secs_f64() * 1e3;
        self.emit_frame(t, &frame.name, &out, latency);
        self.write_trace(t, &alphas);
        self.counts.frames += 1;
        let due = self.status_at.is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if due || self.loaded.cfg.clock == Clock::Replay {
            self.update_status(t, &out.alphas, out.generation);
            self.status_at = Some(Instant::now());
        }
        Ok(true)
    }

    /// A frame that could not be read: counted, logged and written as an error line.
    fn frame_failed(&mut self, t: f64, name: &str, reason: &str) {
        self.counts.frame_errors += 1;
        log::warn!("rwsd: skipping frame {name}: {reason}");
        let record = FrameErrorRecord {
            error: reason,
            frame: self.counts.frames,
            name,
            t,
        };
        if let Err(e) = self.out.emit(&record) {
            log::warn!("rwsd: writing output: {e}");
        }
        self.counts.frames += 1;
    }

    fn emit_frame(&mut self, t: f64, name: &str, out: &rws_runtime::FrameOutput, latency_ms: f64) {
        let cfg = &self.loaded.cfg;
        let top = output::top_k(&out.logits, cfg.top_k, &cfg.labels);
        let alpha: BTreeMap<&str, f64> = self
            .loaded
            .corruptions
            .iter()
            .zip(out.alphas.iter())
            .filter(|(_, &a)| a != 0.0)
            .map(|(c, &a)| (c.as_str(), output::round(f64::from(a), 3)))
            .collect();
        let expected = cfg
            .label_from_name
            .then(|| output::label_from_name(name))
            .flatten();
        let correct = expected.map(|e| output::is_correct(&top, e));
        if let Some(c) = correct {
            self.counts.labelled.1 += 1;
            self.counts.labelled.0 += u64::from(c);
        }
        let record = FrameRecord {
            alpha,
            correct,
            expected,
            frame: self.counts.frames,
            generation: out.generation,
            latency_ms: output::round(latency_ms, 3),
            name,
            t: output::round(t, 3),
            top,
        };
        if let Err(e) = self.out.emit(&record) {
            log::warn!("rwsd: writing output: {e}");
        }
    }

    fn write_trace(&mut self, t: f64, alphas: &[f64]) {
        if let Some(f) = &mut self.trace {
            let _ = writeln!(f, "{}", crate::replay::line(t, &self.loaded.names, alphas));
        }
    }

    fn update_status(&self, t: f64, alphas: &[f32], generation: u64) {
        let engine = self.shared.engine();
        let alpha = self
            .loaded
            .corruptions
            .iter()
            .zip(alphas)
            .map(|(c, &a)| (c.clone(), output::round(f64::from(a), 3)))
            .collect();
        let overrides = engine
            .overrides()
            .iter()
            .map(|(k, o)| {
                let o = OverrideStatus {
                    alpha: o.alpha,
                    until_t: o.until,
                };
                (k.clone(), o)
            })
            .collect();
        let stats = self.loaded.session.stats();
        let status = Status {
            config: self.path.display().to_string(),
            model: self.loaded.cfg.model.display().to_string(),
            t: output::round(t, 3),
            frames: self.counts.frames,
            frame_errors: self.counts.frame_errors,
            alpha,
            generation,
            overrides,
            sensors: self.sensors.status(&engine, t),
            reloads: self.counts.reloads,
            last_reload_error: self.counts.last_reload_error.clone(),
            prefix_builds: stats.builds,
            prefix_build_failures: stats.failures,
        };
        drop(engine);
        *self.shared.status() = status;
    }
}

#[cfg(test)]
mod tests;
