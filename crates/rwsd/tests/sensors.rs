//! gpsd-style regression tests for the daemon's sensor side: recorded logs replayed through
//! pseudo-terminals must give exactly the committed coefficient traces; noise, reconnects,
//! staleness and config errors.

use std::io::Write;
use std::path::Path;
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
    let stop = rwsd::source::Stop::new();
    let health = rwsd::health::Health::new();
    let handle = driver::spawn(spec, tx, stop.clone(), health).unwrap();
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
    stop.stop();
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
        assert_config_error(&dir, &text, key);
    }
}

fn assert_config_error(dir: &Path, text: &str, key: &str) {
    {
        let e = Config::parse(&dir.join("weather.toml"), text).unwrap_err();
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

#[test]
fn values_that_would_silently_misbehave_are_refused_with_file_line_and_key() {
    let dir = repo().join("tests/data");
    let good = std::fs::read_to_string(dir.join("weather.toml")).unwrap();
    let fog_curve = "curve = [[1000.0, 0.0], [200.0, 1.0]]";
    let cases = [
        // A NUL in a name once passed and panicked at thread spawn.
        (
            good.replacen("name = \"pwd\"", "name = \"p\\u0000wd\"", 1),
            "sensor[0].name",
        ),
        (
            good.replacen("name = \"pwd\"", "name = \"\"", 1),
            "sensor[0].name",
        ),
        // y above 1 would bypass the cap on α that overrides have.
        (
            good.replacen(fog_curve, "curve = [[1000.0, 0.0], [200.0, 2.0]]", 1),
            "policy.rule[0].curve",
        ),
        (
            good.replacen("codes = [70,", "codes = [-70,", 1),
            "policy.rule[1].curve",
        ),
        // A misspelt signal would never fire.
        (
            good.replacen("signal = \"visibility_m\"", "signal = \"visibilty_m\"", 1),
            "policy.rule[0].signal",
        ),
        (
            good.replacen("height = 32\n", "height = 32\nstd = [0.0, 1.0, 1.0]\n", 1),
            "model.input.std",
        ),
        (
            good.replacen("height = 32\n", "height = 32\nstd = [-1.0, 1.0, 1.0]\n", 1),
            "model.input.std",
        ),
        (
            good.replacen("height = 32\n", "height = 32\nmean = [1e9, 0.0, 0.0]\n", 1),
            "model.input.mean",
        ),
        // A replay waiting for a log that is not there would crawl at 10 s a frame.
        (
            good.replacen("file = \"pwd-weather.log\"", "file = \"missing.log\"", 1),
            "sensor[0].file",
        ),
        (
            good.replacen("file = \"pwd-weather.log\"", "stdin = true", 1)
                .replacen("file = \"nmea-weather.log\"", "stdin = true", 1),
            "sensor[1].stdin",
        ),
        (
            good.replacen("path = \".\"", "path = \".\"\nmax_pixels = 0", 1),
            "frames.max_pixels",
        ),
    ];
    for (text, key) in cases {
        assert_config_error(&dir, &text, key);
    }
}

#[test]
fn device_configs_are_valid() {
    for name in ["raspberry-pi", "jetson", "demo"] {
        let path = repo().join(format!("firmware-config/{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "/var/lib/rwsd/signatures",
            repo().join("signatures").to_str().unwrap(),
        );
        let cfg = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.policy.rules.len() >= 5, "{name}");
    }
}

#[test]
fn every_recorded_sensor_log_says_where_it_came_from() {
    let mut logs = Vec::new();
    for dir in ["tests/data", "firmware-config/demo"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                logs.push(p);
            }
        }
    }
    assert!(logs.len() >= 8, "{logs:?}");
    for p in logs {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        for key in rwsd::replay::PROVENANCE_KEYS {
            let prefix = format!("# {key}: ");
            assert!(
                text.lines().take(12).any(|l| l.starts_with(&prefix)),
                "{}: no '{prefix}' line in its header",
                p.display()
            );
        }
    }
}
