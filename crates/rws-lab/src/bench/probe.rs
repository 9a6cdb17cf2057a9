//! `rws bench`'s child processes: each loads one thing in a fresh process and reports what that
//! cost (load time, resident set after a few frames, peak resident set), so no allocation of the
//! benchmark itself counts and every side starts from the same empty process.
//!
//! - [`Mode::Plain`]: plain tract, the baseline — the whole model read with tract-onnx's own
//!   loader (`model_for_path`), optimized and run, as an application without rws would;
//! - [`Mode::Clean`]: rws with no signatures;
//! - [`Mode::All`]: rws with every signature mapped and all of them active at once;
//! - [`Mode::Reload`]: rws with all active, then a second runtime built on another thread while
//!   frames keep running on this one, handed over and the old one retired — what rwsd does on
//!   SIGHUP. Reports the peak resident set of the reload alone (the kernel's high-water mark is
//!   reset first) and the frame times during it against steady frames.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rws_runtime::{Runtime, RuntimeOptions, Session};
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use super::runtime::{frame, open_all, BenchError};

/// What a probe loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Clean,
    All,
    Reload,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "plain" => Mode::Plain,
            "clean" => Mode::Clean,
            "all" => Mode::All,
            "reload" => Mode::Reload,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Clean => "clean",
            Mode::All => "all",
            Mode::Reload => "reload",
        }
    }
}

/// One probe's answer (one JSON line on the child's stdout).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Resident set of the bare process before anything was loaded, MiB.
    pub base_mb: f64,
    /// Loading until the first frame can run, milliseconds.
    pub load_ms: f64,
    /// Resident set after loading and a few frames, MiB.
    pub rss_mb: f64,
    /// Of `rss_mb`: anonymous memory (heap: weights, plans) and file pages (the binary, the
    /// mapped signatures), MiB.
    pub rss_anon_mb: f64,
    pub rss_file_mb: f64,
    /// Peak resident set so far (the kernel's `VmHWM`), MiB: for a load probe, the load's peak.
    pub peak_mb: f64,
    /// Reload only: the peak resident set while the second runtime was built and swapped in.
    pub reload_peak_mb: f64,
    /// Reload only: median and longest frame during the reload, over the steady median.
    pub reload_frame_ratio: f64,
    pub reload_frame_ratio_max: f64,
    /// Reload only: frames that ran while the reload was being prepared.
    pub reload_frames: usize,
    /// Reload only: the reload's time from request to hand-over, milliseconds.
    pub reload_ms: f64,
}

