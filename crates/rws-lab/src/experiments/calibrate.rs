//! Policy curves from measurements: `rws calibrate` composes the user's declared sensor side
//! (a signal value per corruption severity, `firmware-config/severity-map.toml`) with the
//! sweep's measured best α per severity, giving `[[policy.rule]]` curves for rwsd.
//!
//! A curve goes through `(off, 0)` and `(value at severity s, best α at s)` for each severity;
//! rwsd's curves give a strength in 0..=1 that the rule's `alpha` scales, so the points are
//! written as `best α / largest best α` with `alpha` = the largest. A code rule (WMO present
//! weather) gets `alpha` = the best α at the severity its codes are declared to mean.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::sweep::Sweep;

/// The map file could not be read, or a rule in it cannot be calibrated.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct CalibrateError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
}

fn err(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> CalibrateError {
    CalibrateError {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// The user's side of one rule.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MapRule {
    pub signature: String,
    pub signal: String,
    /// The signal value at which the signature is off (curves).
    pub off: Option<f64>,
    /// The signal value at severities 1–5 (curves), strictly monotone from `off`.
    pub severities: Option<Vec<f64>>,
    /// Codes that switch the signature on (code rules), and the severity they mean.
    pub codes: Option<Vec<i64>>,
    pub severity: Option<u8>,
    /// A second condition copied into the rule as it is (`and = { signal, curve }`).
    pub and: Option<And>,
    /// Why these values: printed above the rule.
    pub why: Option<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct And {
    pub signal: String,
    pub curve: Vec<[f64; 2]>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    rule: Vec<MapRule>,
}

/// Reads and checks a severity map.
pub fn load_map(path: &Path) -> Result<Vec<MapRule>, CalibrateError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, "file", e.to_string()))?;
    let file: MapFile = toml::from_str(&text).map_err(|e| err(path, "toml", e.to_string()))?;
    for (i, r) in file.rule.iter().enumerate() {
        check_rule(r)
            .map_err(|(f, why)| err(path, format!("rule[{i}] ({}).{f}", r.signature), why))?;
    }
    Ok(file.rule)
}

fn check_rule(r: &MapRule) -> Result<(), (&'static str, String)> {
    match (&r.off, &r.severities, &r.codes, &r.severity) {
        (Some(off), Some(v), None, None) => {
            if v.len() != 5 {
                return Err((
                    "severities",
                    format!("{} values; give one per severity 1–5", v.len()),
                ));
            }
            let all: Vec<f64> = std::iter::once(*off).chain(v.iter().copied()).collect();
            if all.iter().any(|x| !x.is_finite()) {
                return Err(("severities", "values must be finite".into()));
            }
            let up = all.windows(2).all(|w| w[0] < w[1]);
            let down = all.windows(2).all(|w| w[0] > w[1]);
            if !(up || down) {
                return Err((
                    "severities",
                    format!("{all:?}: off then severities 1–5 must rise or fall strictly"),
                ));
            }
            Ok(())
        }
        (None, None, Some(codes), Some(s)) => {
            if codes.is_empty() || codes.iter().any(|c| !(0..=999).contains(c)) {
                return Err(("codes", "give codes within 0..=999".into()));
            }
            if !(1..=5).contains(s) {
                return Err(("severity", format!("{s} is outside 1–5")));
            }
            Ok(())
        }
        _ => Err((
            "off",
            "give either off + severities (a curve) or codes + severity".into(),
        )),
    }
}

/// One calibrated rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibrated {
    pub signature: String,
    pub signal: String,
    /// The sweep's α of the highest RA at severities 1–5 (the figure's reading).
    pub measured_best_alpha: Vec<f32>,
    /// The α the rule sets at severities 1–5: the smallest whose RA is within the tolerance of
    /// the highest (where RA is flat the argmax is noise, and a smaller patch changes less).
    pub best_alpha: Vec<f32>,
    /// RA at the chosen α and at α = 0, per severity.
    pub ra_best: Vec<f64>,
    pub ra_off: Vec<f64>,
    /// Whether the chosen α never falls as severity rises (the curve follows it either way).
    pub monotone: bool,
    pub curve: Option<Vec<[f64; 2]>>,
    pub codes: Option<Vec<i64>>,
    pub alpha: f64,
    pub and: Option<And>,
    pub why: Option<String>,
}

