//! The daemon: the frame loop and everything around it.
//!
//! The loop waits for the next item of the frame source ([`feed::Feed`], on its own thread) for
//! at most a tick, so signals, reloads, sensor events and the status are served whatever the
//! camera does. Per frame: sensor events in ([`sensors::SensorHub`]), the policy evaluated,
//! coefficients requested from the session (never blocking: the session's worker builds the
//! plan), the frame run and written as one JSON line ([`output`]). Between frames: signals, and
//! a finished reload ([`reload::Reloader`]) swapped in whole. rwsd exits on SIGTERM/SIGINT,
//! `--max-frames`, or the end of a read-once frame source, and on nothing else.
//!
//! State lives in three places, each with one owner: the loaded config, session and signature
//! map ([`loaded::Loaded`], owned by the frame loop), the policy engine and the served status
//! ([`crate::control::Shared`], shared with the control socket), and the sensor threads and
//! their buffered events ([`sensors::SensorHub`]). Thread health is [`crate::health`]'s.

mod emit;
pub mod feed;
pub mod loaded;
pub mod output;
mod preflight;
pub mod reload;
pub mod sensors;
mod signals;
mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::{Clock, Config};
use crate::control::{self, Shared};
use crate::frames::{self, Frame};
use crate::health::Health;
use crate::policy::Engine;
use crate::protocol::Status;
use crate::ratelimit::RateLimit;
use crate::source::{Lifetime, TICK};
use feed::{Feed, Item};
use loaded::Loaded;
use output::Output;
use reload::Reloader;
use sensors::SensorHub;

pub use signals::Signals;

/// The status served on the socket is rebuilt at most this often.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// Counters of the daemon's life, reported in the status.
#[derive(Debug, Default)]
struct Counts {
    frames: u64,
    frame_errors: u64,
    reloads: u64,
    last_reload_error: Option<String>,
    output_errors: u64,
    /// Labelled frames (`label_from_name`): (top-1 right, seen).
    labelled: (u64, u64),
}

/// What one turn of the loop did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// A frame was answered (or written as an error line).
    Frame,
    /// Nothing arrived within a tick.
    Idle,
    /// The read-once frame source has ended.
    Ended,
}

/// What the last frame ran on, for the status between frames.
#[derive(Debug, Default)]
struct Last {
    t: f64,
    alphas: Option<Arc<[f32]>>,
    generation: u64,
}

/// A running daemon.
pub struct Daemon {
    path: PathBuf,
    loaded: Loaded,
    shared: Arc<Shared>,
    health: Arc<Health>,
    _server: Option<control::Server>,
    sensors: SensorHub,
    feed: Feed,
    out: Output,
    out_log: RateLimit,
    trace: Option<std::fs::File>,
    started: Instant,
    requested: Option<Vec<(usize, f32)>>,
    counts: Counts,
    last: Last,
    reloader: Reloader<(Loaded, Engine)>,
    /// When the status was last rebuilt (it is refreshed at most every [`STATUS_EVERY`]).
    status_at: Option<Instant>,
    /// The frame's model input, reused from frame to frame.
    input: Vec<f32>,
}

/// Loads `path` on the reload thread; a failure is published in the status at once.
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

/// Checks `path` as a start would, without side effects (`rwsd --check`): the summary and any
/// notes.
pub fn check(path: &Path) -> Result<String> {
    let (loaded, _) = loaded::load(path).with_context(|| format!("checking {}", path.display()))?;
    let notes = preflight::preflight(&loaded.cfg)?;
    let mut out = loaded.summary();
    for n in notes {
        out.push_str("\nnote: ");
        out.push_str(&n);
    }
    Ok(out)
}

impl Daemon {
    /// Loads `path` and starts everything: the control socket, the frame source, the output,
    /// the sensor threads.
    pub fn start(path: &Path) -> Result<Daemon> {
        let (loaded, engine) =
            loaded::load(path).with_context(|| format!("loading {}", path.display()))?;
        let cfg = &loaded.cfg;
        let health = Health::new();
        let shared = Arc::new(Shared::new(engine));
        let server = match &cfg.socket {
            Some(p) => Some(control::serve(p, shared.clone(), &health)?),
            None => None,
        };
        let out = open_output(cfg)?;
        let trace = match &cfg.trace {
            Some(p) => Some(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
            None => None,
        };
        let feed = Feed::start(cfg, &health).context("starting the frame source")?;
        let sensors = SensorHub::start(cfg, &health)?;
        log::info!(
            "rwsd: model {}, {} signatures, {} sensors, clock {:?}",
            cfg.model.display(),
            cfg.signatures.len(),
            cfg.sensors.len(),
            cfg.clock
        );
        Ok(Daemon {
            path: path.to_path_buf(),
            reloader: Reloader::new(prepare_reload(path.to_path_buf(), shared.clone())),
            loaded,
            shared,
            health,
            _server: server,
            sensors,
            feed,
            out,
            out_log: RateLimit::standard(),
            trace,
            started: Instant::now(),
            requested: None,
            counts: Counts::default(),
            last: Last::default(),
            status_at: None,
            input: Vec::new(),
        })
    }

    /// One paragraph about what was loaded.
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

    /// Runs until SIGTERM/SIGINT, `max_frames`, or the end of a read-once frame source. Fails
    /// at the end of a read-once source if frame results could not be written (a one-shot run
    /// whose output is lost must not look like a success).
    pub fn run(&mut self, signals: &Signals, max_frames: Option<u64>) -> Result<()> {
        let interrupted = || signals.terminated();
        let mut ended = false;
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
            if self.tick(&interrupted) == Tick::Ended {
                log::info!(
                    "rwsd: frame source ended after {} frames",
                    self.counts.frames
                );
                ended = true;
                break;
            }
        }
        self.finish();
        let one_shot = ended || self.loaded.cfg.frames.lifetime() == Lifetime::ReadOnce;
        if one_shot && self.counts.output_errors > 0 {
            bail!(
                "{} of {} frame results could not be written",
                self.counts.output_errors,
                self.counts.frames
            );
        }
        Ok(())
    }

