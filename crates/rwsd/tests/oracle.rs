//! The camera-only oracle as an operator meets it: the camera-only demo (no sensors) gives the
//! committed coefficient trace exactly, every frame line carries `alpha` and the oracle's view,
//! and a head that is not the signature set's is refused with a clear error.

use std::path::{Path, PathBuf};

use rws_testkit::repo;

/// The camera-only demo config with absolute paths, reading the set in `sigs`.
fn camera_only_config(dir: &Path, sigs: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("firmware-config/camera-only.toml"))
        .unwrap()
        .replace("\"../signatures\"", &format!("{sigs:?}"))
        .replace(
            "\"demo/",
            &format!("\"{}/demo/", repo().join("firmware-config").display()),
        );
    let cfg = dir.join("camera-only.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn check(cfg: &Path) -> (i32, String, String) {
    rws_testkit::run(
        env!("CARGO_BIN_EXE_rwsd"),
        &["--check", "--config", cfg.to_str().unwrap()],
    )
}

#[test]
fn the_camera_only_demo_gives_the_committed_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("camera-only.trace");
    let config = repo().join("firmware-config/camera-only.toml");
    let (code, out, err) = rws_testkit::run(
        env!("CARGO_BIN_EXE_rwsd"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let want = std::fs::read_to_string(repo().join("tests/data/camera-only.trace")).unwrap();
    let got = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(
        got, want,
        "the camera-only trace differs from tests/data/camera-only.trace (README: regenerating fixtures)"
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    for l in &lines {
        assert!(
            l["alpha"].is_object() && l["oracle"]["clean"].is_number(),
            "{l}"
        );
        let name = l["name"].as_str().unwrap();
        // Clear frames, away from the end of a weather phase (the smoothing holds a frame or
        // two), never run with a signature on.
        let frame = l["frame"].as_u64().unwrap();
        if name.contains("-clear-") && !(32..34).contains(&frame) {
            assert!(l["oracle"]["engaged"].is_null(), "{l}");
            assert_eq!(l["alpha"], serde_json::json!({}), "{l}");
        }
    }
    // Each weather phase engages its own signature within three frames of its onset.
    for (first, class) in [(8, "fog"), (16, "snow"), (24, "gaussian_noise")] {
        let on = (first..first + 8)
            .find(|&f| lines[f]["oracle"]["engaged"] == class)
            .unwrap_or_else(|| panic!("{class} never engaged"));
        assert!(
            on - first <= 2,
            "{class} engaged {} frames after onset",
            on - first
        );
        assert!(lines[on..first + 8]
            .iter()
            .all(|l| l["oracle"]["engaged"] == class));
    }
}

#[test]
fn an_oracle_section_needs_the_sets_own_head() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped set passes, and the check names the head.
    let sigs = rws_testkit::copy_signatures(dir.path(), "sigs");
    let cfg = camera_only_config(dir.path(), &sigs);
    let (code, out, err) = check(&cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("oracle: ") && out.contains("oracle.rwo (20 classes"),
        "{out}"
    );
    // A set whose manifest lists no head.
    let manifest = sigs.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let entry = m.as_object_mut().unwrap().remove("oracle").unwrap();
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 2);
    assert!(
        err.contains("oracle: ") && err.contains("lists no oracle head"),
        "{err}"
    );
    // Another set (the digits transfer set: same architecture, another model) with this set's
    // head copied in and listed with its right checksum: refused for the model it was made for.
    let digits = dir.path().join("digits");
    std::fs::create_dir(&digits).unwrap();
    for e in std::fs::read_dir(repo().join("tests/data/digits-set")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, digits.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(sigs.join("oracle.rwo"), digits.join("oracle.rwo")).unwrap();
    let dm = digits.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dm).unwrap()).unwrap();
    m["oracle"] = entry;
    std::fs::write(&dm, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let cfg = camera_only_config(dir.path(), &digits);
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 2);
    assert!(
        err.contains("oracle.rwo: model_crc32c: made for the set whose clean model"),
        "{err}"
    );
    // A rule on an oracle signal without an [oracle] section.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (head, _) = text.split_once("\n[oracle]\n").unwrap();
    let rules = text.split_once("\n[policy]\n").unwrap().1;
    std::fs::write(&cfg, format!("{head}\n[policy]\n{rules}")).unwrap();
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 2);
    assert!(err.contains("no [oracle] section"), "{err}");
}
