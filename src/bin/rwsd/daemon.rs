//! The frame loop: sensor events in, policy evaluated, coefficients requested, frame run, JSON
//! line out; plus reloads and shutdown.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use rws::config::{Clock, Config, FrameSource};
use rws::frames::{self, FrameError, Frames};
use rws::policy::Engine;
use rws::replay::Counters;
use rws::runtime::{Runtime, RuntimeOptions, Session};
use rws::sensors::driver::{self, Event, EventKind};
use rws::SignatureFile;

use crate::control;

/// SIGHUP / SIGTERM / SIGINT as flags polled between frames.
pub struct Signals {
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    pub fn install() -> Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let hup = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGHUP, hup.clone()).context("installing SIGHUP")?;
        signal_hook::flag::register(SIGTERM, term.clone()).context("installing SIGTERM")?;
        signal_hook::flag::register(SIGINT, term.clone()).context("installing SIGINT")?;
        Ok(Signals { hup, term })
    }
}

/// The sensor threads and what they have sent but the loop has not applied yet.
struct Sensors {
    rx: Receiver<Event>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    buffered: Vec<VecDeque<Event>>,
    eof: Vec<bool>,
    names: Vec<String>,
    counters: Vec<Counters>,
    connected: Vec<bool>,
    specs: String,
}

