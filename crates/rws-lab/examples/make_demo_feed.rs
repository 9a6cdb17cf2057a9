//! Writes the daemon demo's recorded feed into `firmware-config/demo/`: 40 camera frames (MNIST-5k
//! test digits, one per second, corrupted by the weather of their phase) and the sensor logs that
//! go with them, replayed by `rwsd --config firmware-config/demo.toml`.
//!
//! Run: `cargo run --release -p rws-lab --example make_demo_feed` (deterministic; the output is committed).
//! Phases (seconds = frame index): 0–7 clear, 8–15 fog (severity 3), 16–23 snow (severity 5),
//! 24–31 camera gain fault (gaussian_noise, severity 5), 32–39 clear. Visibility starts falling
//! one second before the fog reaches the frames; the camera reports its gain at once.

use std::fmt::Write as _;
use std::path::Path;

use rws_lab::corrupt::{corrupt, Corruption, Preset};
use rws_lab::data::{self, Kind};
use rwsd::replay::Provenance;
use rwsd::sensors::nmea::sentence;

const GENERATOR: &str = "cargo run --release -p rws-lab --example make_demo_feed";
/// When what this writes last changed: update it with the content.
const DATE: &str = "2026-12-03";
const PWD: &str =
    "synthetic Vaisala PWD-style present-weather sensor, message 2 (docs/protocols.md)";
const NMEA: &str = "synthetic NMEA 0183 weather station, MDA sentences (docs/protocols.md)";
const CAMERA: &str = "synthetic camera diagnostics, $PRWSC sentences (docs/protocols.md)";

/// A demo log's provenance header.
fn header(name: &str, device: &str, exercises: &[&str]) -> String {
    let log = format!("firmware-config/demo/{name}");
    Provenance {
        log: &log,
        generator: GENERATOR,
        date: DATE,
        device,
        exercises,
    }
    .to_string()
}

const FRAMES: usize = 40;

fn phase(t: usize) -> &'static str {
    match t {
        8..=15 => "fog",
        16..=23 => "snow",
        24..=31 => "gainfault",
        _ => "clear",
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-config/demo");
    let frames = out.join("frames");
    if frames.exists() {
        std::fs::remove_dir_all(&frames)?;
    }
    std::fs::create_dir_all(&frames)?;
    let set = data::load(Kind::Mnist5k, data::default_path(Kind::Mnist5k))?
        .split()
        .test;
    for t in 0..FRAMES {
        // Spread over the test split (it is grouped by class): a fixed stride coprime with its size.
        let i = (t * 397 + 11) % set.len();
        let (img, label) = (&set.images[i], set.labels[i]);
        let p = phase(t);
        let image = match p {
            "fog" => corrupt(img, Corruption::Fog, 3, Preset::ImageNet, t as u64)?,
            "snow" => corrupt(img, Corruption::Snow, 5, Preset::ImageNet, t as u64)?,
            "gainfault" => corrupt(
                img,
                Corruption::GaussianNoise,
                5,
                Preset::ImageNet,
                t as u64,
            )?,
            _ => img.clone(),
        };
        image.save(frames.join(format!("{t:04}-{p}-{label}.png")))?;
    }

    // Present-weather sensor, message 2, one report per second.
    let mut pwd = header("pwd.log", PWD, &["visibility 15 km, falling to 600 m at 7 s and 150 m in the fog phase (8–15 s), 2.5 km with snow (16–23 s)", "every tenth report framed SOH/STX/ETX; one report garbled by line noise at 20 s"]);
    for t in 0..=FRAMES {
        let (vis, nws, wmo, rate) = match t {
            7 => (600, "F", 30, 0.0),
            8..=15 => (150, "F", 33, 0.0),
            16..=23 => (2500, "S", 73, 1.2),
            _ => (15000, "C", 0, 0.0),
        };
        let line =
            format!("00 {vis:>5} {vis:>5} {nws} {wmo:>2} {wmo:>2} {wmo:>2} {rate:.2} 10.00 0");
        // Every tenth report comes framed (SOH PW id STX ... ETX), as the sensor's polled mode does.
        let line = if t % 10 == 5 {
            format!("\u{1}PW  1\u{2}{line}\u{3}")
        } else {
            line
        };
        writeln!(pwd, "{t} {line}")?;
        if t == 20 {
            writeln!(pwd, "{t} 00 2500 25@@ S garbled by line noise")?;
        }
    }
    std::fs::write(out.join("pwd.log"), pwd)?;

    // Weather station, NMEA MDA every two seconds.
    let mut nmea = header(
        "nmea.log",
        NMEA,
        &[
            "MDA every 2 s: humid in the fog phase, freezing in the snow phase",
            "one sentence with a wrong checksum at 12 s",
        ],
    );
    for t in (0..=FRAMES).step_by(2) {
        let (temp, hum, dew) = match t {
            8..=15 => (3.0, 98.0, 2.7),
            16..=23 => (0.5, 88.0, -1.2),
            _ => (4.0, 70.0, -0.9),
        };
        let body = format!("WIMDA,29.92,I,1.0132,B,{temp:.1},C,,C,{hum:.1},,{dew:.1},C,270.0,T,268.0,M,5.1,N,2.6,M");
        writeln!(nmea, "{t} {}", sentence(&body))?;
        if t == 12 {
            // A corrupted sentence: checksum no longer matches.
            writeln!(nmea, "{t} {}", sentence(&body).replace("98.0", "93.0"))?;
        }
    }
    std::fs::write(out.join("nmea.log"), nmea)?;

    // Camera diagnostics, one report per second.
    let mut cam = header(
        "camera.log",
        CAMERA,
        &["one report a second; gain 42 dB in the gain-fault phase (24–31 s)"],
    );
    for t in 0..=FRAMES {
        let gain = if phase(t) == "gainfault" { 42.0 } else { 6.0 };
        let body = format!(
            "PRWSC,{t},gain_db={gain:.1},exposure_ms=16.7,focus=0.86,obstruction=0.00,condensation=0.00,vibration_g=0.02,encoder_q=0.95,pixel_err=0.000001"
        );
        writeln!(cam, "{t} {}", sentence(&body))?;
    }
    std::fs::write(out.join("camera.log"), cam)?;
    println!("wrote {}", out.display());
    Ok(())
}
