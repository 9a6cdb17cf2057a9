//! `rws bench`: runtime timings against the unpatched plan, in one process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rws_lab::bench::probe::{self, Mode, ProbeReport};
use rws_lab::bench::runtime::{self as rb, Options, Report};

/// Measure the runtime: frame time patched vs clean, switch latency, stalls, patch kernel vs
/// memcpy; load time, RSS and peak RSS against plain tract; a SIGHUP-style reload's peak RSS
/// and its frames; the cost of reloading a full model.
///
/// Timings are measured in this process against a baseline run alongside it; load times and
/// memory in fresh child processes (plain tract: tract-onnx's own loader on the same model and
/// input; rws with no signatures; rws with all mapped and active; a reload). Frame times are medians. `switch_frames` counts frames that started after a
/// coefficient request and still ran on the old weights, with frames paced at `--fps` (a camera);
/// `switch_frames_unpaced` is the same with frames back to back.
///
/// `--make-synthetic vgg16 --out DIR` first writes a VGG-16 (CIFAR layout, 14.7 M parameters)
/// with random weights and 19 random int8 signatures over its first five convolutions, to time a
/// model of that size.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The clean ONNX model.
    #[arg(long, required_unless_present = "make_synthetic")]
    model: Option<PathBuf>,
    /// Directory of `.rws` files (all are loaded).
    #[arg(long, required_unless_present = "make_synthetic")]
    signatures: Option<PathBuf>,
    /// Frames per configuration in the steady-state comparison.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Coefficient switches measured, paced and unpaced each.
    #[arg(long, default_value_t = 12)]
    switches: usize,
    /// Camera frame rate for the paced switch measurement.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write a synthetic model and signatures of this architecture (`vgg16`, `demo`) to --out.
    #[arg(long, value_name = "ARCH")]
    make_synthetic: Option<String>,
    /// Output directory for --make-synthetic.
    #[arg(long, requires = "make_synthetic")]
    out: Option<PathBuf>,
    /// Internal: run one child probe (`plain`, `clean`, `all`, `reload`), print its JSON, exit.
    #[arg(long, hide = true)]
    probe: Option<String>,
    /// Internal: the input shape for --probe, e.g. `1,3,32,32`.
    #[arg(long, hide = true)]
    shape: Option<String>,
    /// Child processes per load figure (their median is reported).
    #[arg(long, default_value_t = 3)]
    load_runs: usize,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if let Some(arch) = &args.make_synthetic {
        let a =
            rws_lab::arch::Arch::by_name(arch).with_context(|| format!("unknown arch '{arch}'"))?;
        let out = args
            .out
            .clone()
            .context("--make-synthetic needs --out DIR")?;
        rb::make_synthetic(&a, &out, 2023)?;
        outln!("wrote {}/model.onnx and 19 signatures", out.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(model), Some(dir)) = (&args.model, &args.signatures) else {
        bail!("--model and --signatures are required");
    };
    let files = rb::signature_files(dir)?;
    if let Some(which) = &args.probe {
        let mode = Mode::parse(which).with_context(|| format!("unknown probe '{which}'"))?;
        let shape = parse_shape(args.shape.as_deref().context("--probe needs --shape")?)?;
        let r = probe::run(mode, model, &files, &shape)?;
        outln!("{}", serde_json::to_string(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The set's camera-only oracle head, when it ships one at the bench's input size.
    let head = dir.join("oracle.rwo");
    let opts = Options {
        frames: args.frames,
        switches: args.switches,
        fps: args.fps,
        oracle_head: head.is_file().then_some(head),
    };
    let mut report = rb::run(model, &files, &opts)?;
    memory_and_load(&mut report, model, dir, args.load_runs.max(1))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("--shape: '{d}'"))
        })
        .collect()
}

/// Fills the memory and load figures from fresh child processes: `runs` of plain tract and of
/// rws with all signatures (medians), one of rws with none, one reload.
fn memory_and_load(
    r: &mut Report,
    model: &std::path::Path,
    dir: &std::path::Path,
    runs: usize,
) -> Result<()> {
    let shape = r
        .input_shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let many = |mode: Mode| -> Result<Vec<ProbeReport>> {
        (0..runs).map(|_| child(model, dir, mode, &shape)).collect()
    };
    let med = |v: &[ProbeReport], f: fn(&ProbeReport) -> f64| {
        rws_lab::bench::median(&mut v.iter().map(f).collect::<Vec<_>>())
    };
    let plain = many(Mode::Plain)?;
    let all = many(Mode::All)?;
    let clean = child(model, dir, Mode::Clean, &shape)?;
    let reload = child(model, dir, Mode::Reload, &shape)?;
    r.rss_clean_mb = clean.rss_mb;
    r.rss_all_mb = med(&all, |p| p.rss_mb);
    r.rss_ratio = r.rss_all_mb / r.rss_clean_mb;
    r.rss_plain_tract_mb = med(&plain, |p| p.rss_mb);
    r.rss_vs_tract = r.rss_all_mb / r.rss_plain_tract_mb;
    r.rss_all_anon_mb = med(&all, |p| p.rss_anon_mb);
    r.rss_plain_tract_anon_mb = med(&plain, |p| p.rss_anon_mb);
    r.rss_anon_vs_tract = r.rss_all_anon_mb / r.rss_plain_tract_anon_mb;
    r.load_ms = med(&all, |p| p.load_ms);
    r.load_plain_tract_ms = med(&plain, |p| p.load_ms);
    r.load_vs_tract = r.load_ms / r.load_plain_tract_ms;
    r.load_peak_mb = med(&all, |p| p.peak_mb);
    r.load_peak_plain_tract_mb = med(&plain, |p| p.peak_mb);
    r.reload_peak_mb = reload.reload_peak_mb;
    r.reload_steady_mb = reload.rss_mb;
    r.reload_peak_target_mb = 1.2 * reload.rss_mb + (reload.rss_mb - reload.base_mb);
    r.reload_ms = reload.reload_ms;
    r.reload_frames = reload.reload_frames;
    r.reload_frame_ratio = reload.reload_frame_ratio;
    r.reload_frame_ratio_max = reload.reload_frame_ratio_max;
    Ok(())
}