impl Sensors {
    fn start(cfg: &Config) -> Result<Sensors> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for spec in &cfg.sensors {
            threads.push(driver::spawn(spec.clone(), tx.clone(), stop.clone())?);
        }
        let n = cfg.sensors.len();
        Ok(Sensors {
            rx,
            stop,
            threads,
            buffered: vec![VecDeque::new(); n],
            eof: vec![false; n],
            names: cfg.sensors.iter().map(|s| s.name.clone()).collect(),
            counters: vec![Counters::default(); n],
            connected: vec![false; n],
            specs: format!("{:?}", cfg.sensors),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Threads blocked on a FIFO open or stdin cannot be interrupted; they exit on their
        // next line. Only wait for those that already finished or notice the flag quickly.
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    fn push(&mut self, e: Event) {
        if e.sensor < self.buffered.len() {
            if e.kind == EventKind::Eof {
                self.eof[e.sensor] = true;
            }
            self.buffered[e.sensor].push_back(e);
        }
    }

    /// Replay: waits until every sensor has either ended or sent an event past `t`, so frames
    /// see exactly the sensor history up to their time.
    fn fill_until(&mut self, t: f64) {
        loop {
            let waiting = (0..self.buffered.len()).any(|s| {
                !self.eof[s]
                    && !self.buffered[s]
                        .iter()
                        .any(|e| e.t.is_some_and(|et| et > t))
            });
            if !waiting {
                return;
            }
            match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok(e) => self.push(e),
                Err(RecvTimeoutError::Timeout) => {
                    log::warn!("replay: a sensor sent nothing for 10 s; going on without it");
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Applies every received event up to time `t` (live: all, stamped `t`) to the engine.
    fn apply(&mut self, t: f64, clock: Clock, engine: &mut Engine) {
        while let Ok(e) = self.rx.try_recv() {
            self.push(e);
        }
        if clock == Clock::Replay {
            self.fill_until(t);
        }
        let mut due: Vec<Event> = Vec::new();
        for q in &mut self.buffered {
            while q
                .front()
                .is_some_and(|e| clock == Clock::Live || e.t.is_none_or(|et| et <= t))
            {
                if let Some(e) = q.pop_front() {
                    due.push(e);
                }
            }
        }
        due.sort_by(|a, b| a.t.unwrap_or(t).total_cmp(&b.t.unwrap_or(t)));
        for e in due {
            let s = e.sensor;
            self.counters[s].count(&e.kind);
            match &e.kind {
                EventKind::Reading(v) => {
                    self.connected[s] = true;
                    engine.observe(s, e.t.unwrap_or(t), v);
                }
                EventKind::Connected => self.connected[s] = true,
                EventKind::Disconnected(_) | EventKind::Eof => self.connected[s] = false,
                EventKind::Bad(_) => {}
            }
        }
    }

    fn status(&self, engine: &Engine, t: f64) -> Value {
        let list: Vec<Value> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                json!({
                    "name": n,
                    "connected": self.connected[i],
                    "fresh": engine.fresh(i, t),
                    "ended": self.eof[i],
                    "counters": self.counters[i],
                })
            })
            .collect();
        Value::Array(list)
    }
}

/// Everything a config load produces; swapped in whole on reload.
struct Loaded {
    cfg: Config,
    session: Session,
    /// The policy's signatures (output order) and the runtime index of each.
    names: Vec<String>,
    map: Vec<usize>,
    engine: Engine,
}

/// The slow part of a load (parse, map and check every signature, split and optimize the model),
/// done off the frame thread on reload; [`Prepared::start`] then only starts the session.
struct Prepared {
    cfg: Config,
    rt: Arc<Runtime>,
    names: Vec<String>,
    map: Vec<usize>,
    engine: Engine,
}

fn prepare(path: &Path) -> Result<Prepared> {
    let cfg = Config::load(path)?;
    let sigs = cfg
        .signatures
        .iter()
        .map(|(_, p)| SignatureFile::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = RuntimeOptions {
        input_shape: Some(vec![1, 3, cfg.input.height, cfg.input.width]),
    };
    let rt = Arc::new(Runtime::load(&cfg.model, sigs, &opts)?);
    let engine = Engine::new(cfg.policy.clone(), cfg.stale_after.clone());
    let map = engine
        .signatures()
        .iter()
        .map(|s| {
            cfg.signatures
                .iter()
                .position(|(n, _)| n == s)
                .with_context(|| format!("signature '{s}' was not loaded"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        names: engine.signatures().to_vec(),
        cfg,
        rt,
        map,
        engine,
    })
}

impl Prepared {
    fn start(self) -> Result<Loaded> {
        Ok(Loaded {
            session: Session::new(self.rt)?,
            cfg: self.cfg,
            names: self.names,
            map: self.map,
            engine: self.engine,
        })
    }
}

fn load(path: &Path) -> Result<Loaded> {
    prepare(path)?.start()
}

pub struct Daemon {
    path: PathBuf,
    loaded: Loaded,
    shared: Arc<control::Shared>,
    _server: Option<control::Server>,
    sensors: Sensors,
    frames: Box<dyn Frames>,
    out: Box<dyn Write>,
    trace: Option<std::fs::File>,
    started: Instant,
    requested: Option<Vec<(usize, f32)>>,
    frames_done: u64,
    frame_errors: u64,
    reloads: u64,
    last_reload_error: Option<String>,
    /// A reload being prepared on its own thread while frames go on with the running state.
    pending: Option<JoinHandle<Result<Prepared>>>,
    /// SIGHUP came again while a reload was being prepared: prepare once more after it.
    reload_again: bool,
    labelled: (u64, u64),
    /// When the status JSON was last rebuilt (it is refreshed at most every STATUS_EVERY).
    status_at: Option<Instant>,
}

/// The status served on the socket is rebuilt at most this often, not on every frame.
const STATUS_EVERY: Duration = Duration::from_millis(250);

impl Daemon {
    pub fn start(path: &Path) -> Result<Daemon> {
        let mut loaded = load(path).with_context(|| format!("loading {}", path.display()))?;
        let engine = std::mem::replace(
            &mut loaded.engine,
            Engine::new(loaded.cfg.policy.clone(), loaded.cfg.stale_after.clone()),
        );
        let shared = Arc::new(control::Shared {
            engine: Mutex::new(engine),
            status: Mutex::new(Value::Null),
            now: Mutex::new(0.0),
        });
        let server = match &loaded.cfg.socket {
            Some(p) => Some(control::serve(p, shared.clone())?),
            None => None,
        };
        let frames = frames::open(&loaded.cfg.frames)?;
        let out: Box<dyn Write> = match &loaded.cfg.output {
            None => Box::new(std::io::stdout()),
            Some(p) if p == Path::new("-") => Box::new(std::io::stdout()),
            Some(p) => Box::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
        };
        let trace = match &loaded.cfg.trace {
            Some(p) => Some(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ),
            None => None,
        };
        let sensors = Sensors::start(&loaded.cfg)?;
        log::info!(
            "rwsd: model {}, {} signatures, {} sensors, clock {:?}",
            loaded.cfg.model.display(),
            loaded.cfg.signatures.len(),
            loaded.cfg.sensors.len(),
            loaded.cfg.clock
        );
        Ok(Daemon {
            path: path.to_path_buf(),
            loaded,
            shared,
            _server: server,
            sensors,
            frames,
            out,
            trace,
            started: Instant::now(),
            requested: None,
            frames_done: 0,
            frame_errors: 0,
            reloads: 0,
            last_reload_error: None,
            pending: None,
            reload_again: false,
            labelled: (0, 0),
            status_at: None,
        })
    }

    /// One paragraph about what was loaded (`rwsd --check`).
    pub fn summary(&self) -> String {
        let c = &self.loaded.cfg;
        let rt = self.loaded.session.runtime();
        format!(
            "config {}: ok\nmodel {} (input {:?}, cut at {:?}, {} prefix builds)\nsignatures: {}\nsensors: {}\nframes: {:?}\nclock: {:?}",
            c.path.display(),
            c.model.display(),
            rt.input_shape(),
            rt.cut(),
            rt.prefix_mode(),
            c.signatures.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", "),
            c.sensors.iter().map(|s| format!("{} ({}, {:?})", s.name, s.protocol, s.source)).collect::<Vec<_>>().join("; "),
            c.frames,
            c.clock,
        )
    }

    fn now(&self) -> f64 {
        match self.loaded.cfg.clock {
            Clock::Replay => {
                self.frames_done as f64 * self.loaded.cfg.frame_interval_ms as f64 / 1000.0
            }
            Clock::Live => self.started.elapsed().as_secs_f64(),
        }
    }

    pub fn run(&mut self, signals: &Signals, max_frames: Option<u64>) -> Result<()> {
        loop {
            if signals.term.load(Ordering::Relaxed) {
                log::info!("rwsd: stopping on signal after {} frames", self.frames_done);
                break;
            }
            if signals.hup.swap(false, Ordering::Relaxed) {
                self.start_reload();
            }
            self.finish_reload();
            if max_frames.is_some_and(|m| self.frames_done >= m) {
                break;
            }
            let frame_start = Instant::now();
            if !self.step()? {
                log::info!("rwsd: frame source ended after {} frames", self.frames_done);
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
        let (ok, n) = self.labelled;
        if n > 0 {
            log::info!(
                "rwsd: {} frames, top-1 correct on {ok}/{n} labelled frames",
                self.frames_done
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

    /// Starts preparing a reload (SIGHUP) on its own thread: parsing the config, mapping and
    /// checking the signatures and optimizing the model take ~10 ms for the demo and ~100 ms for
    /// VGG-16, frames that the camera would otherwise have to hold back.
    fn start_reload(&mut self) {
        log::info!("rwsd: SIGHUP, reloading {}", self.path.display());
        if self.pending.is_some() {
            self.reload_again = true;
            return;
        }
        let path = self.path.clone();
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("rwsd-reload".into())
            .spawn(move || {
                let result = prepare(&path);
                // A failure shows in the status at once, even while the frame thread waits
                // for its next frame; the frame thread records it when it takes the result.
                if let Err(e) = &result {
                    let mut status = shared.status.lock().unwrap_or_else(|p| p.into_inner());
                    if status.is_object() {
                        status["last_reload_error"] = json!(format!("{e:#}"));
                    }
                }
                result
            });
        match spawned {
            Ok(handle) => self.pending = Some(handle),
            Err(e) => self.reload_failed(format!("starting the reload thread: {e}")),
        }
    }

    /// Between frames: takes a finished reload, if any, and swaps it in whole; on any error
    /// everything stays as it was.
    fn finish_reload(&mut self) {
        let Some(handle) = self.pending.take_if(|h| h.is_finished()) else {
            return;
        };
        let result = match handle.join() {
            Ok(r) => r.and_then(Prepared::start),
            Err(_) => Err(anyhow::anyhow!("the reload thread panicked")),
        };
        match result {
            Err(e) => self.reload_failed(format!("{e:#}")),
            Ok(new) => self.swap_in(new),
        }
        self.publish_reload_status();
        if std::mem::take(&mut self.reload_again) {
            self.start_reload();
        }
    }

    fn reload_failed(&mut self, msg: String) {
        log::error!("rwsd: reload failed, keeping the running config: {msg}");
        self.last_reload_error = Some(msg);
    }

    fn swap_in(&mut self, mut new: Loaded) {
        {
            let mut engine = self.shared.engine.lock().unwrap_or_else(|p| p.into_inner());
            new.engine.carry_from(&engine);
            std::mem::swap(&mut *engine, &mut new.engine);
        }
        if new.cfg.frames != self.loaded.cfg.frames || new.cfg.output != self.loaded.cfg.output {
            log::warn!("rwsd: frame source and output changes take effect on restart");
        }
        if format!("{:?}", new.cfg.sensors) != self.sensors.specs {
            match Sensors::start(&new.cfg) {
                Ok(s) => {
                    let mut old = std::mem::replace(&mut self.sensors, s);
                    old.stop();
                }
                Err(e) => log::error!("rwsd: restarting sensors failed: {e:#}"),
            }
        }
        self.loaded = new;
        self.requested = None;
        // The next frame rebuilds the whole status from the new state.
        self.status_at = None;
        self.reloads += 1;
        self.last_reload_error = None;
        log::info!(
            "rwsd: reloaded ({} signatures)",
            self.loaded.cfg.signatures.len()
        );
    }

    /// Status shows the outcome at once, not only after the next frame.
    fn publish_reload_status(&self) {
        let mut status = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        if status.is_object() {
            status["reloads"] = json!(self.reloads);
            status["last_reload_error"] = json!(self.last_reload_error);
        }
    }

    /// Runs one frame; `false` when the frame source has ended.
    fn step(&mut self) -> Result<bool> {
        let t = self.now();
        let clock = self.loaded.cfg.clock;
        let alphas = {
            let mut engine = self.shared.engine.lock().unwrap_or_else(|p| p.into_inner());
            self.sensors.apply(t, clock, &mut engine);
            *self.shared.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
            engine.evaluate(t)
        };
        let coeffs: Vec<(usize, f32)> = self
            .loaded
            .map
            .iter()
            .zip(&alphas)
            .map(|(&i, &a)| (i, a as f32))
            .collect();
        if self.requested.as_ref() != Some(&coeffs) {
            self.loaded.session.set_coefficients(&coeffs)?;
            if clock == Clock::Replay {
                // Deterministic replay: every frame runs on the coefficients of its own time.
                self.loaded.session.wait_ready(Duration::from_secs(30));
            }
            self.requested = Some(coeffs);
        }
        let frame = match self.frames.next_frame() {
            Ok(None) => return Ok(false),
            Ok(Some(f)) => f,
            Err(FrameError::Bad { name, reason }) => {
                self.frame_errors += 1;
                log::warn!("rwsd: skipping frame {name}: {reason}");
                self.emit(
                    &json!({"frame": self.frames_done, "t": t, "name": name, "error": reason}),
                );
                self.frames_done += 1;
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        let started = Instant::now();
        let input = frames::to_input(&frame.image, &self.loaded.cfg.input)?;
        let out = match self.loaded.session.run(input) {
            Ok(o) => o,
            Err(e) => {
                self.frame_errors += 1;
                log::warn!("rwsd: frame {} failed: {e}", frame.name);
                self.frames_done += 1;
                return Ok(true);
            }
        };
        let latency = started.elapsed().as_secs_f64() * 1e3;
        let line = self.frame_json(t, &frame.name, &out, latency);
        self.emit(&line);
        self.write_trace(t, &alphas);
        self.frames_done += 1;
        let due = self.status_at.is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if due || clock == Clock::Replay {
            self.update_status(t, &out.alphas, out.generation);
            self.status_at = Some(Instant::now());
        }
        Ok(true)
    }

    fn frame_json(
        &mut self,
        t: f64,
        name: &str,
        out: &rws::runtime::FrameOutput,
        latency: f64,
    ) -> Value {
        let cfg = &self.loaded.cfg;
        let probs = softmax(&out.logits);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let label = |i: usize| cfg.labels.get(i).cloned().unwrap_or_else(|| i.to_string());
        let top: Vec<Value> = order
            .iter()
            .take(cfg.top_k)
            .map(|&i| json!({"label": label(i), "score": round(probs[i] as f64, 4)}))
            .collect();
        let mut alpha = Map::new();
        for (sig, &a) in self
            .loaded
            .session
            .runtime()
            .signatures()
            .iter()
            .zip(out.alphas.iter())
        {
            if a != 0.0 {
                alpha.insert(
                    sig.metadata().corruption.clone(),
                    json!(round(f64::from(a), 3)),
                );
            }
        }
        let mut v = json!({
            "frame": self.frames_done,
            "t": round(t, 3),
            "name": name,
            "top": top,
            "alpha": alpha,
            "generation": out.generation,
            "latency_ms": round(latency, 3),
        });
        if cfg.label_from_name {
            let expected = Path::new(name)
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('-').next())
                .map(str::to_string);
            if let Some(exp) = expected {
                let correct = order.first().map(|&i| label(i)) == Some(exp.clone());
                self.labelled.1 += 1;
                self.labelled.0 += u64::from(correct);
                v["expected"] = json!(exp);
                v["correct"] = json!(correct);
            }
        }
        v
    }

    fn emit(&mut self, v: &Value) {
        if let Err(e) = writeln!(self.out, "{v}").and_then(|_| self.out.flush()) {
            log::warn!("rwsd: writing output: {e}");
        }
    }

    fn write_trace(&mut self, t: f64, alphas: &[f64]) {
        if let Some(f) = &mut self.trace {
            let _ = writeln!(f, "{}", rws::replay::line(t, &self.loaded.names, alphas));
        }
    }

    fn update_status(&self, t: f64, alphas: &[f32], generation: u64) {
        let engine = self.shared.engine.lock().unwrap_or_else(|p| p.into_inner());
        let rt = self.loaded.session.runtime();
        let mut active = Map::new();
        for (s, a) in rt.signatures().iter().zip(alphas) {
            active.insert(
                s.metadata().corruption.clone(),
                json!(round(f64::from(*a), 3)),
            );
        }
        let overrides: Map<String, Value> = engine
            .overrides()
            .iter()
            .map(|(k, o)| (k.clone(), json!({"alpha": o.alpha, "until_t": o.until})))
            .collect();
        let stats = self.loaded.session.stats();
        let status = json!({
            "config": self.path.display().to_string(),
            "model": self.loaded.cfg.model.display().to_string(),
            "t": round(t, 3),
            "frames": self.frames_done,
            "frame_errors": self.frame_errors,
            "alpha": active,
            "generation": generation,
            "overrides": overrides,
            "sensors": self.sensors.status(&engine, t),
            "reloads": self.reloads,
            "last_reload_error": self.last_reload_error,
            "prefix_builds": stats.builds,
            "prefix_build_failures": stats.failures,
        });
        drop(engine);
        *self.shared.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }
}

fn softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = l.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
