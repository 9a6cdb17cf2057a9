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

/// Runs the loop until a frame is answered; `false` when the source has ended.
fn frame(d: &mut Daemon) -> bool {
    for _ in 0..500 {
        match d.tick(&|| false) {
            Tick::Frame => return true,
            Tick::Ended => return false,
            Tick::Idle => {}
        }
    }
    panic!("no frame within 500 ticks");
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
        assert!(frame(&mut d));
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
    assert!(frame(&mut d));
    assert_eq!(d.status().frames, 4);

    // A good config with one more signature: swapped in between frames, the error cleared.
    let more = "\n[[policy.rule]]\nsignature = \"brightness\"\nsignal = \"visibility_m\"\ncurve = [[1000.0, 0.0], [200.0, 1.0]]\n";
    std::fs::write(&path, good.clone() + more).unwrap();
    reload_and_wait(&mut d);
    let s = d.status();
    assert_eq!((s.reloads, s.last_reload_error.clone()), (1, None));
    assert!(frame(&mut d));
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
    while frame(&mut d) {
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

#[test]
fn labels_must_name_every_class_of_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_config(dir.path(), "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"8\", \"9\"]", "\"8\"]");
    std::fs::write(&path, text).unwrap();
    let err = format!("{:#}", Daemon::start(&path).err().unwrap());
    assert!(
        err.contains("model.labels: 9 labels for a model with 10 outputs"),
        "{err}"
    );
    assert!(err.contains("demo.toml:"), "{err}");
}

#[test]
fn a_manifest_entry_whose_file_holds_another_signature_is_refused() {
    // A copy of the shipped set whose manifest lists snow.rws as fog (checksums made to match).
    let dir = tempfile::tempdir().unwrap();
    let sigs = rws_testkit::copy_signatures(dir.path(), "signatures");
    let mut m = rws_signature::manifest::Manifest::load(sigs.join("manifest.json")).unwrap();
    let snow = m.find("snow").unwrap().clone();
    let fog = m
        .signatures
        .iter_mut()
        .find(|s| s.corruption == "fog")
        .unwrap();
    fog.file = snow.file;
    fog.crc32c = snow.crc32c;
    fog.bytes = snow.bytes;
    m.save(sigs.join("manifest.json")).unwrap();
    let path = demo_config(dir.path(), "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("{:?}", repo().join("signatures")),
        &format!("{sigs:?}"),
    );
    std::fs::write(&path, text).unwrap();
    let err = format!("{:#}", Daemon::start(&path).err().unwrap());
    assert!(err.contains("snow.rws: metadata.corruption"), "{err}");
    assert!(err.contains("manifest lists it as 'fog'"), "{err}");
}

#[test]
fn output_that_cannot_be_written_is_counted_and_fails_a_one_shot_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_config(dir.path(), "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("path = {:?}", dir.path().join("out.jsonl")),
        "path = \"/dev/full\"",
    );
    std::fs::write(&path, text).unwrap();
    let mut d = Daemon::start(&path).unwrap();
    let signals = Signals::install().unwrap();
    let err = d.run(&signals, None).unwrap_err().to_string();
    assert_eq!(err, "40 of 40 frame results could not be written");
    let s = d.status();
    assert_eq!(
        (s.frames, s.output_errors),
        (40, 40),
        "every frame still ran"
    );
}

#[test]
fn the_status_is_current_while_no_frame_arrives() {
    // A raw FIFO nobody writes: the daemon starts at once, waits, and keeps its status fresh.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("frames");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let path = demo_config(dir.path(), "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "source = \"dir\"",
            "source = \"raw\"\nwidth = 32\nheight = 32\nformat = \"gray8\"",
        )
        .replace(
            &format!(
                "path = \"{}/demo/frames\"",
                repo().join("firmware-config").display()
            ),
            &format!("path = {fifo:?}"),
        )
        .replace("mode = \"replay\"", "mode = \"live\"");
    std::fs::write(&path, text).unwrap();
    let start = std::time::Instant::now();
    let mut d = Daemon::start(&path).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a FIFO without a writer does not block"
    );
    for _ in 0..4 {
        assert_eq!(d.tick(&|| false), Tick::Idle);
    }
    let s = d.status();
    assert_eq!(s.frames, 0);
    assert_eq!(s.frame_source.state, crate::protocol::SourceState::Waiting);
    assert_eq!(s.sensors.len(), 3, "sensors are served without frames");
    assert!(
        s.threads.iter().any(|t| t.name == "frames"),
        "{:?}",
        s.threads
    );
}

/// A copy of the shipped signature set in `dir/signatures` and a demo config using it.
fn copied_set(dir: &Path) -> (PathBuf, PathBuf) {
    let sigs = rws_testkit::copy_signatures(dir, "signatures");
    let path = demo_config(dir, "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("{:?}", repo().join("signatures")),
        &format!("{sigs:?}"),
    );
    std::fs::write(&path, text).unwrap();
    (sigs, path)
}

