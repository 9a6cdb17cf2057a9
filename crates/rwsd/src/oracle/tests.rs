use std::path::{Path, PathBuf};

use rws_image::tensor::Normalize;
use rws_image::Image;

use super::*;
use crate::config::Config;
use crate::policy::Engine;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed camera-only config, validated (it reads the committed manifest).
fn camera_only() -> Config {
    Config::load(&repo().join("firmware-config/camera-only.toml")).unwrap()
}

fn spec(cfg: &Config) -> OracleSpec {
    cfg.oracle
        .clone()
        .expect("camera-only.toml has an [oracle]")
}

/// The model input of a committed demo frame.
fn frame(name: &str) -> Vec<f32> {
    let img = Image::open(repo().join("firmware-config/demo/frames").join(name)).unwrap();
    let mut input = Vec::new();
    rws_image::tensor::to_input(&img, (32, 32), &Normalize::IDENTITY, &mut input).unwrap();
    input
}

#[test]
fn fog_frames_engage_fog_and_only_its_signals_are_published() {
    let cfg = camera_only();
    let mut o = Oracle::load(&spec(&cfg), (32, 32), 0).unwrap();
    let mut engine = Engine::new(cfg.policy.clone(), vec![5.0]);
    let clear = ["0000-clear-0.png", "0001-clear-4.png", "0002-clear-8.png"];
    for (t, name) in clear.iter().enumerate() {
        o.observe(&frame(name), &Normalize::IDENTITY, t as f64, &mut engine);
        assert_eq!(o.view().engaged, None, "{name}");
    }
    let fog = [
        "0008-fog-1.png",
        "0009-fog-5.png",
        "0010-fog-9.png",
        "0011-fog-3.png",
    ];
    for (t, name) in fog.iter().enumerate() {
        o.observe(
            &frame(name),
            &Normalize::IDENTITY,
            (t + 3) as f64,
            &mut engine,
        );
    }
    assert_eq!(o.view().engaged, Some("fog"));
    let fog_p = o.signals.iter().find(|(n, _)| n == "oracle.fog").unwrap().1;
    let fog_sev = o
        .signals
        .iter()
        .find(|(n, _)| n == "oracle.fog.severity")
        .unwrap()
        .1;
    assert!(
        fog_p >= 0.6 && (1.0..=5.0).contains(&fog_sev),
        "{fog_p} {fog_sev}"
    );
    let others = o.signals[1..]
        .iter()
        .filter(|(n, _)| !n.starts_with("oracle.fog"));
    assert!(
        others.clone().all(|(_, v)| *v == 0.0),
        "{:?}",
        others.collect::<Vec<_>>()
    );
    let status = o.status();
    assert_eq!(status.engaged.as_deref(), Some("fog"));
    assert_eq!(
        (status.frames, status.engagements, status.switches),
        (7, 1, 0)
    );
    // The policy reads the signals like a sensor's: the fog rule's α comes on (ramping from the
    // first evaluation on).
    engine.evaluate(6.0);
    let alphas = engine.evaluate(7.0);
    let fog_i = engine.signatures().iter().position(|s| s == "fog").unwrap();
    assert!(alphas[fog_i] > 0.0, "{alphas:?}");
}

#[test]
fn a_head_that_is_not_the_sets_is_refused_with_its_field() {
    let cfg = camera_only();
    let refused = |s: &OracleSpec| match Oracle::load(s, (32, 32), 0) {
        Ok(_) => panic!("loaded"),
        Err(e) => format!("{e:#}"),
    };
    let mut s = spec(&cfg);
    s.expected.crc32c ^= 1;
    assert!(refused(&s).contains("crc32c"), "{}", refused(&s));
    let mut s = spec(&cfg);
    s.set_model_crc32c ^= 1;
    assert!(refused(&s).contains("model_crc32c"), "{}", refused(&s));
    let mut s = spec(&cfg);
    s.set.retain(|c| c != "fog");
    assert!(
        refused(&s).contains("\"fog\" has no signature"),
        "{}",
        refused(&s)
    );
    let e = match Oracle::load(&spec(&cfg), (64, 64), 0) {
        Ok(_) => panic!("loaded at another input size"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("input"), "{e}");
}
