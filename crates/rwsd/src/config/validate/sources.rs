//! `[[sensor]]` and `[frames]`: where sensor lines and frames come from, with their names,
//! sizes and limits.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::super::schema::{FramesToml, SensorToml};
use super::super::{ConfigError, FrameSource, Input, RawFormat};
use super::Ctx;
use crate::sensors::driver::{SensorSpec, Source};

pub(super) fn sensors(
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
        sensor_name(&s.name).map_err(|r| ctx.err(line, &key("name"), r))?;
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

/// What `[frames]` resolves to.
pub(super) struct FramesSection {
    pub source: FrameSource,
    pub interval_ms: u64,
    pub label_from_name: bool,
    pub max_pixels: u64,
}

pub(super) fn frames(
    ctx: &Ctx<'_>,
    raw: &Spanned<FramesToml>,
    input: &Input,
) -> Result<FramesSection, ConfigError> {
    let line = ctx.line(raw.span());
    let f = raw.get_ref();
    let err = |k: &str, reason: &str| ctx.err(line, &format!("frames.{k}"), reason);
    let source = frame_source(ctx, f).map_err(|(k, r)| err(k, &r))?;
    if f.interval_ms == 0 || f.interval_ms > 3_600_000 {
        return Err(err("interval_ms", "must be 1..=3600000"));
    }
    let default = (64 * input.width as u64 * input.height as u64).max(1920 * 1080);
    let max_pixels = f.max_pixels.unwrap_or(default);
    if !(1..=(1 << 26)).contains(&max_pixels) {
        return Err(err("max_pixels", "must be 1..=67108864"));
    }
    if let FrameSource::Raw { width, height, .. } | FrameSource::V4l2 { width, height, .. } =
        &source
    {
        if (*width as u64) * (*height as u64) > max_pixels {
            return Err(err(
                "width",
                &format!("{width}x{height} frames exceed frames.max_pixels = {max_pixels}"),
            ));
        }
    }
    Ok(FramesSection {
        source,
        interval_ms: f.interval_ms,
        label_from_name: f.label_from_name,
        max_pixels,
    })
}

fn frame_source(ctx: &Ctx<'_>, f: &FramesToml) -> Result<FrameSource, (&'static str, String)> {
    let size = |v: Option<usize>, k: &'static str| {
        v.filter(|x| (1..=8192).contains(x))
            .ok_or((k, "required, 1..=8192".to_string()))
    };
    let path = || {
        f.path
            .as_deref()
            .map(|p| ctx.resolve(p))
            .ok_or(("path", "required for this source".to_string()))
    };
    Ok(match f.source.as_str() {
        "dir" => FrameSource::Dir(path()?),
        "raw" => FrameSource::Raw {
            path: path()?,
            width: size(f.width, "width")?,
            height: size(f.height, "height")?,
            format: match f.format.as_deref().unwrap_or("rgb24") {
                "rgb24" => RawFormat::Rgb24,
                "gray8" => RawFormat::Gray8,
                other => return Err(("format", format!("'{other}': use rgb24 or gray8"))),
            },
        },
        "v4l2" => FrameSource::V4l2 {
            path: path()?,
            width: size(f.width, "width")?,
            height: size(f.height, "height")?,
        },
        other => return Err(("source", format!("'{other}': use dir, raw or v4l2"))),
    })
}

/// Sensor names appear in logs, the status and thread names: printable, 1 to 64 characters.
fn sensor_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(format!("'{name}' must be 1 to 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} holds a control character"));
    }
    Ok(())
}

/// Standard input can feed one reader only: a sensor or the frames.
pub(super) fn stdin_once(
    ctx: &Ctx<'_>,
    raw: &[Spanned<SensorToml>],
    sensors: &[SensorSpec],
    frames: &FrameSource,
) -> Result<(), ConfigError> {
    let frames_stdin = matches!(frames, FrameSource::Raw { path, .. } if path == Path::new("-"));
    let mut users = usize::from(frames_stdin);
    for (i, (s, r)) in sensors.iter().zip(raw).enumerate() {
        if s.source == Source::Stdin {
            users += 1;
            if users > 1 {
                return Err(ctx.err(
                    ctx.line(r.span()),
                    &format!("sensor[{i}].stdin"),
                    "standard input already feeds another sensor or the frames",
                ));
            }
        }
    }
    Ok(())
}
