//! Writes the recorded sensor logs of the replay regression tests (`tests/data/*.log`).
//!
//! Run: `cargo run --release -p rwsd --example make_sensor_logs`, then regenerate the expected traces with
//! `rwsctl replay --config tests/data/weather.toml > tests/data/weather.trace` (and `noise`).
//! Deterministic. The logs are `<seconds> <line>`, as a recording tool writes them.
//! - weather: a PWD whose visibility falls through fog then reports snow codes, an NMEA station
//!   whose air turns humid and freezing (frost, via MDA and XDR), and a camera whose gain spikes,
//!   whose focus drops, and which then goes silent (stale: its contributions decay).
//! - noise: the same kind of sensors with garbage, binary noise, over-long lines, bad and missing
//!   checksums, truncated frames mixed into good lines.

use std::io::Write;
use std::path::Path;

use rwsd::replay::Provenance;
use rwsd::sensors::nmea::sentence;

const GENERATOR: &str = "cargo run --release -p rwsd --example make_sensor_logs";
/// When what this writes last changed: update it with the content.
const DATE: &str = "2026-12-03";
const PWD: &str =
    "synthetic Vaisala PWD-style present-weather sensor, message 2 (docs/protocols.md)";
const NMEA: &str = "synthetic NMEA 0183 weather station, MDA and XDR sentences (docs/protocols.md)";
const CAMERA: &str = "synthetic camera diagnostics, $PRWSC sentences (docs/protocols.md)";

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    std::fs::create_dir_all(&dir)?;
    let logs: [(&str, &str, &[&str], Vec<u8>); 5] = [
        ("pwd-weather.log", PWD, &[
            "visibility falling from 20 km through 1100 m to 180 m (fog), then 3 km",
            "WMO present-weather codes 33 (fog) then snow codes; every third report framed SOH/STX/ETX",
        ], pwd_weather()?),
        ("nmea-weather.log", NMEA, &[
            "air turning humid and freezing (frost), alternating MDA and XDR sentences",
        ], nmea_weather()?),
        ("camera-faults.log", CAMERA, &[
            "a gain spike (40 dB), a focus drop (0.55), a 5 s gap under stale_after",
            "then silence mid-fault: the readings go stale and their contributions decay",
        ], camera_faults()?),
        ("noisy-nmea.log", NMEA, &[
            "good XDR sentences between checksum mismatches, missing checksums, binary bytes,",
            "an over-long sentence, a sentence cut off, and a line without a timestamp",
        ], noisy_nmea()?),
        ("noisy-pwd.log", PWD, &[
            "good reports between unterminated frames (no ETX), too few fields and",
            "out-of-range visibility",
        ], noisy_pwd()?),
    ];
    for (name, device, exercises, body) in logs {
        let log = format!("tests/data/{name}");
        let header = Provenance {
            log: &log,
            generator: GENERATOR,
            date: DATE,
            device,
            exercises,
        };
        let mut bytes = header.to_string().into_bytes();
        bytes.extend_from_slice(&body);
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("wrote {}", dir.display());
    Ok(())
}

/// Visibility falling through fog to 180 m, then snow codes; every third report framed.
fn pwd_weather() -> std::io::Result<Vec<u8>> {
    let mut pwd = Vec::new();
    for t in 0..=90u32 {
        let vis = match t {
            0..=9 => 20000,
            10..=29 => 1100 - (t - 10) * 45, // 1100 m falling to 245 m
            30..=39 => 180,
            _ => 3000,
        };
        let wmo = match t {
            20..=39 => 33,
            40..=59 => 73,
            60..=64 => 85,
            _ => 0,
        };
        let line = format!("00 {vis:>5} {vis:>5} /  {wmo:>2} {wmo:>2} {wmo:>2} 0.50 1.00 0");
        let line = if t % 3 == 0 {
            format!("\u{1}PW  7\u{2}{line}\u{3}")
        } else {
            line
        };
        writeln!(pwd, "{t} {line}")?;
    }
    Ok(pwd)
}