/// `rws calibrate --json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub experiment: String,
    pub sweep: super::Provenance,
    /// RA within this much of the best counts as the best (fraction, 0.005 = 0.5 points).
    pub tolerance: f64,
    pub rules: Vec<Calibrated>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The default tolerance: half a point of RA, about the standard error of an accuracy near 90 %
/// on the 1000-image test split.
pub const TOLERANCE: f64 = 0.005;

/// Per severity, the smallest α whose RA is within `tolerance` of the highest.
fn chosen(alphas: &[f32], ra: &[Vec<f64>], tolerance: f64) -> Vec<f32> {
    ra.iter()
        .map(|r| {
            let top = r.iter().copied().fold(f64::MIN, f64::max);
            let i = r.iter().position(|&x| x >= top - tolerance).unwrap_or(0);
            alphas[i]
        })
        .collect()
}

/// Composes `map` with `sweep` (which must cover severities 1–5 and hold every signature).
pub fn calibrate(
    sweep: &Sweep,
    sweep_path: &Path,
    map: &[MapRule],
    tolerance: f64,
) -> Result<Calibration, CalibrateError> {
    if !(0.0..=1.0).contains(&tolerance) {
        return Err(err(
            sweep_path,
            "tolerance",
            format!("{tolerance} is outside 0..=1"),
        ));
    }
    if sweep.severities != [1, 2, 3, 4, 5] {
        return Err(err(
            sweep_path,
            "severities",
            format!("{:?}; calibration needs 1–5", sweep.severities),
        ));
    }
    let z = sweep.alphas.iter().position(|&a| a == 0.0);
    let rules = map
        .iter()
        .map(|m| {
            let row = sweep
                .row(&m.signature)
                .ok_or_else(|| err(sweep_path, "rows", format!("no row for {}", m.signature)))?;
            let at = |s: usize, a: f32| {
                let i = sweep.alphas.iter().position(|&x| x == a).unwrap_or(0);
                row.ra[s][i]
            };
            let best = chosen(&sweep.alphas, &row.ra, tolerance);
            let top = best.iter().copied().fold(0.0f32, f32::max);
            let scale = |a: f32| {
                if top > 0.0 {
                    round3(f64::from(a / top))
                } else {
                    0.0
                }
            };
            let curve = m.off.zip(m.severities.as_ref()).map(|(off, v)| {
                std::iter::once([off, 0.0])
                    .chain(v.iter().zip(&best).map(|(&x, &a)| [x, scale(a)]))
                    .collect()
            });
            let alpha = match m.severity {
                Some(s) => f64::from(best[usize::from(s) - 1]),
                None => f64::from(top),
            };
            Ok(Calibrated {
                signature: m.signature.clone(),
                signal: m.signal.clone(),
                ra_best: (0..5).map(|s| at(s, best[s])).collect(),
                ra_off: (0..5)
                    .map(|s| z.map_or(f64::NAN, |i| row.ra[s][i]))
                    .collect(),
                monotone: best.windows(2).all(|w| w[0] <= w[1]),
                measured_best_alpha: row.best_alpha.clone(),
                best_alpha: best,
                curve,
                codes: m.codes.clone(),
                alpha,
                and: m.and.clone(),
                why: m.why.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Calibration {
        experiment: "calibrate".into(),
        sweep: sweep.provenance.clone(),
        tolerance,
        rules,
    })
}

fn fmt_f(x: f64) -> String {
    // TOML floats: always with a decimal point, shortest round-trip form otherwise.
    let s = format!("{x}");
    if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

fn fmt_points(points: &[[f64; 2]]) -> String {
    let p: Vec<String> = points
        .iter()
        .map(|[x, y]| format!("[{}, {}]", fmt_f(*x), fmt_f(*y)))
        .collect();
    format!("[{}]", p.join(", "))
}

/// The rules as `[[policy.rule]]` TOML, for the signatures in `only` (all when empty), each
/// with a comment saying where its numbers come from.
pub fn to_toml(c: &Calibration, only: &[String]) -> String {
    let mut out = String::new();
    for r in c
        .rules
        .iter()
        .filter(|r| only.is_empty() || only.contains(&r.signature))
    {
        let _ = writeln!(
            out,
            "# {}: α at severity 1–5 = {:?}, RA {} % → {} % (α = 0 → α).",
            r.signature,
            r.best_alpha,
            pct_list(&r.ra_off),
            pct_list(&r.ra_best)
        );
        if let Some(why) = &r.why {
            for line in why.lines() {
                let _ = writeln!(out, "# {line}");
            }
        }
        let _ = writeln!(
            out,
            "[[policy.rule]]\nsignature = \"{}\"\nsignal = \"{}\"",
            r.signature, r.signal
        );
        if let Some(curve) = &r.curve {
            let _ = writeln!(out, "curve = {}", fmt_points(curve));
        }
        if let Some(codes) = &r.codes {
            let codes: Vec<String> = codes.iter().map(i64::to_string).collect();
            let _ = writeln!(out, "codes = [{}]", codes.join(", "));
        }
        let _ = writeln!(out, "alpha = {}", fmt_f(r.alpha));
        if let Some(and) = &r.and {
            let _ = writeln!(
                out,
                "and = {{ signal = \"{}\", curve = {} }}",
                and.signal,
                fmt_points(&and.curve)
            );
        }
        out.push('\n');
    }
    out
}

fn pct_list(v: &[f64]) -> String {
    let p: Vec<String> = v.iter().map(|x| format!("{:.0}", x * 100.0)).collect();
    p.join("/")
}

/// The comment above the generated rules: where they come from and how to regenerate them.
pub fn header(sweep_path: &Path, map_path: &Path, c: &Calibration) -> String {
    format!(
        "# Generated by `rws calibrate --sweep {} --map {}`\n\
         # (edit the map, not these rules, and rerun): {}, {} test images, {} constants;\n\
         # α = the smallest within {} points of the best RA measured at each severity.",
        sweep_path.display(),
        map_path.display(),
        c.sweep.dataset,
        c.sweep.images,
        c.sweep.preset,
        c.tolerance * 100.0
    )
}

/// The markers around the calibrated block of a config.
pub const BEGIN: &str = "# BEGIN rws calibrate";
pub const END: &str = "# END rws calibrate";

/// `text` with the block between [`BEGIN`] and [`END`] replaced by freshly calibrated rules for
/// the signatures the block already has (so each config keeps its own set of rules).
pub fn update_block(
    path: &Path,
    text: &str,
    c: &Calibration,
    header: &str,
) -> Result<String, CalibrateError> {
    let begin = text
        .find(BEGIN)
        .ok_or_else(|| err(path, "calibrated block", format!("no '{BEGIN}' line")))?;
    let body_start = text[begin..]
        .find('\n')
        .map_or(text.len(), |i| begin + i + 1);
    let end = text[body_start..]
        .find(END)
        .map(|i| body_start + i)
        .ok_or_else(|| {
            err(
                path,
                "calibrated block",
                format!("no '{END}' line after '{BEGIN}'"),
            )
        })?;
    let old = &text[body_start..end];
    let only: Vec<String> = old
        .lines()
        .filter_map(|l| l.trim().strip_prefix("signature = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .map(str::to_string)
        .collect();
    if only.is_empty() {
        return Err(err(
            path,
            "calibrated block",
            "lists no rule (write the signatures it should hold)",
        ));
    }
    let unknown: Vec<&String> = only
        .iter()
        .filter(|s| !c.rules.iter().any(|r| &r.signature == *s))
        .collect();
    if !unknown.is_empty() {
        return Err(err(
            path,
            "calibrated block",
            format!("{unknown:?} are not in the severity map"),
        ));
    }
    Ok(format!(
        "{}{header}\n\n{}{}",
        &text[..body_start],
        to_toml(c, &only),
        &text[end..]
    ))
}
