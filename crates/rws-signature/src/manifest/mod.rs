//! The signature manifest (`signatures/manifest.json`): which `.rws` file serves which corruption,
//! its group and training severity, the clean model it was made for, and a checksum of every file,
//! so a device can tell at start-up that its model and signatures belong together and are intact.
//!
//! CRC-32C detects corruption; it does not resist tampering (anyone can recompute it). A signed
//! set (`rws sign`, crate `rws-trust`) adds a SHA-256 digest per file, and an ed25519 signature
//! over the manifest's bytes covers those digests: the digests are checked here, where each
//! file's bytes are read, the signature where the manifest is.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The clean model the signatures patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub file: String,
    pub arch: String,
    pub dataset: String,
    /// Input layout, e.g. `NCHW 1x3x32x32 RGB in [0,1]`.
    pub input: String,
    pub crc32c: String,
    pub bytes: u64,
    /// SHA-256 of the file, 64 hex digits (signed sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureEntry {
    pub corruption: String,
    pub file: String,
    pub group: String,
    pub severity: u8,
    pub crc32c: String,
    pub bytes: u64,
    /// SHA-256 of the file, 64 hex digits (signed sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The camera-only oracle's head (`oracle.rwo`, crate rws-oracle) trained for this set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OracleEntry {
    pub file: String,
    pub crc32c: String,
    pub bytes: u64,
    /// SHA-256 of the file, 64 hex digits (signed sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub model: ModelEntry,
    pub signatures: Vec<SignatureEntry>,
    /// The set's oracle head, when one was trained (`rws oracle train`); older manifests have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleEntry>,
}

/// A manifest could not be read, or a file does not match it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
}

fn err(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// CRC-32C of a file, as 8 hex digits, and its length, streamed through a 64 KiB buffer (a
/// model of hundreds of megabytes is never held in memory to be checksummed).
pub fn checksum(path: &Path) -> Result<(String, u64), ManifestError> {
    let (crc, len) = stream_crc(path)?;
    Ok((format!("{crc:08x}"), len))
}

/// SHA-256 of a file, as 64 hex digits, streamed likewise (`rws sign`).
pub fn sha256_file(path: &Path) -> Result<String, ManifestError> {
    let digest = stream(path, true)?.2.unwrap_or_default();
    Ok(hex(&digest))
}

/// [`checksum`] as a number.
fn stream_crc(path: &Path) -> Result<(u32, u64), ManifestError> {
    stream(path, false).map(|(crc, len, _)| (crc, len))
}

/// One pass over a file: its CRC-32C, length and (if asked) SHA-256.
fn stream(path: &Path, sha: bool) -> Result<(u32, u64, Option<[u8; 32]>), ManifestError> {
    use sha2::Digest as _;
    use std::io::Read;
    let io = |e: std::io::Error| err(path, "file", e.to_string());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut crc, mut len) = (0u32, 0u64);
    let mut hasher = sha.then(sha2::Sha256::new);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        if let Some(h) = &mut hasher {
            h.update(&buf[..n]);
        }
        len += n as u64;
    }
    Ok((crc, len, hasher.map(|h| h.finalize().into())))
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 as the manifest writes it (64 hex digits, either case).
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

/// A CRC-32C as the manifest writes it (8 hex digits, either case).
pub fn parse_crc(text: &str) -> Option<u32> {
    (text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(text, 16).ok())
        .flatten()
}

/// What a file must be, and who says so: checked where the file is read anyway (the model as
/// it is decoded, a signature as the format validates it), so no file is read twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub crc32c: u32,
    pub bytes: Option<u64>,
    /// The file's SHA-256, where a (signed) manifest gives one.
    pub sha256: Option<[u8; 32]>,
    /// Who states it, for the error: `the manifest`, `model.crc32c in <config>`.
    pub by: String,
}

