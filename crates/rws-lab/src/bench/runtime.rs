//! `rws bench`: the runtime against the unpatched plan, in one process.
//!
//! What is measured, and how:
//! - frame times: the whole clean model as one optimized plan (the baseline) and the split
//!   runtime on a patched set, alternating frame by frame; medians and their ratio;
//! - switches: coefficient sets never seen before are requested while frames run, once with
//!   frames back to back (as fast as the CPU allows) and once paced at the camera rate; for each
//!   the time from the request to the end of the first frame on the new weights, and how many
//!   frames started after the request still ran on the old ones;
//! - stalls: time the frame thread spent taking a new plan (the only switch work on the frame
//!   path), and frame times while a build runs on the worker against the steady median;
//! - the patch kernel on the model's own patched tensors against memcpy;
//! - the cost of the alternative, loading and optimizing a full model;
//! - RSS, measured by the caller in fresh child processes (see [`rss_probe`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rws_rng::Rng;
use rws_runtime::{read_model_mapped, Runtime, RuntimeError, RuntimeOptions, Session, WholeModel};
use rws_signature::format::{DType, FormatError, Metadata, Role, SignatureFile};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Signature(#[from] FormatError),
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("{0}")]
    Setup(String),
    #[error("a switch did not reach its frame within 60 s (the prefix worker is stuck)")]
    SwitchTimeout,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |e| BenchError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Bench settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Frames per configuration in the steady-state comparison.
    pub frames: usize,
    /// Switches measured (each to a new coefficient set).
    pub switches: usize,
    /// Camera rate for the paced switch measurement.
    pub fps: f64,
}

/// Everything `rws bench --json` prints (RSS fields filled in by the caller).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub model: String,
    pub signatures: usize,
    pub patched_tensors: usize,
    pub patched_params: usize,
    pub cut: Vec<String>,
    pub prefix_mode: String,
    pub frames: usize,
    pub clean_frame_ms: f64,
    pub patched_frame_ms: f64,
    pub steady_ratio: f64,
    pub prefix_build_ms: f64,
    /// Median request → first frame on new weights, frames paced at `fps`.
    pub switch_ms: f64,
    pub switch_ms_max: f64,
    /// Most frames that started after a request and still ran on the old weights, paced.
    pub switch_frames: usize,
    pub fps: f64,
    /// The same, frames back to back.
    pub switch_ms_unpaced: f64,
    pub switch_frames_unpaced: usize,
    /// Frames whose start waited on switch machinery for more than [`STALL`].
    pub stalled_frames: usize,
    /// Longest time a frame spent taking a new plan, milliseconds.
    pub longest_swap_ms: f64,
    /// Median frame time while a build ran on the worker, over the steady median.
    pub switch_window_ratio: f64,
    pub patch_vs_memcpy: f64,
    pub rss_clean_mb: f64,
    pub rss_all_mb: f64,
    pub rss_ratio: f64,
    pub full_reload_ms: f64,
}

/// A frame "waited on a switch" if taking the new plan held it up longer than this.
pub const STALL: Duration = Duration::from_micros(100);

/// The `.rws` files of `dir`, sorted by name.
pub fn signature_files(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rws"))
        .collect();
    files.sort();
    Ok(files)
}

fn open_all(files: &[PathBuf]) -> Result<Vec<SignatureFile>, BenchError> {
    Ok(files
        .iter()
        .map(SignatureFile::open)
        .collect::<Result<Vec<_>, _>>()?)
}

/// A deterministic frame of `len` values in [0, 1).
fn frame(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform() as f32).collect()
}

/// Resident set size of this process in MiB (Linux; `None` elsewhere).
pub fn current_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// What a child process reports for RSS: the runtime loaded with no signatures (`all = false`)
/// or with every signature in `files` mapped and all of them active at once, after a few frames.
pub fn rss_probe(model: &Path, files: &[PathBuf], all: bool) -> Result<f64, BenchError> {
    let sigs = if all { open_all(files)? } else { Vec::new() };
    let n = sigs.len();
    let rt = Arc::new(Runtime::load(model, sigs, &RuntimeOptions::default())?);
    let x = frame(rt.input_len(), 1);
    let mut s = Session::new(rt.clone())?;
    if n > 0 {
        let coeffs: Vec<(usize, f32)> = (0..n).map(|i| (i, 1.0 / n as f32)).collect();
        s.set_coefficients(&coeffs)?;
        s.wait_ready(Duration::from_secs(60));
    }
    for _ in 0..3 {
        s.run(&x)?;
    }
    Ok(current_rss_mb().unwrap_or(f64::NAN))
}

