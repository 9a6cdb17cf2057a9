//! `rwsctl`, the device client, as a user runs it: status and overrides against a running
//! daemon, replayed traces equal to the committed ones, config checks.

use crate::daemon::LiveDaemon;
use rws_testkit::repo;

fn rwsctl(args: &[&str]) -> (i32, String, String) {
    rws_testkit::run(env!("CARGO_BIN_EXE_rwsctl"), args)
}

/// `rwsctl status --json` once it shows `frames` frames (the served status is rebuilt at most
/// every 250 ms, frames or not, so it catches up within about half a second of the last frame).
fn status_after(sock: &str, frames: u64) -> (i32, serde_json::Value) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, out, err) = rwsctl(&["status", "--json", "--socket", sock]);
        let s: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        if s["frames"] == frames || std::time::Instant::now() > end {
            assert_eq!(s["frames"], frames, "{s}");
            return (code, s);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn status_and_override_against_a_running_daemon() {
    let mut d = LiveDaemon::start();
    assert_eq!(d.next_line()["frame"], 0);
    let sock = d.sock.to_str().unwrap().to_string();
    let (code, out, err) = rwsctl(&["override", "fog=0.7", "--ttl", "600", "--socket", &sock]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    // The override is requested at the next frame; frames run on the old weights until the
    // session's worker has built the new prefix (a few milliseconds), then on fog = 0.7.
    let mut frames = 1;
    while d.next_line()["alpha"]["fog"] != 0.7 {
        frames += 1;
        assert!(frames < 200, "the override never took effect");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    frames += 1;
    let (code, s) = status_after(&sock, frames);
    // No sensors, no failed reload: healthy.
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["overrides"]["fog"]["alpha"], 0.7);
    assert!(
        s["overrides"]["fog"]["until_t"].as_f64().unwrap() > 500.0,
        "{s}"
    );
    let (code, out, _) = rwsctl(&["status", "--socket", &sock]);
    assert_eq!(code, 0);
    assert!(out.contains("overrides: fog=0.7 until t="), "{out}");
    // Refusals are errors with the daemon's reason, exit 2.
    for (setting, why) in [("volcano=1", "not a signature"), ("fog=9", "outside 0..=4")] {
        let (code, _, err) = rwsctl(&["override", setting, "--socket", &sock]);
        assert_eq!(code, 2);
        assert!(err.contains(why), "{setting}: {err}");
    }
    let (code, _, err) = rwsctl(&["override", "fog=0.5", "--ttl=-1", "--socket", &sock]);
    assert_eq!(code, 2);
    assert!(err.contains("ttl_s"), "{err}");
    let (code, _, _) = rwsctl(&["override", "--clear", "--socket", &sock]);
    assert_eq!(code, 0);
    // Cleared: fog ramps back down (policy.ramp_per_s) and the status lists no override.
    loop {
        frames += 1;
        assert!(frames < 300, "fog never went down after the clear");
        std::thread::sleep(std::time::Duration::from_millis(20));
        if d.next_line()["alpha"]["fog"].as_f64().unwrap_or(0.0) < 0.7 {
            break;
        }
    }
    let (_, s) = status_after(&sock, frames);
    assert!(s["overrides"].as_object().unwrap().is_empty(), "{s}");
    d.terminate(frames);
}

#[test]
fn status_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let (code, _, err) = rwsctl(&["status", "--socket", sock.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is rwsd running?"), "{err}");
}

#[test]
fn replay_prints_the_committed_traces() {
    for name in ["weather", "noise"] {
        let cfg = repo().join(format!("tests/data/{name}.toml"));
        let (code, out, err) = rwsctl(&["replay", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let want =
            std::fs::read_to_string(repo().join(format!("tests/data/{name}.trace"))).unwrap();
        assert_eq!(out, want, "{name}");
    }
    let (code, _, err) = rwsctl(&["replay", "--config", "/nonexistent/x.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.toml"), "{err}");
}

#[test]
fn check_accepts_the_demo_and_names_what_is_wrong() {
    let demo = repo().join("firmware-config/demo.toml");
    let (code, out, err) = rwsctl(&["check", "--config", demo.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok") && out.contains("cut at"), "{out}");
    // A config whose signatures do not fit its model: the mismatch list, not a crash.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("other.onnx");
    std::fs::write(&model, rws_testkit::small_cnn_onnx(1, false)).unwrap();
    let text = std::fs::read_to_string(&demo)
        .unwrap()
        .replace(
            "\"../signatures\"",
            &format!("{:?}", repo().join("signatures")),
        )
        .replace(
            "\"demo/",
            &format!("\"{}/demo/", repo().join("firmware-config").display()),
        )
        .replace(
            "[model.input]",
            &format!("path = {model:?}\n\n[model.input]"),
        );
    let cfg = dir.path().join("other.toml");
    std::fs::write(&cfg, &text).unwrap();
    // Not the manifest's model, and the config does not say which one it is: refused.
    let (code, _, err) = rwsctl(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("model.path") && err.contains("model.crc32c"),
        "{err}"
    );
    // With its checksum given (a transfer deployment), the signatures are checked against it.
    let (crc, _) = rws_signature::manifest::checksum(&model).unwrap();
    let text = text.replace(
        "[model.input]",
        &format!("crc32c = \"{crc}\"\n\n[model.input]"),
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, _, err) = rwsctl(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("does not fit") && err.contains("features.0.weight"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["status", "--help"],
        vec!["override", "--help"],
        vec!["replay", "--help"],
        vec!["check", "--help"],
    ] {
        let (code, out, _) = rwsctl(&args);
        assert_eq!(code, 0);
        assert!(out.contains("Usage"), "{out}");
    }
    let (code, out, _) = rws_testkit::run(env!("CARGO_BIN_EXE_rwsd"), &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--check"), "{out}");
}
