//! The head's file, `oracle.rwo`: small (a few kB), read whole, every field bounded.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RWSORACL"
//!      8     2  format version (1)
//!     10     2  feature bank version (features::FEATURE_VERSION)
//!     12     2  features (must be features::N_FEATURES)
//!     14     2  classes (2 … 64, `clean` first)
//!     16     2  hidden units (0 = logistic regression, ≤ 256)
//!     18     2  input height the head was trained at
//!     20     2  input width
//!     22     4  CRC-32C of the signature set's clean model (manifest `model.crc32c`): the set
//!               the head was trained and calibrated for
//!     26     4  length of the class-name block
//!     30     …  class names: per class, 1 length byte + UTF-8 (a-z, 0-9, '_')
//!      …     …  f32 little endian: mean, scale, [hidden W, b], output W, b, severity W, b
//!   end−4    4  CRC-32C of every byte before it
//! ```
//!
//! All integers little endian. The reader checks the length before reading anything, the
//! checksum before parsing, then every count against its bound and the exact length the counts
//! imply, and hands the values to [`Head::new`], which checks shapes and finiteness. Errors name
//! the file, the field and the reason.

use std::path::{Path, PathBuf};

use crate::features::{FEATURE_VERSION, N_FEATURES};
use crate::head::{Dense, Head, Parts, MAX_CLASSES, MAX_HIDDEN};

pub const MAGIC: &[u8; 8] = b"RWSORACL";
pub const VERSION: u16 = 1;
/// Larger than any head this format can describe (64 classes × 256 hidden units ≈ 100 kB).
pub const MAX_BYTES: u64 = 1 << 20;
const FIXED: usize = 30;

/// A head file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct OracleError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
}

