//! The `rws` binary as a user runs it: `inspect` and `verify`, on good and damaged files.

use std::path::Path;

use crate::rws;
use rws_signature::format::DType;
use rws_testkit::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn inspect_json_is_one_parseable_object() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "fog.rws", &encode(1, DType::I8));
    let (code, out, err) = rws(&["inspect", "--json", &f]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["metadata"]["corruption"], "fog");
    assert_eq!(v["tensors"].as_array().unwrap().len(), 4);
    assert_eq!(v["tensors"][0]["shape"], serde_json::json!([8, 3, 3, 3]));
    assert_eq!(v["tensors"][0]["dtype"], "i8");
    assert!(v["tensors"][0]["rel_l2_err"].as_f64().unwrap() > 0.0);
    assert_eq!(v["params"], 8 * 27 + 8 + 16 * 72 + 16);
    // The human table names each tensor.
    let (code, out, _) = rws(&["inspect", &f]);
    assert_eq!(code, 0);
    assert!(
        out.contains("conv1.weight") && out.contains("fog (weather)"),
        "{out}"
    );
}

/// `rws inspect --json … | head -c 64`: the reader goes away before `rws` writes. Like ripgrep,
/// `rws` then exits 0 without a word (it used to panic in `println!`).
#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "fog.rws", &encode(1, DType::I8));
    for args in [&["inspect", "--json", &f][..], &["inspect", &f][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rws"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closing the only read end now makes every write of the child fail with EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn damaged_copies_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = encode(2, DType::I8);
    let truncated = write(dir.path(), "truncated.rws", &good[..good.len() - 100]);
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 7] ^= 0x04;
    let flipped = write(dir.path(), "flipped.rws", &flipped);
    for f in [&truncated, &flipped] {
        let (code, out, err) = rws(&["inspect", "--json", f]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains(f.as_str()), "error must name {f}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.is_empty());
    }
}

#[test]
fn verify_accepts_the_right_model_and_lists_mismatches_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let sig = write(dir.path(), "fog.rws", &encode(3, DType::I8));
    let model = write(dir.path(), "clean.onnx", &small_cnn_onnx(1, false));
    let wide = write(dir.path(), "wide.onnx", &small_cnn_onnx(1, true));
    let (code, out, err) = rws(&["verify", &sig, "--model", &model]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok:"), "{out}");
    let (code, out, _) = rws(&["verify", &sig, "--model", &wide]);
    assert_eq!(code, 1);
    assert!(
        out.contains("'conv1.weight': model has shape [32, 8, 3, 3], signature has [16, 8, 3, 3]"),
        "{out}"
    );
    assert!(out.contains("'conv1.bias'"), "{out}");
    assert!(
        !out.contains("'conv0.weight'"),
        "conv0 matches and must not be listed: {out}"
    );
}

#[test]
fn verify_says_fits_only_when_the_runtime_would_accept_the_model() {
    // conv1.weight's raw_data one value short: names and shapes fit, the data does not.
    let dir = tempfile::tempdir().unwrap();
    let sig = write(dir.path(), "fog.rws", &encode(3, DType::I8));
    let mut m = rws_runtime::onnx::OnnxModel::from_bytes(&small_cnn_onnx(1, false), "m").unwrap();
    let g = m.proto_mut().graph.as_mut().unwrap();
    let t = g
        .initializer
        .iter_mut()
        .find(|t| t.name == "conv1.weight")
        .unwrap();
    t.raw_data.truncate(t.raw_data.len() - 4);
    let model = write(dir.path(), "short.onnx", &m.to_bytes());
    let (code, out, _) = rws(&["verify", &sig, "--model", &model]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("'conv1.weight': the model's data for it is unusable"),
        "{out}"
    );
    assert!(out.contains("raw_data has"), "{out}");
}

#[test]
fn verify_refuses_a_file_that_is_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let sig = write(dir.path(), "fog.rws", &encode(3, DType::I8));
    let junk = write(
        dir.path(),
        "model.onnx",
        b"this is not a protobuf model at all\n",
    );
    let (code, _, err) = rws(&["verify", &sig, "--model", &junk]);
    assert_eq!(code, 2);
    assert!(
        err.contains("model.onnx") && err.contains("not an ONNX model"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["inspect", "--help"],
        vec!["verify", "--help"],
        vec!["eval", "--help"],
        vec!["calibrate", "--help"],
        vec!["layers", "--help"],
        vec!["similarity", "--help"],
    ] {
        let (code, out, _) = rws(&args);
        assert_eq!(code, 0);
        assert!(out.contains("Usage"), "{out}");
    }
}

#[test]
fn corrupt_writes_a_deterministic_image_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo().join("tests/data/corruptions/input_coffee.png");
    let input = input.to_str().unwrap();
    let a = dir.path().join("a.png").to_string_lossy().into_owned();
    let b = dir.path().join("b.png").to_string_lossy().into_owned();
    for out in [&a, &b] {
        let (code, _, err) = rws(&[
            "corrupt",
            "--type",
            "snow",
            "--severity",
            "4",
            "--seed",
            "9",
            input,
            out,
        ]);
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let out = rws_image::Image::open(&a).unwrap();
    assert_eq!((out.height, out.width), (128, 128));
    let (code, _, err) = rws(&["corrupt", "--type", "fog", "--severity", "6", input, &a]);
    assert_eq!(code, 2, "{err}");
    let tiny = dir.path().join("tiny.png");
    rws_image::Image::new(20, 20).save(&tiny).unwrap();
    let (code, _, err) = rws(&["corrupt", "-t", "fog", tiny.to_str().unwrap(), &a]);
    assert_eq!(code, 2);
    assert!(
        err.contains("tiny.png") && err.contains("at least 32x32"),
        "{err}"
    );
    let (code, out, _) = rws(&["corrupt", "--list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 19);
}

#[test]
fn bench_json_has_every_documented_key() {
    let dir = demo_dir();
    let (code, out, err) = rws(&[
        "bench",
        "--model",
        dir.join("clean.onnx").to_str().unwrap(),
        "--signatures",
        dir.to_str().unwrap(),
        "--frames",
        "5",
        "--switches",
        "1",
        "--fps",
        "200",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "clean_frame_ms",
        "patched_frame_ms",
        "steady_ratio",
        "switch_ms",
        "switch_frames",
        "stalled_frames",
        "patch_vs_memcpy",
        "rss_clean_mb",
        "rss_all_mb",
        "full_reload_ms",
    ] {
        let x = v[key].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x >= 0.0, "{key} = {}", v[key]);
    }
    assert_eq!(v["signatures"], 19);
}

/// The signing workflow as a release engineer runs it: keygen, sign a copy of the shipped set,
/// verify it with the public key; then an edit no CRC sees is REFUSED, exit 1.
#[test]
fn keygen_sign_and_verify_a_set() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let sigs = rws_testkit::copy_signatures(dir.path(), "sigs");
    let (key, set) = (dir.path().join("release-1"), sigs.to_str().unwrap());
    let key_s = key.to_str().unwrap();
    let (code, out, err) = rws(&["keygen", "--out", key_s]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("release-1.pub"), "{out}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second keygen onto the same path loses nothing.
    let before = std::fs::read(&key).unwrap();
    let (code, _, err) = rws(&["keygen", "--out", key_s]);
    assert_eq!(code, 2);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    // Unsigned: `verify --key` insists on a seal.
    let public = format!("{key_s}.pub");
    let (code, out, _) = rws(&["verify", set, "--key", &public]);
    assert_eq!(code, 1);
    assert!(out.contains("REFUSED: seal: unsigned"), "{out}");
    let (code, out, err) = rws(&["sign", set, "--key", key_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("signed by") || out.contains("with release-1"),
        "{out}"
    );
    let (code, out, err) = rws(&["verify", set, "--key", &public]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("(length, CRC-32C and SHA-256)") && out.contains("ok: seal verified"),
        "{out}"
    );
    // Without a key the seal is reported, not checked.
    let (code, out, _) = rws(&["verify", set]);
    assert_eq!(code, 0);
    assert!(out.contains("not checked"), "{out}");
    let manifest = sigs.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("\"severity\": 5", "\"severity\": 2", 1),
    )
    .unwrap();
    let (code, out, _) = rws(&["verify", set, "--key", &public]);
    assert_eq!(code, 1);
    assert!(
        out.contains("REFUSED") && out.contains("does not match"),
        "{out}"
    );
}
