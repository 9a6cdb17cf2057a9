//! Weather and camera-fault sensors: line protocols, the line reader, and the driver threads that
//! turn a serial port, file, FIFO or stdin into a stream of [`Event`]s.
//!
//! Every protocol parser takes one line (without its line terminator) and returns named signal
//! values or a [`LineError`] saying why the line was rejected. Parsers never panic on input:
//! `crates/rwsd/tests/sensors.rs` feeds them garbage, binary noise and truncations. Signal names are the
//! vocabulary of the policy rules in `firmware-config/*.toml` (see `docs/protocols.md`).

pub mod camera;
mod counters;
pub mod driver;
pub mod line;
pub mod nmea;
pub mod pwd;

use std::fmt;

pub use counters::Counters;

/// One named measurement, e.g. `("visibility_m", 850.0)`.
pub type Signal = (String, f64);

/// Why a line was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("checksum mismatch: line says {stated:02X}, computed {computed:02X}")]
    Checksum { stated: u8, computed: u8 },
    #[error("missing checksum")]
    NoChecksum,
    #[error("field {field}: {reason}")]
    Field { field: String, reason: String },
    #[error("{0}")]
    Malformed(String),
    #[error("not valid text (binary noise)")]
    Binary,
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("no timestamp prefix (replay logs are `<seconds> <line>`)")]
    NoTimestamp,
}

impl LineError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        LineError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Short counter name for status output.
    pub fn kind(&self) -> &'static str {
        match self {
            LineError::Checksum { .. } | LineError::NoChecksum => "checksum",
            LineError::TooLong(_) => "too_long",
            LineError::Binary => "binary",
            _ => "malformed",
        }
    }
}

/// The protocols rwsd reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Present-weather "message 2" (Vaisala PWD style).
    Pwd,
    /// NMEA 0183 `MDA` and `XDR` sentences.
    Nmea,
    /// rws camera diagnostics (`$PRWSC`, docs/protocols.md).
    Camera,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Pwd => "pwd",
            Protocol::Nmea => "nmea",
            Protocol::Camera => "camera",
        })
    }
}

impl Protocol {
    /// Whether a reading of this protocol can carry `signal` (the vocabulary policy rules are
    /// checked against: docs/protocols.md lists it).
    pub fn produces(self, signal: &str) -> bool {
        match self {
            Protocol::Pwd => pwd::SIGNALS.contains(&signal),
            Protocol::Nmea => nmea::SIGNALS.contains(&signal) || signal.starts_with("xdr."),
            Protocol::Camera => camera::KEYS.iter().any(|k| k.1 == signal),
        }
    }

    /// Parses one line of this protocol. Lines a protocol ignores by design (another NMEA
    /// sentence, an empty line) give `Ok(vec![])`.
    pub fn parse(self, line: &str) -> Result<Vec<Signal>, LineError> {
        match self {
            Protocol::Pwd => pwd::parse(line),
            Protocol::Nmea => nmea::parse(line),
            Protocol::Camera => camera::parse(line),
        }
    }
}

/// Whether `s` is written the way instruments write decimals: an optional `-`, digits, an
/// optional `.` and digits, and (only where `exponent`) an optional `e`/`E`, `-` and digits.
/// No `+`, no `inf`/`nan`, no bare `.5`.
fn is_decimal(s: &str, exponent: bool) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) if exponent => (m, Some(e)),
        Some(_) => return false,
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((i, f)) => digits(i) && digits(f),
        None => digits(mantissa),
    };
    mantissa_ok && exp.is_none_or(|e| digits(e.strip_prefix('-').unwrap_or(e)))
}

fn parse_number(field: &str, s: &str, exponent: bool) -> Result<f64, LineError> {
    let t = s.trim();
    if !is_decimal(t, exponent) {
        return Err(LineError::field(field, format!("'{s}' is not a number")));
    }
    let v: f64 = t
        .parse()
        .map_err(|_| LineError::field(field, format!("'{s}' is not a number")))?;
    if !v.is_finite() {
        return Err(LineError::field(field, format!("'{s}' is not finite")));
    }
    // A sign on zero is a formatting fault of the sender, not a measurement.
    if v == 0.0 && t.starts_with('-') {
        return Err(LineError::field(field, format!("'{s}': a negative zero")));
    }
    Ok(v)
}

/// Parses a decimal number field (`-12.5`, `1839`), naming it in the error.
pub(crate) fn number(field: &str, s: &str) -> Result<f64, LineError> {
    parse_number(field, s, false)
}

/// A number that must lie in `lo..=hi`.
pub(crate) fn bounded(field: &str, s: &str, lo: f64, hi: f64) -> Result<f64, LineError> {
    in_range(field, number(field, s)?, lo, hi)
}

/// As [`bounded`], also accepting an exponent (`1e-6`), as the camera protocol allows.
pub(crate) fn bounded_exp(field: &str, s: &str, lo: f64, hi: f64) -> Result<f64, LineError> {
    in_range(field, parse_number(field, s, true)?, lo, hi)
}

/// A code (digits only, e.g. WMO 4680 present-weather codes) in `lo..=hi`.
pub(crate) fn code(field: &str, s: &str, lo: u32, hi: u32) -> Result<f64, LineError> {
    let t = s.trim();
    if t.is_empty() || t.len() > 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError::field(field, format!("'{s}' is not a code")));
    }
    let v: u32 = t
        .parse()
        .map_err(|_| LineError::field(field, format!("'{s}' is not a code")))?;
    in_range(field, f64::from(v), f64::from(lo), f64::from(hi))
}

fn in_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<f64, LineError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(LineError::field(
            field,
            format!("{v} is outside {lo}..={hi}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_instruments_write_them() {
        for good in ["1839", "-3.5", "0.33", "0", "12.16"] {
            assert!(number("f", good).is_ok(), "{good}");
        }
        for bad in [
            "+1839", "-0", "-0.0", "7.4e1", "inf", "nan", ".5", "5.", "1_000", "0x10", "",
        ] {
            assert!(number("f", bad).is_err(), "{bad}");
        }
        assert_eq!(bounded_exp("f", "1e-6", 0.0, 1.0), Ok(1e-6));
        assert!(bounded_exp("f", "1e+6", 0.0, 1e9).is_err());
        assert_eq!(code("f", "61", 0, 99), Ok(61.0));
        for bad in ["61.5", "7.4e1", "-1", "+61", "100", "0061"] {
            assert!(code("f", bad, 0, 99).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_protocol_knows_its_signals() {
        assert!(Protocol::Pwd.produces("visibility_m"));
        assert!(!Protocol::Pwd.produces("visibilty_m"));
        assert!(Protocol::Nmea.produces("humidity_pct") && Protocol::Nmea.produces("xdr.RH"));
        assert!(Protocol::Camera.produces("gain_db") && !Protocol::Camera.produces("wmo_code"));
    }
}
