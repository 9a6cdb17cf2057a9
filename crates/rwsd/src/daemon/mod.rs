//! The daemon: the frame loop and everything around it.
//!
//! The loop waits for the next item of the frame source ([`feed::Feed`], on its own thread) for
//! at most a tick, so signals, reloads, sensor events and the status are served whatever the
//! camera does. Per frame: sensor events in ([`sensors::SensorHub`]), the policy evaluated,
//! coefficients requested from the session (never blocking: the session's worker builds the
//! plan), the frame run and written as one JSON line ([`output`]), all in buffers kept from frame
//! to frame (a steady frame allocates nothing of the daemon's). Between frames: signals, and a
//! finished reload ([`reload::Reloader`], prepared and swapped in by `swap`) taken whole. rwsd
//! exits on SIGTERM/SIGINT, `--max-frames`, or the end of a read-once frame source, and on
//! nothing else.
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
mod score;
pub mod sensors;
mod signals;
mod status;
mod swap;

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
    /// Time from taking a frame off the queue to its line written, and the part of it inside
    /// `Session::run`, over `timed` frames: the daemon's own overhead is the difference.
    step_time: Duration,
    run_time: Duration,
    timed: u64,
    /// The same step times as a histogram, for the status and the metrics file.
    latency: crate::protocol::FrameLatency,
}

/// The frame loop's working buffers, reused from frame to frame so a steady frame allocates
/// nothing in the daemon (`cargo bench -p rwsd --bench frame_loop` counts).
#[derive(Debug, Default)]
struct Buffers {
    prep: rws_image::tensor::ToInput,
    /// The model input.
    input: Vec<f32>,
    logits: Vec<f32>,
    probs: Vec<f32>,
    /// (class, probability) of the top k.
    top: Vec<(usize, f32)>,
    /// The policy's coefficients, one per policy signature.
    alphas: Vec<f64>,
    /// The same as requests to the session: (runtime slot, α).
    coeffs: Vec<(usize, f32)>,
}

