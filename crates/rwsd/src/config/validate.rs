//! From a parsed [`schema::ConfigToml`] to a validated [`Config`]: one function per section,
//! each returning the first problem as a [`ConfigError`] with the line of the table (or value)
//! at fault and the config key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rws_image::tensor::Normalize;
use rws_signature::manifest::Manifest;
use toml::Spanned;

use super::schema::{self, ConfigToml, FramesToml, PolicyToml, RuleToml, SensorToml};
use super::{Clock, Config, ConfigError, FrameSource, Input, RawFormat};
use crate::policy::{self, Curve, Map, Policy, Rule};
use crate::sensors::driver::{SensorSpec, Source};

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
    let signatures = signatures(&policy, &model.manifest, &model.sig_dir);
    let (sensors, stale_after) = sensors(&ctx, &raw.sensors)?;
    let (frames, frame_interval_ms, label_from_name) = frames(&ctx, &raw.frames)?;
    let clock = clock(&ctx, raw.clock.as_ref(), &sensors)?;
    let output = output(&ctx, raw.output.as_ref())?;
    Ok(Config {
        path: path.to_path_buf(),
        model: model.path,
        signatures,
        labels: raw.model.labels,
        input: model.input,
        frames,
        frame_interval_ms,
        label_from_name,
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
    path: PathBuf,
    input: Input,
}

fn model(ctx: &Ctx<'_>, m: &schema::ModelToml) -> Result<ModelSection, ConfigError> {
    let sig_dir = ctx.resolve(m.signatures.get_ref());
    let sig_line = ctx.line(m.signatures.span());
    let manifest_path = sig_dir.join("manifest.json");
    let manifest = Manifest::load(&manifest_path)
        .map_err(|e| ctx.err(sig_line, "model.signatures", e.to_string()))?;
    manifest
        .verify_files(&sig_dir)
        .map_err(|e| ctx.err(sig_line, "model.signatures", e.to_string()))?;
    let path = match &m.path {
        Some(p) => ctx.resolve(p.get_ref()),
        None => sig_dir.join(&manifest.model.file),
    };
    if !path.is_file() {
        let line = m.path.as_ref().map_or(sig_line, |p| ctx.line(p.span()));
        return Err(ctx.err(
            line,
            "model.path",
            format!("{} is not a file", path.display()),
        ));
    }
    let input = input(ctx, &m.input)?;
    Ok(ModelSection {
        sig_dir,
        manifest_path,
        manifest,
        path,
        input,
    })
}

fn input(ctx: &Ctx<'_>, t: &Spanned<schema::InputToml>) -> Result<Input, ConfigError> {
    let line = ctx.line(t.span());
    let i = t.get_ref();
    if i.width == 0 || i.height == 0 || i.width > 4096 || i.height > 4096 {
        return Err(ctx.err(line, "model.input", "width and height must be 1..=4096"));
    }
    if i.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        return Err(ctx.err(line, "model.input.std", "must be finite and non-zero"));
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

fn policy(
    ctx: &Ctx<'_>,
    p: &Spanned<PolicyToml>,
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<Policy, ConfigError> {
    let policy_line = ctx.line(p.span());
    let pt = p.get_ref();
    let mut rules = Vec::new();
    for (i, r) in pt.rules.iter().enumerate() {
        let line = ctx.line(r.span());
        let rule = rule(r.get_ref())
            .map_err(|(key, reason)| ctx.err(line, &format!("policy.rule[{i}].{key}"), reason))?;
        if manifest.find(&rule.signature).is_none() {
            return Err(ctx.err(
                line,
                &format!("policy.rule[{i}].signature"),
                format!("'{}' is not in {}", rule.signature, manifest_path.display()),
            ));
        }
        rules.push(rule);
    }
    for (name, &a) in &pt.overrides {
        let key = format!("policy.overrides.{name}");
        if manifest.find(name).is_none() {
            return Err(ctx.err(
                policy_line,
                &key,
                format!("'{name}' is not in {}", manifest_path.display()),
            ));
        }
        policy::check_alpha(a).map_err(|reason| ctx.err(policy_line, &key, reason))?;
    }
    for (key, v, lo, hi) in [
        ("policy.max_total_alpha", pt.max_total_alpha, 0.0, 16.0),
        ("policy.ramp_per_s", pt.ramp_per_s, 1e-6, 1e6),
        ("policy.hysteresis", pt.hysteresis, 0.0, 1.0),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(ctx.err(policy_line, key, format!("{v} is outside {lo}..={hi}")));
        }
    }
    Ok(Policy {
        rules,
        max_total_alpha: pt.max_total_alpha,
        ramp_per_s: pt.ramp_per_s,
        hysteresis: pt.hysteresis,
        overrides: pt.overrides.clone(),
    })
}

fn map_of(curve: &Option<Vec<[f64; 2]>>, codes: &Option<Vec<i64>>) -> Result<Map, String> {
    match (curve, codes) {
        (Some(c), None) => Ok(Map::Curve(Curve::new(
            c.iter().map(|p| (p[0], p[1])).collect(),
        )?)),
        (None, Some(c)) if !c.is_empty() => Ok(Map::Codes(c.clone())),
        (None, Some(_)) => Err("codes: the list is empty".into()),
        (Some(_), Some(_)) => Err("give either curve or codes, not both".into()),
        (None, None) => Err("needs a curve or a list of codes".into()),
    }
}

/// One rule; errors are (key within the rule, reason).
fn rule(r: &RuleToml) -> Result<Rule, (String, String)> {
    let map = map_of(&r.curve, &r.codes).map_err(|e| ("curve".to_string(), e))?;
    policy::check_alpha(r.alpha).map_err(|e| ("alpha".to_string(), e))?;
    let and = match &r.and {
        None => None,
        Some(c) => Some((
            c.signal.clone(),
            map_of(&c.curve, &c.codes).map_err(|e| ("and.curve".to_string(), e))?,
        )),
    };
    Ok(Rule {
        signature: r.signature.clone(),
        signal: r.signal.clone(),
        map,
        alpha: r.alpha,
        and,
    })
}

/// The signature files the policy can switch on, in the engine's output order.
fn signatures(policy: &Policy, manifest: &Manifest, sig_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let names = policy
        .rules
        .iter()
        .map(|r| &r.signature)
        .chain(policy.overrides.keys());
    for name in names {
        if out.iter().all(|(n, _)| n != name) {
            if let Some(entry) = manifest.find(name) {
                out.push((name.clone(), sig_dir.join(&entry.file)));
            }
        }
    }
    out
}

fn sensors(
    ctx: &Ctx<'_>,
    raw: &[Spanned<SensorToml>],
) -> Result<(Vec<SensorSpec>, Vec<f64>), ConfigError> {
    let mut specs: Vec<SensorSpec> = Vec::new();
    let mut stale_after = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let line = ctx.line(s.span());
        let s = s.get_ref();
        let key = |k: &str| format!("sensor[{i}].{k}");
        let source = sensor_source(ctx, s).map_err(|r| ctx.err(line, &key("port"), r))?;
        if !(0.1..=86_400.0).contains(&s.stale_after_s) {
            return Err(ctx.err(
                line,
                &key("stale_after_s"),
                format!("{} is outside 0.1..=86400", s.stale_after_s),
            ));
        }
        if specs.iter().any(|o| o.name == s.name) {
            return Err(ctx.err(line, &key("name"), format!("'{}' is used twice", s.name)));
        }
        specs.push(SensorSpec {
            index: i,
            name: s.name.clone(),
            protocol: s.protocol,
            source,
            timestamps: s.timestamps,
        });
        stale_after.push(s.stale_after_s);
    }
    Ok((specs, stale_after))
}

fn sensor_source(ctx: &Ctx<'_>, s: &SensorToml) -> Result<Source, String> {
    let given = [
        s.port.is_some(),
        s.file.is_some(),
        s.fifo.is_some(),
        s.stdin,
    ];
    if given.iter().filter(|x| **x).count() != 1 {
        return Err("give exactly one of port, file, fifo, stdin".into());
    }
    Ok(if let Some(p) = &s.port {
        Source::Serial {
            path: PathBuf::from(p),
            baud: s.baud.unwrap_or(9600),
        }
    } else if let Some(f) = &s.file {
        Source::File(ctx.resolve(f))
    } else if let Some(f) = &s.fifo {
        Source::Fifo(ctx.resolve(f))
    } else {
        Source::Stdin
    })
}

fn frames(
    ctx: &Ctx<'_>,
    raw: &Spanned<FramesToml>,
) -> Result<(FrameSource, u64, bool), ConfigError> {
    let line = ctx.line(raw.span());
    let f = raw.get_ref();
    let err = |k: &str, reason: &str| ctx.err(line, &format!("frames.{k}"), reason);
    let size = |v: Option<usize>, k: &str| {
        v.filter(|x| (1..=8192).contains(x))
            .ok_or_else(|| err(k, "required, 1..=8192"))
    };
    let path = || {
        f.path
            .as_deref()
            .map(|p| ctx.resolve(p))
            .ok_or_else(|| err("path", "required for this source"))
    };
    let source = match f.source.as_str() {
        "dir" => FrameSource::Dir(path()?),
        "raw" => FrameSource::Raw {
            path: path()?,
            width: size(f.width, "width")?,
            height: size(f.height, "height")?,
            format: match f.format.as_deref().unwrap_or("rgb24") {
                "rgb24" => RawFormat::Rgb24,
                "gray8" => RawFormat::Gray8,
                other => return Err(err("format", &format!("'{other}': use rgb24 or gray8"))),
            },
        },
        "v4l2" => FrameSource::V4l2 {
            path: path()?,
            width: size(f.width, "width")?,
            height: size(f.height, "height")?,
        },
        other => return Err(err("source", &format!("'{other}': use dir, raw or v4l2"))),
    };
    if f.interval_ms == 0 || f.interval_ms > 3_600_000 {
        return Err(err("interval_ms", "must be 1..=3600000"));
    }
    Ok((source, f.interval_ms, f.label_from_name))
}

fn clock(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<schema::ClockToml>>,
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
