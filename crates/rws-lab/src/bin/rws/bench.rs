//! `rws bench`: runtime timings against the unpatched plan, in one process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rws_lab::bench::runtime::{self as rb, Options, Report};

/// Measure the runtime: frame time patched vs clean, switch latency, stalls, patch kernel vs
/// memcpy, RSS with 0 and all signatures, and the cost of reloading a full model.
///
/// Everything is measured in this process against a baseline run alongside it (RSS in two fresh
/// child processes). Frame times are medians. `switch_frames` counts frames that started after a
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
    /// Internal: print this process's RSS after loading (`clean` or `all`) and exit.
    #[arg(long, hide = true)]
    rss_probe: Option<String>,
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
    if let Some(which) = &args.rss_probe {
        let mb = rb::rss_probe(model, &files, which == "all")?;
        outln!("{mb}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = Options {
        frames: args.frames,
        switches: args.switches,
        fps: args.fps,
    };
    let mut report = rb::run(model, &files, &opts)?;
    report.rss_clean_mb = probe(model, dir, "clean")?;
    report.rss_all_mb = probe(model, dir, "all")?;
    report.rss_ratio = report.rss_all_mb / report.rss_clean_mb;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// RSS of a fresh `rws bench --rss-probe` child, so allocations of this process do not count.
fn probe(model: &std::path::Path, dir: &std::path::Path, which: &str) -> Result<f64> {
    let exe = std::env::current_exe().context("locating the rws binary")?;
    let out = std::process::Command::new(&exe)
        .args(["bench", "--rss-probe", which, "--model"])
        .arg(model)
        .arg("--signatures")
        .arg(dir)
        .output()
        .context("running the RSS probe")?;
    if !out.status.success() {
        bail!(
            "RSS probe ({which}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading the RSS probe's answer")
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
    let rows: [(&str, String); 15] = [
        (
            "clean frame (one plan)",
            format!("{:.3} ms", r.clean_frame_ms),
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
