//! `[oracle]`: the camera-only oracle's head, found through the manifest (a config cannot point
//! at a head of another set), and the tracker's constants, checked here; the head file itself is
//! read and checked where it is loaded (start, `--check`, reload).

use rws_oracle::Hysteresis;
use toml::Spanned;

use super::super::schema::OracleToml;
use super::super::{ConfigError, OracleSpec};
use super::{Ctx, ModelSection};

/// Seconds after the last frame the oracle's signals stop counting, unless the config says.
pub const DEFAULT_STALE_S: f64 = 5.0;

pub(super) fn oracle(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<OracleToml>>,
    model: &ModelSection,
) -> Result<Option<OracleSpec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let line = ctx.line(raw.span());
    let o = raw.get_ref();
    let manifest = &model.manifest;
    let (Some(entry), Some(expected)) = (&manifest.oracle, manifest.oracle_expected()) else {
        return Err(ctx.err(
            line,
            "oracle",
            format!(
                "{} lists no oracle head (`rws oracle train` trains one and lists it)",
                model.manifest_path.display()
            ),
        ));
    };
    let path = model.sig_dir.join(&entry.file);
    if !path.is_file() {
        return Err(ctx.err(
            line,
            "oracle",
            format!(
                "{} (the manifest's oracle.file) is not a file",
                path.display()
            ),
        ));
    }
    let d = Hysteresis::DEFAULT;
    let hysteresis = Hysteresis {
        smoothing: o.smoothing.unwrap_or(d.smoothing),
        on: o.engage.unwrap_or(d.on),
        off: o.release.unwrap_or(d.off),
        confirm: o.confirm_frames.unwrap_or(d.confirm),
    };
    hysteresis.check().map_err(|r| ctx.err(line, "oracle", r))?;
    let stale_after = o.stale_after_s.unwrap_or(DEFAULT_STALE_S);
    if !(0.1..=86_400.0).contains(&stale_after) {
        return Err(ctx.err(
            line,
            "oracle.stale_after_s",
            format!("{stale_after} is outside 0.1..=86400"),
        ));
    }
    Ok(Some(OracleSpec {
        path,
        expected,
        set_model_crc32c: expected_model_crc(manifest),
        set: manifest
            .signatures
            .iter()
            .map(|s| s.corruption.clone())
            .collect(),
        hysteresis,
        stale_after,
    }))
}

/// The manifest's own model CRC-32C (validated when the manifest was parsed).
fn expected_model_crc(manifest: &rws_signature::manifest::Manifest) -> u32 {
    manifest.model_expected().crc32c
}
