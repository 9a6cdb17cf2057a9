//! gpsd-style regression tests for the daemon's sensor side: recorded logs replayed through
//! pseudo-terminals must give exactly the committed coefficient traces; noise, reconnects,
//! staleness, reloads and the demo end to end.

use rws_testkit as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use rwsd::config::Config;
use rwsd::policy::Engine;
use rwsd::sensors::driver::{self, Event, EventKind, SensorSpec, Source};
use serialport::{SerialPort, TTYPort};

use rws_testkit::repo;

/// Replays every sensor log of `config` through its own pseudo-terminal pair (the driver reads
/// the slave side exactly as it reads a serial port) and returns the trace.
fn trace_through_ptys(config: &Path) -> String {
    let cfg = Config::load(config).unwrap();
    let (tx, rx) = mpsc::channel::<Event>();
    let mut threads = Vec::new();
    for spec in &cfg.sensors {
        let Source::File(log) = &spec.source else {
            panic!("test configs replay files")
        };
        let bytes = std::fs::read(log).unwrap();
        let (mut master, mut slave) = TTYPort::pair().expect("pseudo-terminal pair");
        slave.set_timeout(Duration::from_millis(50)).unwrap();
        let spec = spec.clone();
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            // Closing the master makes the slave's reads fail: the end of this replay.
            let _ = driver::pump(&spec, &mut slave, &tx, &stop);
        }));
        threads.push(std::thread::spawn(move || {
            // Odd-sized writes split lines across reads, as a UART does.
            for chunk in bytes.chunks(37) {
                master.write_all(chunk).unwrap();
            }
            master.flush().unwrap();
            // Give the reader time to drain before hanging up.
            std::thread::sleep(Duration::from_millis(300));
        }));
    }
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let events: Vec<Event> = rx.iter().collect();
    let mut engine = Engine::new(cfg.policy.clone(), cfg.stale_after.clone());
    let names: Vec<String> = cfg.sensors.iter().map(|s| s.name.clone()).collect();
    rwsd::replay::trace(&mut engine, &names, &events, 20.0)
}

fn assert_trace(name: &str) {
    let dir = repo().join("tests/data");
    let got = trace_through_ptys(&dir.join(format!("{name}.toml")));
    let want = std::fs::read_to_string(dir.join(format!("{name}.trace"))).unwrap();
    assert_eq!(
        got, want,
        "trace of {name} through ptys differs from tests/data/{name}.trace"
    );
}

#[test]
fn weather_logs_through_ptys_give_the_committed_trace() {
    // Fog ramping with visibility, snow codes, frost from humid sub-zero air (MDA and XDR), a gain
    // spike, a focus drop and a camera that goes silent mid-fault (stale: defocus decays to 0).
    assert_trace("weather");
    let trace = std::fs::read_to_string(repo().join("tests/data/weather.trace")).unwrap();
    assert!(trace
        .contains("t=59 fog=0.000 snow=1.000 frost=0.000 gaussian_noise=0.000 defocus_blur=0.500"));
}

#[test]
fn garbage_binary_overlong_and_bad_checksums_are_counted_and_skipped() {
    assert_trace("noise");
    let trace = std::fs::read_to_string(repo().join("tests/data/noise.trace")).unwrap();
    assert!(
        trace.contains("# sensor station: readings=41 bad=30 checksum=15 too_long=5 binary=5"),
        "{trace}"
    );
}

#[test]
fn demo_logs_give_the_committed_trace() {
    let cfg = Config::load(&repo().join("firmware-config/demo.toml")).unwrap();
    let mut events = Vec::new();
    for spec in &cfg.sensors {
        let Source::File(p) = &spec.source else {
            unreachable!()
        };
        events.extend(rwsd::replay::read_events(spec, std::fs::File::open(p).unwrap()).unwrap());
    }
    let mut engine = Engine::new(cfg.policy.clone(), cfg.stale_after.clone());
    let names: Vec<String> = cfg.sensors.iter().map(|s| s.name.clone()).collect();
    let got = rwsd::replay::trace(&mut engine, &names, &events, 20.0);
    let want = std::fs::read_to_string(repo().join("tests/data/demo.trace")).unwrap();
    assert_eq!(got, want);
}

/// Serial ports opened by path: qemu-user cannot (no TCGETS2), so these skip there.
fn serial_by_path_supported() -> bool {
    if rws_testkit::emulated() {
        eprintln!("skipped: opening a serial port by path needs TCGETS2, which qemu-user lacks");
        return false;
    }
    true
}