/// Runs the in-process part of the benchmark (everything but RSS).
pub fn run(model: &Path, files: &[PathBuf], opts: &Options) -> Result<Report, BenchError> {
    let sigs = open_all(files)?;
    let n = sigs.len();
    if n == 0 {
        return Err(BenchError::Setup(format!(
            "{}: no signatures to benchmark",
            model.display()
        )));
    }
    let rt = Arc::new(Runtime::load(model, sigs, &RuntimeOptions::default())?);
    let shape = rt.input_shape().to_vec();
    let x = frame(rt.input_len(), 1);

    // The alternative: load and optimize the whole model for each change.
    let mut reloads = Vec::new();
    let load_whole = || -> Result<WholeModel, RuntimeError> {
        WholeModel::from_proto(model, read_model_mapped(model)?.proto(), &shape)
    };
    let mut full = load_whole()?;
    for _ in 0..3 {
        let t = Instant::now();
        full = load_whole()?;
        reloads.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let mut report = Report {
        model: model.display().to_string(),
        signatures: n,
        patched_tensors: rt.targets().len(),
        cut: rt.cut().to_vec(),
        prefix_mode: rt.prefix_mode().to_string(),
        frames: opts.frames,
        fps: opts.fps,
        full_reload_ms: super::median(&mut reloads),
        ..Default::default()
    };
    report.patched_params = rt
        .signatures()
        .iter()
        .flat_map(|s| s.tensors().iter().map(|t| (t.name.clone(), t.numel())))
        .collect::<std::collections::BTreeMap<_, _>>()
        .values()
        .sum();

    let mut builds = Vec::new();
    for k in 0..5 {
        let mut a = vec![0f32; n];
        a[k % n] = 0.5 + k as f32 * 0.01;
        let t = Instant::now();
        rt.build_prefix(&a)?;
        builds.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report.prefix_build_ms = super::median(&mut builds);

    steady(&rt, &full, &x, opts, &mut report)?;
    switches(&rt, &x, opts, &mut report)?;
    report.patch_vs_memcpy = kernel_ratio(&rt);
    Ok(report)
}

fn steady(
    rt: &Arc<Runtime>,
    full: &WholeModel,
    x: &[f32],
    opts: &Options,
    report: &mut Report,
) -> Result<(), BenchError> {
    let n = rt.signatures().len();
    let mut s = Session::new(rt.clone())?;
    let active: Vec<(usize, f32)> = (0..n.min(2)).map(|i| (i, 0.5)).collect();
    s.set_coefficients(&active)?;
    s.wait_ready(Duration::from_secs(60));
    // Both sides keep their tract run state across frames, as the daemon does.
    let mut full_state = full.state()?;
    let mut logits = Vec::new();
    // Warm both paths (first runs allocate).
    for _ in 0..5 {
        full_state.run(x, &mut logits)?;
        s.run(x)?;
    }
    let (mut clean, mut patched) = (Vec::new(), Vec::new());
    for _ in 0..opts.frames.max(1) {
        let t = Instant::now();
        full_state.run(x, &mut logits)?;
        std::hint::black_box(&logits);
        clean.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(s.run(x)?);
        patched.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report.clean_frame_ms = super::median(&mut clean);
    report.patched_frame_ms = super::median(&mut patched);
    report.steady_ratio = report.patched_frame_ms / report.clean_frame_ms;
    Ok(())
}

/// One measured switch.
struct Switch {
    ms: f64,
    old_frames: usize,
}

fn switches(
    rt: &Arc<Runtime>,
    x: &[f32],
    opts: &Options,
    report: &mut Report,
) -> Result<(), BenchError> {
    let n = rt.signatures().len();
    let mut s = Session::new(rt.clone())?;
    for _ in 0..3 {
        s.run(x)?;
    }
    let mut window = Vec::new();
    let mut swaps = Vec::new();
    let mut set = 0usize;
    let mut next_set = || {
        // A set never requested before, so every switch is a real build.
        set += 1;
        let mut a = vec![(set % n, 0.3 + set as f32 * 1e-3)];
        if n > 1 {
            a.push(((set + 1) % n, 0.2));
        }
        a
    };
    let mut measure = |s: &mut Session, period: Option<Duration>| -> Result<Switch, BenchError> {
        let coeffs = next_set();
        let start = Instant::now();
        let gen = s.set_coefficients(&coeffs)?;
        let mut old_frames = 0;
        let mut k = 0u32;
        loop {
            if let Some(p) = period {
                let due = start + p * k;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            k += 1;
            let t = Instant::now();
            let out = s.run(x)?;
            let dt = t.elapsed().as_secs_f64() * 1e3;
            swaps.push(out.swap);
            if out.generation >= gen {
                return Ok(Switch {
                    ms: start.elapsed().as_secs_f64() * 1e3,
                    old_frames,
                });
            }
            window.push(dt);
            old_frames += 1;
            if start.elapsed() > Duration::from_secs(60) {
                return Err(BenchError::SwitchTimeout);
            }
        }
    };
    let mut unpaced = Vec::new();
    for _ in 0..opts.switches.max(1) {
        unpaced.push(measure(&mut s, None)?);
    }
    let period = Duration::from_secs_f64(1.0 / opts.fps.max(0.1));
    let mut paced = Vec::new();
    for _ in 0..opts.switches.max(1) {
        paced.push(measure(&mut s, Some(period))?);
        std::thread::sleep(period);
    }
    let ms = |v: &[Switch]| {
        let mut t: Vec<f64> = v.iter().map(|s| s.ms).collect();
        super::median(&mut t)
    };
    report.switch_ms = ms(&paced);
    report.switch_ms_max = paced.iter().map(|s| s.ms).fold(0.0, f64::max);
    report.switch_frames = paced.iter().map(|s| s.old_frames).max().unwrap_or(0);
    report.switch_ms_unpaced = ms(&unpaced);
    report.switch_frames_unpaced = unpaced.iter().map(|s| s.old_frames).max().unwrap_or(0);
    report.stalled_frames = swaps.iter().filter(|d| **d > STALL).count();
    report.longest_swap_ms = swaps
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    report.switch_window_ratio = if window.is_empty() {
        1.0
    } else {
        super::median(&mut window) / report.patched_frame_ms
    };
    Ok(())
}

/// The patch kernel with one signature on the model's patched tensors, against memcpy.
fn kernel_ratio(rt: &Runtime) -> f64 {
    super::time_patch(rt.signatures(), rt.clean_values(), 1, 31, "runtime").ratio
}

/// Writes a model of architecture `arch` with seeded random weights (`model.onnx`) and 19
/// random int8 signatures over its first five convolutions into `dir`: a stand-in for a model of
/// that size when no trained one is at hand (timings do not depend on the values).
pub fn make_synthetic(arch: &crate::arch::Arch, dir: &Path, seed: u64) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut weights = arch.init(seed);
    // Trained biases are small and distinct; zero ones would all be one constant to tract.
    let mut brng = Rng::new(seed ^ 0xb1a5);
    for (name, p) in weights.iter_mut() {
        if name.ends_with("bias") {
            p.values
                .iter_mut()
                .for_each(|v| *v = (brng.normal() * 0.01) as f32);
        }
    }
    let bytes = arch
        .to_onnx_bytes(&weights)
        .map_err(|reason| BenchError::Io {
            path: dir.join("model.onnx"),
            reason,
        })?;
    let model = dir.join("model.onnx");
    rws_signature::format::writer::write_atomic(&model, &bytes).map_err(io(&model))?;
    let layers: Vec<(String, Role, Vec<usize>)> = arch
        .param_shapes()
        .into_iter()
        .filter(|(n, _)| n.starts_with("features"))
        .take(10)
        .map(|(n, s)| {
            let role = if n.ends_with("bias") {
                Role::Bias
            } else {
                Role::Weight
            };
            (n, role, s)
        })
        .collect();
    let mut rng = Rng::new(seed ^ 0x5157);
    for c in crate::corrupt::Corruption::ALL {
        let tensors = super::random_tensors(&layers, &mut rng);
        let mut meta = Metadata::new(c.name(), 5);
        meta.source_model = format!("{} (synthetic)", arch.name);
        let path = dir.join(format!("{}.rws", c.name()));
        rws_signature::format::write_signature(&path, &meta, &tensors, DType::I8)?;
    }
    Ok(())
}
