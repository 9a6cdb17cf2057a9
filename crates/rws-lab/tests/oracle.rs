//! The camera-only oracle offline: its features move the way their estimators say under the
//! real corruptions, `rws oracle train` is deterministic, `rws eval --oracle` keeps its JSON
//! contract and reaches the stated group accuracy on a fixed subset, and a head from another
//! signature set is refused.

use rws_lab::corrupt::{corrupt, Corruption, Preset};
use rws_lab::data;
use rws_oracle::features::{extract, NAMES};
use rws_testkit::repo;

use crate::rws;

fn feature(name: &str) -> usize {
    NAMES.iter().position(|n| *n == name).unwrap()
}

/// The mean of feature `name` over 16 test images of MNIST-5k under `c` at `severity` (0 =
/// clean).
fn mean_feature(c: Corruption, severity: u8, name: &str) -> f64 {
    let split = data::open_split("mnist-5k", None).unwrap();
    let images = &split.test.images[..16];
    let f = feature(name);
    let sum: f64 = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let img = match severity {
                0 => img.clone(),
                s => corrupt(img, c, s, Preset::ImageNet, 7 + i as u64).unwrap(),
            };
            f64::from(extract(&img)[f])
        })
        .sum();
    sum / images.len() as f64
}

#[test]
fn features_move_with_severity_as_their_estimators_say() {
    use Corruption::*;
    // (corruption, feature, rises with severity)
    let cases = [
        (GaussianNoise, "noise_sigma", true),
        (ShotNoise, "noise_sigma", true),
        (ImpulseNoise, "impulse", true),
        (DefocusBlur, "lap_var", false),
        (GaussianBlur, "lap_var", false),
        (MotionBlur, "grad_energy", false),
        // ImageNet-C's fog at severity 5 is a coarser fractal than at 3 on a 32-pixel image, so
        // the dark channel does not rise past 3; the histogram fills in at every step.
        (Fog, "entropy", true),
        (Contrast, "std", false),
        (Brightness, "mean", true),
        (Pixelate, "flat_dx", true),
        (JpegCompression, "blockiness", true),
    ];
    for (c, name, rises) in cases {
        let v: Vec<f64> = [0, 1, 3, 5]
            .iter()
            .map(|&s| mean_feature(c, s, name))
            .collect();
        let ordered = |a: f64, b: f64| if rises { a < b } else { a > b };
        assert!(
            v.windows(2).all(|w| ordered(w[0], w[1])),
            "{c:?}: {name} at clean, 1, 3, 5 = {v:?} does not {} with severity",
            if rises { "rise" } else { "fall" }
        );
    }
    // The dark channel (He et al.'s haze prior) of a fogged frame, at any severity, is many
    // times a clear one's.
    let clear = mean_feature(Fog, 0, "dark_channel");
    for s in [1, 3, 5] {
        let fog = mean_feature(Fog, s, "dark_channel");
        assert!(
            fog > 5.0 * clear,
            "dark channel {fog} at fog {s}, clear {clear}"
        );
    }
}

#[test]
fn training_the_head_twice_gives_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let sigs = repo().join("signatures");
    let manifest = std::fs::read(sigs.join("manifest.json")).unwrap();
    let train = |name: &str| {
        let out = dir.path().join(name);
        let (code, report, err) = rws(&[
            "oracle",
            "train",
            "--signatures",
            sigs.to_str().unwrap(),
            "--images",
            "12",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        (std::fs::read(out).unwrap(), report)
    };
    let (a, report) = train("a.rwo");
    let (b, _) = train("b.rwo");
    assert!(a == b, "two trainings with the same arguments differ");
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["candidates"].as_array().unwrap().len(), 2, "{r}");
    assert!(rws_oracle::OracleFile::parse(std::path::Path::new("a.rwo"), &a).is_ok());
    // --out leaves the set alone.
    assert_eq!(manifest, std::fs::read(sigs.join("manifest.json")).unwrap());
}

#[test]
fn the_oracle_eval_keeps_its_contract_and_its_group_accuracy() {
    let sigs = repo().join("signatures");
    let (code, out, err) = rws(&[
        "eval",
        "--oracle",
        "--signatures",
        sigs.to_str().unwrap(),
        "--limit",
        "40",
        "--severities",
        "3,5",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "ta_clean",
        "ta_oracle",
        "mean_ra_clean",
        "mean_ra_rws",
        "mean_ra_oracle",
        "group_accuracy",
        "type_accuracy",
    ] {
        let v = e[key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    // The stated fraction on this fixed subset: 40 images × 19 corruptions × severities 3, 5.
    let group = e["group_accuracy"].as_f64().unwrap();
    assert!(group >= 0.9, "group accuracy {group} at severities 3-5");
    assert_eq!(e["rows"].as_array().unwrap().len(), 38);
    // The stream: nothing engaged on the clear stretches; the noise, and fog from severity 3
    // of its ramp, engaged within three frames.
    let stream = &e["stream"];
    assert_eq!(stream["false_engaged_frames"], 0, "{stream}");
    let within = |s: &serde_json::Value| s["frames_to_engage"].as_u64().is_some_and(|f| f <= 3);
    let stretches = stream["stretches"].as_array().unwrap();
    let late: Vec<_> = stretches
        .iter()
        .filter(|s| {
            s["corruption"] == "gaussian_noise"
                || (s["corruption"] == "fog" && s["severity"].as_u64() >= Some(3))
        })
        .filter(|s| !within(s))
        .collect();
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn a_head_from_another_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let digits = dir.path().join("digits");
    std::fs::create_dir(&digits).unwrap();
    for e in std::fs::read_dir(repo().join("tests/data/digits-set")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, digits.join(p.file_name().unwrap())).unwrap();
    }
    let eval = || {
        rws(&[
            "eval",
            "--oracle",
            "--signatures",
            digits.to_str().unwrap(),
            "--dataset",
            "digits",
            "--limit",
            "4",
        ])
    };
    let (code, _, err) = eval();
    assert_ne!(code, 0);
    assert!(err.contains("lists no oracle head"), "{err}");
    // The shipped set's head, listed with its right checksum: made for another model.
    let sigs = repo().join("signatures");
    std::fs::copy(sigs.join("oracle.rwo"), digits.join("oracle.rwo")).unwrap();
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sigs.join("manifest.json")).unwrap())
            .unwrap();
    let dm = digits.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dm).unwrap()).unwrap();
    m["oracle"] = shipped["oracle"].clone();
    std::fs::write(&dm, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let (code, _, err) = eval();
    assert_ne!(code, 0);
    assert!(
        err.contains("model_crc32c: made for the set whose clean model"),
        "{err}"
    );
}
