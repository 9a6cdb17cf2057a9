//! The daemon's frame loop, measured in the daemon itself (`rwsd::daemon::Daemon`, the code
//! `rwsd` runs), not a model of it:
//!
//! - **allocations per steady frame**, counted by a counting global allocator over every thread,
//!   against the allocations of `Session::run` alone on the same model (tract's, listed apart);
//! - **daemon overhead**: per frame, the time from taking a frame off the queue to its line
//!   written, less the time inside `Session::run` (preprocess, policy, output), and the source
//!   thread's read and decode time;
//! - **a reload** (what SIGHUP starts) while frames run: the frames during it against steady
//!   frames, and its peak resident set (the kernel's high-water mark reset first);
//! - **idle** (`--idle S`): no frames arriving and quiet sensors, the process's CPU time over
//!   `S` seconds from `/proc/self/stat`, then how long the loop takes to answer a frame that
//!   arrives.
//!
//! ```text
//! cargo bench -p rwsd --bench frame_loop                      # the shipped demo model
//! cargo bench -p rwsd --bench frame_loop -- --signatures target/bench-vgg16 --frames 300
//! cargo bench -p rwsd --bench frame_loop -- --idle 60
//! cargo bench -p rwsd --bench frame_loop -- --oracle           # with the camera-only oracle
//! ```
//! `target/bench-vgg16` comes from `rws bench --make-synthetic vgg16 --out target/bench-vgg16`.
//! Everything runs in this one process; figures are printed as `key value` lines and, with
//! `--json`, as one JSON object.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rwsd::daemon::{Daemon, Tick, Timings};

/// Counts allocations (and reallocations, which may move) of every thread.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

struct Args {
    signatures: PathBuf,
    frames: usize,
    idle_s: f64,
    json: bool,
    oracle: bool,
}

fn args() -> Args {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        signatures: repo.join("signatures"),
        frames: 2000,
        idle_s: 0.0,
        json: false,
        oracle: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--signatures" => a.signatures = it.next().map(PathBuf::from).unwrap_or(a.signatures),
            "--frames" => a.frames = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.frames),
            "--idle" => a.idle_s = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0),
            "--json" => a.json = true,
            "--oracle" => a.oracle = true,
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

/// The model's input side, from the manifest's `input` ("NCHW 1x3xHxW …").
fn input_side(dir: &Path) -> (usize, usize) {
    let m = rws_signature::manifest::Manifest::load(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dims = m
        .model
        .input
        .split_whitespace()
        .nth(1)
        .unwrap_or("1x3x32x32");
    let d: Vec<usize> = dims.split('x').filter_map(|x| x.parse().ok()).collect();
    (d[2], d[3])
}

/// A config running `dir`'s model live on raw frames from `frames`, every signature on at once
/// through overrides (so the patched prefix runs), lines to /dev/null, and `sensors`.
fn config(dir: &Path, work: &Path, frames: &Path, side: (usize, usize), sensors: &str) -> PathBuf {
    let m = rws_signature::manifest::Manifest::load(dir.join("manifest.json")).unwrap();
    let overrides: String = m
        .signatures
        .iter()
        .map(|s| {
            format!(
                "{} = {:.4}\n",
                s.corruption,
                1.0 / m.signatures.len() as f64
            )
        })
        .collect();
    let text = format!(
        r#"[model]
signatures = "{dir}"
[model.input]
width = {w}
height = {h}

[frames]
source = "raw"
path = "{frames}"
width = {w}
height = {h}
format = "rgb24"

[clock]
mode = "live"

[output]
path = "/dev/null"
top_k = 5

{sensors}

[policy]
max_total_alpha = 2.0

[policy.overrides]
{overrides}"#,
        dir = dir.canonicalize().unwrap().display(),
        frames = frames.display(),
        w = side.1,
        h = side.0,
    );
    let path = work.join("bench.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `n` deterministic rgb24 frames in one file.
fn raw_frames(path: &Path, side: (usize, usize), n: usize) {
    let len = side.0 * side.1 * 3;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x2545_f491_u32;
    for _ in 0..n * len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.write_all(&[(x >> 24) as u8]).unwrap();
    }
}

fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) of this process, all threads, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line: 11 and 12 here.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

fn never() -> bool {
    false
}

/// Runs ticks until `n` frames were answered; returns the allocations of each frame's tick.
fn frames(d: &mut Daemon, n: usize) -> Vec<u64> {
    let mut per_frame = Vec::with_capacity(n);
    while per_frame.len() < n {
        let a0 = allocs().0;
        match d.tick(&never) {
            Tick::Frame => per_frame.push(allocs().0 - a0),
            Tick::Ended => panic!("the frame file ended early"),
            Tick::Idle => {}
        }
    }
    per_frame
}

/// Allocations and bytes of one `Session::run_into` on this model with every signature on, the
/// same coefficients as the daemon runs.
fn session_allocs(dir: &Path) -> (f64, f64) {
    let m = rws_signature::manifest::Manifest::load(dir.join("manifest.json")).unwrap();
    let files: Vec<PathBuf> = m.signatures.iter().map(|s| dir.join(&s.file)).collect();
    let model = dir.join(&m.model.file);
    let sigs: Vec<_> = files
        .iter()
        .map(|f| rws_signature::SignatureFile::open(f).unwrap())
        .collect();
    let n = sigs.len();
    let rt = Arc::new(
        rws_runtime::Runtime::load(&model, sigs, &rws_runtime::RuntimeOptions::default()).unwrap(),
    );
    let mut s = rws_runtime::Session::new(rt.clone()).unwrap();
    let coeffs: Vec<(usize, f32)> = (0..n).map(|i| (i, 1.0 / n as f32)).collect();
    s.set_coefficients(&coeffs).unwrap();
    s.wait_ready(Duration::from_secs(60));
    let x = vec![0.5f32; rt.input_len()];
    let mut logits = Vec::new();
    for _ in 0..20 {
        s.run_into(&x, &mut logits).unwrap();
    }
    let runs = 200;
    let (a0, b0) = allocs();
    for _ in 0..runs {
        s.run_into(&x, &mut logits).unwrap();
    }
    let (a1, b1) = allocs();
    (
        (a1 - a0) as f64 / runs as f64,
        (b1 - b0) as f64 / runs as f64,
    )
}

fn per_frame(after: &Timings, before: &Timings) -> (f64, f64, f64, f64) {
    let n = (after.frames - before.frames).max(1) as f64;
    let step = (after.step - before.step).as_secs_f64() / n * 1e6;
    let run = (after.run - before.run).as_secs_f64() / n * 1e6;
    let reads = (after.read_frames - before.read_frames).max(1) as f64;
    let read = (after.read - before.read).as_secs_f64() / reads * 1e6;
    (step, run, step - run, read)
}

fn main() {
    // As `rwsd` runs: one malloc arena (`MALLOC_ARENA_MAX=8` in the environment compares).
    rwsd::source::bound_malloc_arenas();
    let a = args();
    let work = tempfile::tempdir().unwrap();
    let side = input_side(&a.signatures);
    let mut out: Vec<(&str, String)> = Vec::new();
    if a.idle_s > 0.0 {
        idle(&a, work.path(), side, &mut out);
    } else {
        steady(&a, work.path(), side, &mut out);
    }
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> = out
            .iter()
            .map(|(k, v)| {
                let val = v
                    .parse::<f64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| v.clone().into());
                (k.to_string(), val)
            })
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        for (k, v) in out {
            println!("{k:32} {v}");
        }
    }
}

