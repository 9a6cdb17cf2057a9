//! rwsd as a process: a live daemon fed raw frames on stdin with a control socket (overrides,
//! SIGHUP with a broken and with a good config, SIGTERM), the demo end to end, and `rwsctl`
//! against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rws_testkit::{self as common, repo};

pub fn socket_request(sock: &Path, req: &str) -> serde_json::Value {
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
pub struct LiveDaemon {
    _dir: tempfile::TempDir,
    pub sock: PathBuf,
    cfg_path: PathBuf,
    config: String,
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl LiveDaemon {
    pub fn start() -> LiveDaemon {
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
    pub fn start_with_fog_override() -> LiveDaemon {
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
    pub fn next_line(&mut self) -> serde_json::Value {
        self.stdin.write_all(&[128u8; 32 * 32]).unwrap();
        self.stdin.flush().unwrap();
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        serde_json::from_str::<serde_json::Value>(&l).unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        socket_request(&self.sock, r#"{"cmd":"status"}"#)["status"].clone()
    }

    /// SIGTERM: the frame in progress is finished, then exit 0 and the socket is removed.
    /// SIGTERM while the daemon waits for a frame (the camera idle): it exits at once, 0,
    /// having answered `answered` frames, and removes its socket. (Before the frame source had
    /// a lifecycle, a waiting read delayed SIGTERM until the next frame arrived.)
    pub fn terminate(mut self, answered: u64) {
        // The status catches up within a tick or two of the last frame.
        let mut status = self.status();
        for _ in 0..40 {
            if status["frames"] == answered {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            status = self.status();
        }
        assert_eq!(status["frames"], answered, "{status}");
        let start = std::time::Instant::now();
        kill(self.child.id(), "-TERM");
        let code = self.child.wait().unwrap();
        assert!(code.success(), "{code:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "SIGTERM is honoured without a frame"
        );
        assert!(!self.sock.exists(), "the socket file is removed on exit");
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        assert_eq!(rest, "", "no frame line after the last one read");
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
    // for another frame. Poll until it does, and until the status has been rebuilt since the
    // override (it is a snapshot at most 250 ms old, and the reload thread writes its error
    // into whichever snapshot is current: under qemu that can be one from before the override).
    let mut status = serde_json::Value::Null;
    for _ in 0..400 {
        status = d.status();
        if status["last_reload_error"].is_string() && status["overrides"]["fog"].is_object() {
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