#[test]
fn port_closed_and_reopened_through_a_stable_name() {
    if !serial_by_path_supported() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("rws-pwd"); // what the udev rule would create
    let (mut master, slave) = TTYPort::pair().unwrap();
    std::os::unix::fs::symlink(slave.name().unwrap(), &link).unwrap();
    let spec = SensorSpec {
        index: 0,
        name: "pwd".into(),
        protocol: rwsd::sensors::Protocol::Pwd,
        source: Source::Serial {
            path: link.clone(),
            baud: 9600,
        },
        timestamps: false,
    };
    let (tx, rx) = mpsc::channel();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let handle = driver::spawn(spec, tx, stop.clone()).unwrap();
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no event: {what}"))
    };
    assert_eq!(next("connect").kind, EventKind::Connected);
    writeln!(master, "00 1500 1500 F 30 30 30 0.00 0.00 0\r").unwrap();
    assert!(
        matches!(next("reading").kind, EventKind::Reading(ref v) if v.contains(&("visibility_m".into(), 1500.0)))
    );
    // The device goes away: the master closes, the driver sees an error and retries with backoff.
    drop(master);
    drop(slave);
    assert!(matches!(
        next("disconnect").kind,
        EventKind::Disconnected(_)
    ));
    // It comes back under the same stable name.
    let (mut master2, slave2) = TTYPort::pair().unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(slave2.name().unwrap(), &link).unwrap();
    loop {
        match next("reconnect").kind {
            EventKind::Connected => break,
            EventKind::Disconnected(_) => continue, // backoff attempts while it was gone
            other => panic!("unexpected {other:?}"),
        }
    }
    writeln!(master2, "00 0700 0700 F 33 33 33 0.00 0.00 0\r").unwrap();
    assert!(
        matches!(next("reading after reconnect").kind, EventKind::Reading(ref v) if v.contains(&("visibility_m".into(), 700.0)))
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(master2);
    drop(slave2);
    handle.join().unwrap();
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = repo().join("tests/data");
    let good = std::fs::read_to_string(dir.join("weather.toml")).unwrap();
    let cases = [
        (
            good.replace("ramp_per_s = 0.25", "ramp_per_s = \"fast\""),
            "ramp_per_s",
        ),
        (
            good.replace("signature = \"snow\"", "signature = \"blizzard\""),
            "policy.rule[1].signature",
        ),
        (
            good.replace(
                "curve = [[1000.0, 0.0], [200.0, 1.0]]",
                "curve = [[1000.0, 0.0], [1000.0, 1.0]]",
            ),
            "policy.rule[0].curve",
        ),
        (
            good.replace("stale_after_s = 8", "stale_after_s = -1"),
            "sensor[2].stale_after_s",
        ),
        (
            good.replace("protocol = \"pwd\"", "protocol = \"morse\""),
            "protocol",
        ),
    ];
    for (text, key) in cases {
        let e = Config::parse(&dir.join("weather.toml"), &text).unwrap_err();
        let msg = e.to_string();
        assert!(e.line > 0, "{msg}");
        assert!(
            msg.starts_with(&format!(
                "{}:{}:",
                dir.join("weather.toml").display(),
                e.line
            )),
            "{msg}"
        );
        assert!(msg.contains(key), "expected key {key} in: {msg}");
    }
}