impl Expected {
    /// Compares a file's length, CRC-32C and (where one is expected) SHA-256 with what is
    /// expected of it; `sha256` is the file's, computed only when [`Expected::sha256`] is set.
    fn check(
        &self,
        path: &Path,
        crc32c: u32,
        len: u64,
        sha256: Option<[u8; 32]>,
    ) -> Result<(), ManifestError> {
        if let Some(bytes) = self.bytes.filter(|&b| b != len) {
            return Err(err(
                path,
                "bytes",
                format!("{} says {bytes} bytes, file has {len}", self.by),
            ));
        }
        if crc32c != self.crc32c {
            return Err(err(
                path,
                "crc32c",
                format!(
                    "{} says {:08x}, file has {crc32c:08x}",
                    self.by, self.crc32c
                ),
            ));
        }
        if let Some(want) = self.sha256.filter(|w| Some(*w) != sha256) {
            let got = sha256.map_or_else(|| "none".to_string(), |g| hex(&g));
            return Err(err(
                path,
                "sha256",
                format!("{} says {}, file has {got}", self.by, hex(&want)),
            ));
        }
        Ok(())
    }

    /// Checks bytes in memory (a mapped file) against what is expected. The SHA-256 pass runs
    /// only for a signed set's files, over the same resident pages the CRC pass read.
    pub fn check_bytes(&self, path: &Path, data: &[u8]) -> Result<(), ManifestError> {
        use sha2::Digest as _;
        let sha = self.sha256.map(|_| sha2::Sha256::digest(data).into());
        self.check(path, crc32c::crc32c(data), data.len() as u64, sha)
    }
}

/// The fields every file entry has (the model, each signature, the oracle head): a CRC-32C of
/// 8 hex digits, a SHA-256 of 64 where given, a plain file name. `at` names the entry in errors.
fn check_entry(
    path: &Path,
    at: &str,
    crc32c: &str,
    sha256: Option<&str>,
    file: &str,
) -> Result<(), ManifestError> {
    if parse_crc(crc32c).is_none() {
        return Err(err(path, format!("{at}.crc32c"), "must be 8 hex digits"));
    }
    if sha256.is_some_and(|t| parse_sha256(t).is_none()) {
        return Err(err(path, format!("{at}.sha256"), "must be 64 hex digits"));
    }
    if !plain_file_name(file) {
        return Err(err(
            path,
            format!("{at}.file"),
            "must be a file name in the manifest's directory",
        ));
    }
    Ok(())
}

/// The largest manifest read: a thousand signatures take about 250 KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A name of a file in the manifest's own directory: no separators, no `..`, not empty.
fn plain_file_name(f: &str) -> bool {
    !f.is_empty() && !f.contains(['/', '\\', '\0']) && f != "." && !f.contains("..")
}

