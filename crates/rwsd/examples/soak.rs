//! The million-frame soak (issue 15): a real `rwsd` process on the shipped demo model, raw
//! frames streamed through a FIFO as fast as it takes them, the three demo sensor logs looping
//! through FIFOs (live clock), a coefficient override changed through the socket every 3 s,
//! and a SIGHUP every 100,000 frames. Every 5 s it samples the daemon's resident set, threads
//! and open descriptors from `/proc`; at the end it prints the figures docs/reliability.md
//! quotes and exits 1 if a target is missed (RSS growth after warm-up — through the first
//! reload — over 1 %, any thread or descriptor growth, a frame sent and not answered, the
//! daemon gone).
//!
//! ```text
//! cargo build -p rwsd --bins --examples && target/debug/examples/soak --frames 1000000
//! ```
//! (`--release` works the same, with `target/release/…`; the dev profile keeps debug
//! assertions on, so an overflow in a million frames would show.) Not in CI (it takes
//! minutes); `--frames 20000` is a quick look. `--rwsd PATH` runs another build.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rwsd::protocol::Request;

const SIGHUP_EVERY: u64 = 100_000;

#[derive(Clone, Copy, Debug)]
struct Sample {
    frames: u64,
    rss_kb: u64,
    threads: usize,
    fds: usize,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let frames: u64 = arg("--frames").map_or(Ok(1_000_000), |f| f.parse())?;
    let rwsd = arg("--rwsd").map_or_else(sibling_rwsd, PathBuf::from);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("rws-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = write_config(&dir, &repo)?;
    for f in ["frames", "pwd", "nmea", "camera"] {
        let ok = Command::new("mkfifo").arg(dir.join(f)).status()?.success();
        if !ok {
            return Err(format!("mkfifo {}", dir.join(f).display()).into());
        }
    }
    let child = Command::new(&rwsd)
        .args(["--config", cfg.to_str().ok_or("a UTF-8 temp dir")?])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e} (cargo build -p rwsd --bins)", rwsd.display()))?;
    let result = soak(&child, &dir, &repo, frames);
    let ok = finish(child, &dir, result)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(ok)
}

/// `rwsd` beside this example's binary (`target/release/examples/soak` → `target/release/rwsd`).
fn sibling_rwsd() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("rwsd"), |d| d.join("rwsd"))
}

fn write_config(dir: &Path, repo: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let demo = std::fs::read_to_string(repo.join("firmware-config/demo.toml"))?;
    // The demo's policy (every rule after `[policy]`), on live FIFOs instead of replay logs.
    let policy = demo
        .find("[policy]")
        .map(|i| &demo[i..])
        .ok_or("demo.toml has no [policy]")?;
    let sensor = |name: &str, protocol: &str| {
        format!(
            "[[sensor]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nfifo = {:?}\nstale_after_s = 30\n\n",
            dir.join(name)
        )
    };
    let text = format!(
        "[model]\nsignatures = {sigs:?}\n[model.input]\nwidth = 32\nheight = 32\n\
         [frames]\nsource = \"raw\"\npath = {frames:?}\nwidth = 32\nheight = 32\nformat = \"rgb24\"\n\
         [output]\npath = \"/dev/null\"\n[control]\nsocket = {sock:?}\n\n{}{}{}{policy}",
        sensor("pwd", "pwd"),
        sensor("nmea", "nmea"),
        sensor("camera", "camera"),
        sigs = repo.join("signatures"),
        frames = dir.join("frames"),
        sock = dir.join("rwsd.sock"),
    );
    let path = dir.join("soak.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// What the soak saw: frames sent, samples, SIGHUPs sent, overrides set.
struct Seen {
    sent: u64,
    samples: Vec<Sample>,
    hups: u64,
    overrides: u64,
    elapsed: Duration,
}

fn soak(
    child: &Child,
    dir: &Path,
    repo: &Path,
    frames: u64,
) -> Result<Seen, Box<dyn std::error::Error>> {
    let pid = child.id();
    let sock = dir.join("rwsd.sock");
    let stop = Arc::new(AtomicBool::new(false));
    for (name, log) in [
        ("pwd", "pwd.log"),
        ("nmea", "nmea.log"),
        ("camera", "camera.log"),
    ] {
        loop_log(
            dir.join(name),
            repo.join("firmware-config/demo").join(log),
            stop.clone(),
        )?;
    }
    let sent = Arc::new(AtomicU64::new(0));
    let writer = frame_writer(dir.join("frames"), frames, sent.clone());
    let t0 = Instant::now();
    let (mut samples, mut hups, mut overrides) = (Vec::new(), 0, 0);
    let (mut last_sample, mut last_override) = (Instant::now(), Instant::now());
    while !writer.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let n = sent.load(Ordering::Relaxed);
        if n / SIGHUP_EVERY > hups && n < frames {
            hups += 1;
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()?;
        }
        if last_override.elapsed() >= Duration::from_secs(3) {
            last_override = Instant::now();
            overrides += 1;
            let alpha = [0.0, 0.4, 0.9][overrides as usize % 3];
            let req = Request::Override {
                signature: "snow".into(),
                alpha: Some(alpha),
                ttl_s: None,
            };
            rwsd::client::request(&sock, &req)?;
        }
        if last_sample.elapsed() >= Duration::from_secs(5) {
            last_sample = Instant::now();
            let s = sample(pid, n)?;
            println!(
                "frames {:>9}  rss {:>7} kB  threads {:>3}  fds {:>3}",
                s.frames, s.rss_kb, s.threads, s.fds
            );
            samples.push(s);
        }
    }
    let sent = writer.join().map_err(|_| "the frame writer panicked")??;
    let elapsed = t0.elapsed();
    wait_answered(&sock, sent, hups)?;
    // The last reload's thread and the old set it drops are gone a moment after it counts.
    std::thread::sleep(Duration::from_secs(1));
    samples.push(sample(pid, sent)?);
    stop.store(true, Ordering::Relaxed);
    Ok(Seen {
        sent,
        samples,
        hups,
        overrides,
        elapsed,
    })
}

/// Writes `n` 32×32 RGB frames into the FIFO (it blocks while the daemon is busy).
fn frame_writer(
    fifo: PathBuf,
    n: u64,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<u64, String>> {
    std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .map_err(|e| e.to_string())?;
        let mut frame = vec![0u8; 32 * 32 * 3];
        for i in 0..n {
            frame
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = ((i as usize + j) % 251) as u8);
            w.write_all(&frame).map_err(|e| format!("frame {i}: {e}"))?;
            sent.store(i + 1, Ordering::Relaxed);
        }
        Ok(n)
    })
}