fn socket_request(sock: &Path, req: &str) -> serde_json::Value {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    writeln!(s, "{req}").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

fn kill(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// rwsd on a config in a temporary directory, fed 32×32 gray frames on stdin, one JSON line out
/// per frame, with a control socket.
struct LiveDaemon {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    cfg_path: PathBuf,
    config: String,
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl LiveDaemon {
    fn start() -> LiveDaemon {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("rwsd.sock");
        let cfg_path = dir.path().join("live.toml");
        let config = format!(
            "[model]\nsignatures = \"{}\"\n[model.input]\nwidth = 32\nheight = 32\n\
             [frames]\nsource = \"raw\"\npath = \"-\"\nwidth = 32\nheight = 32\nformat = \"gray8\"\n\
             [control]\nsocket = \"{}\"\n[policy]\n[[policy.rule]]\nsignature = \"fog\"\nsignal = \"visibility_m\"\ncurve = [[1000.0, 0.0], [200.0, 1.0]]\n",
            repo().join("signatures").display(),
            sock.display()
        );
        std::fs::write(&cfg_path, &config).unwrap();
        let mut child = common::bin(env!("CARGO_BIN_EXE_rwsd"))
            .args(["--config", cfg_path.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        LiveDaemon {
            _dir: dir,
            sock,
            cfg_path,
            config,
            child,
            stdin,
            out,
        }
    }

    /// Started, frame 0 run, and fog overridden to 0.7 through the socket, as
    /// `rws override fog=0.7` does.
    fn start_with_fog_override() -> LiveDaemon {
        let mut d = LiveDaemon::start();
        assert_eq!(d.next_line()["frame"], 0);
        let ok = socket_request(
            &d.sock,
            r#"{"cmd":"override","signature":"fog","alpha":0.7}"#,
        );
        assert_eq!(ok["ok"], true);
        d
    }

    /// Sends one frame and reads its JSON line.
    fn next_line(&mut self) -> serde_json::Value {
        self.stdin.write_all(&[128u8; 32 * 32]).unwrap();
        self.stdin.flush().unwrap();
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        serde_json::from_str::<serde_json::Value>(&l).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        socket_request(&self.sock, r#"{"cmd":"status"}"#)["status"].clone()
    }

    /// SIGTERM: the frame in progress is finished, then exit 0 and the socket is removed.
    fn terminate(mut self, expect_frame: u64) {
        kill(self.child.id(), "-TERM");
        std::thread::sleep(Duration::from_millis(200));
        let last = self.next_line();
        assert_eq!(last["frame"], expect_frame);
        let code = self.child.wait().unwrap();
        assert!(code.success(), "{code:?}");
        assert!(!self.sock.exists(), "the socket file is removed on exit");
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
    }
}

#[test]
fn sighup_with_a_broken_config_keeps_running_and_sigterm_exits_cleanly() {
    let mut d = LiveDaemon::start_with_fog_override();
    let bad = socket_request(
        &d.sock,
        r#"{"cmd":"override","signature":"volcano","alpha":1}"#,
    );
    assert_eq!(bad["ok"], false);

    std::fs::write(&d.cfg_path, d.config.replace("[policy]", "[policy\nbroken")).unwrap();
    kill(d.child.id(), "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    let after = d.next_line();
    assert_eq!(after["frame"], 1, "still running after a bad reload");
    // The reload is prepared on its own thread; a failure shows in the status without waiting
    // for another frame. Poll until it does.
    let mut status = serde_json::Value::Null;
    for _ in 0..400 {
        status = d.status();
        if status["last_reload_error"].is_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = status["last_reload_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("live.toml:"),
        "reload error names the file and line: {status}"
    );
    assert_eq!(status["reloads"], 0);
    assert_eq!(
        status["overrides"]["fog"]["alpha"], 0.7,
        "the running policy was kept"
    );
    d.terminate(2);
}

#[test]
fn sighup_with_a_new_config_swaps_it_in_between_frames() {
    let mut d = LiveDaemon::start_with_fog_override();
    // The new config adds a second signature to the policy.
    let more = d.config.clone()
        + "[[policy.rule]]\nsignature = \"snow\"\nsignal = \"visibility_m\"\ncurve = [[1000.0, 0.0], [200.0, 1.0]]\n";
    std::fs::write(&d.cfg_path, more).unwrap();
    kill(d.child.id(), "-HUP");
    // Frames keep coming while the new runtime is prepared; it is swapped in between two of them.
    // Every frame is answered, in order; poll (the status is rebuilt at most 4×/s) until it shows
    // the reload, the override carried over and the new policy's signature loaded.
    let done = |s: &serde_json::Value| {
        s["reloads"] == 1 && s["overrides"]["fog"]["alpha"] == 0.7 && s["alpha"]["snow"].is_number()
    };
    let mut frame = 0;
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        let next = d.next_line()["frame"].as_u64().unwrap();
        assert_eq!(next, frame + 1, "no frame lost");
        frame = next;
        std::thread::sleep(Duration::from_millis(100));
        status = d.status();
        if done(&status) {
            break;
        }
    }
    assert!(done(&status), "{status}");
    assert!(status["last_reload_error"].is_null(), "{status}");
    d.terminate(frame + 1);
}

#[test]
fn demo_end_to_end_alphas_follow_the_weather() {
    let out = common::bin(env!("CARGO_BIN_EXE_rwsd"))
        .args([
            "--config",
            repo().join("firmware-config/demo.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    // Expected α per frame from the committed trace (the policy on the logs, read directly).
    let trace = std::fs::read_to_string(repo().join("tests/data/demo.trace")).unwrap();
    let mut steps: Vec<(f64, Vec<(String, f64)>)> = Vec::new();
    for l in trace.lines().filter(|l| l.starts_with("t=")) {
        let mut parts = l.split(' ');
        let t: f64 = parts.next().unwrap()[2..].parse().unwrap();
        let a = parts
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.parse::<f64>().unwrap())
            })
            .filter(|(_, v)| *v != 0.0)
            .collect();
        steps.push((t, a));
    }
    let mut correct = 0;
    for l in &lines {
        let t = l["t"].as_f64().unwrap();
        let (_, want) = steps.iter().rev().find(|(st, _)| *st <= t).unwrap();
        let got: Vec<(String, f64)> = l["alpha"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
            .collect();
        let mut want = want.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want, "frame at t={t}");
        correct += usize::from(l["correct"] == true);
    }
    // The weather phases run with their signature on.
    let phase = |name: &str, sig: &str| {
        lines
            .iter()
            .filter(|l| l["name"].as_str().unwrap().contains(name))
            .all(|l| l["alpha"][sig].as_f64().is_some())
    };
    assert!(
        phase("-fog-", "fog") && phase("-snow-", "snow") && phase("-gainfault-", "gaussian_noise")
    );
    assert!(lines
        .iter()
        .filter(
            |l| l["name"].as_str().unwrap().contains("-clear-") && l["t"].as_f64().unwrap() < 7.0
        )
        .all(|l| l["alpha"].as_object().unwrap().is_empty()));
    assert!(correct >= 34, "{correct}/40 frames right");
}

#[test]
fn device_configs_are_valid() {
    for name in ["raspberry-pi", "jetson", "demo"] {
        let path = repo().join(format!("firmware-config/{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "/opt/rws/signatures",
            repo().join("signatures").to_str().unwrap(),
        );
        let cfg = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.policy.rules.len() >= 5, "{name}");
    }
}
