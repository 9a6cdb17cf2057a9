//! A strict reader of the Prometheus text exposition format (version 0.0.4), written from the
//! format's specification rather than from rwsd's writer, for tests of `[metrics]`: every sample
//! belongs to a family announced by `# HELP` and `# TYPE` before it, families are contiguous,
//! names and label names are valid, label values are properly escaped, no series repeats,
//! counters end in `_total`, and a histogram's buckets rise with `le`, end at `+Inf` and agree
//! with `_count`. Also runs `promtool check metrics` where it is installed.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its name, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of `text`, or what breaks the format (with the line).
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut closed = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen = BTreeSet::new();
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let arg = parts.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue;
            }
            valid_name(name).map_err(at)?;
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    closed.insert(c);
                }
                if closed.contains(name) {
                    return Err(at(format!("family {name} appears twice")));
                }
                current = Some(name.to_string());
            }
            if kw == "HELP" {
                if arg.is_empty() || !helped.insert(name.to_string()) {
                    return Err(at("empty or repeated HELP".into()));
                }
            } else {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                    return Err(at(format!("unknown type {arg}")));
                }
                if types.insert(name.to_string(), arg.to_string()).is_some() {
                    return Err(at("repeated TYPE".into()));
                }
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = sample(line).map_err(at)?;
        let family = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        belongs(&s.name, &family, types.get(&family).map(String::as_str)).map_err(at)?;
        if !helped.contains(&family) {
            return Err(at(format!("family {family} has no HELP")));
        }
        if !seen.insert(format!("{}{:?}", s.name, s.labels)) {
            return Err(at("repeated series".into()));
        }
        samples.push(s);
    }
    histograms(&samples, &types)?;
    Ok(samples)
}

fn valid_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first = chars.next().ok_or("empty name")?;
    if !(first.is_ascii_alphabetic() || first == '_' || first == ':')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("invalid metric name {name:?}"));
    }
    Ok(())
}

/// Whether a sample named `name` may appear in family `family` of type `kind`.
fn belongs(name: &str, family: &str, kind: Option<&str>) -> Result<(), String> {
    let kind = kind.ok_or_else(|| format!("family {family} has no TYPE"))?;
    let ok = match kind {
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suf| name == format!("{family}{suf}")),
        "counter" => name == family && family.ends_with("_total"),
        _ => name == family,
    };
    if !ok {
        return Err(format!("sample {name} in {kind} family {family}"));
    }
    Ok(())
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    valid_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(body)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = value.split(' ').next().unwrap_or("");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y"}` → the labels and what follows the brace.
fn label_set(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let key = &s[..eq];
        valid_name(key).map_err(|_| format!("invalid label name {key:?}"))?;
        let (value, after) = quoted(
            s[eq + 1..]
                .strip_prefix('"')
                .ok_or("unquoted label value")?,
        )?;
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        s = after.strip_prefix(',').unwrap_or(after);
    }
}

/// A label value up to its closing quote, unescaped; only `\\`, `\"` and `\n` are escapes.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("bad escape {other:?}")),
            },
            '\n' => return Err("newline in a label value".into()),
            c => out.push(c),
        }
    }
    Err("unterminated label value".into())
}

/// Every histogram: buckets non-decreasing in `le`, a `+Inf` bucket equal to `_count`.
fn histograms(samples: &[Sample], types: &BTreeMap<String, String>) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut last = (f64::NEG_INFINITY, 0.0);
        for s in samples.iter().filter(|s| s.name == bucket) {
            let le: f64 = match s.labels.get("le").map(String::as_str) {
                Some("+Inf") => f64::INFINITY,
                Some(v) => v.parse().map_err(|_| format!("{bucket}: le {v:?}"))?,
                None => return Err(format!("{bucket} without le")),
            };
            if le <= last.0 || s.value < last.1 {
                return Err(format!(
                    "{bucket}: le {le} or count {} out of order",
                    s.value
                ));
            }
            last = (le, s.value);
        }
        let count = samples.iter().find(|s| s.name == format!("{family}_count"));
        if last.0 != f64::INFINITY || count.map(|c| c.value) != Some(last.1) {
            return Err(format!(
                "{family}: the +Inf bucket must exist and equal _count"
            ));
        }
    }
    Ok(())
}

/// `promtool check metrics` on `text`: `Some(Ok)` or `Some(Err(output))` where promtool is
/// installed, `None` where it is not.
pub fn promtool(text: &str) -> Option<Result<(), String>> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let wrote = child.stdin.take().map(|mut i| i.write_all(text.as_bytes()));
    let out = child.wait_with_output().ok()?;
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    match wrote {
        Some(Ok(())) if out.status.success() && said.trim().is_empty() => Some(Ok(())),
        _ => Some(Err(said)),
    }
}
