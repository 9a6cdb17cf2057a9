//! The signature manifest (`signatures/manifest.json`): which `.rws` file serves which corruption,
//! its group and training severity, the clean model it was made for, and a checksum of every file,
//! so a device can tell at start-up that its model and signatures belong together and are intact.

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
}

/// The whole manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub model: ModelEntry,
    pub signatures: Vec<SignatureEntry>,
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

/// CRC-32C of a file, as 8 hex digits, and its length.
pub fn checksum(path: &Path) -> Result<(String, u64), ManifestError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, "file", e.to_string()))?;
    Ok((
        format!("{:08x}", crc32c::crc32c(&bytes)),
        bytes.len() as u64,
    ))
}

impl Manifest {
    /// Reads `path` and checks its fields.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| err(path, "file", e.to_string()))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            err(
                path,
                format!("line {} column {}", e.line(), e.column()),
                e.to_string(),
            )
        })?;
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
            if s.file.contains('/') || s.file.contains("..") {
                return Err(err(
                    path,
                    format!("signatures[{i}].file"),
                    "must be a file name in the manifest's directory",
                ));
            }
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

    /// Checks every listed file against its checksum; `dir` is the manifest's directory.
    pub fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let files = std::iter::once((&self.model.file, &self.model.crc32c))
            .chain(self.signatures.iter().map(|s| (&s.file, &s.crc32c)));
        for (file, crc) in files {
            let p = dir.join(file);
            let (got, _) = checksum(&p)?;
            if &got != crc {
                return Err(err(
                    &p,
                    "crc32c",
                    format!("manifest says {crc}, file has {got}"),
                ));
            }
        }
        Ok(())
    }
}
