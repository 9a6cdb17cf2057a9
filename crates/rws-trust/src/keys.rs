//! Ed25519 key files, one line each, so they can be read, diffed and pasted:
//!
//! ```text
//! KEY      rws-ed25519-secret <64 hex digits: the seed> <name>     (mode 0600)
//! KEY.pub  rws-ed25519-public <64 hex digits: the key> <name>
//! ```
//!
//! The name (the file's stem at `rws keygen`, e.g. `release-2026`) is what status and errors
//! show beside the key id; it is not trusted: a seal names its key by the key's bytes.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::{err, hex, read_small, unhex, TrustError};

const SECRET_TAG: &str = "rws-ed25519-secret";
const PUBLIC_TAG: &str = "rws-ed25519-public";
/// A key file is one short line; anything longer is not one.
const MAX_KEY_FILE: u64 = 1024;
const MAX_NAME: usize = 64;

/// A public key a device trusts, with the name its file gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) key: VerifyingKey,
    name: String,
}

/// A signing key (kept off the devices).
pub struct SecretKey {
    key: SigningKey,
    name: String,
}

impl std::fmt::Debug for SecretKey {
    // Never the seed, not even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("name", &self.name)
            .field("id", &self.public().id())
            .finish_non_exhaustive()
    }
}

/// `<tag> <hex> <name>` on one line (a trailing newline allowed): the 32 key bytes and the name.
fn parse_line(path: &Path, text: &str, tag: &str) -> Result<([u8; 32], String), TrustError> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let mut fields = line.split(' ');
    if fields.next() != Some(tag) {
        return Err(err(
            path,
            "tag",
            format!("not an rws key file (expected '{tag} …')"),
        ));
    }
    let bytes = fields
        .next()
        .and_then(unhex::<32>)
        .ok_or_else(|| err(path, "key", "must be 64 hex digits"))?;
    let name = fields.next().unwrap_or_default().to_string();
    if fields.next().is_some() || !valid_name(&name) {
        return Err(err(
            path,
            "name",
            format!("must be 1–{MAX_NAME} letters, digits, '-', '_' or '.', after the key"),
        ));
    }
    Ok((bytes, name))
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl PublicKey {
    /// Reads a `.pub` file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        Self::parse(path, &read_small(path, MAX_KEY_FILE)?)
    }

    /// Parses a `.pub` file's text (`path` for errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, TrustError> {
        let (bytes, name) = parse_line(path, text, PUBLIC_TAG)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| err(path, "key", "not a valid ed25519 public key"))?;
        if key.is_weak() {
            return Err(err(path, "key", "a small-order (weak) key signs anything"));
        }
        Ok(PublicKey { key, name })
    }

    /// The first 8 bytes of the key, in hex: enough to tell keys apart in logs and status.
    pub fn id(&self) -> String {
        hex(&self.key.as_bytes()[..8])
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name (key id)`, as status and errors show a key.
    pub fn label(&self) -> String {
        format!("{} (key {})", self.name, self.id())
    }

    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG} {} {}\n", hex(self.key.as_bytes()), self.name)
    }
}

impl SecretKey {
    /// A new key from the kernel's random generator.
    pub fn generate(name: &str) -> Result<Self, TrustError> {
        let path = Path::new(name);
        if !valid_name(name) {
            return Err(err(
                path,
                "name",
                format!("must be 1–{MAX_NAME} letters, digits, '-', '_' or '.'"),
            ));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| err(path, "seed", e.to_string()))?;
        Ok(SecretKey {
            key: SigningKey::from_bytes(&seed),
            name: name.to_string(),
        })
    }

    /// Reads a private key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).map_err(|e| err(path, "file", e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(
                path,
                "mode",
                format!(
                    "{:o}: a private key must be readable by its owner only (chmod 600)",
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
        let (seed, name) = parse_line(path, &read_small(path, MAX_KEY_FILE)?, SECRET_TAG)?;
        Ok(SecretKey {
            key: SigningKey::from_bytes(&seed),
            name,
        })
    }

    /// Writes `path` (mode 0600) and `path.pub`; refuses to overwrite either, so a key in use
    /// is never lost to a repeated command. Returns the public key's path.
    pub fn save(&self, path: &Path) -> Result<PathBuf, TrustError> {
        let pub_path = pub_path(path);
        for p in [path, pub_path.as_path()] {
            if p.exists() {
                return Err(err(
                    p,
                    "file",
                    "exists; not overwritten (move it away first)",
                ));
            }
        }
        let secret = format!("{SECRET_TAG} {} {}\n", hex(self.key.as_bytes()), self.name);
        write_new(path, secret.as_bytes(), 0o600)?;
        write_new(&pub_path, self.public().to_text().as_bytes(), 0o644)?;
        Ok(pub_path)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
            name: self.name.clone(),
        }
    }

    pub(crate) fn signing(&self) -> &SigningKey {
        &self.key
    }
}

/// `KEY.pub` beside `KEY`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Creates a file that must not exist yet, with `mode` from its first byte on.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TrustError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| err(path, "file", e.to_string());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pair_is_written_once_private_to_its_owner_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release-2026");
        let key = SecretKey::generate("release-2026").unwrap();
        let pub_path = key.save(&path).unwrap();
        assert_eq!(pub_path, dir.path().join("release-2026.pub"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SecretKey::load(&path).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(PublicKey::load(&pub_path).unwrap(), key.public());
        assert!(!format!("{again:?}").contains(&hex(key.key.as_bytes())));
        // A second keygen onto the same name loses nothing.
        let other = SecretKey::generate("release-2026").unwrap();
        let e = other.save(&path).unwrap_err();
        assert!(e.reason.contains("exists"), "{e}");
        assert_eq!(SecretKey::load(&path).unwrap().public(), key.public());
        // Readable by others: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(SecretKey::load(&path).unwrap_err().field, "mode");
    }

    #[test]
    fn malformed_key_files_name_the_field() {
        let p = Path::new("k.pub");
        let good = SecretKey::generate("k").unwrap().public().to_text();
        assert!(PublicKey::parse(p, &good).is_ok());
        let cases = [
            ("", "tag"),
            ("rws-ed25519-secret 00 k", "tag"),
            ("rws-ed25519-public 0011 k", "key"),
            (&good.replace(" k\n", ""), "name"),
            (&good.replace(" k\n", " a b"), "name"),
            (&good.replace(" k\n", " k/../x"), "name"),
        ];
        for (text, field) in cases {
            let e = PublicKey::parse(p, text).unwrap_err();
            assert_eq!(e.field, field, "{text:?}: {e}");
        }
        // The identity point is a valid encoding and a weak key.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let text = format!("rws-ed25519-public {} w", hex(&weak));
        assert_eq!(PublicKey::parse(p, &text).unwrap_err().field, "key");
    }
}