fn err(path: &Path, field: &str, reason: impl Into<String>) -> OracleError {
    OracleError {
        path: path.to_path_buf(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A head with what it was made for.
#[derive(Clone, Debug)]
pub struct OracleFile {
    pub head: Head,
    /// Input size (height, width) the features were computed at in training.
    pub input: (usize, usize),
    /// CRC-32C of the clean model of the signature set the head belongs to.
    pub model_crc32c: u32,
}

impl OracleFile {
    /// Reads and checks a head file.
    pub fn open(path: impl AsRef<Path>) -> Result<OracleFile, OracleError> {
        let path = path.as_ref();
        OracleFile::parse(path, &OracleFile::read(path)?)
    }

    /// A head file's bytes, read whole after its length is checked against [`MAX_BYTES`] (for a
    /// caller that checks them against a manifest before parsing them).
    pub fn read(path: &Path) -> Result<Vec<u8>, OracleError> {
        let meta = std::fs::metadata(path).map_err(|e| err(path, "file", e.to_string()))?;
        if meta.len() > MAX_BYTES {
            return Err(err(
                path,
                "file",
                format!(
                    "{} bytes, more than the {MAX_BYTES} a head can need",
                    meta.len()
                ),
            ));
        }
        // Read through a bound as well: the file may grow between the look and the read.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_BYTES + 1), &mut bytes)
            })
            .map_err(|e| err(path, "file", e.to_string()))?;
        Ok(bytes)
    }

    /// Parses a head file's bytes (`path` is only named in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<OracleFile, OracleError> {
        if bytes.len() < FIXED + 4 {
            return Err(err(
                path,
                "file",
                format!("{} bytes is too short for a head", bytes.len()),
            ));
        }
        if bytes.len() as u64 > MAX_BYTES {
            return Err(err(path, "file", "larger than any head"));
        }
        if &bytes[..8] != MAGIC {
            return Err(err(
                path,
                "magic",
                "not an rws oracle head (expected RWSORACL)",
            ));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if crc32c::crc32c(body) != stored {
            return Err(err(
                path,
                "crc32c",
                "checksum does not match: the file is damaged",
            ));
        }
        let mut r = Reader {
            path,
            bytes: body,
            at: 8,
        };
        let (nc, nh, height, width) = header(&mut r)?;
        let model_crc32c = r.u32("model_crc32c")?;
        let classes = r.names(nc)?;
        let floats = float_count(nc, nh);
        if r.bytes.len() - r.at != 4 * floats {
            return Err(err(
                path,
                "parameters",
                format!(
                    "{} bytes, {nc} classes and {nh} hidden units need {}",
                    r.bytes.len() - r.at,
                    4 * floats
                ),
            ));
        }
        let parts = r.parts(classes, nc, nh);
        let head = Head::new(parts).map_err(|reason| err(path, "parameters", reason))?;
        Ok(OracleFile {
            head,
            input: (height, width),
            model_crc32c,
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = self.head.parts();
        let nh = p.hidden.as_ref().map_or(0, |h| h.outputs);
        let mut names = Vec::new();
        for c in &p.classes {
            names.push(c.len() as u8);
            names.extend_from_slice(c.as_bytes());
        }
        let mut out =
            Vec::with_capacity(FIXED + names.len() + 4 * float_count(p.classes.len(), nh) + 4);
        out.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            FEATURE_VERSION,
            N_FEATURES as u16,
            p.classes.len() as u16,
            nh as u16,
            self.input.0 as u16,
            self.input.1 as u16,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.model_crc32c.to_le_bytes());
        out.extend_from_slice(&(names.len() as u32).to_le_bytes());
        out.extend_from_slice(&names);
        let mut floats: Vec<&[f32]> = vec![&p.mean, &p.scale];
        if let Some(h) = &p.hidden {
            floats.extend([&h.w[..], &h.b[..]]);
        }
        floats.extend([
            &p.out.w[..],
            &p.out.b[..],
            &p.severity.w[..],
            &p.severity.b[..],
        ]);
        for v in floats.into_iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks that the head belongs to the signature set whose clean model has CRC-32C
    /// `model_crc32c` and whose signatures `has_signature` knows, at the model's input size.
    pub fn check_set(
        &self,
        path: &Path,
        model_crc32c: u32,
        input: (usize, usize),
        has_signature: impl Fn(&str) -> bool,
    ) -> Result<(), OracleError> {
        if self.model_crc32c != model_crc32c {
            return Err(err(
                path,
                "model_crc32c",
                format!(
                    "made for the set whose clean model has CRC-32C {:08x}, this set's is {model_crc32c:08x}",
                    self.model_crc32c
                ),
            ));
        }
        if self.input != input {
            return Err(err(
                path,
                "input",
                format!(
                    "trained on {}x{} inputs, the model takes {}x{}",
                    self.input.1, self.input.0, input.1, input.0
                ),
            ));
        }
        if let Some(c) = self.head.classes()[1..].iter().find(|c| !has_signature(c)) {
            return Err(err(
                path,
                "classes",
                format!("{c:?} has no signature in this set"),
            ));
        }
        Ok(())
    }
}

/// The counts after the magic, each checked against its bound: (classes, hidden units, input
/// height, input width).
fn header(r: &mut Reader<'_>) -> Result<(usize, usize, usize, usize), OracleError> {
    let path = r.path;
    let version = r.u16("version")?;
    if version != VERSION {
        return Err(err(
            path,
            "version",
            format!("{version}, this reader knows {VERSION}"),
        ));
    }
    let fv = r.u16("feature_version")?;
    if fv != FEATURE_VERSION {
        return Err(err(
            path,
            "feature_version",
            format!("{fv}: trained on another feature bank (this build has {FEATURE_VERSION})"),
        ));
    }
    let nf = usize::from(r.u16("features")?);
    if nf != N_FEATURES {
        return Err(err(
            path,
            "features",
            format!("{nf}, expected {N_FEATURES}"),
        ));
    }
    let nc = usize::from(r.u16("classes")?);
    if !(2..=MAX_CLASSES).contains(&nc) {
        return Err(err(
            path,
            "classes",
            format!("{nc}, expected 2 to {MAX_CLASSES}"),
        ));
    }
    let nh = usize::from(r.u16("hidden")?);
    if nh > MAX_HIDDEN {
        return Err(err(path, "hidden", format!("{nh}, at most {MAX_HIDDEN}")));
    }
    let height = usize::from(r.u16("height")?);
    let width = usize::from(r.u16("width")?);
    if height == 0 || width == 0 {
        return Err(err(path, "input", "input size must not be zero"));
    }
    Ok((nc, nh, height, width))
}

/// f32 values a head with `nc` classes and `nh` hidden units stores.
fn float_count(nc: usize, nh: usize) -> usize {
    let hidden = if nh > 0 { nh * N_FEATURES + nh } else { 0 };
    let into_out = if nh > 0 { nh } else { N_FEATURES };
    2 * N_FEATURES + hidden + into_out * nc + nc + (nc - 1) * (N_FEATURES + 1)
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &str) -> Result<&[u8], OracleError> {
        if self.bytes.len() - self.at < n {
            return Err(err(self.path, field, "the file ends inside it"));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u16(&mut self, field: &str) -> Result<u16, OracleError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &str) -> Result<u32, OracleError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn names(&mut self, n: usize) -> Result<Vec<String>, OracleError> {
        let len = self.u32("names")? as usize;
        let path = self.path;
        let block = self.take(len, "names")?;
        let mut names = Vec::with_capacity(n);
        let mut at = 0;
        for i in 0..n {
            let field = format!("names[{i}]");
            let l = usize::from(*block.get(at).ok_or_else(|| err(path, &field, "missing"))?);
            let raw = block
                .get(at + 1..at + 1 + l)
                .ok_or_else(|| err(path, &field, "runs past the name block"))?;
            let ok = !raw.is_empty()
                && raw
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
            if !ok {
                return Err(err(path, &field, "must be 1 or more of a-z, 0-9, '_'"));
            }
            names.push(String::from_utf8_lossy(raw).into_owned());
            at += 1 + l;
        }
        if at != block.len() {
            return Err(err(
                path,
                "names",
                format!("{} bytes after the last name", block.len() - at),
            ));
        }
        Ok(names)
    }

    /// The parameters; the caller has checked that exactly enough bytes remain.
    fn parts(&mut self, classes: Vec<String>, nc: usize, nh: usize) -> Parts {
        let mean = self.floats(N_FEATURES);
        let scale = self.floats(N_FEATURES);
        let hidden = (nh > 0).then(|| self.dense(N_FEATURES, nh));
        let out = self.dense(if nh > 0 { nh } else { N_FEATURES }, nc);
        let severity = self.dense(N_FEATURES, nc - 1);
        Parts {
            classes,
            mean,
            scale,
            hidden,
            out,
            severity,
        }
    }

    fn dense(&mut self, inputs: usize, outputs: usize) -> Dense {
        Dense {
            inputs,
            outputs,
            w: self.floats(inputs * outputs),
            b: self.floats(outputs),
        }
    }

    fn floats(&mut self, n: usize) -> Vec<f32> {
        let s = &self.bytes[self.at..self.at + 4 * n];
        self.at += 4 * n;
        s.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::tests::tiny;

    fn file() -> OracleFile {
        OracleFile {
            head: Head::new(tiny()).expect("valid"),
            input: (32, 32),
            model_crc32c: 0x68c6_b5b5,
        }
    }

    /// Recomputes the trailing checksum after a deliberate edit.
    fn reseal(bytes: &mut [u8]) {
        let n = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }

    fn reason(bytes: &[u8]) -> String {
        OracleFile::parse(Path::new("oracle.rwo"), bytes)
            .map(|_| String::from("accepted"))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn round_trips_every_parameter() {
        let f = file();
        let bytes = f.to_bytes();
        let back = OracleFile::parse(Path::new("x"), &bytes).expect("parses");
        assert_eq!(back.head.parts(), f.head.parts());
        assert_eq!((back.input, back.model_crc32c), ((32, 32), 0x68c6_b5b5));
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn refuses_damage_with_field_and_reason() {
        let good = file().to_bytes();
        assert!(reason(&good[..20]).contains("too short"));
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        assert!(reason(&flipped).contains("crc32c: checksum"));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(reason(&magic).contains("magic"));
        let mut version = good.clone();
        version[8] = 9;
        reseal(&mut version);
        assert!(reason(&version).contains("version: 9"));
        let mut classes = good.clone();
        classes[14] = 200;
        reseal(&mut classes);
        assert!(reason(&classes).contains("classes: 200"));
        let mut short = good[..good.len() - 8].to_vec();
        short.extend_from_slice(&[0; 4]);
        reseal(&mut short);
        assert!(reason(&short).contains("parameters"), "{}", reason(&short));
        let mut name = good.clone();
        name[31] = b'F';
        reseal(&mut name);
        assert!(reason(&name).contains("names[0]"));
        // A NaN weight (the last severity bias) is refused by the head's own check.
        let mut nan = good.clone();
        let at = nan.len() - 8;
        nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        reseal(&mut nan);
        assert!(reason(&nan).contains("not finite"));
    }

    #[test]
    fn binds_to_its_signature_set() {
        let f = file();
        let p = Path::new("oracle.rwo");
        let all = |c: &str| ["fog", "snow"].contains(&c);
        f.check_set(p, 0x68c6_b5b5, (32, 32), all)
            .expect("its own set");
        let other = f.check_set(p, 0x1234_5678, (32, 32), all).unwrap_err();
        assert!(other.to_string().contains("model_crc32c"), "{other}");
        let size = f.check_set(p, 0x68c6_b5b5, (224, 224), all).unwrap_err();
        assert!(size.to_string().contains("32x32"), "{size}");
        let missing = f
            .check_set(p, 0x68c6_b5b5, (32, 32), |c| c == "fog")
            .unwrap_err();
        assert!(
            missing.to_string().contains("\"snow\" has no signature"),
            "{missing}"
        );
    }
}
