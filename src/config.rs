//! The daemon's configuration (`firmware-config/*.toml`): model, signatures, sensors, frames,
//! output, control socket and policy, checked as a whole before anything starts.
//!
//! Errors say `file:line: key: reason`. Relative paths are resolved against the config file's
//! directory, so a config works from any working directory. Every signature a rule or override
//! names must be listed in the signature directory's `manifest.json`, whose checksums are
//! verified at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::manifest::Manifest;
use crate::policy::{Policy, PolicyToml};
use crate::sensors::driver::{SensorSpec, Source};
use crate::sensors::Protocol;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    model: ModelToml,
    frames: toml::Spanned<FramesToml>,
    #[serde(default)]
    output: OutputToml,
    #[serde(default)]
    control: ControlToml,
    #[serde(default)]
    clock: ClockToml,
    #[serde(default, rename = "sensor")]
    sensors: Vec<toml::Spanned<SensorToml>>,
    policy: toml::Spanned<PolicyToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelToml {
    signatures: toml::Spanned<String>,
    #[serde(default)]
    path: Option<toml::Spanned<String>>,
    #[serde(default)]
    labels: Vec<String>,
    input: InputToml,
}

/// How frames are prepared for the model.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputToml {
    pub width: usize,
    pub height: usize,
    /// Per-channel mean subtracted after scaling to [0, 1].
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean.
    #[serde(default = "ones")]
    pub std: [f32; 3],
}

fn zeros() -> [f32; 3] {
    [0.0; 3]
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FramesToml {
    source: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    width: Option<usize>,
    #[serde(default)]
    height: Option<usize>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default = "default_interval")]
    interval_ms: u64,
    #[serde(default)]
    label_from_name: bool,
}