/// Feeds `log`'s lines (timestamps dropped) into the FIFO every 50 ms, round and round.
fn loop_log(
    fifo: PathBuf,
    log: PathBuf,
    stop: Arc<AtomicBool>,
) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&log)?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            rwsd::sensors::line::split_timestamp(l)
                .ok()
                .map(|(_, r)| r.to_string())
        })
        .collect();
    std::thread::spawn(move || {
        let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
            return;
        };
        for l in lines.iter().cycle() {
            if stop.load(Ordering::Relaxed) || writeln!(w, "{l}").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    Ok(())
}

fn sample(pid: u32, frames: u64) -> Result<Sample, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("the daemon is gone: {e}"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or("no VmRSS")?;
    let count = |d: String| std::fs::read_dir(d).map(|d| d.count()).unwrap_or(0);
    Ok(Sample {
        frames,
        rss_kb,
        threads: count(format!("/proc/{pid}/task")),
        fds: count(format!("/proc/{pid}/fd")),
    })
}

/// Waits (30 s at most) until every frame sent is answered and every SIGHUP reloaded.
fn wait_answered(sock: &Path, sent: u64, hups: u64) -> Result<(), Box<dyn std::error::Error>> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = rwsd::client::status(sock)?;
        if (s.frames >= sent && s.reloads >= hups) || Instant::now() > end {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints the figures, stops the daemon (SIGTERM, as systemd does), and judges the run.
fn finish(
    mut child: Child,
    dir: &Path,
    seen: Result<Seen, Box<dyn std::error::Error>>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let status = rwsd::client::status(&dir.join("rwsd.sock"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let exit = child.wait()?;
    let seen = seen?;
    let status = status?;
    // Warm-up: every path has run once, the first reload included (its new set is built beside
    // the old one, and the heap keeps that size): the first sample 50,000 frames past the first
    // SIGHUP (or at 5 % of the frames when there is none). Growth from the 5 % sample, before any
    // reload, is printed too.
    let warm_at = if seen.sent > SIGHUP_EVERY {
        SIGHUP_EVERY + 50_000
    } else {
        seen.sent / 20
    };
    let at = |frames: u64| {
        *seen
            .samples
            .iter()
            .find(|s| s.frames >= frames)
            .unwrap_or(&seen.samples[0])
    };
    let (warm, early) = (at(warm_at), at(seen.sent / 20));
    let end = *seen.samples.last().ok_or("no samples")?;
    let growth = trend_pct(&seen.samples, warm.frames);
    println!(
        "rss_early_kb {} (at frame {}, before any reload) growth_from_early_pct {:.2}",
        early.rss_kb,
        early.frames,
        (end.rss_kb as f64 / early.rss_kb as f64 - 1.0) * 100.0
    );
    let peak = seen.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    println!("frames_sent {}", seen.sent);
    println!("frames_answered {}", status.frames);
    println!("frame_errors {}", status.frame_errors);
    println!("seconds {:.1}", seen.elapsed.as_secs_f64());
    println!(
        "frames_per_s {:.0}",
        seen.sent as f64 / seen.elapsed.as_secs_f64()
    );
    println!(
        "sighups {} reloads {} last_reload_error {:?}",
        seen.hups, status.reloads, status.last_reload_error
    );
    println!(
        "overrides_set {} prefix_builds {}",
        seen.overrides, status.prefix_builds
    );
    println!(
        "rss_warm_kb {} (at frame {}) rss_end_kb {} rss_peak_kb {peak} growth_pct {growth:.2} (median of the last quarter of samples after warm-up against the first)",
        warm.rss_kb, warm.frames, end.rss_kb
    );
    println!(
        "threads_warm {} threads_end {} fds_warm {} fds_end {}",
        warm.threads, end.threads, warm.fds, end.fds
    );
    println!("exit {exit}");
    let ok = status.frames == seen.sent
        && status.frame_errors == 0
        && growth <= 1.0
        && end.threads <= warm.threads
        && end.fds <= warm.fds
        && status.reloads >= seen.hups
        && exit.success();
    println!("{}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

/// Resident-set growth after warm-up, in %: the median of the last quarter of the samples from
/// frame `from` on against the median of their first quarter. The resident set moves by a few
/// hundred kB from sample to sample (tract's scratch, prefix builds, a reload's build beside the
/// running set); two single samples would judge that noise, a leak shows as a trend.
fn trend_pct(samples: &[Sample], from: u64) -> f64 {
    let after: Vec<u64> = samples
        .iter()
        .filter(|s| s.frames >= from)
        .map(|s| s.rss_kb)
        .collect();
    let q = (after.len() / 4).max(1);
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0) as f64
    };
    let (first, last) = (
        median(&after[..q.min(after.len())]),
        median(&after[after.len().saturating_sub(q)..]),
    );
    (last / first - 1.0) * 100.0
}
