//! Field faults, each as it happened on a device: a camera pipeline that restarts (the frame
//! FIFO's writer goes away and comes back), `--check` beside a running daemon on a FIFO nobody
//! writes, reloads that change the sensors (no thread or descriptor may outlive its sensor), and
//! a multi-byte NMEA address followed by good readings.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rws_testkit::{mkfifo, repo};

use crate::daemon::socket_request;

/// A live config reading 32×32 gray frames from the FIFO `frames` in `dir`, with a socket, an
/// output file and `extra` appended (sensor tables).
pub(crate) fn fifo_config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = format!(
        "[model]\nsignatures = {sigs:?}\n[model.input]\nwidth = 32\nheight = 32\n\
         [frames]\nsource = \"raw\"\npath = {frames:?}\nwidth = 32\nheight = 32\nformat = \"gray8\"\n\
         [output]\npath = {out:?}\n[control]\nsocket = {sock:?}\n[policy]\n\
         [[policy.rule]]\nsignature = \"fog\"\nsignal = \"visibility_m\"\ncurve = [[1000.0, 0.0], [200.0, 1.0]]\n{extra}",
        sigs = repo().join("signatures"),
        frames = dir.join("frames"),
        out = dir.join("out.jsonl"),
        sock = dir.join("rwsd.sock"),
    );
    let path = dir.join("live.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

pub(crate) fn start(cfg: &Path) -> Running {
    let child = rws_testkit::bin(env!("CARGO_BIN_EXE_rwsd"))
        .args(["--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(Some(child))
}

/// A daemon a test started: killed when dropped, so a failed assertion leaves no rwsd behind
/// (under qemu one would run on, holding a core, through the rest of the lane). [`stop`] ends
/// it the orderly way and checks it exited cleanly.
pub(crate) struct Running(Option<Child>);

impl Running {
    pub(crate) fn id(&self) -> u32 {
        self.0
            .as_ref()
            .map(Child::id)
            .expect("a Running holds its child")
    }

    /// Sends `sig` to the daemon without spawning `kill` (a storm of 100 spawns takes seconds
    /// under qemu-arm).
    pub(crate) fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes plain integers and touches no memory of ours. The pid is that
        // of a child this value holds and has not waited for, so it cannot have been reused by
        // another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }
}

impl From<Running> for Child {
    fn from(mut r: Running) -> Child {
        r.0.take()
            .expect("a Running holds its child until it is taken")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A daemon on a fresh FIFO config in `dir`, once it waits for the FIFO's first writer; returns
/// it and its socket.
fn start_waiting(dir: &Path) -> (Running, PathBuf) {
    mkfifo(&dir.join("frames"));
    let child = start(&fifo_config(dir, ""));
    let sock = dir.join("rwsd.sock");
    wait_status(&sock, |s| s["frame_source"]["state"] == "waiting");
    (child, sock)
}

/// Polls the daemon's status until `done` holds (at most 60 s). Generous because a reload's
/// heavy part runs in the idle scheduling class by design: under qemu, beside another build
/// on both cores, it waits for a free core (10 s was once too short in the ARM lane).
pub(crate) fn wait_status(
    sock: &Path,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if sock.exists() {
            let s = socket_request(sock, r#"{"cmd":"status"}"#)["status"].clone();
            if done(&s) || Instant::now() > end {
                return s;
            }
        } else if Instant::now() > end {
            panic!("no socket at {}", sock.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn stop(child: impl Into<Child>, sock: &Path) {
    let mut child = child.into();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    assert!(!sock.exists());
}

#[test]
fn the_camera_pipeline_restarts_and_frames_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (child, sock) = start_waiting(dir.path());
    // Three pipeline runs: each opens the FIFO, writes frames, and exits.
    for (run, frames) in [(0, 2u64), (1, 3), (2, 1)] {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("frames"))
            .unwrap();
        for _ in 0..frames {
            w.write_all(&[100u8 + run as u8; 32 * 32]).unwrap();
        }
        drop(w);
    }
    let s = wait_status(&sock, |s| s["frames"] == 6);
    assert_eq!(s["frames"], 6, "every frame of every run answered: {s}");
    // Each writer leaving is seen unless the next one opened before the reader looked.
    assert!(
        s["frame_source"]["reconnects"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(
        s["frame_source"]["state"], "waiting",
        "a writer leaving is no fault: {s}"
    );
    assert_eq!(s["frame_errors"], 0, "{s}");
    let lines = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let frames: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["frame"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(frames, [0, 1, 2, 3, 4, 5]);
    stop(child, &sock);
}

#[test]
fn check_is_prompt_and_read_only_beside_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (child, sock) = start_waiting(dir.path());
    let cfg = dir.path().join("live.toml");
    std::fs::write(dir.path().join("out.jsonl"), "kept\n").unwrap();
    let start = Instant::now();
    let out = rws_testkit::bin(env!("CARGO_BIN_EXE_rwsd"))
        .args(["--config", cfg.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "no wait on the FIFO"
    );
    assert!(
        text.contains(": ok") && text.contains("an rwsd is listening"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
        "kept\n",
        "--check truncated the output"
    );
    // The running daemon still answers on its socket.
    let s = socket_request(&sock, r#"{"cmd":"status"}"#);
    assert_eq!(s["ok"], true);
    stop(child, &sock);
    // With the daemon gone and nobody writing the FIFO, --check still returns at once.
    let out = rws_testkit::bin(env!("CARGO_BIN_EXE_rwsd"))
        .args(["--config", cfg.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!sock.exists(), "--check binds nothing");
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn reloads_that_change_the_sensors_leak_no_thread_or_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("frames"));
    mkfifo(&dir.path().join("station"));
    let sensor = |name: &str| {
        format!(
            "[[sensor]]\nname = \"{name}\"\nprotocol = \"nmea\"\nfifo = {:?}\n",
            dir.path().join("station")
        )
    };
    let cfg = fifo_config(dir.path(), &sensor("a"));
    let text_a = std::fs::read_to_string(&cfg).unwrap();
    let text_b = text_a.replace("name = \"a\"", "name = \"b\"");
    let sock = dir.path().join("rwsd.sock");
    let child = start(&cfg);
    let pid = child.id();
    // Up, with its SIGHUP handler installed (before that, SIGHUP would end the process).
    wait_status(&sock, |s| s["frame_source"]["state"] == "waiting");
    let reload = |n: u64, text: &str| {
        std::fs::write(&cfg, text).unwrap();
        child.signal(libc::SIGHUP);
        wait_status(&sock, |s| s["reloads"] == n)
    };
    reload(1, &text_b);
    std::thread::sleep(Duration::from_millis(300));
    let (tasks, fds) = (
        count(&format!("/proc/{pid}/task")),
        count(&format!("/proc/{pid}/fd")),
    );
    // 20 reloads natively; under emulation each one takes seconds, 6 show the same.
    let last = if rws_testkit::emulated() { 7 } else { 21 };
    for n in 2..=last {
        let s = reload(n, if n % 2 == 0 { &text_a } else { &text_b });
        assert_eq!(s["reloads"], n, "{s}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let (tasks2, fds2) = (
        count(&format!("/proc/{pid}/task")),
        count(&format!("/proc/{pid}/fd")),
    );
    assert!(
        tasks2 <= tasks,
        "threads {tasks} → {tasks2} after {} reloads",
        last - 1
    );
    assert!(
        fds2 <= fds,
        "descriptors {fds} → {fds2} after {} reloads",
        last - 1
    );
    stop(child, &sock);
}

#[test]
fn a_multi_byte_nmea_address_is_a_bad_line_and_later_readings_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("station.log");
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(f, "0 $GéAB,1,2*2D").unwrap();
    for t in 1..=10 {
        let body = "WIXDR,C,-4.0,C,AIRTEMP,H,95.0,P,RH";
        writeln!(f, "{t} {}", rwsd::sensors::nmea::sentence(body)).unwrap();
    }
    drop(f);
    let cfg = dir.path().join("frost.toml");
    let text = format!(
        "[model]\nsignatures = {sigs:?}\n[model.input]\nwidth = 32\nheight = 32\n\
         [frames]\nsource = \"dir\"\npath = \".\"\n[clock]\nmode = \"replay\"\n\
         [[sensor]]\nname = \"station\"\nprotocol = \"nmea\"\nfile = {log:?}\ntimestamps = true\n\
         [policy]\nramp_per_s = 10.0\n[[policy.rule]]\nsignature = \"frost\"\nsignal = \"air_temp_c\"\n\
         curve = [[0.0, 0.0], [-3.0, 1.0]]\nand = {{ signal = \"humidity_pct\", curve = [[75.0, 0.0], [90.0, 1.0]] }}\n",
        sigs = repo().join("signatures"),
    );
    std::fs::write(&cfg, text).unwrap();
    let out = rws_testkit::run(
        env!("CARGO_BIN_EXE_rwsctl"),
        &["replay", "--config", cfg.to_str().unwrap(), "--tail", "0"],
    );
    assert_eq!(out.0, 0, "{}", out.2);
    assert!(
        out.1.contains("frost=1.000"),
        "the frost rule engaged: {}",
        out.1
    );
    assert!(
        out.1.contains("# sensor station: readings=10 bad=1"),
        "{}",
        out.1
    );
    // Through a live reader too: the line reader and the driver take it without a panic.
    let spec = rwsd::sensors::driver::SensorSpec {
        index: 0,
        name: "station".into(),
        protocol: rwsd::sensors::Protocol::Nmea,
        source: rwsd::sensors::driver::Source::File(log.clone()),
        timestamps: true,
    };
    let events = rwsd::replay::read_events(&spec, std::fs::File::open(&log).unwrap()).unwrap();
    assert_eq!(events.len(), 11);
}
