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
//! - load time, RSS and peak RSS against plain tract, and a reload's, measured by the caller in
//!   fresh child processes ([`super::probe`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rws_rng::Rng;
use rws_runtime::{read_model_mapped, Runtime, RuntimeError, RuntimeOptions, Session, WholeModel};
use rws_signature::format::{DType, FormatError, Metadata, Role, SignatureFile};
use rws_signature::manifest::{Manifest, ModelEntry, SignatureEntry};

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
    /// The set's camera-only oracle head, timed per frame (`None`: one of the shipped shape).
    pub oracle_head: Option<PathBuf>,
}

/// Everything `rws bench --json` prints (RSS fields filled in by the caller).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub model: String,
    pub input_shape: Vec<usize>,
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
    /// Resident set after a few frames, fresh processes: rws with no signatures, rws with all
    /// mapped and active, plain tract (MiB), and the ratios all/clean and all/plain tract.
    pub rss_clean_mb: f64,
    pub rss_all_mb: f64,
    pub rss_ratio: f64,
    pub rss_plain_tract_mb: f64,
    pub rss_vs_tract: f64,
    /// The anonymous part of the resident sets (heap: weights, plans; without the binary's and
    /// the signatures' file pages, which the kernel can drop and re-read), and its ratio.
    pub rss_all_anon_mb: f64,
    pub rss_plain_tract_anon_mb: f64,
    pub rss_anon_vs_tract: f64,
    /// Start to first frame possible (median of fresh processes): rws with all signatures
    /// opened and checked, plain tract; and their ratio.
    pub load_ms: f64,
    pub load_plain_tract_ms: f64,
    pub load_vs_tract: f64,
    /// Peak resident set during the load (MiB): rws with all signatures, plain tract.
    pub load_peak_mb: f64,
    pub load_peak_plain_tract_mb: f64,
    /// A reload as on SIGHUP (a second runtime built beside the running one, swapped in):
    /// its peak resident set, the steady one before it, and the target `1.2 × steady + one
    /// runtime's worth` (the steady set less the bare process's).
    pub reload_peak_mb: f64,
    pub reload_steady_mb: f64,
    pub reload_peak_target_mb: f64,
    pub reload_ms: f64,
    /// Frames that ran during the reload, and their median and longest time over the steady
    /// median.
    pub reload_frames: usize,
    pub reload_frame_ratio: f64,
    pub reload_frame_ratio_max: f64,
    pub full_reload_ms: f64,
    /// The camera-only oracle's step per frame at the model's input size, as rwsd runs it
    /// (input back to pixels, features, head, tracker): median milliseconds, and over the clean
    /// frame's median.
    pub oracle_ms: f64,
    pub oracle_frame_ratio: f64,
    /// The head timed: the set's file, or a synthetic one of the shipped shape (the cost depends
    /// on the shape only).
    pub oracle_head: String,
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

pub(super) fn open_all(files: &[PathBuf]) -> Result<Vec<SignatureFile>, BenchError> {
    Ok(files
        .iter()
        .map(SignatureFile::open)
        .collect::<Result<Vec<_>, _>>()?)
}

/// A deterministic frame of `len` values in [0, 1).
pub(super) fn frame(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform() as f32).collect()
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
        input_shape: shape.clone(),
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
    oracle(&shape, &x, opts, &mut report)?;
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