/// One fresh `rws bench --probe` child, so allocations of this process do not count.
fn child(
    model: &std::path::Path,
    dir: &std::path::Path,
    mode: Mode,
    shape: &str,
) -> Result<ProbeReport> {
    let exe = std::env::current_exe().context("locating the rws binary")?;
    let out = std::process::Command::new(&exe)
        .args(["bench", "--probe", mode.name(), "--shape", shape, "--model"])
        .arg(model)
        .arg("--signatures")
        .arg(dir)
        .output()
        .context("running a bench probe")?;
    if !out.status.success() {
        bail!(
            "bench probe ({}) failed: {}",
            mode.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("reading a bench probe's answer")
}

fn print_table(r: &Report) -> std::io::Result<()> {
    outln!(
        "model {} — {} signatures, {} patched tensors ({} params), cut at {:?}",
        r.model,
        r.signatures,
        r.patched_tensors,
        r.patched_params,
        r.cut
    )?;
    let rows: [(&str, String); 23] = [
        (
            "clean frame (one plan)",
            format!("{:.3} ms", r.clean_frame_ms),
        ),
        (
            "camera-only oracle",
            format!(
                "{:.4} ms, {:.4} of a clean frame (target ≤ 0.02 demo, ≤ 0.01 VGG-16); head {}",
                r.oracle_ms, r.oracle_frame_ratio, r.oracle_head
            ),
        ),
        (
            "patched frame (split)",
            format!("{:.3} ms", r.patched_frame_ms),
        ),
        (
            "steady ratio",
            format!("{:.3}  (target ≤ 1.02)", r.steady_ratio),
        ),
        ("prefix build", format!("{:.2} ms", r.prefix_build_ms)),
        (
            "switch, paced",
            format!(
                "{:.2} ms median, {:.2} ms max at {} fps",
                r.switch_ms, r.switch_ms_max, r.fps
            ),
        ),
        (
            "switch frames, paced",
            format!("{}  (target ≤ 1)", r.switch_frames),
        ),
        (
            "switch, back to back",
            format!("{:.2} ms median", r.switch_ms_unpaced),
        ),
        (
            "switch frames, back to back",
            format!("{}", r.switch_frames_unpaced),
        ),
        (
            "stalled frames",
            format!(
                "{}  (longest swap {:.3} ms; target 0)",
                r.stalled_frames, r.longest_swap_ms
            ),
        ),
        (
            "frames during a build",
            format!("{:.3}× steady", r.switch_window_ratio),
        ),
        (
            "patch kernel vs memcpy",
            format!("{:.2}×", r.patch_vs_memcpy),
        ),
        ("RSS, no signatures", format!("{:.1} MiB", r.rss_clean_mb)),
        (
            "RSS, all mapped + active",
            format!("{:.1} MiB", r.rss_all_mb),
        ),
        ("RSS ratio", format!("{:.3}  (target ≤ 1.1)", r.rss_ratio)),
        (
            "RSS, plain tract",
            format!(
                "{:.1} MiB; all active / plain {:.3}  (target ≤ 1.1)",
                r.rss_plain_tract_mb, r.rss_vs_tract
            ),
        ),
        (
            "RSS, anonymous (heap) only",
            format!(
                "{:.1} MiB all active, {:.1} MiB plain tract: {:.3}",
                r.rss_all_anon_mb, r.rss_plain_tract_anon_mb, r.rss_anon_vs_tract
            ),
        ),
        (
            "load, rws (all signatures)",
            format!("{:.1} ms, peak {:.1} MiB", r.load_ms, r.load_peak_mb),
        ),
        (
            "load, plain tract",
            format!(
                "{:.1} ms, peak {:.1} MiB",
                r.load_plain_tract_ms, r.load_peak_plain_tract_mb
            ),
        ),
        (
            "load ratio",
            format!("{:.3}  (target ≤ 1.5)", r.load_vs_tract),
        ),
        (
            "reload (SIGHUP) peak",
            format!(
                "{:.1} MiB from steady {:.1} MiB  (target ≤ {:.1})",
                r.reload_peak_mb, r.reload_steady_mb, r.reload_peak_target_mb
            ),
        ),
        (
            "frames during reload",
            format!(
                "{} in {:.0} ms: median {:.3}×, longest {:.3}× steady  (target ≤ 1.1)",
                r.reload_frames, r.reload_ms, r.reload_frame_ratio, r.reload_frame_ratio_max
            ),
        ),
        (
            "full model reload",
            format!(
                "{:.1} ms ({:.1} frames)",
                r.full_reload_ms,
                r.full_reload_ms / r.clean_frame_ms
            ),
        ),
    ];
    for (k, v) in rows {
        outln!("  {k:30} {v}")?;
    }
    Ok(())
}
