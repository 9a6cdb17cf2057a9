//! The daemon's configuration (`firmware-config/*.toml`): model, signatures, sensors, frames,
//! output, control socket and policy, checked as a whole before anything starts.
//!
//! Three layers: [`schema`] says what a file may contain (serde types and defaults),
//! [`validate`] turns a parsed file into a [`Config`] or the first problem, and this module
//! holds the validated types and the file I/O ([`Config::load`]). Errors say
//! `file:line: key: reason`. Relative paths are resolved against the config file's directory, so
//! a config works from any working directory. Every signature a rule or override names must be
//! listed in the signature directory's `manifest.json`. Loading a config reads only the config and
//! the manifest: the checksums the manifest gives are checked where each file is read anyway (a
//! signature by the format as it validates the file, the model as the runtime maps it), and only
//! for the files the config uses.

pub mod schema;
mod validate;

use std::path::{Path, PathBuf};

use rws_image::tensor::Normalize;
use rws_signature::manifest::Expected;
use rws_signature::SignatureFile;

use crate::policy::Policy;
use crate::sensors::driver::SensorSpec;

/// A config could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {key}: {reason}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line (0 when the problem is not tied to one line).
    pub line: usize,
    pub key: String,
    pub reason: String,
}

/// How frames are prepared for the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Input {
    pub width: usize,
    pub height: usize,
    pub norm: Normalize,
}

/// Pixel layout of raw frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFormat {
    Rgb24,
    Gray8,
}

impl RawFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            RawFormat::Rgb24 => 3,
            RawFormat::Gray8 => 1,
        }
    }
}

/// Where frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameSource {
    /// PNG/JPEG files of a directory, in name order.
    Dir(PathBuf),
    /// Raw frames of a fixed size from a file, FIFO or stdin (`-`).
    Raw {
        path: PathBuf,
        width: usize,
        height: usize,
        format: RawFormat,
    },
    /// A V4L2 device (cargo feature `v4l2`).
    V4l2 {
        path: PathBuf,
        width: usize,
        height: usize,
    },
}

/// How time advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Wall clock; sensor events are stamped on arrival.
    Live,
    /// Frame `i` is at `i × interval`; sensors replay timestamped logs; deterministic.
    Replay,
}

/// A validated daemon config.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The clean ONNX model.
    pub model: PathBuf,
    /// What the model file must be (the manifest's entry, or `model.crc32c`); checked as the
    /// runtime reads it.
    pub model_expected: Expected,
    /// Signature files the policy uses, in policy order: (name, path).
    pub signatures: Vec<(String, PathBuf)>,
    /// Per entry of `signatures`, what its manifest entry says of it; checked as the file is
    /// opened (only the files the policy uses are ever read).
    pub signature_expected: Vec<Expected>,
    /// Class names, by output index (empty: indices are printed).
    pub labels: Vec<String>,
    /// The line of `model.labels` (for the error when their count does not fit the model).
    pub labels_line: usize,
    pub input: Input,
    pub frames: FrameSource,
    pub frame_interval_ms: u64,
    /// Frame file names end in `-<label>` (the demo): each output line says whether it was right.
    pub label_from_name: bool,
    /// Largest frame decoded or read, in pixels (`frames.max_pixels`; by default 64 model
    /// inputs' worth, at least 1920×1080).
    pub max_pixels: u64,
    /// Where frame results go (`None` or `-`: stdout).
    pub output: Option<PathBuf>,
    /// A coefficient trace file, one line per frame.
    pub trace: Option<PathBuf>,
    pub top_k: usize,
    pub socket: Option<PathBuf>,
    pub clock: Clock,
    pub sensors: Vec<SensorSpec>,
    /// Per sensor, seconds after which its readings no longer count.
    pub stale_after: Vec<f64>,
    pub policy: Policy,
    /// The signature set's seal, as `[trust]` judged it (a refused one is a config error).
    pub trust: rws_trust::Verdict,
    pub metrics: Option<Metrics>,
    /// `[oracle]`: the camera-only oracle, if configured.
    pub oracle: Option<OracleSpec>,
}

/// `[oracle]`, validated: which head file, what it must be, and the tracker's constants.
#[derive(Clone, Debug)]
pub struct OracleSpec {
    /// The head file the manifest lists.
    pub path: PathBuf,
    /// What the manifest says of it; checked as the file is read.
    pub expected: Expected,
    /// The CRC-32C of the set's own clean model (the manifest's): the head must have been
    /// trained for this set.
    pub set_model_crc32c: u32,
    /// The set's signature names: every class of the head but `clean` must be one.
    pub set: Vec<String>,
    pub hysteresis: rws_oracle::Hysteresis,
    /// Seconds after the last frame its signals stop counting (so a stalled camera leaves no
    /// signature on).
    pub stale_after: f64,
}

impl OracleSpec {
    /// Whether `signal` is one the oracle publishes: `oracle.<class>` or
    /// `oracle.<class>.severity`, for `clean` or a signature of the set.
    pub fn produces(&self, signal: &str) -> bool {
        let Some(rest) = signal.strip_prefix(crate::oracle::PREFIX) else {
            return false;
        };
        let class = rest.strip_suffix(crate::oracle::SEVERITY).unwrap_or(rest);
        class == rws_oracle::CLEAN || self.set.iter().any(|s| s == class)
    }
}

/// `[metrics]`: where and how often the Prometheus textfile is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub textfile: PathBuf,
    pub interval: std::time::Duration,
}

/// A file the config names is not what the manifest says it is.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
}

impl Config {
    /// Opens the signature files the policy uses, in policy order, each checked to hold the
    /// corruption its manifest entry names (a `fog` entry whose file holds a snow signature is
    /// refused, not loaded as fog).
    pub fn open_signatures(&self) -> Result<Vec<SignatureFile>, anyhow::Error> {
        let mut out = Vec::with_capacity(self.signatures.len());
        for ((name, path), expected) in self.signatures.iter().zip(&self.signature_expected) {
            let sig = SignatureFile::open(path)?;
            // Over the bytes the format just validated (resident: no second read from storage);
            // a signed set's SHA-256 too.
            expected.check_bytes(path, sig.file_bytes())?;
            let held = &sig.metadata().corruption;
            if held != name {
                return Err(FileError {
                    path: path.clone(),
                    field: "metadata.corruption".into(),
                    reason: format!(
                        "holds a '{held}' signature; the manifest lists it as '{name}'"
                    ),
                }
                .into());
            }
            out.push(sig);
        }
        Ok(out)
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: 0,
            key: "file".into(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Validates config `text`; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        validate::parse(path, text)
    }
}