/// A field of `/proc/self/status` in MiB (Linux; NaN elsewhere).
fn status_mb(name: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// `VmRSS` and `VmHWM` of this process in MiB (Linux; NaN elsewhere).
pub fn memory_mb() -> (f64, f64) {
    (status_mb("VmRSS:"), status_mb("VmHWM:"))
}

/// Fills the resident-set fields of `r` now.
fn resident(r: &mut ProbeReport) {
    r.rss_mb = status_mb("VmRSS:");
    r.rss_anon_mb = status_mb("RssAnon:");
    r.rss_file_mb = status_mb("RssFile:");
}

/// Resets the kernel's peak-RSS mark to the current RSS (`clear_refs` value 5, Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs the probe in this process; `shape` is the input shape rws runs the model with (the
/// parent process asks the runtime, so this process loads nothing else).
pub fn run(
    mode: Mode,
    model: &Path,
    files: &[PathBuf],
    shape: &[usize],
) -> Result<ProbeReport, BenchError> {
    let base_mb = memory_mb().0;
    let mut report = match mode {
        Mode::Plain => plain(model, shape)?,
        Mode::Clean => rws(model, &[], false)?.0,
        Mode::All => rws(model, files, true)?.0,
        Mode::Reload => reload(model, files)?,
    };
    report.base_mb = base_mb;
    Ok(report)
}

/// Plain tract: tract-onnx's loader on the file, the input shape rws runs, optimize, run.
fn plain(model: &Path, shape: &[usize]) -> Result<ProbeReport, BenchError> {
    let setup = |e: TractError| BenchError::Setup(format!("plain tract: {e:#}"));
    let start = Instant::now();
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .map_err(setup)?
        .with_input_fact(0, f32::fact(shape).into())
        .map_err(setup)?
        .into_optimized()
        .map_err(setup)?
        .into_runnable()
        .map_err(setup)?;
    let mut state = plan.spawn().map_err(setup)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let peak_mb = memory_mb().1;
    let x = frame(shape.iter().product(), 1);
    for _ in 0..3 {
        let input = Tensor::from_shape(shape, &x).map_err(setup)?.into_tvalue();
        std::hint::black_box(state.run(tvec!(input)).map_err(setup)?);
    }
    let mut r = ProbeReport {
        load_ms,
        peak_mb,
        ..Default::default()
    };
    resident(&mut r);
    Ok(r)
}

/// rws: the signatures opened and checked, the runtime loaded, a session started (what rwsd does
/// at start); with `active`, every signature at α = 1/n, built before the frames.
fn rws(
    model: &Path,
    files: &[PathBuf],
    active: bool,
) -> Result<(ProbeReport, Session), BenchError> {
    let start = Instant::now();
    let mut session = load_session(model, files)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let peak_mb = memory_mb().1;
    if active {
        activate_all(&session)?;
    }
    let x = frame(session.runtime().input_len(), 1);
    for _ in 0..3 {
        session.run(&x)?;
    }
    let mut report = ProbeReport {
        load_ms,
        peak_mb,
        ..Default::default()
    };
    resident(&mut report);
    Ok((report, session))
}

fn load_session(model: &Path, files: &[PathBuf]) -> Result<Session, BenchError> {
    let t = Instant::now();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let sigs = open_all(files)?;
    log::debug!("{} signatures opened in {:.1} ms", files.len(), ms(t));
    let t = Instant::now();
    let rt = Arc::new(Runtime::load(model, sigs, &RuntimeOptions::default())?);
    log::debug!("runtime loaded in {:.1} ms", ms(t));
    let t = Instant::now();
    let s = Session::new(rt)?;
    log::debug!("session started in {:.1} ms", ms(t));
    Ok(s)
}

fn activate_all(session: &Session) -> Result<(), BenchError> {
    let n = session.runtime().signatures().len();
    if n > 0 {
        let coeffs: Vec<(usize, f32)> = (0..n).map(|i| (i, 1.0 / n as f32)).collect();
        session.set_coefficients(&coeffs)?;
        if !session.wait_ready(Duration::from_secs(60)) {
            return Err(BenchError::SwitchTimeout);
        }
    }
    Ok(())
}

/// The reload as rwsd does it: the new session is built and activated on another thread while
/// frames run here; it is taken between frames, and the old one's worker is joined elsewhere.
fn reload(model: &Path, files: &[PathBuf]) -> Result<ProbeReport, BenchError> {
    let (mut report, mut session) = rws(model, files, true)?;
    let x = frame(session.runtime().input_len(), 2);
    let time = |s: &mut Session| -> Result<f64, BenchError> {
        let t = Instant::now();
        std::hint::black_box(s.run(&x)?);
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let mut steady = Vec::new();
    for _ in 0..30 {
        steady.push(time(&mut session)?);
    }
    let steady_ms = super::median(&mut steady);
    resident(&mut report);
    if !reset_peak() {
        log::warn!("cannot reset the peak RSS mark; the reload peak includes the load's");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (m, f) = (model.to_path_buf(), files.to_vec());
    let requested = Instant::now();
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let built = load_session(&m, &f).and_then(|s| activate_all(&s).map(|_| s));
            let _ = tx.send(built);
        })
        .map_err(|e| BenchError::Setup(format!("starting the reload thread: {e}")))?;
    let mut during = Vec::new();
    let new = loop {
        match rx.try_recv() {
            Ok(built) => break built?,
            Err(std::sync::mpsc::TryRecvError::Empty) => during.push(time(&mut session)?),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(BenchError::Setup("the reload thread died".into()))
            }
        }
    };
    report.reload_ms = requested.elapsed().as_secs_f64() * 1e3;
    let old = std::mem::replace(&mut session, new);
    let finish = old.retire();
    let dropper = std::thread::spawn(finish);
    for _ in 0..5 {
        time(&mut session)?;
    }
    let _ = dropper.join();
    report.reload_peak_mb = memory_mb().1;
    report.reload_frames = during.len();
    report.reload_frame_ratio_max = during.iter().fold(0.0, |a: f64, &b| a.max(b)) / steady_ms;
    report.reload_frame_ratio = if during.is_empty() {
        1.0
    } else {
        super::median(&mut during) / steady_ms
    };
    Ok(report)
}
