//! `[trust]`: the signature set's seal against the keys the config trusts. A seal that does not
//! verify is refused whether or not one is required (it is evidence of tampering); an unsigned
//! set is refused only under `require_signature`. The files themselves are checked against the
//! signed SHA-256 digests where they are read (`Expected`), not here.

use rws_trust::{PublicKey, Verdict};
use toml::Spanned;

use super::schema::{ModelToml, TrustToml};
use super::{ConfigError, Ctx, ModelSection};

pub(super) fn trust(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<TrustToml>>,
    model_toml: &ModelToml,
    model: &ModelSection,
) -> Result<Verdict, ConfigError> {
    let (keys, require, line) = match raw {
        None => (Vec::new(), false, ctx.line(model_toml.signatures.span())),
        Some(t) => {
            let line = ctx.line(t.span());
            let t = t.get_ref();
            let keys = match &t.public_keys {
                Some(k) => public_keys(ctx, k)?,
                None => Vec::new(),
            };
            let require = t.require_signature.as_ref().is_some_and(|r| *r.get_ref());
            if require && keys.is_empty() {
                let reason = "needs trust.public_keys to check the signature with";
                return Err(ctx.err(line, "trust.require_signature", reason));
            }
            (keys, require, line)
        }
    };
    let verdict = rws_trust::verify_manifest(
        &model.manifest_path,
        &model.manifest_bytes,
        &model.manifest,
        &keys,
    )
    .map_err(|e| ctx.err(line, "trust", e.to_string()))?;
    if require && !matches!(verdict, Verdict::Verified(_)) {
        let shown = model.manifest_path.display();
        let reason = format!("{shown}: {verdict}; trust.require_signature refuses it");
        return Err(ctx.err(line, "trust.require_signature", reason));
    }
    if require {
        if let Some(c) = &model_toml.crc32c {
            let reason = "the signature covers only the manifest's model; model.crc32c names another (drop it, or require_signature = false)";
            return Err(ctx.err(ctx.line(c.span()), "model.crc32c", reason));
        }
    }
    Ok(verdict)
}

fn public_keys(ctx: &Ctx<'_>, raw: &Spanned<Vec<String>>) -> Result<Vec<PublicKey>, ConfigError> {
    let line = ctx.line(raw.span());
    raw.get_ref()
        .iter()
        .map(|p| {
            PublicKey::load(&ctx.resolve(p))
                .map_err(|e| ctx.err(line, "trust.public_keys", e.to_string()))
        })
        .collect()
}
