//! Camera diagnostics, a line protocol of our own (there is no standard; docs/protocols.md).
//!
//! NMEA-style proprietary sentence with the same `*hh` checksum:
//! `$PRWSC,<seq>,<key>=<value>,...*hh`, e.g.
//! `$PRWSC,17,gain_db=6.0,exposure_ms=16.7,focus=0.82,obstruction=0.00,condensation=0.00,vibration_g=0.02,encoder_q=0.95,pixel_err=1e-6*hh`.
//! Keys may come in any order and any subset; unknown keys are skipped (newer firmware). Each
//! value is range-checked; one bad value rejects the line.

use super::nmea::checked_body;
use super::{bounded_exp, LineError, Signal};

/// Known keys, their signal names and valid ranges.
pub const KEYS: &[(&str, &str, f64, f64)] = &[
    ("gain_db", "gain_db", 0.0, 60.0),
    ("exposure_ms", "exposure_ms", 0.0, 10_000.0),
    ("focus", "focus", 0.0, 1.0),
    ("obstruction", "obstruction", 0.0, 1.0),
    ("condensation", "condensation", 0.0, 1.0),
    ("vibration_g", "vibration_g", 0.0, 50.0),
    ("encoder_q", "encoder_q", 0.0, 1.0),
    ("pixel_err", "pixel_err", 0.0, 1.0),
];

/// Parses one `$PRWSC` sentence; other sentences are ignored.
pub fn parse(line: &str) -> Result<Vec<Signal>, LineError> {
    if line.trim().is_empty() {
        return Ok(Vec::new());
    }
    let body = checked_body(line)?;
    let mut fields = body.split(',');
    if fields.next() != Some("PRWSC") {
        return Ok(Vec::new());
    }
    let seq = fields.next().unwrap_or("");
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) || seq.len() > 10 {
        return Err(LineError::field(
            "seq",
            format!("'{seq}' is not a sequence number"),
        ));
    }
    let mut out = Vec::new();
    for kv in fields {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| LineError::field(kv, "expected key=value"))?;
        if let Some(&(_, signal, lo, hi)) = KEYS.iter().find(|e| e.0 == k) {
            out.push((signal.to_string(), bounded_exp(k, v, lo, hi)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::nmea::sentence;

    #[test]
    fn keys_in_any_order_unknown_skipped() {
        let v = parse(&sentence("PRWSC,3,focus=0.4,gain_db=30,future_key=1")).unwrap();
        assert_eq!(v, vec![("focus".into(), 0.4), ("gain_db".into(), 30.0)]);
    }

    #[test]
    fn bad_values_are_rejected() {
        for body in [
            "PRWSC,3,focus=1.4",
            "PRWSC,x,focus=0.1",
            "PRWSC,3,focus",
            "PRWSC,3,gain_db=nan",
        ] {
            assert!(parse(&sentence(body)).is_err(), "{body}");
        }
    }
}
