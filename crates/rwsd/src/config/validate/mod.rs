//! From a parsed [`schema::ConfigToml`] to a validated [`Config`]: one function per section
//! (the policy in [`policy`], sensors and frames in [`sources`]),
//! each returning the first problem as a [`ConfigError`] with the line of the table (or value)
//! at fault and the config key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rws_image::tensor::Normalize;
use rws_signature::manifest::{Expected, Manifest};
use toml::Spanned;

mod oracle;
mod policy;
mod sources;
mod trust;

use super::schema::{self, ConfigToml, SensorToml};
use super::{Clock, Config, ConfigError, Input, Metrics};
use crate::sensors::driver::{SensorSpec, Source};
use policy::{policy, signals, signatures};
use sources::{frames, sensors, stdin_once};

/// What every check needs: the file (for errors and relative paths) and its text (for lines).
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    base: PathBuf,
}

impl Ctx<'_> {
    fn err(&self, line: usize, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// 1-based line of the start of `span`.
    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    /// A path from the config, relative to the config's directory (`-` stays stdin/stdout).
    fn resolve(&self, p: &str) -> PathBuf {
        if p == "-" {
            PathBuf::from("-")
        } else {
            self.base.join(p)
        }
    }
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Validates config `text` read from `path`.
pub(super) fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        path,
        text,
        base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let raw = decode(&ctx)?;
    let model = model(&ctx, &raw.model)?;
    let policy = policy(&ctx, &raw.policy, &model.manifest, &model.manifest_path)?;
    let (signatures, signature_expected) = signatures(&policy, &model.manifest, &model.sig_dir);
    let trust = trust::trust(&ctx, raw.trust.as_ref(), &raw.model, &model)?;
    let (sensors, stale_after) = sensors(&ctx, &raw.sensors)?;
    let oracle = oracle::oracle(&ctx, raw.oracle.as_ref(), &model)?;
    signals(&ctx, &raw.policy, &sensors, oracle.as_ref())?;
    let frames = frames(&ctx, &raw.frames, &model.input)?;
    let clock = clock(&ctx, raw.clock.as_ref(), &raw.sensors, &sensors)?;
    stdin_once(&ctx, &raw.sensors, &sensors, &frames.source)?;
    let output = output(&ctx, raw.output.as_ref())?;
    let metrics = raw.metrics.as_ref().map(|m| metrics(&ctx, m)).transpose()?;
    let (labels, labels_line) = match raw.model.labels {
        Some(l) => (l.get_ref().clone(), ctx.line(l.span())),
        None => (Vec::new(), 0),
    };
    Ok(Config {
        path: path.to_path_buf(),
        model: model.path,
        model_expected: model.expected,
        signatures,
        signature_expected,
        labels,
        labels_line,
        input: model.input,
        frames: frames.source,
        frame_interval_ms: frames.interval_ms,
        label_from_name: frames.label_from_name,
        max_pixels: frames.max_pixels,
        output: output.path,
        trace: output.trace,
        top_k: output.top_k,
        socket: raw
            .control
            .as_ref()
            .and_then(|c| c.get_ref().socket.as_deref())
            .map(|s| ctx.resolve(s)),
        clock,
        sensors,
        stale_after,
        policy,
        trust,
        metrics,
        oracle,
    })
}

/// The TOML decode; type errors and unknown keys get their line and key here.
fn decode(ctx: &Ctx<'_>) -> Result<ConfigToml, ConfigError> {
    toml::from_str(ctx.text).map_err(|e| {
        let line = e.span().map_or(0, |s| ctx.line(s));
        let msg = e.message().trim().to_string();
        // The key is what the offending line assigns to; for a missing field (the span is the
        // table) the message names it.
        let assigned = || {
            let l = ctx.text.lines().nth(line.checked_sub(1)?)?;
            let (k, _) = l.split_once('=')?;
            Some(k.trim().to_string())
        };
        let key = assigned()
            .or_else(|| msg.split('`').nth(1).map(str::to_string))
            .unwrap_or_else(|| "toml".to_string());
        ctx.err(line, &key, msg)
    })
}

/// What `[model]` resolves to.
struct ModelSection {
    sig_dir: PathBuf,
    manifest_path: PathBuf,
    manifest: Manifest,
    /// The manifest's bytes, as read: what a seal covers.
    manifest_bytes: Vec<u8>,
    path: PathBuf,
    expected: Expected,
    input: Input,
}

fn model(ctx: &Ctx<'_>, m: &schema::ModelToml) -> Result<ModelSection, ConfigError> {
    let sig_dir = ctx.resolve(m.signatures.get_ref());
    let sig_line = ctx.line(m.signatures.span());
    let manifest_path = sig_dir.join("manifest.json");
    let manifest_bytes = Manifest::read(&manifest_path)
        .map_err(|e| ctx.err(sig_line, "model.signatures", e.to_string()))?;
    let manifest = Manifest::parse(&manifest_path, &manifest_bytes)
        .map_err(|e| ctx.err(sig_line, "model.signatures", e.to_string()))?;
    let path = match &m.path {
        Some(p) => ctx.resolve(p.get_ref()),
        None => sig_dir.join(&manifest.model.file),
    };
    let line = m.path.as_ref().map_or(sig_line, |p| ctx.line(p.span()));
    if !path.is_file() {
        return Err(ctx.err(
            line,
            "model.path",
            format!("{} is not a file", path.display()),
        ));
    }
    let expected = model_expected(ctx, m, &manifest)?;
    let input = input(ctx, &m.input)?;
    Ok(ModelSection {
        sig_dir,
        manifest_path,
        manifest,
        manifest_bytes,
        path,
        expected,
        input,
    })
}

