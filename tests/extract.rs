//! `rws extract` against an independent numpy reference, `rws patch` from the outside, and the
//! errors both give on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use rws::onnx::OnnxModel;
use rws::rng::Rng;

/// θ = base + mix·(toward − base) + noise: models "trained from" a shared init, whose deltas share
/// a direction the projection must remove.
fn derive(base: &[u8], toward: &[u8], mix: f32, noise: f64, seed: u64) -> Vec<u8> {
    let b = OnnxModel::from_bytes(base, "base").unwrap();
    let t = OnnxModel::from_bytes(toward, "toward").unwrap();
    let mut out = OnnxModel::from_bytes(base, "derived").unwrap();
    let mut rng = Rng::new(seed);
    for info in b.initializers().unwrap() {
        let (x, y) = (
            b.initializer_f32(&info.name).unwrap(),
            t.initializer_f32(&info.name).unwrap(),
        );
        let v: Vec<f32> = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| x + mix * (y - x) + (noise * rng.normal()) as f32)
            .collect();
        out.set_initializer_f32(&info.name, &v).unwrap();
    }
    out.to_bytes()
}

struct Models {
    dir: tempfile::TempDir,
}

impl Models {
    fn new(bn: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let t0 = cnn_onnx(1, false, bn, 0.1);
        let target = cnn_onnx(2, false, bn, 0.1);
        let std = derive(&t0, &target, 0.05, 0.0, 0);
        let fog = derive(&std, &cnn_onnx(3, false, bn, 0.1), 0.02, 0.0, 0);
        let snow = derive(&t0, &target, 0.03, 0.002, 9);
        for (name, bytes) in [
            ("t0", &t0),
            ("std", &std),
            ("fog", &fog),
            ("snow", &snow),
            ("same", &t0),
        ] {
            std::fs::write(dir.path().join(format!("{name}.onnx")), bytes).unwrap();
        }
        std::fs::write(dir.path().join("wide.onnx"), cnn_onnx(1, true, bn, 0.1)).unwrap();
        Models { dir }
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

fn python() -> String {
    std::env::var("RWS_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn reference(m: &Models, robust: &[&str], layers: usize) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_extract.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--init", &m.p("t0.onnx"), "--standard", &m.p("std.onnx")]);
    for r in robust {
        cmd.args(["--robust", &format!("{r}={}", m.p(&format!("{r}.onnx")))]);
    }
    cmd.args(["--layers", &layers.to_string()]);
    let out = cmd
        .output()
        .expect("python3 is needed for the reference extraction (pip install numpy onnx)");
    assert!(
        out.status.success(),
        "reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn extract(m: &Models, robust: &[&str], extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = vec![
        "extract".into(),
        "--init".into(),
        m.p("t0.onnx"),
        "--standard".into(),
        m.p("std.onnx"),
    ];
    for r in robust {
        args.extend([
            "--robust".into(),
            format!("{r}={}", m.p(&format!("{r}.onnx"))),
        ]);
    }
    args.extend(["--out".into(), m.p("sigs")]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    rws(&refs)
}

/// `rws extract --init I --standard S --robust fog=R EXTRA...`, paths relative to the models' dir.
fn extract_fog(
    m: &Models,
    init: &str,
    std: &str,
    robust: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let spec = format!("fog={}", m.p(robust));
    let (i, s) = (m.p(init), m.p(std));
    let mut args = vec!["extract", "--init", &i, "--standard", &s, "--robust", &spec];
    args.extend_from_slice(extra);
    rws(&args)
}

fn assert_matches_reference(m: &Models, robust: &[&str], layers: usize, expected_tensors: &[&str]) {
    let (code, out, err) = extract(
        m,
        robust,
        &["--dtype", "f32", "--layers", &layers.to_string()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let refs = reference(m, robust, layers);
    for r in robust {
        let sig =
            rws::SignatureFile::open(PathBuf::from(m.p("sigs")).join(format!("{r}.rws"))).unwrap();
        let names: Vec<&str> = sig.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, expected_tensors);
        let want = refs[r].as_object().unwrap();
        assert_eq!(want.len(), names.len());
        for (i, t) in sig.tensors().iter().enumerate() {
            let ours = sig.data(i).to_f32();
            let theirs: Vec<f64> = want[&t.name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0);
            for (k, (&o, &w)) in ours.iter().zip(&theirs).enumerate() {
                let rel = (f64::from(o) - w).abs() / scale;
                assert!(
                    rel <= 1e-6,
                    "{r} {} [{k}]: {o} vs {w} (rel {rel:e})",
                    t.name
                );
            }
        }
    }
}

#[test]
fn extraction_matches_the_numpy_reference() {
    let m = Models::new(false);
    assert_matches_reference(
        &m,
        &["fog", "snow"],
        2,
        &["conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"],
    );
    // K = 5 on a 3-layer model takes all three layers.
    assert_matches_reference(
        &m,
        &["fog"],
        5,
        &[
            "conv0.weight",
            "conv0.bias",
            "conv1.weight",
            "conv1.bias",
            "fc.weight",
            "fc.bias",
        ],
    );
}

#[test]
fn batchnorm_tensors_of_patched_layers_are_extracted() {
    let m = Models::new(true);
    assert_matches_reference(
        &m,
        &["fog"],
        1,
        &[
            "conv0.weight",
            "conv0.bias",
            "bn.scale",
            "bn.bias",
            "bn.mean",
            "bn.var",
        ],
    );
    let sig = rws::SignatureFile::open(PathBuf::from(m.p("sigs")).join("fog.rws")).unwrap();
    assert_eq!(sig.tensors()[5].role, rws::Role::BnVar);
    assert_eq!(sig.metadata().group, "weather");
    assert_eq!(sig.metadata().layers, 1);
}

#[test]
fn zero_base_direction_gives_the_raw_delta() {
    let m = Models::new(false);
    // θstd = θ0: nothing to project out, so the signature is θc − θ0 exactly (up to f32).
    let (code, _, err) = extract_fog(
        &m,
        "t0.onnx",
        "same.onnx",
        "fog.onnx",
        &["--dtype", "f32", "--layers", "1", "--out", &m.p("z")],
    );
    assert_eq!(code, 0, "{err}");
    let sig = rws::SignatureFile::open(PathBuf::from(m.p("z")).join("fog.rws")).unwrap();
    let t0 = OnnxModel::open(m.p("t0.onnx"))
        .unwrap()
        .initializer_f32("conv0.weight")
        .unwrap();
    let fog = OnnxModel::open(m.p("fog.onnx"))
        .unwrap()
        .initializer_f32("conv0.weight")
        .unwrap();
    let got = sig.data(0).to_f32();
    for ((g, a), b) in got.iter().zip(&fog).zip(&t0) {
        assert!((g - (a - b)).abs() <= 1e-7, "{g} vs {}", a - b);
    }
}

#[test]
fn patched_model_equals_standard_plus_reference_signature() {
    let m = Models::new(false);
    let (code, _, err) = extract(&m, &["fog"], &["--dtype", "f32", "--layers", "2"]);
    assert_eq!(code, 0, "{err}");
    let sig = PathBuf::from(m.p("sigs")).join("fog.rws");
    let patched = m.p("patched.onnx");
    let (code, out, err) = rws(&[
        "patch",
        "--model",
        &m.p("std.onnx"),
        "--sig",
        &format!("{}:0.75", sig.display()),
        "--out",
        &patched,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let refs = reference(&m, &["fog"], 2);
    let std = OnnxModel::open(m.p("std.onnx")).unwrap();
    let p = OnnxModel::open(&patched).unwrap();
    for (name, values) in refs["fog"].as_object().unwrap() {
        let s = std.initializer_f32(name).unwrap();
        let got = p.initializer_f32(name).unwrap();
        for ((&g, &c), r) in got.iter().zip(&s).zip(values.as_array().unwrap()) {
            let want = f64::from(c) + 0.75 * r.as_f64().unwrap();
            assert!(
                (f64::from(g) - want).abs() <= 1e-6 * want.abs().max(0.1),
                "{name}: {g} vs {want}"
            );
        }
    }
    // Untouched tensors are carried over bit for bit; α = 0 gives the clean model back.
    assert_eq!(
        p.initializer_f32("fc.weight").unwrap(),
        std.initializer_f32("fc.weight").unwrap()
    );
    let (code, _, _) = rws(&[
        "patch",
        "--model",
        &m.p("std.onnx"),
        "--sig",
        &format!("{}:0", sig.display()),
        "--out",
        &patched,
    ]);
    assert_eq!(code, 0);
    let p = OnnxModel::open(&patched).unwrap();
    assert_eq!(
        p.initializer_f32("conv0.weight").unwrap(),
        std.initializer_f32("conv0.weight").unwrap()
    );
}

#[test]
fn bad_inputs_give_clear_errors() {
    let m = Models::new(false);
    // Shape mismatch: a robust model of another architecture.
    let (code, _, err) = extract_fog(
        &m,
        "t0.onnx",
        "std.onnx",
        "wide.onnx",
        &["--layers", "2", "--out", &m.p("o")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("wide.onnx") && err.contains("conv1.weight") && err.contains("[32, 8, 3, 3]"),
        "{err}"
    );
    // Missing tensor: the selection asks for a tensor a model lacks.
    let (code, _, err) = extract_fog(
        &m,
        "t0.onnx",
        "std.onnx",
        "fog.onnx",
        &["--tensors", "^nothing$", "--out", &m.p("o")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("no tensor selected"), "{err}");
    // Not an ONNX file.
    std::fs::write(
        m.p("junk.onnx"),
        b"\x00\x01 definitely not protobuf \xff\xff\xff",
    )
    .unwrap();
    let (code, _, err) = extract_fog(
        &m,
        "junk.onnx",
        "std.onnx",
        "fog.onnx",
        &["--out", &m.p("o")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("junk.onnx") && err.contains("not an ONNX model"),
        "{err}"
    );
    // A non-finite weight.
    let mut nan = OnnxModel::open(m.p("fog.onnx")).unwrap();
    let mut w = nan.initializer_f32("conv0.weight").unwrap();
    w[3] = f32::NAN;
    nan.set_initializer_f32("conv0.weight", &w).unwrap();
    std::fs::write(m.p("nan.onnx"), nan.to_bytes()).unwrap();
    let (code, _, err) = extract_fog(
        &m,
        "t0.onnx",
        "std.onnx",
        "nan.onnx",
        &["--layers", "1", "--out", &m.p("o")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("nan.onnx") && err.contains("value 3 is NaN"),
        "{err}"
    );
    // A signature for another architecture is refused by patch, listing the mismatches.
    let (code, _, err) = extract(&m, &["fog"], &["--layers", "2"]);
    assert_eq!(code, 0, "{err}");
    let sig = PathBuf::from(m.p("sigs")).join("fog.rws");
    let (code, _, err) = rws(&[
        "patch",
        "--model",
        &m.p("wide.onnx"),
        "--sig",
        sig.to_str().unwrap(),
        "--out",
        &m.p("x.onnx"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("'conv1.weight': model has shape [32, 8, 3, 3]")
            && err.contains("'conv1.bias'"),
        "{err}"
    );
    assert!(
        !Path::new(&m.p("x.onnx")).exists(),
        "nothing is written when refused"
    );
}
