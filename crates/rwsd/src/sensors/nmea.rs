//! NMEA 0183 weather sentences: `$--MDA` (meteorological composite) and `$--XDR` (transducer
//! measurements), with the `*hh` XOR checksum required and verified. Other sentences are ignored.
//!
//! Signals from MDA: `pressure_bar`, `air_temp_c`, `water_temp_c`, `humidity_pct`, `dew_point_c`,
//! `wind_dir_deg`, `wind_speed_ms`. From XDR, per quadruple (type, value, unit, name): temperature
//! (`C`) → `air_temp_c`, humidity (`H`, percent) → `humidity_pct`, pressure (`P`, bar) →
//! `pressure_bar`; every quadruple also as `xdr.<name>`.

use super::{bounded, number, LineError, Signal};

/// The named signals MDA and XDR sentences carry (XDR also gives `xdr.<name>` for any name).
pub const SIGNALS: &[&str] = &[
    "pressure_bar",
    "air_temp_c",
    "water_temp_c",
    "humidity_pct",
    "dew_point_c",
    "wind_dir_deg",
    "wind_speed_ms",
];

/// Checks the `*hh` checksum and returns the sentence body between `$` and `*`.
pub fn checked_body(line: &str) -> Result<&str, LineError> {
    let line = line.trim_end();
    let start = line
        .find(['$', '!'])
        .ok_or_else(|| LineError::Malformed("no '$' sentence start".into()))?;
    let body_and_sum = &line[start + 1..];
    let star = body_and_sum.rfind('*').ok_or(LineError::NoChecksum)?;
    let (body, sum) = (&body_and_sum[..star], &body_and_sum[star + 1..]);
    // Exactly two hex digits: `from_str_radix` alone would also take a sign (`*+0`).
    if sum.len() != 2 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LineError::Malformed(format!(
            "checksum '{sum}' is not two hex digits"
        )));
    }
    let stated = u8::from_str_radix(sum, 16)
        .map_err(|_| LineError::Malformed(format!("checksum '{sum}' is not hex")))?;
    let computed = body.bytes().fold(0u8, |a, b| a ^ b);
    if stated != computed {
        return Err(LineError::Checksum { stated, computed });
    }
    Ok(body)
}

/// The `*hh` checksum of a sentence body (for writers and tests).
pub fn checksum(body: &str) -> u8 {
    body.bytes().fold(0u8, |a, b| a ^ b)
}

/// A whole sentence `$<body>*hh` with its checksum: what a station sends, and what the log
/// generators and tests write.
pub fn sentence(body: &str) -> String {
    format!("${body}*{:02X}", checksum(body))
}

/// Parses one sentence.
pub fn parse(line: &str) -> Result<Vec<Signal>, LineError> {
    if line.trim().is_empty() {
        return Ok(Vec::new());
    }
    let body = checked_body(line)?;
    let fields: Vec<&str> = body.split(',').collect();
    let kind = fields[0];
    // Talker (2) + type (3), ASCII: a multi-byte character must not reach the slicing below.
    if kind.len() != 5 || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(LineError::field(
            "address",
            format!("'{kind}' is not talker + type"),
        ));
    }
    match &kind[2..] {
        "MDA" => mda(&fields[1..]),
        "XDR" => xdr(&fields[1..]),
        _ => Ok(Vec::new()),
    }
}

fn mda(f: &[&str]) -> Result<Vec<Signal>, LineError> {
    if f.len() < 20 {
        return Err(LineError::Malformed(format!(
            "MDA has 20 fields, this one {}",
            f.len()
        )));
    }
    let mut out = Vec::new();
    let mut opt = |name: &str, i: usize, lo: f64, hi: f64| -> Result<(), LineError> {
        if !f[i].is_empty() {
            out.push((
                name.to_string(),
                bounded(&format!("MDA field {}", i + 1), f[i], lo, hi)?,
            ));
        }
        Ok(())
    };
    opt("pressure_bar", 2, 0.5, 1.2)?;
    opt("air_temp_c", 4, -80.0, 70.0)?;
    opt("water_temp_c", 6, -5.0, 50.0)?;
    opt("humidity_pct", 8, 0.0, 100.0)?;
    opt("dew_point_c", 10, -80.0, 70.0)?;
    opt("wind_dir_deg", 12, 0.0, 360.0)?;
    opt("wind_speed_ms", 18, 0.0, 120.0)?;
    Ok(out)
}

