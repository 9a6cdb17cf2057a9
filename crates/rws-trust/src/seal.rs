//! The seal: `manifest.json.sig`, a detached ed25519 signature over the manifest's exact bytes
//! (no re-serialization, so no canonical form to get wrong), prefixed with a context string so a
//! signature made for anything else never verifies as a seal:
//!
//! ```text
//! rws-manifest-seal 1
//! key <64 hex digits: the signer's public key>
//! signature <128 hex digits>
//! ```
//!
//! The key line only says which trusted key to try; trust comes from the device's own list.

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _};

use crate::{err, hex, read_small, unhex, PublicKey, SecretKey, TrustError};

/// The seal's file name, beside `manifest.json`.
pub const SEAL_FILE: &str = "manifest.json.sig";
const HEADER: &str = "rws-manifest-seal 1";
/// What is signed: this, then the manifest's bytes.
const CONTEXT: &[u8] = b"rws signature-set manifest v1\0";
const MAX_SEAL_FILE: u64 = 1024;

/// A parsed seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    key: [u8; 32],
    signature: [u8; 64],
}

/// What a set's seal says, checked against the trusted keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No `manifest.json.sig`.
    Unsigned,
    /// Sealed, but no key was given to check it with (`rws verify` without `--key`, rwsd
    /// without `[trust]`): the key's id.
    Unchecked(String),
    /// Sealed by this trusted key, and the seal matches the manifest's bytes.
    Verified(PublicKey),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Unsigned => write!(f, "unsigned"),
            Verdict::Unchecked(id) => write!(f, "signed by key {id}, not checked (no trusted key)"),
            Verdict::Verified(k) => write!(f, "verified: signed by {}", k.label()),
        }
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    [CONTEXT, manifest].concat()
}

impl Seal {
    /// Signs a manifest's bytes.
    pub fn sign(manifest: &[u8], key: &SecretKey) -> Seal {
        let signature = key.signing().sign(&message(manifest));
        Seal {
            key: key.public().key.to_bytes(),
            signature: signature.to_bytes(),
        }
    }

    pub fn to_text(&self) -> String {
        format!(
            "{HEADER}\nkey {}\nsignature {}\n",
            hex(&self.key),
            hex(&self.signature)
        )
    }

    /// Parses a seal file's text (`path` for errors).
    pub fn parse(path: &Path, text: &str) -> Result<Seal, TrustError> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(err(path, "header", format!("must be '{HEADER}'")));
        }
        let key = field(path, lines.next(), "key").and_then(|t| {
            unhex::<32>(t).ok_or_else(|| err(path, "key", "must be 64 hex digits"))
        })?;
        let signature = field(path, lines.next(), "signature").and_then(|t| {
            unhex::<64>(t).ok_or_else(|| err(path, "signature", "must be 128 hex digits"))
        })?;
        if lines.next().is_some() {
            return Err(err(path, "end", "nothing may follow the signature line"));
        }
        Ok(Seal { key, signature })
    }

    /// The first 8 bytes of the signer's key, as [`PublicKey::id`] prints them.
    pub fn key_id(&self) -> String {
        hex(&self.key[..8])
    }

    /// Checks the seal against `manifest` with whichever of `trusted` it names.
    pub fn verify(
        &self,
        path: &Path,
        manifest: &[u8],
        trusted: &[PublicKey],
    ) -> Result<PublicKey, TrustError> {
        let Some(key) = trusted.iter().find(|k| k.key.as_bytes() == &self.key) else {
            let known: Vec<String> = trusted.iter().map(PublicKey::label).collect();
            return Err(err(
                path,
                "key",
                format!(
                    "signed by key {}, which is not trusted here (trusted: {})",
                    self.key_id(),
                    known.join(", ")
                ),
            ));
        };
        let signature = Signature::from_bytes(&self.signature);
        key.key
            .verify_strict(&message(manifest), &signature)
            .map_err(|_| {
                err(
                    path,
                    "signature",
                    format!(
                        "does not match the manifest: it or its files' digests changed after {} signed it",
                        key.label()
                    ),
                )
            })?;
        Ok(key.clone())
    }
}

/// `<name> <value>` on one line.
fn field<'a>(path: &Path, line: Option<&'a str>, name: &str) -> Result<&'a str, TrustError> {
    line.and_then(|l| l.strip_prefix(name))
        .and_then(|l| l.strip_prefix(' '))
        .ok_or_else(|| err(path, name, format!("expected a '{name} …' line")))
}