/// Times the camera-only oracle's per-frame step on the bench frame, at the model's input size.
fn oracle(
    shape: &[usize],
    x: &[f32],
    opts: &Options,
    report: &mut Report,
) -> Result<(), BenchError> {
    let &[_, 3, h, w] = shape else {
        return Err(BenchError::Setup(format!(
            "input shape {shape:?} is not 1×3×H×W"
        )));
    };
    let (head, name) = match &opts.oracle_head {
        Some(p) => {
            let f =
                rws_oracle::OracleFile::open(p).map_err(|e| BenchError::Setup(e.to_string()))?;
            (f.head, p.display().to_string())
        }
        None => (
            synthetic_head(32)?,
            "synthetic: 20 classes, 32 tanh units (the shipped shape)".to_string(),
        ),
    };
    let mut o = rws_oracle::FrameOracle::new(head, (h, w), rws_oracle::Hysteresis::DEFAULT);
    let norm = rws_image::tensor::Normalize::IDENTITY;
    for _ in 0..5 {
        std::hint::black_box(o.observe(x, &norm));
    }
    let mut times = Vec::with_capacity(opts.frames.max(1));
    for _ in 0..opts.frames.max(1) {
        let t = Instant::now();
        std::hint::black_box(o.observe(x, &norm));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report.oracle_ms = super::median(&mut times);
    report.oracle_frame_ratio = report.oracle_ms / report.clean_frame_ms;
    report.oracle_head = name;
    Ok(())
}

/// A head of the shipped shape (clean + 19 corruptions, `hidden` tanh units) with small
/// deterministic weights: what a frame costs does not depend on the values.
pub fn synthetic_head(hidden: usize) -> Result<rws_oracle::Head, BenchError> {
    use rws_oracle::head::{Dense, Parts};
    use rws_oracle::N_FEATURES;
    let mut rng = Rng::new(17);
    let mut dense = |i: usize, o: usize| {
        let mut d = Dense::zeros(i, o);
        d.w.iter_mut().for_each(|v| *v = rng.normal() as f32 * 0.1);
        d
    };
    let classes: Vec<String> = std::iter::once("clean".to_string())
        .chain(
            crate::corrupt::Corruption::ALL
                .iter()
                .map(|c| c.name().to_string()),
        )
        .collect();
    let n = classes.len();
    let parts = Parts {
        mean: vec![0.0; N_FEATURES],
        scale: vec![1.0; N_FEATURES],
        hidden: Some(dense(N_FEATURES, hidden)),
        out: dense(hidden, n),
        severity: dense(N_FEATURES, n - 1),
        classes,
    };
    rws_oracle::Head::new(parts).map_err(BenchError::Setup)
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

/// The parameters of `arch`'s first `k` convolutions (with their BatchNorms), with their roles.
fn shallow_layers(arch: &crate::arch::Arch, k: usize) -> Vec<(String, Role, Vec<usize>)> {
    let prefixes: Vec<String> = arch
        .convs()
        .iter()
        .take(k)
        .flat_map(|&(i, _, _)| [format!("features.{i}."), format!("features.{}.", i + 1)])
        .collect();
    arch.param_shapes()
        .into_iter()
        .filter(|(n, _)| prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .map(|(n, s)| {
            let bn = s.len() == 1 && !prefixes.iter().step_by(2).any(|p| n == format!("{p}bias"));
            let role = match n.rsplit('.').next() {
                Some("running_mean") => Role::BnMean,
                Some("running_var") => Role::BnVar,
                Some("weight") if bn => Role::BnScale,
                Some("bias") if bn => Role::BnBias,
                Some("bias") => Role::Bias,
                _ => Role::Weight,
            };
            (n, role, s)
        })
        .collect()
}

/// Writes a model of architecture `arch` with seeded random weights (`model.onnx`) and 19
/// random int8 signatures over its first five convolutions into `dir`: a stand-in for a model of
/// that size when no trained one is at hand (timings do not depend on the values).
pub fn make_synthetic(arch: &crate::arch::Arch, dir: &Path, seed: u64) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut weights = arch.init(seed);
    // Trained biases and BatchNorm statistics are small and distinct; zero ones would all be
    // one constant to tract.
    let mut brng = Rng::new(seed ^ 0xb1a5);
    for (name, p) in weights.iter_mut() {
        let mut jitter = |v: &mut f32, base: f32| *v = base + (brng.normal() * 0.01) as f32;
        if p.shape.len() == 1 {
            let base = if name.ends_with("running_var") || name.ends_with("weight") {
                1.0
            } else {
                0.0
            };
            p.values.iter_mut().for_each(|v| jitter(v, base));
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
    let layers = shallow_layers(arch, 5);
    let mut rng = Rng::new(seed ^ 0x5157);
    let sum = |p: &Path| {
        rws_signature::manifest::checksum(p).map_err(|e| BenchError::Setup(e.to_string()))
    };
    let (crc32c, bytes) = sum(&model)?;
    let mut manifest = Manifest {
        model: ModelEntry {
            file: "model.onnx".into(),
            arch: arch.name.clone(),
            dataset: "synthetic (seeded random weights)".into(),
            input: format!("NCHW 1x3x{0}x{0} RGB in [0,1]", arch.side),
            crc32c,
            bytes,
            sha256: None,
        },
        signatures: Vec::new(),
        oracle: None,
    };
    for c in crate::corrupt::Corruption::ALL {
        let tensors = super::random_tensors(&layers, &mut rng);
        let mut meta = Metadata::new(c.name(), 5);
        meta.source_model = format!("{} (synthetic)", arch.name);
        let path = dir.join(format!("{}.rws", c.name()));
        rws_signature::format::write_signature(&path, &meta, &tensors, DType::I8)?;
        let (crc32c, bytes) = sum(&path)?;
        manifest.signatures.push(SignatureEntry {
            corruption: c.name().into(),
            file: format!("{}.rws", c.name()),
            group: c.group().to_string(),
            severity: 5,
            crc32c,
            bytes,
            sha256: None,
        });
    }
    // A manifest too, so rwsd configs (and its benches) can run the synthetic model.
    let path = dir.join("manifest.json");
    manifest
        .save(&path)
        .map_err(|e| BenchError::Setup(e.to_string()))
}