fn xdr(f: &[&str]) -> Result<Vec<Signal>, LineError> {
    if f.is_empty() || !f.len().is_multiple_of(4) {
        return Err(LineError::Malformed(format!(
            "XDR has quadruples of fields, this one {} fields",
            f.len()
        )));
    }
    let mut out = Vec::new();
    for (q, quad) in f.chunks_exact(4).enumerate() {
        let (kind, value, unit, name) = (quad[0], quad[1], quad[2], quad[3]);
        if value.is_empty() {
            continue;
        }
        let field = format!("XDR quadruple {} ({name})", q + 1);
        let v = number(&field, value)?;
        let known = match (kind, unit) {
            ("C", "C") => Some(("air_temp_c", -80.0, 70.0)),
            ("H", "P") => Some(("humidity_pct", 0.0, 100.0)),
            ("P", "B") => Some(("pressure_bar", 0.5, 1.2)),
            _ => None,
        };
        if let Some((signal, lo, hi)) = known {
            out.push((signal.to_string(), bounded(&field, value, lo, hi)?));
        }
        if !name.is_empty() {
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(LineError::field(
                    field,
                    "name has characters other than [A-Za-z0-9_-]",
                ));
            }
            out.push((format!("xdr.{name}"), v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mda_and_xdr() {
        let mda =
            sentence("WIMDA,29.92,I,1.0132,B,-3.5,C,,C,91.0,,-4.7,C,270.0,T,268.0,M,5.1,N,2.6,M");
        let v = parse(&mda).unwrap();
        assert!(v.contains(&("air_temp_c".into(), -3.5)));
        assert!(v.contains(&("humidity_pct".into(), 91.0)));
        assert!(v.contains(&("wind_speed_ms".into(), 2.6)));
        let xdr = sentence("WIXDR,C,-2.5,C,AIRTEMP,H,92.0,P,RH");
        let v = parse(&xdr).unwrap();
        assert!(v.contains(&("air_temp_c".into(), -2.5)));
        assert!(v.contains(&("xdr.RH".into(), 92.0)));
        assert_eq!(parse(&sentence("GPGGA,1,2,3")).unwrap(), vec![]);
    }

    #[test]
    fn checksum_failures_are_rejected() {
        let good = sentence("WIXDR,C,-2.5,C,AIRTEMP");
        let bad = good.replace("-2.5", "-2.6");
        assert!(matches!(parse(&bad), Err(LineError::Checksum { .. })));
        assert_eq!(parse("$WIXDR,C,-2.5,C,AIRTEMP"), Err(LineError::NoChecksum));
        assert!(parse("$WIXDR,C,-2.5,C,AIRTEMP*G1").is_err());
        assert!(parse(&sentence("WIXDR,C,-2.5,C")).is_err());
        assert!(parse(&sentence("WIMDA,1,2")).is_err());
        // A sign is not a hex digit, even though `from_str_radix` takes one.
        let body = "WIXDR,C,-2.5,C,AIR";
        assert!(checksum(body) < 0x10, "a checksum that `*+h` can state");
        let signed = format!("${body}*+{:X}", checksum(body));
        assert!(
            matches!(parse(&signed), Err(LineError::Malformed(_))),
            "{signed}"
        );
    }

    #[test]
    fn multi_byte_characters_in_the_address_are_refused_not_a_panic() {
        // `$GéAB,1,2*2D`: valid checksum, 'é' straddles the talker/type boundary.
        assert_eq!(checksum("GéAB,1,2"), 0x2D);
        let e = parse("$GéAB,1,2*2D").unwrap_err();
        assert!(e.to_string().contains("address"), "{e}");
    }
}
