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

/// Parses a number field, naming it in the error.
pub(crate) fn number(field: &str, s: &str) -> Result<f64, LineError> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| LineError::field(field, format!("'{s}' is not a number")))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(LineError::field(field, format!("'{s}' is not finite")))
    }
}

/// A number that must lie in `lo..=hi`.
pub(crate) fn bounded(field: &str, s: &str, lo: f64, hi: f64) -> Result<f64, LineError> {
    let v = number(field, s)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(LineError::field(
            field,
            format!("{v} is outside {lo}..={hi}"),
        ))
    }
}