/// Air turning humid and freezing (frost), alternately as MDA and XDR.
fn nmea_weather() -> std::io::Result<Vec<u8>> {
    let mut nmea = Vec::new();
    for t in (0..=90u32).step_by(2) {
        let (temp, hum) = match t {
            0..=59 => (2.0, 70.0),
            60..=79 => (
                -2.0 - f64::from(t - 60) * 0.1,
                80.0 + f64::from(t - 60) * 0.5,
            ),
            _ => (1.0, 60.0),
        };
        if t % 4 == 0 {
            let body =
                format!("WIMDA,29.92,I,1.0132,B,{temp:.1},C,,C,{hum:.1},,-5.0,C,,T,,M,,N,,M");
            writeln!(nmea, "{t} {}", sentence(&body))?;
        } else {
            let body = format!("WIXDR,C,{temp:.1},C,AIRTEMP,H,{hum:.1},P,RH");
            writeln!(nmea, "{t} {}", sentence(&body))?;
        }
    }
    Ok(nmea)
}

/// A gain spike, a focus drop, a short gap, then silence mid-fault (stale).
fn camera_faults() -> std::io::Result<Vec<u8>> {
    let mut cam = Vec::new();
    for t in 0..=70u32 {
        let gain = if (15..=24).contains(&t) { 40.0 } else { 6.0 };
        let focus = if (45..=54).contains(&t) { 0.55 } else { 0.9 };
        if (30..=34).contains(&t) || t > 50 {
            continue; // 30–34: a short gap (under stale_after); after 50: silent for good, mid-fault
        }
        let body = format!("PRWSC,{t},gain_db={gain:.1},focus={focus:.2},encoder_q=0.95");
        writeln!(cam, "{t} {}", sentence(&body))?;
    }
    Ok(cam)
}

/// Good XDR sentences with every bad kind of line between them.
fn noisy_nmea() -> std::io::Result<Vec<u8>> {
    let mut noisy = Vec::new();
    for t in 0..=40u32 {
        let hum = if t >= 10 { 95.0 } else { 50.0 };
        let body = format!("WIXDR,C,-4.0,C,AIRTEMP,H,{hum:.1},P,RH");
        let good = sentence(&body);
        writeln!(noisy, "{t} {good}")?;
        match t % 8 {
            1 => writeln!(noisy, "{t} {}", good.replace("-4.0", "+9.0"))?, // checksum mismatch
            2 => writeln!(noisy, "{t} ${body}")?,                          // no checksum
            3 => {
                noisy.extend_from_slice(format!("{t} ").as_bytes());
                noisy.extend_from_slice(&[0xff, 0x00, 0x13, 0x80, 0xfe, b'$', 0x07]);
                noisy.push(b'\n');
            }
            4 => writeln!(noisy, "{t} ${}*00", "W".repeat(700))?, // over-long
            5 => writeln!(noisy, "{t} $WIXDR,C,-4.0,C,AIR")?,     // cut off mid-sentence
            6 => writeln!(noisy, "garbage without a timestamp")?,
            _ => {}
        }
    }
    Ok(noisy)
}

/// Good PWD reports with unterminated frames, short lines and out-of-range values.
fn noisy_pwd() -> std::io::Result<Vec<u8>> {
    let mut noisy_pwd = Vec::new();
    for t in 0..=40u32 {
        let vis = if t >= 10 { 300 } else { 9000 };
        writeln!(noisy_pwd, "{t} 00 {vis} {vis} F 30 30 30 0.00 0.00 0")?;
        match t % 7 {
            1 => writeln!(
                noisy_pwd,
                "{t} \u{1}PW  1\u{2}00 {vis} {vis} F 30 30 30 0.00 0.00 0"
            )?, // no ETX
            2 => writeln!(noisy_pwd, "{t} 00 {vis} F 30")?, // too few fields
            3 => writeln!(noisy_pwd, "{t} 00 -40 -40 F 30 30 30 0.00 0.00 0")?, // out of range
            _ => {}
        }
    }
    Ok(noisy_pwd)
}
