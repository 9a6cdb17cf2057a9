//! The textfile against a strict reader of the format (and promtool where installed), label
//! escaping, buckets, and the atomic write.

use super::*;
use crate::protocol::{FrameSourceStatus, ThreadStatus};
use rws_testkit::prom;

fn status() -> Status {
    let mut s = Status {
        config: "/etc/rwsd/a \"quoted\" \\ path.toml".into(),
        frames: 7,
        ..Default::default()
    };
    s.alpha.insert("fog".into(), 0.75);
    s.alpha.insert("snow".into(), 0.0);
    s.sensors.push(SensorStatus {
        name: "pwd \"north\"".into(),
        connected: true,
        fresh: true,
        last_reading_age_s: Some(1.5),
        ..Default::default()
    });
    s.sensors[0].counters.bad = 5;
    s.sensors[0].counters.checksum = 3;
    s.threads.push(ThreadStatus {
        name: "sensor-pwd".into(),
        state: ThreadState::Restarting,
        panics: 2,
        last_panic: Some("boom".into()),
    });
    s.frame_source = FrameSourceStatus {
        state: SourceState::Receiving,
        since_last_frame_s: Some(0.03),
        ..Default::default()
    };
    for t in [0.0002, 0.0002, 0.004, 0.03, 0.03, 0.2, 7.0] {
        s.frame_seconds.observe(t);
    }
    s
}

/// The first sample named `name` whose label `label.0` is `label.1` (`("", "")`: any labels).
fn find<'a>(samples: &'a [prom::Sample], name: &str, label: (&str, &str)) -> &'a prom::Sample {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && (label.0.is_empty()
                    || s.labels.get(label.0).map(String::as_str) == Some(label.1))
        })
        .unwrap_or_else(|| panic!("{name} {label:?}"))
}

#[test]
fn the_text_is_valid_exposition_with_escaped_labels_and_cumulative_buckets() {
    let s = status();
    let text = render(&s, 1.7e9);
    let samples = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let info = find(&samples, "rwsd_info", ("model", ""));
    assert_eq!(
        info.labels["config"], s.config,
        "escapes undone by the reader"
    );
    let age = find(
        &samples,
        "rwsd_sensor_last_reading_age_seconds",
        ("sensor", "pwd \"north\""),
    );
    assert_eq!(age.value, 1.5);
    let other = find(&samples, "rwsd_sensor_bad_lines_total", ("kind", "other"));
    assert_eq!(other.value, 2.0, "bad lines not of a named kind");
    assert_eq!(
        find(&samples, "rwsd_thread_restarting", ("thread", "sensor-pwd")).value,
        1.0
    );
    assert_eq!(find(&samples, "rwsd_healthy", ("", "")).value, 0.0);
    let le = |v: &str| find(&samples, "rwsd_frame_seconds_bucket", ("le", v)).value;
    assert_eq!(
        (le("0.00025"), le("0.005"), le("0.025"), le("0.05")),
        (2.0, 3.0, 3.0, 5.0)
    );
    assert_eq!((le("2.5"), le("+Inf")), (6.0, 7.0), "7 s only in +Inf");
    assert_eq!(
        find(&samples, "rwsd_frame_source_state", ("state", "receiving")).value,
        1.0
    );
    if let Some(r) = prom::promtool(&text) {
        r.unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    }
}

#[test]
fn a_status_before_any_frame_renders_too() {
    let text = render(&Status::default(), 0.0);
    let samples = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples
        .iter()
        .any(|s| s.name == "rwsd_frames_total" && s.value == 0.0));
}

#[test]
fn the_reader_refuses_what_the_format_forbids() {
    for bad in [
        "rwsd_x 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"x} 1\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a x\n# TYPE a gauge\na 1\na 2\n",
        "# HELP a x\n# TYPE a gauge\na{l=\"\\q\"} 1\n",
    ] {
        assert!(prom::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_write_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rwsd.prom");
    write_atomically(&path, "a\n").unwrap();
    write_atomically(&path, "b\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let err = write_atomically(&dir.path().join("no/such.prom"), "c").unwrap_err();
    assert!(err.to_string().contains("no/such.prom"), "{err}");
}