fn steady(a: &Args, work: &Path, side: (usize, usize), out: &mut Vec<(&str, String)>) {
    let warm = 100.min(a.frames);
    let reload_frames = a.frames;
    let total = warm + a.frames + reload_frames + 200;
    let raw = work.join("frames.rgb");
    raw_frames(&raw, side, total);
    // `--oracle`: the camera-only oracle runs on every frame too (the set's head).
    let oracle = if a.oracle { "[oracle]" } else { "" };
    let cfg = config(&a.signatures, work, &raw, side, oracle);
    let mut d = Daemon::start(&cfg).unwrap_or_else(|e| panic!("{e:#}"));
    frames(&mut d, warm);
    // Steady frames: allocations of every thread and the loop's timings.
    let t0 = d.timings();
    let (a0, b0) = allocs();
    let per_tick = frames(&mut d, a.frames);
    let (a1, b1) = allocs();
    let t1 = d.timings();
    let n = a.frames as f64;
    let (step, run, over, read) = per_frame(&t1, &t0);
    let (tract_allocs, tract_bytes) = session_allocs(&a.signatures);
    let frame_allocs = (a1 - a0) as f64 / n;
    out.push(("model", a.signatures.display().to_string()));
    out.push(("input", format!("{}x{}", side.0, side.1)));
    out.push(("frames", a.frames.to_string()));
    out.push(("allocs_per_frame", format!("{frame_allocs:.2}")));
    out.push((
        "alloc_bytes_per_frame",
        format!("{:.0}", (b1 - b0) as f64 / n),
    ));
    out.push(("allocs_per_run_tract", format!("{tract_allocs:.2}")));
    out.push(("alloc_bytes_per_run_tract", format!("{tract_bytes:.0}")));
    out.push((
        "allocs_per_frame_daemon",
        format!("{:.2}", frame_allocs - tract_allocs),
    ));
    // Frames whose tick allocated more than the model run itself: the status refreshes (every
    // 250 ms) and anything else the daemon still allocates.
    let tract = tract_allocs.round() as u64;
    let extra: Vec<u64> = per_tick.iter().map(|&x| x.saturating_sub(tract)).collect();
    let with_extra: Vec<u64> = extra.iter().copied().filter(|&x| x > 0).collect();
    let mut sorted = extra.clone();
    sorted.sort_unstable();
    out.push((
        "daemon_allocs_median_frame",
        sorted
            .get(sorted.len() / 2)
            .copied()
            .unwrap_or(0)
            .to_string(),
    ));
    out.push((
        "frames_with_daemon_allocs",
        format!("{} of {}", with_extra.len(), per_tick.len()),
    ));
    out.push((
        "daemon_allocs_when_any",
        format!(
            "{}..{}",
            with_extra.iter().min().unwrap_or(&0),
            with_extra.iter().max().unwrap_or(&0)
        ),
    ));
    out.push((
        "status_refreshes_about",
        format!("{:.0}", (t1.step - t0.step).as_secs_f64() / 0.25),
    ));
    out.push(("frame_us", format!("{step:.1}")));
    out.push(("run_us", format!("{run:.1}")));
    out.push(("overhead_us", format!("{over:.2}")));
    out.push(("overhead_fraction", format!("{:.4}", over / step)));
    out.push(("read_us", format!("{read:.1}")));
    reload(&mut d, reload_frames, &t1, out);
}