/// What the model must be: `model.crc32c` if the config gives one (another model of the same
/// architecture, a transfer deployment), else the manifest's model. Checked as the runtime maps
/// the file, not here (the file is read once).
fn model_expected(
    ctx: &Ctx<'_>,
    m: &schema::ModelToml,
    manifest: &Manifest,
) -> Result<Expected, ConfigError> {
    let Some(c) = &m.crc32c else {
        let mut e = manifest.model_expected();
        if m.path.is_some() {
            e.by = "the manifest's model (model.path names another file; give model.crc32c to run another model)".into();
        }
        return Ok(e);
    };
    let crc32c = rws_signature::manifest::parse_crc(c.get_ref())
        .ok_or_else(|| ctx.err(ctx.line(c.span()), "model.crc32c", "must be 8 hex digits"))?;
    Ok(Expected {
        crc32c,
        bytes: None,
        sha256: None,
        by: format!("model.crc32c in {}", ctx.path.display()),
    })
}

fn input(ctx: &Ctx<'_>, t: &Spanned<schema::InputToml>) -> Result<Input, ConfigError> {
    let line = ctx.line(t.span());
    let i = t.get_ref();
    if i.width == 0 || i.height == 0 || i.width > 4096 || i.height > 4096 {
        return Err(ctx.err(line, "model.input", "width and height must be 1..=4096"));
    }
    if i.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(ctx.err(line, "model.input.std", "must be finite and positive"));
    }
    if i.mean.iter().any(|m| !(m.is_finite() && m.abs() <= 1000.0)) {
        return Err(ctx.err(line, "model.input.mean", "must be finite, within ±1000"));
    }
    Ok(Input {
        width: i.width,
        height: i.height,
        norm: Normalize {
            mean: i.mean,
            std: i.std,
        },
    })
}

fn clock(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<schema::ClockToml>>,
    raw_sensors: &[Spanned<SensorToml>],
    sensors: &[SensorSpec],
) -> Result<Clock, ConfigError> {
    let line = raw.map_or(0, |c| ctx.line(c.span()));
    let mode = raw.and_then(|c| c.get_ref().mode.as_deref());
    let clock = match mode.unwrap_or("live") {
        "live" => Clock::Live,
        "replay" => Clock::Replay,
        other => return Err(ctx.err(line, "clock.mode", format!("'{other}': use live or replay"))),
    };
    if clock == Clock::Replay && sensors.iter().any(|s| !s.timestamps) {
        return Err(ctx.err(
            line,
            "clock.mode",
            "replay needs every sensor to have timestamps = true",
        ));
    }
    if clock == Clock::Replay {
        // A replay waits for each log up to every frame's time: a log that is not there would
        // make every frame wait for it.
        for (i, (spec, raw)) in sensors.iter().zip(raw_sensors).enumerate() {
            if let Source::File(p) = &spec.source {
                if !p.is_file() {
                    return Err(ctx.err(
                        ctx.line(raw.span()),
                        &format!("sensor[{i}].file"),
                        format!("{} is not a file (replay needs every log)", p.display()),
                    ));
                }
            }
        }
    }
    Ok(clock)
}

/// What `[output]` resolves to.
struct OutputSection {
    path: Option<PathBuf>,
    trace: Option<PathBuf>,
    top_k: usize,
}

fn output(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<schema::OutputToml>>,
) -> Result<OutputSection, ConfigError> {
    let line = raw.map_or(0, |o| ctx.line(o.span()));
    let default = schema::OutputToml::default();
    let o = raw.map_or(&default, |o| o.get_ref());
    let top_k = o.top_k.unwrap_or(3);
    if top_k == 0 || top_k > 1000 {
        return Err(ctx.err(line, "output.top_k", format!("{top_k} is outside 1..=1000")));
    }
    Ok(OutputSection {
        path: o.path.as_deref().map(|p| ctx.resolve(p)),
        trace: o.trace.as_deref().map(|p| ctx.resolve(p)),
        top_k,
    })
}

/// `[metrics]`: a `.prom` file (the textfile collector reads no other) and a sane interval.
fn metrics(ctx: &Ctx<'_>, raw: &Spanned<schema::MetricsToml>) -> Result<Metrics, ConfigError> {
    let line = ctx.line(raw.span());
    let m = raw.get_ref();
    if !m.textfile.ends_with(".prom") {
        return Err(ctx.err(
            line,
            "metrics.textfile",
            format!(
                "'{}': node_exporter's textfile collector reads only *.prom",
                m.textfile
            ),
        ));
    }
    let secs = m.interval_s.unwrap_or(15.0);
    if !(1.0..=3600.0).contains(&secs) {
        return Err(ctx.err(
            line,
            "metrics.interval_s",
            format!("{secs} is outside 1..=3600 seconds"),
        ));
    }
    Ok(Metrics {
        textfile: ctx.resolve(&m.textfile),
        interval: std::time::Duration::from_secs_f64(secs),
    })
}
