//! Present-weather sensors, "message 2" (Vaisala PWD22/52 and peers).
//!
//! One report per line, optionally framed as SOH `PW` id STX … ETX:
//! `00 1839 1505 R- 61 61 61 0.33 12.16 0` = alarm and status digits, visibility 1-min and 10-min
//! averages (m), NWS code, present weather (WMO 4680) instant / 15-min / 1-hour, precipitation
//! intensity (mm/h), cumulative water (mm), cumulative snow (mm). Sensors print `/` characters for
//! values they do not have; those signals are left out of the reading. Some firmware leaves the
//! NWS code out, so 9 fields are accepted too.
//!
//! Signals: `visibility_m` (1-min), `visibility_10min_m`, `wmo_code` (instant), `wmo_code_15min`,
//! `precip_mm_h`, `pwd_alarm`, `pwd_status`.

use super::{bounded, code, LineError, Signal};

/// Every signal a message-2 report can carry.
pub const SIGNALS: &[&str] = &[
    "pwd_alarm",
    "pwd_status",
    "visibility_m",
    "visibility_10min_m",
    "wmo_code",
    "wmo_code_15min",
    "wmo_code_1h",
    "precip_mm_h",
    "water_sum_mm",
    "snow_sum_mm",
];

const SOH: char = '\u{1}';
const STX: char = '\u{2}';
const ETX: char = '\u{3}';

/// Removes the SOH `PW` id STX … ETX framing if present.
fn unframe(line: &str) -> Result<&str, LineError> {
    let Some(start) = line.find(SOH) else {
        if line.contains(STX) || line.contains(ETX) {
            return Err(LineError::Malformed("framing character without SOH".into()));
        }
        return Ok(line);
    };
    let rest = &line[start + 1..];
    let stx = rest
        .find(STX)
        .ok_or_else(|| LineError::Malformed("SOH without STX".into()))?;
    let header = rest[..stx].trim();
    if !header.starts_with("PW") {
        return Err(LineError::field(
            "header",
            format!("'{header}' is not PW <id>"),
        ));
    }
    let body = &rest[stx + 1..];
    let etx = body
        .find(ETX)
        .ok_or_else(|| LineError::Malformed("frame not terminated by ETX".into()))?;
    Ok(&body[..etx])
}

/// Parses one message-2 line.
pub fn parse(line: &str) -> Result<Vec<Signal>, LineError> {
    let body = unframe(line)?;
    let f: Vec<&str> = body.split_whitespace().collect();
    if f.is_empty() {
        return Ok(Vec::new());
    }
    // With 9 fields the NWS code is missing; index the rest as if it were there.
    let (with_nws, offset) = match f.len() {
        10 => (true, 0),
        9 => (false, 1),
        n => {
            return Err(LineError::Malformed(format!(
                "message 2 has 9 or 10 fields, this line has {n}"
            )))
        }
    };
    let at = |i: usize| f[i - offset];
    let mut out = Vec::new();
    let status = f[0];
    if status.len() != 2 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError::field(
            "alarm/status",
            format!("'{status}' is not two digits"),
        ));
    }
    out.push(("pwd_alarm".into(), f64::from(status.as_bytes()[0] - b'0')));
    out.push(("pwd_status".into(), f64::from(status.as_bytes()[1] - b'0')));
    let mut push = |name: &str, field: &str, s: &str, lo: f64, hi: f64| -> Result<(), LineError> {
        if s.chars().all(|c| c == '/') {
            return Ok(()); // not available
        }
        out.push((name.to_string(), bounded(field, s, lo, hi)?));
        Ok(())
    };
    push("visibility_m", "visibility 1 min", f[1], 0.0, 100_000.0)?;
    push(
        "visibility_10min_m",
        "visibility 10 min",
        f[2],
        0.0,
        100_000.0,
    )?;
    if with_nws && f[3].chars().any(|c| c.is_ascii_digit()) {
        return Err(LineError::field(
            "NWS code",
            format!("'{}' is not a code", f[3]),
        ));
    }
    push("precip_mm_h", "precipitation intensity", at(7), 0.0, 999.0)?;
    push("water_sum_mm", "cumulative water", at(8), 0.0, 1e6)?;
    push("snow_sum_mm", "cumulative snow", at(9), 0.0, 1e6)?;
    // WMO 4680 codes are two-digit integers: `61.5` or `7.4e1` is a garbled line.
    for (name, field, s) in [
        ("wmo_code", "present weather", at(4)),
        ("wmo_code_15min", "present weather 15 min", at(5)),
        ("wmo_code_1h", "present weather 1 h", at(6)),
    ] {
        if !s.chars().all(|c| c == '/') {
            out.push((name.to_string(), code(field, s, 0, 99)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(v: &[Signal], k: &str) -> Option<f64> {
        v.iter().find(|s| s.0 == k).map(|s| s.1)
    }

    #[test]
    fn example_from_the_manual_framed_and_unframed() {
        let plain = "00 1839 1505 R- 61 61 61 0.33 12.16 0";
        let framed = format!("\u{1}PW  1\u{2}{plain}\u{3}");
        for line in [plain, &framed] {
            let v = parse(line).unwrap();
            assert_eq!(get(&v, "visibility_m"), Some(1839.0));
            assert_eq!(get(&v, "wmo_code"), Some(61.0));
            assert_eq!(get(&v, "precip_mm_h"), Some(0.33));
        }
    }

    #[test]
    fn missing_values_and_missing_nws_code() {
        let v = parse("00 //// //// 30 30 30 //// //// ////").unwrap();
        assert_eq!(get(&v, "visibility_m"), None);
        assert_eq!(get(&v, "wmo_code"), Some(30.0));
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, what) in [
            ("00 1839 1505 R- 61 61", "fields"),
            ("0X 1839 1505 R- 61 61 61 0.33 12.16 0", "alarm"),
            ("00 -5 1505 R- 61 61 61 0.33 12.16 0", "visibility"),
            ("00 1839 1505 R- 161 61 61 0.33 12.16 0", "present weather"),
            (
                "\u{1}PW  1\u{2}00 1839 1505 R- 61 61 61 0.33 12.16 0",
                "ETX",
            ),
            ("\u{1}XX\u{2}00\u{3}", "header"),
        ] {
            let e = parse(line).unwrap_err().to_string();
            assert!(e.contains(what), "{line:?}: {e}");
        }
    }
}
