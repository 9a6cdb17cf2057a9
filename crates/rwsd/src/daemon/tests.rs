//! The daemon as a library, on the shipped demo: frames in order with their records, the reload
//! state machine on real configs (a good one swaps in, a bad one keeps the running state and
//! says why), and the status.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo config in a temporary directory, writing frames to `out.jsonl` there.
fn demo_config(dir: &Path, extra_policy: &str) -> PathBuf {
    let demo = repo().join("firmware-config");
    let text = std::fs::read_to_string(demo.join("demo.toml"))
        .unwrap()
        .replace(
            "\"../signatures\"",
            &format!("{:?}", repo().join("signatures")),
        )
        .replace("\"demo/", &format!("\"{}/demo/", demo.display()))
        .replace(
            "path = \"-\"",
            &format!("path = {:?}", dir.join("out.jsonl")),
        )
        + extra_policy;
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn reload_and_wait(d: &mut Daemon) {
    d.request_reload();
    for _ in 0..2000 {
        if d.finish_reload() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the reload did not finish");
}

fn lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_bad_config_keeps_the_running_state_and_a_good_one_swaps_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_config(dir.path(), "");
    let mut d = Daemon::start(&path).unwrap();
    for _ in 0..3 {
        assert!(d.step().unwrap());
    }
    let s = d.status();
    assert_eq!((s.frames, s.reloads, s.frame_errors), (3, 0, 0));
    assert_eq!(
        s.alpha.len(),
        7,
        "every policy signature is reported: {s:?}"
    );
    assert!(s.alpha.values().all(|&a| a == 0.0), "clear at t < 7");

    // A typo: the reload fails, the file and line are named, the old state goes on.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replace("hysteresis = 0.05", "hysteresis = \"x\""),
    )
    .unwrap();
    reload_and_wait(&mut d);
    let s = d.status();
    let err = s.last_reload_error.clone().unwrap_or_default();
    assert!(
        err.contains("demo.toml:") && err.contains("hysteresis"),
        "{err}"
    );
    assert_eq!(s.reloads, 0);
    assert!(d.step().unwrap());
    assert_eq!(d.status().frames, 4);

    // A good config with one more signature: swapped in between frames, the error cleared.
    let more = "\n[[policy.rule]]\nsignature = \"brightness\"\nsignal = \"visibility_m\"\ncurve = [[1000.0, 0.0], [200.0, 1.0]]\n";
    std::fs::write(&path, good.clone() + more).unwrap();
    reload_and_wait(&mut d);
    let s = d.status();
    assert_eq!((s.reloads, s.last_reload_error.clone()), (1, None));
    assert!(d.step().unwrap());
    let s = d.status();
    assert_eq!(s.alpha.len(), 8);
    assert!(s.alpha.contains_key("brightness"));
    assert_eq!(s.frames, 5);

    // Every frame was written once, in order, with its record's keys.
    let out = lines(dir.path());
    let frames: Vec<u64> = out.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert_eq!(frames, [0, 1, 2, 3, 4]);
    for l in &out {
        assert_eq!(l["top"].as_array().unwrap().len(), 2, "top_k = 2: {l}");
        assert!(
            l["correct"].is_boolean() && l["expected"].is_string(),
            "{l}"
        );
    }
}

#[test]
fn the_demo_runs_to_its_end_with_the_weather_in_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_config(dir.path(), "");
    let mut d = Daemon::start(&path).unwrap();
    let mut n = 0;
    while d.step().unwrap() {
        n += 1;
    }
    assert_eq!(n, 40);
    let out = lines(dir.path());
    let fog = &out[11];
    assert_eq!(fog["name"], "0011-fog-3.png");
    assert!(fog["alpha"]["fog"].as_f64().unwrap() > 0.0, "{fog}");
    let s = d.status();
    assert_eq!(s.frames, 40);
    assert_eq!(s.sensors.len(), 3);
    assert!(
        s.sensors.iter().all(|x| x.ended),
        "the replayed logs were read to the end"
    );
    // Two recorded bad lines (a garbled PWD report, an NMEA checksum failure) were counted.
    let bad: u64 = s.sensors.iter().map(|x| x.counters.bad).sum();
    assert_eq!(bad, 2, "{:?}", s.sensors);
    assert!(d
        .summary()
        .starts_with(&format!("config {}: ok", path.display())));
}