    /// One turn: waits up to a tick for the frame source, answers what came, keeps sensors and
    /// the status current either way.
    pub fn tick(&mut self, interrupted: &dyn Fn() -> bool) -> Tick {
        let tick = match self.feed.next(TICK) {
            Some(Item::Frame(f)) => {
                self.step(f, interrupted);
                Tick::Frame
            }
            Some(Item::Bad { name, reason }) => {
                self.frame_failed(self.now(), &name, &reason);
                Tick::Frame
            }
            Some(Item::Ended) => Tick::Ended,
            None => {
                self.idle();
                Tick::Idle
            }
        };
        let due = self.status_at.is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if due || (tick == Tick::Frame && self.loaded.cfg.clock == Clock::Replay) {
            self.update_status();
            self.status_at = Some(Instant::now());
        }
        tick
    }

    /// No frame within a tick: live sensor events are still applied (their queue drains, and
    /// the status shows them fresh or stale as they are).
    fn idle(&mut self) {
        if self.loaded.cfg.clock == Clock::Live {
            let t = self.now();
            let mut engine = self.shared.engine();
            self.sensors.apply(t, Clock::Live, &mut engine, &|| false);
        }
    }

    fn finish(&mut self) {
        if let Err(e) = self.out.flush() {
            self.output_failed(&e);
        }
        self.sensors.stop();
        let (ok, n) = self.counts.labelled;
        if n > 0 {
            log::info!(
                "rwsd: {} frames, top-1 correct on {ok}/{n} labelled frames",
                self.counts.frames
            );
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
            // The old threads are stopped and joined first (each read returns within a tick),
            // so no thread or descriptor outlives its sensor.
            self.sensors.stop();
            match SensorHub::start(&new.cfg, &self.health) {
                Ok(s) => self.sensors = s,
                Err(e) => log::error!("rwsd: restarting sensors failed: {e:#}"),
            }
        }
        let old = std::mem::replace(&mut self.loaded, new);
        // The old session's run states are dropped here, where they ran; its worker is joined
        // off the frame thread.
        let finish = old.session.retire();
        let _ = std::thread::Builder::new()
            .name("rwsd-drop".into())
            .spawn(finish);
        self.requested = None;
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
    fn update_coefficients(&mut self, t: f64, interrupted: &dyn Fn() -> bool) -> Vec<f64> {
        let clock = self.loaded.cfg.clock;
        let alphas = {
            let mut engine = self.shared.engine();
            self.sensors.apply(t, clock, &mut engine, interrupted);
            self.shared.set_now(t);
            engine.evaluate(t)
        };
        let coeffs = self.loaded.coefficients(&alphas);
        if self.requested.as_ref() != Some(&coeffs) {
            match self.loaded.session.set_coefficients(&coeffs) {
                Ok(_) if clock == Clock::Replay => {
                    // Deterministic replay: every frame runs on the coefficients of its time.
                    self.loaded.session.wait_ready(Duration::from_secs(30));
                }
                Ok(_) => {}
                Err(e) => log::error!("rwsd: coefficients {coeffs:?} refused: {e}"),
            }
            self.requested = Some(coeffs);
        }
        alphas
    }

    /// Runs one frame and writes its line.
    fn step(&mut self, frame: Frame, interrupted: &dyn Fn() -> bool) {
        let t = self.now();
        let alphas = self.update_coefficients(t, interrupted);
        let started = Instant::now();
        if let Err(e) = frames::to_input(&frame.image, &self.loaded.cfg.input, &mut self.input) {
            self.frame_failed(t, &frame.name, &e.to_string());
            return;
        }
        let out = match self.loaded.session.run(&self.input) {
            Ok(o) => o,
            Err(e) => {
                self.frame_failed(t, &frame.name, &e.to_string());
                return;
            }
        };
        let latency = started.elapsed().as_secs_f64() * 1e3;
        self.emit_frame(t, &frame.name, &out, latency);
        self.write_trace(t, &alphas);
        self.counts.frames += 1;
        self.last = Last {
            t,
            alphas: Some(out.alphas.clone()),
            generation: out.generation,
        };
    }
}

#[cfg(test)]
mod tests;
