//! Who may change what a device runs. CRC-32C in the manifest detects corruption, not tampering:
//! anyone who can write to the signature directory can recompute it. This crate closes that gap
//! the way signed update artifacts do:
//!
//! - [`keys`]: ed25519 key pairs in two small text files (`rws keygen`), the private one 0600;
//! - [`seal`]: a detached signature, `manifest.json.sig`, over the manifest's exact bytes
//!   (`rws sign`), and its check against the public keys a device trusts (rwsd's `[trust]`,
//!   `rws verify --key`);
//! - [`sign_set`]: adds a SHA-256 of every listed file to the manifest, then signs it, so the
//!   one signature covers the model and every signature file through their digests (checked by
//!   `rws_signature::manifest::Expected` where each file's bytes are read).
//!
//! The threat model and key rotation are in docs/reliability.md.

pub mod keys;
pub mod seal;

use std::path::{Path, PathBuf};

pub use keys::{PublicKey, SecretKey};
pub use seal::{verify_manifest, verify_set, Seal, Verdict, SEAL_FILE};

/// A key or seal could not be read, made or checked.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct TrustError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
}

pub(crate) fn err(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> TrustError {
    TrustError {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// Signs the set in `dir`: every file the manifest lists is checked against its CRC-32C and
/// length, its SHA-256 written into the manifest (atomically), and the new manifest's bytes
/// signed into `manifest.json.sig` (atomically). Returns the manifest's path.
pub fn sign_set(dir: &Path, key: &SecretKey) -> Result<PathBuf, TrustError> {
    use rws_signature::manifest::Manifest;
    let path = dir.join("manifest.json");
    let from_manifest = |e: rws_signature::manifest::ManifestError| TrustError {
        path: e.path,
        field: e.field,
        reason: e.reason,
    };
    let mut manifest = Manifest::load(&path).map_err(from_manifest)?;
    manifest.add_digests(dir).map_err(from_manifest)?;
    manifest.save(&path).map_err(from_manifest)?;
    let bytes = Manifest::read(&path).map_err(from_manifest)?;
    let seal = Seal::sign(&bytes, key);
    let seal_path = dir.join(SEAL_FILE);
    rws_signature::format::writer::write_atomic(&seal_path, seal.to_text().as_bytes())
        .map_err(|e| err(&seal_path, "file", e.to_string()))?;
    Ok(path)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` bytes from exactly `2N` hex digits.
pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Reads at most `max` bytes of a small text file (a key, a seal) as UTF-8.
pub(crate) fn read_small(path: &Path, max: u64) -> Result<String, TrustError> {
    use std::io::Read;
    let io = |e: std::io::Error| err(path, "file", e.to_string());
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(err(path, "file", format!("larger than {max} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| err(path, "file", "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_wrong_lengths_and_digits() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex::<4>("0001ABff"), Some(b));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<4>("0001abfg"), None);
        assert_eq!(unhex::<4>("+001abff"), None);
        assert_eq!(unhex::<2>("é1"), None);
    }
}