/// A reload (as on SIGHUP) while frames run: frames during it against the steady median, and
/// the peak resident set while it runs.
fn reload(d: &mut Daemon, budget: usize, steady: &Timings, out: &mut Vec<(&str, String)>) {
    let steady_us = (steady.step.as_secs_f64() / steady.frames.max(1) as f64) * 1e6;
    let rss = memory_mb().0;
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = Instant::now();
    d.request_reload();
    let mut during = Vec::new();
    let mut done = false;
    while !done && during.len() < budget {
        let before = d.timings();
        if d.tick(&never) == Tick::Frame {
            let after = d.timings();
            during.push((after.step - before.step).as_secs_f64() * 1e6);
        }
        done = d.finish_reload();
    }
    let reload_ms = start.elapsed().as_secs_f64() * 1e3;
    frames(d, 20);
    let peak = memory_mb().1;
    let status = d.status();
    during.sort_by(f64::total_cmp);
    let med = during.get(during.len() / 2).copied().unwrap_or(steady_us);
    let max = during.last().copied().unwrap_or(steady_us);
    out.push(("reload_done", done.to_string()));
    out.push(("reload_error", status.last_reload_error.unwrap_or_default()));
    out.push(("reload_ms", format!("{reload_ms:.1}")));
    out.push(("reload_frames", during.len().to_string()));
    out.push(("reload_frame_ratio", format!("{:.3}", med / steady_us)));
    out.push(("reload_frame_ratio_max", format!("{:.3}", max / steady_us)));
    out.push(("rss_steady_mb", format!("{rss:.1}")));
    out.push((
        "reload_peak_mb",
        if reset {
            format!("{peak:.1}")
        } else {
            "n/a (clear_refs)".into()
        },
    ));
}

fn idle(a: &Args, work: &Path, side: (usize, usize), out: &mut Vec<(&str, String)>) {
    let fifo = work.join("frames.fifo");
    rws_testkit::mkfifo(&fifo);
    let sensor_fifo = work.join("camera.fifo");
    rws_testkit::mkfifo(&sensor_fifo);
    let sensors = format!(
        r#"[[sensor]]
name = "camera"
protocol = "camera"
fifo = "{}"

[[sensor]]
name = "pwd"
protocol = "pwd"
port = "/dev/rws-bench-unplugged"
baud = 9600"#,
        sensor_fifo.display()
    );
    let cfg = config(&a.signatures, work, &fifo, side, &sensors);
    let mut d = Daemon::start(&cfg).unwrap_or_else(|e| panic!("{e:#}"));
    // Settle (threads started, first status), then measure with nobody writing anything.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        d.tick(&never);
    }
    let (c0, w0) = (cpu_time(), Instant::now());
    while w0.elapsed().as_secs_f64() < a.idle_s {
        d.tick(&never);
    }
    let (cpu, wall) = (cpu_time() - c0, w0.elapsed());
    out.push(("idle_s", format!("{:.1}", wall.as_secs_f64())));
    out.push((
        "idle_cpu_fraction",
        format!("{:.5}", cpu.as_secs_f64() / wall.as_secs_f64()),
    ));
    // Wake: a camera pipeline starts and writes frames at 30 fps; how long from each write to
    // the frame's answer.
    let len = side.0 * side.1 * 3;
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .unwrap();
        for i in 0..10u8 {
            let _ = tx.send(Instant::now());
            f.write_all(&vec![i; len]).unwrap();
            std::thread::sleep(Duration::from_millis(33));
        }
    });
    let mut wakes = Vec::new();
    while wakes.len() < 10 {
        if d.tick(&never) == Tick::Frame {
            if let Ok(sent) = rx.recv_timeout(Duration::from_secs(5)) {
                wakes.push(sent.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let _ = writer.join();
    let first = wakes[0];
    wakes.sort_by(f64::total_cmp);
    out.push(("wake_ms_first", format!("{first:.2}")));
    out.push(("wake_ms_max", format!("{:.2}", wakes[wakes.len() - 1])));
    out.push(("wake_ms_median", format!("{:.2}", wakes[wakes.len() / 2])));
}
