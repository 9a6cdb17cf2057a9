//! `[policy]`: rules (curves, codes, `and` conditions), overrides and limits, every signature
//! checked against the manifest and every signal against the protocols' vocabulary.

use std::path::{Path, PathBuf};

use rws_signature::manifest::{Expected, Manifest};
use toml::Spanned;

use super::super::schema::{PolicyToml, RuleToml};
use super::super::{ConfigError, OracleSpec};
use super::Ctx;
use crate::policy::{self, Curve, Map, Policy, Rule};
use crate::sensors::driver::SensorSpec;
use crate::sensors::Protocol;

pub(super) fn policy(
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
        (Some(c), None) => {
            // A curve gives a strength in [0, 1]; `alpha` scales it (and is capped like an
            // override): a y above 1 would bypass that cap.
            if let Some(p) = c.iter().find(|p| !(0.0..=1.0).contains(&p[1])) {
                return Err(format!(
                    "curve point y = {} is outside 0..=1 (scale with alpha)",
                    p[1]
                ));
            }
            Ok(Map::Curve(Curve::new(
                c.iter().map(|p| (p[0], p[1])).collect(),
            )?))
        }
        (None, Some(c)) if c.iter().any(|&k| !(0..=999).contains(&k)) => {
            Err("codes must be 0..=999".into())
        }
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
pub(super) fn signatures(
    policy: &Policy,
    manifest: &Manifest,
    sig_dir: &Path,
) -> (Vec<(String, PathBuf)>, Vec<Expected>) {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut expected = Vec::new();
    let names = policy
        .rules
        .iter()
        .map(|r| &r.signature)
        .chain(policy.overrides.keys());
    for name in names {
        if out.iter().all(|(n, _)| n != name) {
            if let Some(entry) = manifest.find(name) {
                out.push((name.clone(), sig_dir.join(&entry.file)));
                expected.push(Manifest::signature_expected(entry));
            }
        }
    }
    (out, expected)
}

/// Every signal a rule reads must be one some protocol produces (a misspelt signal would never
/// fire: refused); one that no configured sensor produces is only warned about (a sensor may
/// be added on the next reload).
pub(super) fn signals(
    ctx: &Ctx<'_>,
    p: &Spanned<PolicyToml>,
    sensors: &[SensorSpec],
    oracle: Option<&OracleSpec>,
) -> Result<(), ConfigError> {
    const ALL: [Protocol; 3] = [Protocol::Pwd, Protocol::Nmea, Protocol::Camera];
    for (i, r) in p.get_ref().rules.iter().enumerate() {
        let line = ctx.line(r.span());
        let rule = r.get_ref();
        let names = std::iter::once(("signal", &rule.signal))
            .chain(rule.and.as_ref().map(|c| ("and.signal", &c.signal)));
        for (key, signal) in names {
            if signal.starts_with(crate::oracle::PREFIX) {
                oracle_signal(
                    ctx,
                    line,
                    &format!("policy.rule[{i}].{key}"),
                    signal,
                    oracle,
                )?;
                continue;
            }
            if !ALL.iter().any(|proto| proto.produces(signal)) {
                return Err(ctx.err(
                    line,
                    &format!("policy.rule[{i}].{key}"),
                    format!("no sensor protocol produces '{signal}' (docs/protocols.md lists the signals)"),
                ));
            }
            if !sensors.iter().any(|s| s.protocol.produces(signal)) {
                log::warn!(
                    "{}:{line}: policy.rule[{i}].{key}: no configured sensor produces '{signal}'; the rule cannot fire",
                    ctx.path.display()
                );
            }
        }
    }
    Ok(())
}

/// A rule's `oracle.*` signal: it needs an `[oracle]`, and must name `clean` or a signature of
/// the set (with `.severity` or without).
fn oracle_signal(
    ctx: &Ctx<'_>,
    line: usize,
    key: &str,
    signal: &str,
    oracle: Option<&OracleSpec>,
) -> Result<(), ConfigError> {
    match oracle {
        None => Err(ctx.err(
            line,
            key,
            format!("'{signal}' comes from the camera-only oracle, and the config has no [oracle] section"),
        )),
        Some(o) if !o.produces(signal) => Err(ctx.err(
            line,
            key,
            format!(
                "the oracle does not produce '{signal}' (it gives oracle.clean, oracle.<signature> and oracle.<signature>.severity for the set's signatures)"
            ),
        )),
        Some(_) => Ok(()),
    }
}
