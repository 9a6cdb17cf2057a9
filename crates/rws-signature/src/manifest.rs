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

/// CRC-32C of a file, as 8 hex digits, and its length, streamed through a 64 KiB buffer (a
/// model of hundreds of megabytes is never held in memory to be checksummed).
pub fn checksum(path: &Path) -> Result<(String, u64), ManifestError> {
    let (crc, len) = stream_crc(path)?;
    Ok((format!("{crc:08x}"), len))
}

/// [`checksum`] as a number.
fn stream_crc(path: &Path) -> Result<(u32, u64), ManifestError> {
    use std::io::Read;
    let io = |e: std::io::Error| err(path, "file", e.to_string());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut crc, mut len) = (0u32, 0u64);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        len += n as u64;
    }
    Ok((crc, len))
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
    /// Who states it, for the error: `the manifest`, `model.crc32c in <config>`.
    pub by: String,
}

impl Expected {
    /// Compares a file's length and CRC-32C with what is expected of it.
    pub fn check(&self, path: &Path, crc32c: u32, len: u64) -> Result<(), ManifestError> {
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
        Ok(())
    }

    /// Checks bytes in memory (a mapped file) against what is expected.
    pub fn check_bytes(&self, path: &Path, data: &[u8]) -> Result<(), ManifestError> {
        self.check(path, crc32c::crc32c(data), data.len() as u64)
    }
}

/// A name of a file in the manifest's own directory: no separators, no `..`, not empty.
fn plain_file_name(f: &str) -> bool {
    !f.is_empty() && !f.contains(['/', '\\', '\0']) && f != "." && !f.contains("..")
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
        if parse_crc(&m.model.crc32c).is_none() {
            return Err(err(path, "model.crc32c", "must be 8 hex digits"));
        }
        if !plain_file_name(&m.model.file) {
            return Err(err(
                path,
                "model.file",
                "must be a file name in the manifest's directory",
            ));
        }
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
            if parse_crc(&s.crc32c).is_none() {
                return Err(err(
                    path,
                    format!("signatures[{i}].crc32c"),
                    "must be 8 hex digits",
                ));
            }
            if !plain_file_name(&s.file) {
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

    /// What the manifest says of its model.
    pub fn model_expected(&self) -> Expected {
        Expected {
            crc32c: parse_crc(&self.model.crc32c).unwrap_or_default(),
            bytes: Some(self.model.bytes),
            by: "the manifest".into(),
        }
    }

    /// What the manifest says of a signature file.
    pub fn signature_expected(entry: &SignatureEntry) -> Expected {
        Expected {
            crc32c: parse_crc(&entry.crc32c).unwrap_or_default(),
            bytes: Some(entry.bytes),
            by: "the manifest".into(),
        }
    }

    /// Checks every listed file against its length and checksum, each streamed; `dir` is the
    /// manifest's directory (`rws verify`, tools; the daemon checks each file it uses as it
    /// reads it instead).
    pub fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let files = std::iter::once((&self.model.file, self.model_expected())).chain(
            self.signatures
                .iter()
                .map(|s| (&s.file, Self::signature_expected(s))),
        );
        for (file, expected) in files {
            let p = dir.join(file);
            let (crc, len) = stream_crc(&p)?;
            expected.check(&p, crc, len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
            },
            signatures: vec![SignatureEntry {
                corruption: "fog".into(),
                file: "fog.rws".into(),
                group: "weather".into(),
                severity: 5,
                crc32c: sc,
                bytes: sb,
            }],
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
}