fn default_interval() -> u64 {
    33
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputToml {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    trace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlToml {
    #[serde(default)]
    socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockToml {
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorToml {
    name: String,
    protocol: Protocol,
    #[serde(default)]
    port: Option<String>,
    #[serde(default)]
    baud: Option<u32>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    fifo: Option<String>,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    timestamps: bool,
    #[serde(default = "default_stale")]
    stale_after_s: f64,
}

fn default_stale() -> f64 {
    120.0
}

/// Pixel layout of raw frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFormat {
    Rgb24,
    Gray8,
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
    pub path: PathBuf,
    pub model: PathBuf,
    pub signature_dir: PathBuf,
    pub manifest: Manifest,
    /// Signature files the policy uses, in policy order: (name, path).
    pub signatures: Vec<(String, PathBuf)>,
    pub labels: Vec<String>,
    pub input: InputToml,
    pub frames: FrameSource,
    pub frame_interval_ms: u64,
    pub label_from_name: bool,
    pub output: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub top_k: usize,
    pub socket: Option<PathBuf>,
    pub clock: Clock,
    pub sensors: Vec<SensorSpec>,
    pub stale_after: Vec<f64>,
    pub policy: Policy,
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

impl Config {
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
        let err = |line: usize, key: &str, reason: String| ConfigError {
            path: path.to_path_buf(),
            line,
            key: key.to_string(),
            reason,
        };
        let raw: ConfigToml = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            let msg = e.message().trim().to_string();
            // The key is what the offending line assigns to; for a missing field (the span is
            // the table) the message names it.
            let assigned = || {
                let l = text.lines().nth(line.checked_sub(1)?)?;
                let (k, _) = l.split_once('=')?;
                Some(k.trim().to_string())
            };
            let key = assigned()
                .or_else(|| msg.split('`').nth(1).map(str::to_string))
                .unwrap_or_else(|| "toml".to_string());
            err(line, &key, msg)
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let resolve = |p: &str| -> PathBuf {
            if p == "-" {
                PathBuf::from("-")
            } else {
                base.join(p)
            }
        };
        let at = |span: std::ops::Range<usize>| line_of(text, span.start);

        // Signatures and the manifest.
        let sig_dir = resolve(raw.model.signatures.get_ref());
        let sig_line = at(raw.model.signatures.span());
        let manifest_path = sig_dir.join("manifest.json");
        let manifest = Manifest::load(&manifest_path)
            .map_err(|e| err(sig_line, "model.signatures", e.to_string()))?;
        manifest
            .verify_files(&sig_dir)
            .map_err(|e| err(sig_line, "model.signatures", e.to_string()))?;
        let model = match &raw.model.path {
            Some(p) => resolve(p.get_ref()),
            None => sig_dir.join(&manifest.model.file),
        };
        if !model.is_file() {
            let line = raw.model.path.as_ref().map_or(sig_line, |p| at(p.span()));
            return Err(err(
                line,
                "model.path",
                format!("{} is not a file", model.display()),
            ));
        }
        let input = raw.model.input;
        if input.width == 0 || input.height == 0 || input.width > 4096 || input.height > 4096 {
            return Err(err(
                0,
                "model.input",
                "width and height must be 1..=4096".into(),
            ));
        }
        if input.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(err(
                0,
                "model.input.std",
                "must be finite and non-zero".into(),
            ));
        }

        // Policy.
        let policy_line = at(raw.policy.span());
        let pt = raw.policy.into_inner();
        let mut rules = Vec::new();
        for (i, r) in pt.rules.iter().enumerate() {
            let line = at(r.span());
            let rule = r
                .get_ref()
                .validate()
                .map_err(|(key, reason)| err(line, &format!("policy.rule[{i}].{key}"), reason))?;
            if manifest.find(&rule.signature).is_none() {
                return Err(err(
                    line,
                    &format!("policy.rule[{i}].signature"),
                    format!("'{}' is not in {}", rule.signature, manifest_path.display()),
                ));
            }
            rules.push(rule);
        }
        for (name, a) in &pt.overrides {
            if manifest.find(name).is_none() || !(0.0..=4.0).contains(a) {
                return Err(err(
                    policy_line,
                    &format!("policy.overrides.{name}"),
                    format!("needs a signature from the manifest and α in 0..=4, got {a}"),
                ));
            }
        }
        for (key, v, lo, hi) in [
            ("policy.max_total_alpha", pt.max_total_alpha, 0.0, 16.0),
            ("policy.ramp_per_s", pt.ramp_per_s, 1e-6, 1e6),
            ("policy.hysteresis", pt.hysteresis, 0.0, 1.0),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(err(policy_line, key, format!("{v} is outside {lo}..={hi}")));
            }
        }
        let policy = Policy {
            rules,
            max_total_alpha: pt.max_total_alpha,
            ramp_per_s: pt.ramp_per_s,
            hysteresis: pt.hysteresis,
            overrides: pt.overrides.clone(),
        };
        let mut signatures: Vec<(String, PathBuf)> = Vec::new();
        let names = policy
            .rules
            .iter()
            .map(|r| &r.signature)
            .chain(policy.overrides.keys());
        for name in names {
            if signatures.iter().all(|(n, _)| n != name) {
                if let Some(entry) = manifest.find(name) {
                    signatures.push((name.clone(), sig_dir.join(&entry.file)));
                }
            }
        }

        // Sensors.
        let mut sensors = Vec::new();
        let mut stale_after = Vec::new();
        for (i, s) in raw.sensors.iter().enumerate() {
            let line = at(s.span());
            let s = s.get_ref();
            let key = |k: &str| format!("sensor[{i}].{k}");
            let sources = [
                s.port.is_some(),
                s.file.is_some(),
                s.fifo.is_some(),
                s.stdin,
            ];
            if sources.iter().filter(|x| **x).count() != 1 {
                return Err(err(
                    line,
                    &key("port"),
                    "give exactly one of port, file, fifo, stdin".into(),
                ));
            }
            let source = if let Some(p) = &s.port {
                Source::Serial {
                    path: PathBuf::from(p),
                    baud: s.baud.unwrap_or(9600),
                }
            } else if let Some(f) = &s.file {
                Source::File(resolve(f))
            } else if let Some(f) = &s.fifo {
                Source::Fifo(resolve(f))
            } else {
                Source::Stdin
            };
            if !(0.1..=86_400.0).contains(&s.stale_after_s) {
                return Err(err(
                    line,
                    &key("stale_after_s"),
                    format!("{} is outside 0.1..=86400", s.stale_after_s),
                ));
            }
            if sensors.iter().any(|o: &SensorSpec| o.name == s.name) {
                return Err(err(
                    line,
                    &key("name"),
                    format!("'{}' is used twice", s.name),
                ));
            }
            sensors.push(SensorSpec {
                index: i,
                name: s.name.clone(),
                protocol: s.protocol,
                source,
                timestamps: s.timestamps,
            });
            stale_after.push(s.stale_after_s);
        }

        // Frames, clock, output.
        let frames_line = at(raw.frames.span());
        let f = raw.frames.into_inner();
        let fpath = f.path.as_deref().map(&resolve);
        let need = |v: Option<usize>, k: &str| {
            v.filter(|x| (1..=8192).contains(x)).ok_or_else(|| {
                err(
                    frames_line,
                    &format!("frames.{k}"),
                    "required, 1..=8192".into(),
                )
            })
        };
        let path_or = |k: &str| {
            fpath
                .clone()
                .ok_or_else(|| err(frames_line, k, "required for this source".into()))
        };
        let frames = match f.source.as_str() {
            "dir" => FrameSource::Dir(path_or("frames.path")?),
            "raw" => FrameSource::Raw {
                path: path_or("frames.path")?,
                width: need(f.width, "width")?,
                height: need(f.height, "height")?,
                format: match f.format.as_deref().unwrap_or("rgb24") {
                    "rgb24" => RawFormat::Rgb24,
                    "gray8" => RawFormat::Gray8,
                    other => {
                        return Err(err(
                            frames_line,
                            "frames.format",
                            format!("'{other}': use rgb24 or gray8"),
                        ))
                    }
                },
            },
            "v4l2" => FrameSource::V4l2 {
                path: path_or("frames.path")?,
                width: need(f.width, "width")?,
                height: need(f.height, "height")?,
            },
            other => {
                return Err(err(
                    frames_line,
                    "frames.source",
                    format!("'{other}': use dir, raw or v4l2"),
                ))
            }
        };
        if f.interval_ms == 0 || f.interval_ms > 3_600_000 {
            return Err(err(
                frames_line,
                "frames.interval_ms",
                "must be 1..=3600000".into(),
            ));
        }
        let clock = match raw.clock.mode.as_deref().unwrap_or("live") {
            "live" => Clock::Live,
            "replay" => Clock::Replay,
            other => {
                return Err(err(
                    0,
                    "clock.mode",
                    format!("'{other}': use live or replay"),
                ))
            }
        };
        if clock == Clock::Replay && sensors.iter().any(|s| !s.timestamps) {
            return Err(err(
                0,
                "clock.mode",
                "replay needs every sensor to have timestamps = true".into(),
            ));
        }
        let top_k = raw.output.top_k.unwrap_or(3);
        if top_k == 0 || top_k > 1000 {
            return Err(err(
                0,
                "output.top_k",
                format!("{top_k} is outside 1..=1000"),
            ));
        }
        Ok(Config {
            path: path.to_path_buf(),
            model,
            signature_dir: sig_dir,
            manifest,
            signatures,
            labels: raw.model.labels,
            input,
            frames,
            frame_interval_ms: f.interval_ms,
            label_from_name: f.label_from_name,
            output: raw.output.path.as_deref().map(&resolve),
            trace: raw.output.trace.as_deref().map(&resolve),
            top_k,
            socket: raw.control.socket.as_deref().map(&resolve),
            clock,
            sensors,
            stale_after,
            policy,
        })
    }
}

/// Overrides given on the command line or socket, `name=alpha` pairs.
pub fn parse_overrides(items: &[String]) -> Result<BTreeMap<String, f64>, String> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("'{kv}': expected signature=alpha"))?;
            let a: f64 = v.parse().map_err(|_| format!("'{v}' is not a number"))?;
            Ok((k.to_string(), a))
        })
        .collect()
}
