//! `rws extract` against an independent numpy reference (committed outputs of
//! `scripts/reference_extract.py`, and the script itself when `RWS_LIVE_REFERENCE` is set),
//! `rws patch` from the outside, and the errors both give on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::rws;
use rws_runtime::onnx::OnnxModel;
use rws_testkit::*;

struct Models {
    dir: tempfile::TempDir,
    bn: bool,
    crcs: Vec<(String, u32)>,
}

impl Models {
    fn new(bn: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let crcs = extract_models(dir.path(), bn);
        Models { dir, bn, crcs }
    }

    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// The reference for `robust` at `layers` on `m`'s family: the committed numpy output
/// (`tests/data/extract/`, checked to be made from exactly these models), and, with
/// `RWS_LIVE_REFERENCE=1` (`.ci/run` sets it after installing numpy and onnx), the script's
/// output computed now, which must agree with the committed one.
fn reference(m: &Models, robust: &[&str], layers: usize) -> serde_json::Value {
    let case = REFERENCE_CASES
        .iter()
        .find(|c| c.bn == m.bn && c.layers == layers && robust.iter().all(|r| c.robust.contains(r)))
        .expect("a committed reference case covers this call");
    let path = repo().join(format!("tests/data/extract/{}.json", case.name));
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (file, crc) in &m.crcs {
        assert_eq!(
            fixture["models_crc32c"][file].as_str(),
            Some(format!("{crc:08x}").as_str()),
            "{file} is not the model {} was made from; regenerate it with \
             `cargo run -p rws-lab --example make_extract_refs`",
            path.display()
        );
    }
    let committed = fixture["reference"].clone();
    if std::env::var_os("RWS_LIVE_REFERENCE").is_some() {
        let live = live_reference(m, case);
        assert_same_reference(&live, &committed);
    }
    committed
}

fn live_reference(m: &Models, case: &ReferenceCase) -> serde_json::Value {
    let python = std::env::var("RWS_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(reference_args(m.dir.path(), case))
        .output()
        .expect("python3 is needed for the live reference (pip install numpy onnx)");
    assert!(
        out.status.success(),
        "reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The live and the committed reference agree to float64 rounding (another numpy may sum in
/// another order).
fn assert_same_reference(live: &serde_json::Value, committed: &serde_json::Value) {
    let (l, c) = (live.as_object().unwrap(), committed.as_object().unwrap());
    assert_eq!(l.keys().collect::<Vec<_>>(), c.keys().collect::<Vec<_>>());
    for (sig, tensors) in l {
        for (name, values) in tensors.as_object().unwrap() {
            let want = c[sig][name].as_array().unwrap();
            let got = values.as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{sig} {name}");
            for (g, w) in got.iter().zip(want) {
                let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
                assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1e-3),
                    "{sig} {name}: {g} vs {w}"
                );
            }
        }
    }
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
            rws_signature::SignatureFile::open(PathBuf::from(m.p("sigs")).join(format!("{r}.rws")))
                .unwrap();
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
    let sig =
        rws_signature::SignatureFile::open(PathBuf::from(m.p("sigs")).join("fog.rws")).unwrap();
    assert_eq!(sig.tensors()[5].role, rws_signature::Role::BnVar);
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
    let sig = rws_signature::SignatureFile::open(PathBuf::from(m.p("z")).join("fog.rws")).unwrap();
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