/// Where the frame loop's time went, from [`Daemon::timings`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Frames timed.
    pub frames: u64,
    /// From taking a frame off the queue to its line written.
    pub step: Duration,
    /// Inside `Session::run` (the model itself).
    pub run: Duration,
    /// On the source thread, reading and decoding frames (for a live source, including the
    /// wait for each frame), and frames read.
    pub read: Duration,
    pub read_frames: u64,
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
    /// The Prometheus textfile writer (`[metrics]`); stopped, after a last write, on drop.
    metrics: Option<crate::metrics::Writer>,
    sensors: SensorHub,
    feed: Feed,
    out: Output,
    out_log: RateLimit,
    trace: Option<std::io::BufWriter<std::fs::File>>,
    started: Instant,
    /// The coefficients last requested from the session (`None`: none yet, or a new session).
    requested: Option<Vec<(usize, f32)>>,
    counts: Counts,
    /// The demo's accuracy, only with `label_from_name`.
    score: Option<score::Score>,
    last: Last,
    reloader: Reloader<(Loaded, Engine)>,
    /// When the status was last rebuilt (it is refreshed at most every [`STATUS_EVERY`]).
    status_at: Option<Instant>,
    buf: Buffers,
    /// A live reload that changed the sensors: the new hub, started off the frame thread.
    sensor_restart: Option<std::sync::mpsc::Receiver<Result<SensorHub>>>,
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
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        };
        let feed = Feed::start(cfg, &health).context("starting the frame source")?;
        let sensors = SensorHub::start(cfg, &health)?;
        let metrics = match &cfg.metrics {
            Some(m) => Some(crate::metrics::Writer::start(m, shared.clone(), &health)?),
            None => None,
        };
        let label_from_name = cfg.label_from_name;
        log::info!(
            "rwsd: model {}, {} signatures, {} sensors, clock {:?}",
            cfg.model.display(),
            cfg.signatures.len(),
            cfg.sensors.len(),
            cfg.clock
        );
        Ok(Daemon {
            path: path.to_path_buf(),
            reloader: Reloader::new(swap::prepare_reload(path.to_path_buf(), shared.clone())),
            loaded,
            shared,
            health,
            _server: server,
            metrics,
            sensors,
            feed,
            out,
            out_log: RateLimit::standard(),
            trace,
            started: Instant::now(),
            requested: None,
            counts: Counts::default(),
            score: label_from_name.then(score::Score::default),
            last: Last::default(),
            status_at: None,
            buf: Buffers::default(),
            sensor_restart: None,
        })
    }

    /// Writes the coefficient trace to `path` from now on, in place of `output.trace`
    /// (`rwsd --trace`).
    pub fn trace_to(&mut self, path: &Path) -> Result<()> {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        self.trace = Some(std::io::BufWriter::new(f));
        Ok(())
    }

    /// One paragraph about what was loaded.
    pub fn summary(&self) -> String {
        self.loaded.summary()
    }

    /// The status as the socket serves it now.
    pub fn status(&self) -> Status {
        self.shared.status().clone()
    }

    /// Where the frame loop's time went so far (benchmarks: the daemon's overhead beyond the
    /// model is `step − run` per frame).
    pub fn timings(&self) -> Timings {
        let (read, read_frames) = self.feed.read_time();
        Timings {
            frames: self.counts.timed,
            step: self.counts.step_time,
            run: self.counts.run_time,
            read,
            read_frames,
        }
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
            let due = self.sensors.take_due(t, Clock::Live, &|| false);
            if !due.is_empty() {
                let mut engine = self.shared.engine();
                self.sensors.apply_due(due, t, &mut engine);
            }
        }
    }

    fn finish(&mut self) {
        if let Err(e) = self.out.flush() {
            self.output_failed(&e);
        }
        if let Some(rx) = self.sensor_restart.take() {
            // A restart in flight finishes within a tick or two; its threads are stopped too.
            if let Ok(Ok(mut hub)) = rx.recv_timeout(Duration::from_secs(5)) {
                hub.stop();
            }
        }
        self.sensors.stop();
        // The final counts, for a last status and the metrics file's last write.
        self.update_status();
        drop(self.metrics.take());
        if let Some(s) = self.score.as_ref().filter(|s| s.seen > 0) {
            log::info!(
                "rwsd: {} frames, top-1 correct on {}/{} labelled frames",
                self.counts.frames,
                s.right,
                s.seen
            );
        }
    }

    /// Applies due sensor events and evaluates the policy at `t` (into `self.buf.alphas`);
    /// requests the coefficients from the session when they changed. Replay's wait for the
    /// sensors happens before the engine is locked, so the control socket never waits on it.
    fn update_coefficients(&mut self, t: f64, interrupted: &dyn Fn() -> bool) {
        let clock = self.loaded.cfg.clock;
        let due = self.sensors.take_due(t, clock, interrupted);
        {
            let mut engine = self.shared.engine();
            self.sensors.apply_due(due, t, &mut engine);
            engine.evaluate_into(t, &mut self.buf.alphas);
        }
        self.shared.set_now(t);
        self.loaded
            .coefficients_into(&self.buf.alphas, &mut self.buf.coeffs);
        if self.requested.as_ref() == Some(&self.buf.coeffs) {
            return;
        }
        match self.loaded.session.set_coefficients(&self.buf.coeffs) {
            Ok(_) if clock == Clock::Replay => {
                // Deterministic replay: every frame runs on the coefficients of its time.
                self.loaded.session.wait_ready(Duration::from_secs(30));
            }
            Ok(_) => {}
            Err(e) => log::error!("rwsd: coefficients {:?} refused: {e}", self.buf.coeffs),
        }
        match &mut self.requested {
            Some(r) => r.clone_from(&self.buf.coeffs),
            None => self.requested = Some(self.buf.coeffs.clone()),
        }
    }

    /// Runs one frame and writes its line; its image goes back to the source.
    fn step(&mut self, frame: Frame, interrupted: &dyn Fn() -> bool) {
        let taken = Instant::now();
        let t = self.now();
        // The input first: the oracle reads it, and its signals count for this very frame.
        let prep_start = Instant::now();
        let cfg = &self.loaded.cfg;
        let prepared = frames::to_input(
            &mut self.buf.prep,
            &frame.image,
            &cfg.input,
            &mut self.buf.input,
        );
        self.feed.recycle(frame.image);
        if let Err(e) = prepared {
            self.update_coefficients(t, interrupted);
            self.frame_failed(t, &frame.name.to_string(), &e.to_string());
            return;
        }
        if let Some(oracle) = &mut self.loaded.oracle {
            let mut engine = self.shared.engine();
            oracle.observe(&self.buf.input, &self.loaded.cfg.input.norm, t, &mut engine);
        }
        let prep = prep_start.elapsed();
        self.update_coefficients(t, interrupted);
        let started = Instant::now();
        let run_start = Instant::now();
        let ran = self
            .loaded
            .session
            .run_into(&self.buf.input, &mut self.buf.logits);
        let run_time = run_start.elapsed();
        let info = match ran {
            Ok(o) => o,
            Err(e) => {
                self.frame_failed(t, &frame.name.to_string(), &e.to_string());
                return;
            }
        };
        // Preparing the input and the oracle count; the coefficient update (which in replay
        // waits for the session's plan) does not.
        let latency = (started.elapsed() + prep).as_secs_f64() * 1e3;
        self.emit_frame(t, &frame.name, &info, latency);
        self.write_trace(t);
        self.counts.frames += 1;
        self.counts.timed += 1;
        self.counts.run_time += run_time;
        let step = taken.elapsed();
        self.counts.step_time += step;
        self.counts.latency.observe(step.as_secs_f64());
        self.last = Last {
            t,
            alphas: Some(info.alphas),
            generation: info.generation,
        };
    }
}

#[cfg(test)]
mod tests;