/// The verdict on the set whose manifest (read as `manifest`) is at `manifest_path`: its seal
/// (`manifest.json.sig` beside it), if any, checked against `trusted` (none: not checked).
pub fn verify_set(
    manifest_path: &Path,
    manifest: &[u8],
    trusted: &[PublicKey],
) -> Result<Verdict, TrustError> {
    let path = manifest_path.with_file_name(SEAL_FILE);
    let text = match read_small(&path, MAX_SEAL_FILE) {
        Ok(t) => t,
        Err(_) if !path.exists() && path.symlink_metadata().is_err() => {
            return Ok(Verdict::Unsigned)
        }
        Err(e) => return Err(e),
    };
    let seal = Seal::parse(&path, &text)?;
    if trusted.is_empty() {
        return Ok(Verdict::Unchecked(seal.key_id()));
    }
    seal.verify(&path, manifest, trusted).map(Verdict::Verified)
}

/// [`verify_set`] on a parsed manifest, with the rule that makes a seal worth having: a
/// verified seal covers the files only through their SHA-256 digests, so a sealed manifest
/// that lacks one for any file is refused (the one place this rule lives; rwsd's `[trust]` and
/// `rws verify` both ask here).
pub fn verify_manifest(
    manifest_path: &Path,
    bytes: &[u8],
    manifest: &rws_signature::manifest::Manifest,
    trusted: &[PublicKey],
) -> Result<Verdict, TrustError> {
    let verdict = verify_set(manifest_path, bytes, trusted)?;
    if let (Verdict::Verified(_), Some(field)) = (&verdict, manifest.missing_digest()) {
        return Err(err(
            manifest_path,
            field,
            "sealed, but this file has no SHA-256, so the seal does not cover it (sign the set with `rws sign`)",
        ));
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_verifies_its_manifest_and_nothing_else() {
        let key = SecretKey::generate("release").unwrap();
        let other = SecretKey::generate("other").unwrap();
        let manifest = br#"{"model": {"severity": 5}}"#;
        let seal = Seal::sign(manifest, &key);
        let p = Path::new("manifest.json.sig");
        let parsed = Seal::parse(p, &seal.to_text()).unwrap();
        assert_eq!(parsed, seal);
        let trusted = [other.public(), key.public()];
        assert_eq!(parsed.verify(p, manifest, &trusted).unwrap(), key.public());
        // One byte of the manifest changed: refused.
        let edited = br#"{"model": {"severity": 4}}"#;
        assert_eq!(
            parsed.verify(p, edited, &trusted).unwrap_err().field,
            "signature"
        );
        // Its key not trusted: refused, naming it.
        let e = parsed.verify(p, manifest, &[other.public()]).unwrap_err();
        assert_eq!(e.field, "key");
        assert!(e.reason.contains(&key.public().id()), "{e}");
        // The same key's signature over the bare bytes (no context) is not a seal.
        let bare = key.signing().sign(manifest).to_bytes();
        let forged = Seal {
            key: seal.key,
            signature: bare,
        };
        assert!(forged.verify(p, manifest, &trusted).is_err());
    }

    #[test]
    fn malformed_seals_name_the_field() {
        let key = SecretKey::generate("k").unwrap();
        let good = Seal::sign(b"m", &key).to_text();
        let p = Path::new("s");
        let cases = [
            (String::new(), "header"),
            (good.replacen("seal 1", "seal 2", 1), "header"),
            (good.replacen("key ", "kee ", 1), "key"),
            (good.replacen("key ", "key 0", 1), "key"),
            (good.replacen("signature ", "signature=", 1), "signature"),
            (good.clone() + "extra\n", "end"),
        ];
        for (text, field) in cases {
            assert_eq!(Seal::parse(p, &text).unwrap_err().field, field, "{text:?}");
        }
    }

    #[test]
    fn a_set_without_a_seal_is_unsigned_and_one_without_keys_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest.json");
        std::fs::write(&m, b"{}").unwrap();
        assert_eq!(verify_set(&m, b"{}", &[]).unwrap(), Verdict::Unsigned);
        let key = SecretKey::generate("k").unwrap();
        let seal = Seal::sign(b"{}", &key);
        std::fs::write(dir.path().join(SEAL_FILE), seal.to_text()).unwrap();
        assert_eq!(
            verify_set(&m, b"{}", &[]).unwrap(),
            Verdict::Unchecked(key.public().id())
        );
        assert_eq!(
            verify_set(&m, b"{}", &[key.public()]).unwrap(),
            Verdict::Verified(key.public())
        );
        // A seal that is a directory (or unreadable) is an error, not "unsigned".
        std::fs::remove_file(dir.path().join(SEAL_FILE)).unwrap();
        std::fs::create_dir(dir.path().join(SEAL_FILE)).unwrap();
        assert!(verify_set(&m, b"{}", &[key.public()]).is_err());
    }
}