#[test]
fn a_valid_signature_that_is_not_the_manifests_is_refused_by_its_checksum() {
    // Another well-formed fog signature in fog.rws: the format accepts it, the manifest's
    // CRC-32C (checked from the format's own checksums, no second read) does not.
    let dir = tempfile::tempdir().unwrap();
    let (sigs, path) = copied_set(dir.path());
    std::fs::write(
        sigs.join("fog.rws"),
        rws_testkit::encode(3, rws_signature::format::DType::I8),
    )
    .unwrap();
    let err = format!("{:#}", Daemon::start(&path).err().unwrap());
    assert!(err.contains("fog.rws"), "{err}");
    assert!(
        err.contains("bytes") || err.contains("crc32c"),
        "the manifest's length or checksum names it: {err}"
    );
}

#[test]
fn only_the_signatures_the_policy_uses_are_read() {
    // A damaged file the policy never names does not stop a start; the same damage in a used
    // one does.
    let dir = tempfile::tempdir().unwrap();
    let (sigs, path) = copied_set(dir.path());
    std::fs::write(sigs.join("brightness.rws"), b"not a signature").unwrap();
    let d = Daemon::start(&path).unwrap();
    assert!(!d.summary().contains("brightness"));
    drop(d);
    std::fs::write(sigs.join("fog.rws"), b"not a signature").unwrap();
    let err = format!("{:#}", Daemon::start(&path).err().unwrap());
    assert!(err.contains("fog.rws"), "{err}");
}

/// `[metrics]` on the demo: the textfile passes a strict exposition-format reader (and
/// `promtool check metrics` where installed; CI installs it and sets RWS_REQUIRE_PROMTOOL), and
/// its values are the run's: 40 frames, the coefficients and sensors of the final status.
#[test]
fn the_metrics_textfile_follows_the_demo_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_config(dir.path(), "\n[metrics]\ntextfile = \"rwsd.prom\"\n");
    let mut d = Daemon::start(&path).unwrap();
    let prom = dir.path().join("rwsd.prom");
    assert!(prom.is_file(), "written at start");
    while frame(&mut d) {}
    d.finish();
    let text = std::fs::read_to_string(&prom).unwrap();
    let samples = rws_testkit::prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|s| s.name == name && label.is_none_or(|(k, v)| s.labels[k] == v))
            .unwrap_or_else(|| panic!("{name} {label:?} missing:\n{text}"))
            .value
    };
    let s = d.status();
    let m = s
        .metrics
        .as_ref()
        .expect("the writer's state is in the status");
    assert!(
        m.writes >= 1 && m.failures == 0 && m.last_error.is_none(),
        "{m:?}"
    );
    assert_eq!(value("rwsd_metrics_write_failures_total", None), 0.0);
    assert_eq!(value("rwsd_frames_total", None), 40.0);
    assert_eq!(value("rwsd_frame_seconds_count", None), 40.0);
    assert!(value("rwsd_frame_seconds_sum", None) > 0.0);
    let alphas = samples.iter().filter(|x| x.name == "rwsd_signature_alpha");
    assert_eq!(
        alphas.count(),
        s.alpha.len(),
        "one per signature the policy loads"
    );
    assert!(!s.alpha.is_empty());
    for (sig, a) in &s.alpha {
        assert_eq!(value("rwsd_signature_alpha", Some(("signature", sig))), *a);
    }
    for sensor in &s.sensors {
        let fresh = value("rwsd_sensor_fresh", Some(("sensor", &sensor.name)));
        assert_eq!(fresh, f64::from(u8::from(sensor.fresh)), "{}", sensor.name);
        let age = sensor
            .last_reading_age_s
            .expect("every demo sensor has read");
        let label = Some(("sensor", sensor.name.as_str()));
        assert_eq!(value("rwsd_sensor_last_reading_age_seconds", label), age);
    }
    let bad: f64 = samples
        .iter()
        .filter(|s| s.name == "rwsd_sensor_bad_lines_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(bad, 2.0, "the two recorded bad lines");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary left: {leftovers:?}");
    match rws_testkit::prom::promtool(&text) {
        Some(r) => r.unwrap_or_else(|e| panic!("promtool check metrics: {e}")),
        None => assert!(
            std::env::var_os("RWS_REQUIRE_PROMTOOL").is_none(),
            "promtool is not installed"
        ),
    }
}

/// A textfile that cannot be written (its directory is missing) costs the metrics, not a frame.
#[test]
fn an_unwritable_metrics_textfile_does_not_stop_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = demo_config(dir.path(), "\n[metrics]\ntextfile = \"gone/rwsd.prom\"\n");
    let mut d = Daemon::start(&path).unwrap();
    while frame(&mut d) {}
    d.finish();
    let s = d.status();
    assert_eq!(s.frames, 40);
    let m = s
        .metrics
        .clone()
        .expect("the writer's state is in the status");
    assert!(m.failures >= 1 && m.writes == 0, "{m:?}");
    let said = m.last_error.as_deref().unwrap_or_default();
    assert!(said.contains("gone/rwsd.prom"), "{m:?}");
    let text = crate::client::format_status(&s);
    assert!(text.contains(" failed (last: "), "{text}");
    assert!(!dir.path().join("gone").exists());
}