impl Manifest {
    /// Reads `path` and checks its fields.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let bytes = Self::read(path)?;
        Self::parse(path, &bytes)
    }

    /// The bytes of a manifest file (at most [`MAX_MANIFEST_BYTES`]): what a signature covers,
    /// and what [`Manifest::parse`] reads.
    pub fn read(path: &Path) -> Result<Vec<u8>, ManifestError> {
        use std::io::Read;
        let io = |e: std::io::Error| err(path, "file", e.to_string());
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(err(
                path,
                "file",
                format!("larger than {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        Ok(bytes)
    }

    /// Parses manifest bytes read from `path` and checks their fields.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            err(
                path,
                format!("line {} column {}", e.line(), e.column()),
                e.to_string(),
            )
        })?;
        check_entry(
            path,
            "model",
            &m.model.crc32c,
            m.model.sha256.as_deref(),
            &m.model.file,
        )?;
        for (i, s) in m.signatures.iter().enumerate() {
            if m.signatures[..i]
                .iter()
                .any(|o| o.corruption == s.corruption)
            {
                return Err(err(
                    path,
                    format!("signatures[{i}].corruption"),
                    format!("'{}' listed twice", s.corruption),
                ));
            }
            let at = format!("signatures[{i}]");
            check_entry(path, &at, &s.crc32c, s.sha256.as_deref(), &s.file)?;
        }
        if let Some(o) = &m.oracle {
            check_entry(path, "oracle", &o.crc32c, o.sha256.as_deref(), &o.file)?;
        }
        Ok(m)
    }

    /// Writes the manifest as pretty JSON (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ManifestError> {
        let path = path.as_ref();
        let text =
            serde_json::to_string_pretty(self).map_err(|e| err(path, "manifest", e.to_string()))?;
        crate::format::writer::write_atomic(path, format!("{text}\n").as_bytes())
            .map_err(|e| err(path, "file", e.to_string()))
    }

    /// The entry for `corruption`.
    pub fn find(&self, corruption: &str) -> Option<&SignatureEntry> {
        self.signatures.iter().find(|s| s.corruption == corruption)
    }

    /// What the manifest says of its model.
    pub fn model_expected(&self) -> Expected {
        Expected {
            crc32c: parse_crc(&self.model.crc32c).unwrap_or_default(),
            bytes: Some(self.model.bytes),
            sha256: self.model.sha256.as_deref().and_then(parse_sha256),
            by: "the manifest".into(),
        }
    }

    /// What the manifest says of a signature file.
    pub fn signature_expected(entry: &SignatureEntry) -> Expected {
        Expected {
            crc32c: parse_crc(&entry.crc32c).unwrap_or_default(),
            bytes: Some(entry.bytes),
            sha256: entry.sha256.as_deref().and_then(parse_sha256),
            by: "the manifest".into(),
        }
    }

    /// What the manifest says of the oracle head file, if it lists one.
    pub fn oracle_expected(&self) -> Option<Expected> {
        self.oracle.as_ref().map(|o| Expected {
            crc32c: parse_crc(&o.crc32c).unwrap_or_default(),
            bytes: Some(o.bytes),
            sha256: o.sha256.as_deref().and_then(parse_sha256),
            by: "the manifest".into(),
        })
    }

    /// Whether every file the manifest lists carries a SHA-256 (what a signature must cover
    /// for it to protect the files and not only the manifest); else the first field without.
    pub fn missing_digest(&self) -> Option<String> {
        if self.model.sha256.is_none() {
            return Some("model.sha256".into());
        }
        if let Some(i) = self.signatures.iter().position(|s| s.sha256.is_none()) {
            return Some(format!("signatures[{i}].sha256"));
        }
        self.oracle
            .as_ref()
            .is_some_and(|o| o.sha256.is_none())
            .then(|| "oracle.sha256".into())
    }

    /// Fills in the SHA-256 of every listed file (`dir` is the manifest's directory), after
    /// checking each against its length and CRC-32C, in the same pass (`rws sign`).
    pub fn add_digests(&mut self, dir: &Path) -> Result<(), ManifestError> {
        let mut files: Vec<(&String, Expected, &mut Option<String>)> = Vec::new();
        let model_expected = self.model_expected();
        let oracle_expected = self.oracle_expected();
        files.push((&self.model.file, model_expected, &mut self.model.sha256));
        for s in &mut self.signatures {
            let e = Self::signature_expected(s);
            files.push((&s.file, e, &mut s.sha256));
        }
        if let (Some(o), Some(e)) = (self.oracle.as_mut(), oracle_expected) {
            files.push((&o.file, e, &mut o.sha256));
        }
        for (file, mut expected, slot) in files {
            let p = dir.join(file);
            let (crc, len, sha) = stream(&p, true)?;
            expected.sha256 = None;
            expected.check(&p, crc, len, None)?;
            *slot = sha.map(|d| hex(&d));
        }
        Ok(())
    }

    /// Checks every listed file against its length and checksum, each streamed; `dir` is the
    /// manifest's directory (`rws verify`, tools; the daemon checks each file it uses as it
    /// reads it instead).
    pub fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let oracle = self
            .oracle
            .as_ref()
            .map(|o| &o.file)
            .zip(self.oracle_expected());
        let files = std::iter::once((&self.model.file, self.model_expected()))
            .chain(
                self.signatures
                    .iter()
                    .map(|s| (&s.file, Self::signature_expected(s))),
            )
            .chain(oracle);
        for (file, expected) in files {
            let p = dir.join(file);
            let (crc, len, sha) = stream(&p, expected.sha256.is_some())?;
            expected.check(&p, crc, len, sha)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
