//! The shipped demo (signatures/): the manifest matches the files, every signature fits the clean
//! model, α = 1 makes the model more accurate on its corruption, and α = 0 gives the clean model
//! back exactly.

use rws_testkit as common;

use std::path::PathBuf;

use rws_lab::corrupt::{Corruption, Preset};
use rws_lab::data::{default_path, load, Kind};
use rws_lab::eval::Classifier;
use rws_runtime::onnx::OnnxModel;
use rws_signature::manifest::Manifest;
use rws_signature::SignatureFile;

fn dir() -> PathBuf {
    common::demo_dir()
}

fn patched(clean: &OnnxModel, sig: &SignatureFile, alpha: f32) -> OnnxModel {
    rws_runtime::apply::patch_model(clean, &[(sig, alpha)]).unwrap()
}

#[test]
fn manifest_lists_19_intact_signatures_that_fit_the_model() {
    let m = Manifest::load(dir().join("manifest.json")).unwrap();
    m.verify_files(&dir()).unwrap();
    assert_eq!(m.signatures.len(), 19);
    let model = OnnxModel::open(dir().join(&m.model.file)).unwrap();
    let inits = model.initializers().unwrap();
    let mut total = std::fs::metadata(dir().join(&m.model.file)).unwrap().len();
    for c in Corruption::ALL {
        let e = m.find(c.name()).unwrap_or_else(|| panic!("{c} missing"));
        assert_eq!(e.group, c.group().to_string());
        let sig = SignatureFile::open(dir().join(&e.file)).unwrap();
        assert_eq!(sig.metadata().corruption, c.name());
        assert!(rws_runtime::compat::check(&sig, &inits, &[]).is_empty());
        total += e.bytes;
    }
    assert!(total <= 10 << 20, "demo is {total} bytes");
}

#[test]
fn alpha_one_helps_on_its_corruption_and_alpha_zero_is_exact() {
    let m = Manifest::load(dir().join("manifest.json")).unwrap();
    let clean = OnnxModel::open(dir().join(&m.model.file)).unwrap();
    // 100 of the 1000 test images, 10 per class: the gains at severity 5 are tens of points, and
    // the suite also runs under qemu-user in CI, where one frame of this model takes ~45 ms.
    let test = load(Kind::Mnist5k, default_path(Kind::Mnist5k))
        .unwrap()
        .split()
        .test
        .spread(100);
    let clean_bytes = clean.to_bytes();
    let base = Classifier::from_onnx(&clean_bytes, 32).unwrap();
    for c in [
        Corruption::GaussianNoise,
        Corruption::DefocusBlur,
        Corruption::Contrast,
        Corruption::Fog,
    ] {
        let sig = SignatureFile::open(dir().join(&m.find(c.name()).unwrap().file)).unwrap();
        // Both models scored on the same corrupted images.
        let corrupted = rws_lab::eval::corrupted(&test, c, 5, Preset::ImageNet, 99).unwrap();
        let before = base.score(&corrupted).unwrap();
        let on = Classifier::from_onnx(&patched(&clean, &sig, 1.0).to_bytes(), 32).unwrap();
        let after = on.score(&corrupted).unwrap();
        println!(
            "{c}: clean model {:.1}% -> with signature {:.1}%",
            before * 100.0,
            after * 100.0
        );
        assert!(
            after > before,
            "{c}: α = 1 gives {after}, clean model {before}"
        );
        let off = patched(&clean, &sig, 0.0);
        for t in sig.tensors() {
            let (a, b) = (
                off.initializer_f32(&t.name).unwrap(),
                clean.initializer_f32(&t.name).unwrap(),
            );
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{c}: α = 0 changed {}",
                t.name
            );
        }
        // And the whole model: α = 0 serializes to the clean model's bytes, so it is the same
        // network (scoring it again would only prove less, slower).
        assert!(off.to_bytes() == clean_bytes, "{c}: α = 0 model differs");
    }
}

#[test]
fn eval_reports_a_row_per_signature() {
    let out = common::bin(env!("CARGO_BIN_EXE_rws"))
        .args([
            "eval",
            "--signatures",
            dir().to_str().unwrap(),
            // One test image per class: the table's shape and the JSON are what is checked
            // here, and under qemu-user every row costs a model optimization and 2 frames per
            // image.
            "--limit",
            "10",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 19);
    assert_eq!(v["images"], 10);
    assert!(v["test_accuracy"].as_f64().unwrap() >= 0.8);
    for row in v["rows"].as_array().unwrap() {
        let (before, after) = (row["clean_model"].as_f64(), row["with_rws"].as_f64());
        assert!(
            before.is_some_and(|a| (0.0..=1.0).contains(&a))
                && after.is_some_and(|a| (0.0..=1.0).contains(&a)),
            "{row}"
        );
    }
}

#[test]
fn inspect_json_parses_on_every_shipped_file() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let out = common::bin(env!("CARGO_BIN_EXE_rws"))
            .args(["inspect", "--json", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v.is_object(), "{}", path.display());
    }
}
