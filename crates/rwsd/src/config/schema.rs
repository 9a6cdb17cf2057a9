//! The config file's schema: what `firmware-config/*.toml` may say, as serde types, with every
//! default in one place. Nothing here checks values; [`super::validate`] turns a parsed schema
//! into a [`super::Config`]. Tables carry their spans so errors can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::sensors::Protocol;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    pub model: ModelToml,
    pub frames: Spanned<FramesToml>,
    #[serde(default)]
    pub output: Option<Spanned<OutputToml>>,
    #[serde(default)]
    pub control: Option<Spanned<ControlToml>>,
    #[serde(default)]
    pub clock: Option<Spanned<ClockToml>>,
    #[serde(default, rename = "sensor")]
    pub sensors: Vec<Spanned<SensorToml>>,
    pub policy: Spanned<PolicyToml>,
    #[serde(default)]
    pub trust: Option<Spanned<TrustToml>>,
    #[serde(default)]
    pub metrics: Option<Spanned<MetricsToml>>,
    #[serde(default)]
    pub oracle: Option<Spanned<OracleToml>>,
}

/// `[oracle]`: the camera-only oracle, from the head file the signature set's manifest lists
/// (`rws oracle train`). Every key is optional: an empty `[oracle]` runs the shipped constants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleToml {
    /// Seconds after the last frame the oracle's signals stop counting (default 5).
    #[serde(default)]
    pub stale_after_s: Option<f64>,
    /// Weight of the newest frame in the smoothed outputs, in (0, 1] (default 0.5).
    #[serde(default)]
    pub smoothing: Option<f32>,
    /// Smoothed probability at which a corruption engages (default 0.6).
    #[serde(default)]
    pub engage: Option<f32>,
    /// Smoothed probability below which an engaged corruption lets go (default 0.4).
    #[serde(default)]
    pub release: Option<f32>,
    /// Consecutive frames a corruption must hold `engage` before it engages (default 2).
    #[serde(default)]
    pub confirm_frames: Option<u32>,
}

/// `[metrics]`: a Prometheus textfile for node_exporter's textfile collector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsToml {
    /// The `.prom` file to write (relative to the config), in the collector's directory.
    pub textfile: String,
    /// Seconds between writes (default 15: node_exporter's usual scrape interval).
    #[serde(default)]
    pub interval_s: Option<f64>,
}

/// `[trust]`: who may sign the signature set (docs/reliability.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustToml {
    /// `.pub` files (`rws keygen`), relative to the config; two during a key rollover.
    #[serde(default)]
    pub public_keys: Option<Spanned<Vec<String>>>,
    /// Refuse a set without a valid seal by one of `public_keys`.
    #[serde(default)]
    pub require_signature: Option<Spanned<bool>>,
}

/// `[model]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelToml {
    pub signatures: Spanned<String>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// The CRC-32C of a model given by `path` that is not the manifest's own (a transfer
    /// deployment); without it, `path` must hold the manifest's model.
    #[serde(default)]
    pub crc32c: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: Option<Spanned<Vec<String>>>,
    pub input: Spanned<InputToml>,
}

/// `[model.input]`: how frames are prepared for the model.
#[derive(Debug, Deserialize)]
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

/// `[frames]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FramesToml {
    pub source: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub width: Option<usize>,
    #[serde(default)]
    pub height: Option<usize>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    #[serde(default)]
    pub label_from_name: bool,
    /// Largest frame, in pixels, that is decoded (or read raw); larger ones are bad frames.
    #[serde(default)]
    pub max_pixels: Option<u64>,
}

fn default_interval() -> u64 {
    33
}

/// `[output]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputToml {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub trace: Option<String>,
}

/// `[control]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlToml {
    #[serde(default)]
    pub socket: Option<String>,
}

/// `[clock]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockToml {
    #[serde(default)]
    pub mode: Option<String>,
}

/// One `[[sensor]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorToml {
    pub name: String,
    pub protocol: Protocol,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub baud: Option<u32>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub fifo: Option<String>,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub timestamps: bool,
    #[serde(default = "default_stale")]
    pub stale_after_s: f64,
}

fn default_stale() -> f64 {
    120.0
}

/// `[policy]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyToml {
    #[serde(default = "default_cap")]
    pub max_total_alpha: f64,
    #[serde(default = "default_ramp")]
    pub ramp_per_s: f64,
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    #[serde(default)]
    pub overrides: BTreeMap<String, f64>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleToml>>,
}

fn default_cap() -> f64 {
    1.5
}
fn default_ramp() -> f64 {
    0.5
}
fn default_hysteresis() -> f64 {
    0.05
}

/// One `[[policy.rule]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleToml {
    pub signature: String,
    pub signal: String,
    #[serde(default)]
    pub curve: Option<Vec<[f64; 2]>>,
    #[serde(default)]
    pub codes: Option<Vec<i64>>,
    #[serde(default = "one")]
    pub alpha: f64,
    #[serde(default)]
    pub and: Option<ConditionToml>,
}

fn one() -> f64 {
    1.0
}

/// The `and = { signal = ..., curve = ... }` of a rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionToml {
    pub signal: String,
    #[serde(default)]
    pub curve: Option<Vec<[f64; 2]>>,
    #[serde(default)]
    pub codes: Option<Vec<i64>>,
}
