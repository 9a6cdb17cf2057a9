//! The manifest's checks: names, lengths, checksums, digests, and a CRC forgery.

use super::*;

fn manifest(dir: &Path) -> Manifest {
    std::fs::write(dir.join("m.onnx"), b"model bytes").unwrap();
    std::fs::write(dir.join("fog.rws"), b"signature bytes").unwrap();
    let (mc, mb) = checksum(&dir.join("m.onnx")).unwrap();
    let (sc, sb) = checksum(&dir.join("fog.rws")).unwrap();
    Manifest {
        model: ModelEntry {
            file: "m.onnx".into(),
            arch: "a".into(),
            dataset: "d".into(),
            input: "i".into(),
            crc32c: mc,
            bytes: mb,
            sha256: None,
        },
        signatures: vec![SignatureEntry {
            corruption: "fog".into(),
            file: "fog.rws".into(),
            group: "weather".into(),
            severity: 5,
            crc32c: sc,
            bytes: sb,
            sha256: None,
        }],
        oracle: None,
    }
}

#[test]
fn file_names_stay_in_the_directory_and_lengths_are_compared() {
    let dir = std::env::temp_dir().join(format!("rws-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = manifest(&dir);
    m.verify_files(&dir).unwrap();
    for bad in ["../m.onnx", "/etc/passwd", "", "a/b"] {
        let mut x = m.clone();
        x.model.file = bad.into();
        x.save(dir.join("manifest.json")).unwrap();
        let e = Manifest::load(dir.join("manifest.json")).unwrap_err();
        assert_eq!(e.field, "model.file", "{bad}: {e}");
    }
    let mut x = m.clone();
    x.signatures[0].bytes += 1;
    let e = x.verify_files(&dir).unwrap_err();
    assert_eq!(e.field, "bytes", "{e}");
    let mut x = m.clone();
    x.model.crc32c = "12345g78".into();
    x.save(dir.join("manifest.json")).unwrap();
    let e = Manifest::load(dir.join("manifest.json")).unwrap_err();
    assert_eq!(e.field, "model.crc32c", "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expected_files_are_checked_by_length_then_checksum() {
    let e = Expected {
        crc32c: crc32c::crc32c(b"abc"),
        bytes: Some(3),
        sha256: None,
        by: "the manifest".into(),
    };
    let p = Path::new("x.rws");
    e.check_bytes(p, b"abc").unwrap();
    let short = e.check_bytes(p, b"ab").unwrap_err();
    assert_eq!(short.field, "bytes");
    let other = e.check_bytes(p, b"abd").unwrap_err();
    assert_eq!(other.field, "crc32c");
    assert!(other.reason.contains("the manifest says"), "{other}");
    assert_eq!(parse_crc("DEADbeef"), Some(0xdead_beef));
    assert_eq!(parse_crc("+eadbeef"), None);
    assert_eq!(parse_crc("deadbee"), None);
}

/// `data` with its first byte changed and four bytes at `at` chosen so that the length and
/// CRC-32C stay the same: CRC is affine over GF(2), so the 32 bits to flip solve a linear
/// system. What anyone who can write a file can do in microseconds.
fn forge_same_crc(data: &[u8], at: usize) -> Vec<u8> {
    let base = crc32c::crc32c(data);
    let delta = |d: &[u8]| crc32c::crc32c(d) ^ base;
    // A basis of the correction bits' effects, by leading bit: (effect, which bits).
    let mut basis = [(0u32, 0u32); 32];
    for i in 0..32 {
        let mut y = data.to_vec();
        y[at + i / 8] ^= 1 << (i % 8);
        let (mut v, mut m) = (delta(&y), 1u32 << i);
        for b in (0..32).rev() {
            if v >> b & 1 == 0 {
                continue;
            }
            if basis[b].0 == 0 {
                basis[b] = (v, m);
                break;
            }
            (v, m) = (v ^ basis[b].0, m ^ basis[b].1);
        }
    }
    let mut forged = data.to_vec();
    forged[0] ^= 0xff;
    let (mut want, mut flips) = (delta(&forged), 0u32);
    for b in (0..32).rev() {
        if want >> b & 1 == 1 {
            (want, flips) = (want ^ basis[b].0, flips ^ basis[b].1);
        }
    }
    assert_eq!(want, 0, "the four bytes at {at} span every CRC");
    for i in (0..32).filter(|i| flips >> i & 1 == 1) {
        forged[at + i / 8] ^= 1 << (i % 8);
    }
    forged
}

#[test]
fn a_crc_preserving_forgery_passes_crc32c_and_fails_sha256() {
    use sha2::Digest as _;
    let data: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let forged = forge_same_crc(&data, 100);
    assert_ne!(forged, data);
    assert_eq!(crc32c::crc32c(&forged), crc32c::crc32c(&data));
    let mut e = Expected {
        crc32c: crc32c::crc32c(&data),
        bytes: Some(data.len() as u64),
        sha256: None,
        by: "the manifest".into(),
    };
    let p = Path::new("fog.rws");
    // CRC-32C detects corruption, not tampering: the forgery passes.
    e.check_bytes(p, &forged).unwrap();
    // A signed manifest's digest refuses it, and still accepts the original.
    e.sha256 = Some(sha2::Sha256::digest(&data).into());
    e.check_bytes(p, &data).unwrap();
    let refused = e.check_bytes(p, &forged).unwrap_err();
    assert_eq!(refused.field, "sha256", "{refused}");
    assert!(refused.reason.contains("the manifest says"), "{refused}");
}

#[test]
fn an_oracle_entry_is_checked_like_every_other_file() {
    let dir = std::env::temp_dir().join(format!("rws-manifest-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = manifest(&dir);
    std::fs::write(dir.join("oracle.rwo"), b"head bytes").unwrap();
    let (crc32c, bytes) = checksum(&dir.join("oracle.rwo")).unwrap();
    m.oracle = Some(OracleEntry {
        file: "oracle.rwo".into(),
        crc32c,
        bytes,
        sha256: None,
    });
    m.verify_files(&dir).unwrap();
    let text = serde_json::to_vec(&m).unwrap();
    assert_eq!(Manifest::parse(Path::new("m.json"), &text).unwrap(), m);
    assert_eq!(m.missing_digest().as_deref(), Some("model.sha256"));
    m.add_digests(&dir).unwrap();
    assert!(m.oracle.as_ref().unwrap().sha256.is_some());
    assert_eq!(m.missing_digest(), None);
    std::fs::write(dir.join("oracle.rwo"), b"head bytez").unwrap();
    let e = m.verify_files(&dir).unwrap_err().to_string();
    assert!(e.contains("oracle.rwo"), "{e}");
    let mut bad = m.clone();
    bad.oracle.as_mut().unwrap().file = "../oracle.rwo".into();
    let text = serde_json::to_vec(&bad).unwrap();
    let e = Manifest::parse(Path::new("m.json"), &text).unwrap_err();
    assert_eq!(e.field, "oracle.file");
    std::fs::remove_dir_all(&dir).unwrap();
}
