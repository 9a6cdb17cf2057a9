//! Sensor driver threads: open a source, read lines, parse them with the sensor's protocol and
//! send [`Event`]s to the daemon. A bad line is an event, never an error; a disconnect is
//! followed by reconnects with exponential backoff; a replay file ends with [`EventKind::Eof`].

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::line::{split_timestamp, LineReader, Next};
use super::{LineError, Protocol, Signal};

/// Where a sensor's lines come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A serial device (through the serialport crate), e.g. `/dev/rws-pwd`.
    Serial { path: PathBuf, baud: u32 },
    /// A file replayed once.
    File(PathBuf),
    /// A FIFO, reopened when the writer goes away.
    Fifo(PathBuf),
    /// Standard input, read once.
    Stdin,
}

/// What a sensor thread reports.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Reading(Vec<Signal>),
    Bad(LineError),
    Connected,
    Disconnected(String),
    /// A replayed source ended; no more events from this sensor.
    Eof,
}

/// One report from sensor `sensor` (index in the config). `t` is the log time for replayed
/// sources with timestamps, `None` for live ones (the daemon stamps them on arrival).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub sensor: usize,
    pub t: Option<f64>,
    pub kind: EventKind,
}

/// How a sensor is read.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorSpec {
    pub index: usize,
    pub name: String,
    pub protocol: Protocol,
    pub source: Source,
    /// Lines carry a `<seconds> ` prefix (recorded logs).
    pub timestamps: bool,
}

/// Why [`pump`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Eof,
    Stopped,
    Receiver,
}

/// Logs bad lines: the first few, then at most one summary per minute.
struct BadLog {
    count: u64,
    since_last: u64,
    last: Option<Instant>,
}

impl BadLog {
    fn note(&mut self, name: &str, e: &LineError) {
        self.count += 1;
        self.since_last += 1;
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if self.count <= 5 || due {
            log::warn!(
                "sensor {name}: bad line ({e}); {} bad so far, {} since the last report",
                self.count,
                self.since_last
            );
            self.last = Some(Instant::now());
            self.since_last = 0;
        }
    }
}

/// Reads `reader` until it ends, `stop` is set or the receiver hangs up, sending one event per
/// line. Read timeouts (serial ports) just re-check `stop`.
pub fn pump<R: Read>(
    spec: &SensorSpec,
    reader: R,
    tx: &Sender<Event>,
    stop: &AtomicBool,
) -> std::io::Result<End> {
    let mut lines = LineReader::new(reader);
    let mut bad = BadLog {
        count: 0,
        since_last: 0,
        last: None,
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(End::Stopped);
        }
        let (t, kind) = match lines.next_line()? {
            Next::Eof => return Ok(End::Eof),
            Next::Timeout => continue,
            Next::Bad(e) => (None, EventKind::Bad(e)),
            Next::Line(l) => parse_line(spec, &l),
        };
        if let EventKind::Bad(e) = &kind {
            bad.note(&spec.name, e);
        }
        if matches!(&kind, EventKind::Reading(v) if v.is_empty()) {
            continue;
        }
        if tx
            .send(Event {
                sensor: spec.index,
                t,
                kind,
            })
            .is_err()
        {
            return Ok(End::Receiver);
        }
    }
}

fn parse_line(spec: &SensorSpec, line: &str) -> (Option<f64>, EventKind) {
    // Recorded logs may carry comments; live sensors never send '#' lines.
    if spec.timestamps && line.starts_with('#') {
        return (None, EventKind::Reading(Vec::new()));
    }
    let (t, raw) = if spec.timestamps {
        match split_timestamp(line) {
            Ok((t, raw)) => (Some(t), raw),
            Err(e) => return (None, EventKind::Bad(e)),
        }
    } else {
        (None, line)
    };
    match spec.protocol.parse(raw) {
        Ok(v) => (t, EventKind::Reading(v)),
        Err(e) => (t, EventKind::Bad(e)),
    }
}

/// Backoff between reconnects: 0.5 s doubling to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

fn open(source: &Source) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match source {
        Source::Serial { path, baud } => {
            let path = path.to_string_lossy();
            // A read timeout is required: serialport's default of zero would spin.
            let port = serialport::new(path.as_ref(), *baud)
                .timeout(Duration::from_millis(200))
                .open()
                .map_err(std::io::Error::other)?;
            Box::new(port)
        }
        Source::File(p) | Source::Fifo(p) => Box::new(std::fs::File::open(p)?),
        Source::Stdin => Box::new(std::io::stdin()),
    })
}

/// Starts the driver thread for `spec`.
pub fn spawn(
    spec: SensorSpec,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sensor-{}", spec.name))
        .spawn(move || run(&spec, &tx, &stop))
}

fn send(tx: &Sender<Event>, spec: &SensorSpec, kind: EventKind) -> bool {
    tx.send(Event {
        sensor: spec.index,
        t: None,
        kind,
    })
    .is_ok()
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(spec: &SensorSpec, tx: &Sender<Event>, stop: &AtomicBool) {
    let once = matches!(spec.source, Source::File(_) | Source::Stdin);
    let mut attempt = 0;
    while !stop.load(Ordering::Relaxed) {
        let reader = match open(&spec.source) {
            Ok(r) => r,
            Err(e) => {
                let wait = backoff(attempt);
                log::warn!(
                    "sensor {}: cannot open ({e}); retrying in {wait:?}",
                    spec.name
                );
                if !send(tx, spec, EventKind::Disconnected(e.to_string())) {
                    return;
                }
                attempt += 1;
                sleep_unless_stopped(wait, stop);
                continue;
            }
        };
        attempt = 0;
        log::info!("sensor {}: connected", spec.name);
        if !send(tx, spec, EventKind::Connected) {
            return;
        }
        let why = match pump(spec, reader, tx, stop) {
            Ok(End::Stopped | End::Receiver) => return,
            Ok(End::Eof) if once => {
                send(tx, spec, EventKind::Eof);
                return;
            }
            Ok(End::Eof) => "end of stream".to_string(),
            Err(e) => e.to_string(),
        };
        log::warn!("sensor {}: disconnected ({why}); reconnecting", spec.name);
        if !send(tx, spec, EventKind::Disconnected(why)) {
            return;
        }
        sleep_unless_stopped(backoff(0), stop);
    }
}
