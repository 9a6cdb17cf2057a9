//! Signed signature sets as an operator meets them: `rws sign`'s work (through `rws_trust`) on a
//! copy of the shipped set passes `rwsd --check` under `require_signature = true`; an edit no
//! CRC sees (a severity value), a removed seal, a key the device does not trust, and a listed
//! file swapped for another are refused; on SIGHUP the running set stays.

use std::path::{Path, PathBuf};

use rws_testkit::repo;
use rws_trust::SecretKey;

use crate::faults::{fifo_config, start, stop, wait_status};

/// A copy of the shipped set in `dir/sigs`, signed by a new key `dir/NAME`; returns the set's
/// directory and the public key's path.
fn signed_copy(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let sigs = rws_testkit::copy_signatures(dir, "sigs");
    let key = SecretKey::generate(name).unwrap();
    let public = key.save(&dir.join(name)).unwrap();
    rws_trust::sign_set(&sigs, &key).unwrap();
    (sigs, public)
}

/// The demo config with absolute paths, reading the set in `sigs`, trusting `keys`.
fn demo_config(dir: &Path, sigs: &Path, keys: &[&Path], require: bool) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("firmware-config/demo.toml"))
        .unwrap()
        .replace("\"../signatures\"", &format!("{sigs:?}"))
        .replace(
            "\"demo/",
            &format!("\"{}/demo/", repo().join("firmware-config").display()),
        );
    let cfg = dir.join("trusting.toml");
    std::fs::write(&cfg, format!("{text}\n{}", trust_table(keys, require))).unwrap();
    cfg
}

fn trust_table(keys: &[&Path], require: bool) -> String {
    format!("[trust]\npublic_keys = {keys:?}\nrequire_signature = {require}\n")
}

fn check(cfg: &Path) -> (i32, String, String) {
    rws_testkit::run(
        env!("CARGO_BIN_EXE_rwsd"),
        &["--check", "--config", cfg.to_str().unwrap()],
    )
}

#[test]
fn a_signed_set_passes_and_every_change_to_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sigs, public) = signed_copy(dir.path(), "fleet-2026");
    let cfg = demo_config(dir.path(), &sigs, &[&public], true);
    let (code, out, err) = check(&cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("signature set: verified: signed by fleet-2026"),
        "{out}"
    );
    // A severity value: no file's CRC changes, the seal does not match.
    let manifest = sigs.join("manifest.json");
    let signed = std::fs::read_to_string(&manifest).unwrap();
    assert!(signed.contains("\"severity\": 5"));
    std::fs::write(
        &manifest,
        signed.replacen("\"severity\": 5", "\"severity\": 4", 1),
    )
    .unwrap();
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("manifest.json.sig") && err.contains("does not match"),
        "{err}"
    );
    std::fs::write(&manifest, &signed).unwrap();
    // A listed file swapped for another: refused (here its CRC-32C already differs; a forgery
    // that keeps the CRC is refused by the signed SHA-256, see rws-signature's manifest tests).
    let fog = std::fs::read(sigs.join("fog.rws")).unwrap();
    std::fs::copy(sigs.join("snow.rws"), sigs.join("fog.rws")).unwrap();
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 2);
    assert!(err.contains("fog.rws"), "{err}");
    std::fs::write(sigs.join("fog.rws"), fog).unwrap();
    assert_eq!(check(&cfg).0, 0, "restored");
    // The seal removed: unsigned, refused under require_signature, accepted without it.
    let seal = sigs.join("manifest.json.sig");
    let sealed = std::fs::read(&seal).unwrap();
    std::fs::remove_file(&seal).unwrap();
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 2);
    assert!(
        err.contains("unsigned") && err.contains("trust.require_signature"),
        "{err}"
    );
    let lenient = demo_config(dir.path(), &sigs, &[&public], false);
    let (code, out, err) = check(&lenient);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signature set: unsigned"), "{out}");
    std::fs::write(&seal, sealed).unwrap();
}

#[test]
fn only_trusted_keys_count_and_two_are_trusted_during_a_rollover() {
    let dir = tempfile::tempdir().unwrap();
    let (sigs, old) = signed_copy(dir.path(), "old");
    let new = SecretKey::generate("new").unwrap();
    let new_pub = new.save(&dir.path().join("new")).unwrap();
    // Signed by `old`, the device trusting only `new`: an unknown key, refused even when a
    // signature is not required (a seal that does not verify is evidence, not absence).
    for require in [true, false] {
        let cfg = demo_config(dir.path(), &sigs, &[&new_pub], require);
        let (code, _, err) = check(&cfg);
        assert_eq!(code, 2, "require = {require}: {err}");
        assert!(err.contains("not trusted here"), "{err}");
    }
    // The rollover: both trusted; the set verifies under the old key, then, re-signed, under
    // the new one.
    let both = demo_config(dir.path(), &sigs, &[&old, &new_pub], true);
    let (code, out, err) = check(&both);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signed by old"), "{out}");
    rws_trust::sign_set(&sigs, &new).unwrap();
    let (code, out, err) = check(&both);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signed by new"), "{out}");
}

#[test]
fn a_tampered_set_on_sighup_leaves_the_running_set_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (sigs, public) = signed_copy(dir.path(), "fleet");
    rws_testkit::mkfifo(&dir.path().join("frames"));
    let cfg = fifo_config(dir.path(), &trust_table(&[&public], true));
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("{:?}", repo().join("signatures")),
        &format!("{sigs:?}"),
    );
    std::fs::write(&cfg, text).unwrap();
    let child = start(&cfg);
    let sock = dir.path().join("rwsd.sock");
    // The served status is rebuilt within 250 ms of the start.
    let s = wait_status(&sock, |s| s["signature_set"] != "");
    let want = format!("verified: signed by fleet (key {})", key_id(&public));
    assert_eq!(s["signature_set"], want, "{s}");
    let manifest = sigs.join("manifest.json");
    let signed = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        signed.replacen("\"severity\": 5", "\"severity\": 1", 1),
    )
    .unwrap();
    child.signal(libc::SIGHUP);
    let s = wait_status(&sock, |s| !s["last_reload_error"].is_null());
    let why = s["last_reload_error"].as_str().unwrap_or_default();
    assert!(why.contains("does not match"), "{s}");
    assert_eq!(s["reloads"], 0, "{s}");
    assert!(
        s["signature_set"].as_str().unwrap().starts_with("verified"),
        "the running set stays: {s}"
    );
    stop(child, &sock);
}

fn key_id(public: &Path) -> String {
    rws_trust::PublicKey::load(public).unwrap().id()
}
