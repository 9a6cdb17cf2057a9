//! Sensor driver threads: open a source, read lines, parse them with the sensor's protocol and
//! send [`Event`]s to the daemon. A bad line is an event, never an error. Sources follow the
//! [`crate::source`] lifecycle: FIFOs open without waiting for a writer, every read returns
//! within a tick (so a stop is seen and the thread joined), serial ports and FIFOs reconnect
//! with exponential backoff, and read-once sources (a file, stdin) end with [`EventKind::Eof`] —
//! also when they cannot be opened at all. Threads run under [`crate::health::supervise`].

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::line::{split_timestamp, LineReader, Next};
use super::{LineError, Protocol, Signal};
use crate::health::{supervise, Health};
use crate::ratelimit::RateLimit;
use crate::source::{self, Lifetime, Stop};

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

/// Where a driver's events go: an unbounded channel (tests, tools) or the daemon's bounded one,
/// which makes a sensor that sends faster than the daemon applies wait (it never drops a
/// reading, and memory stays bounded whatever the sensor sends).
pub trait Sink {
    /// Delivers `e`, waiting while the receiver is full; `false` if the receiver is gone or
    /// `stop` was set while waiting.
    fn put(&self, e: Event, stop: &AtomicBool) -> bool;
}

impl Sink for Sender<Event> {
    fn put(&self, e: Event, _stop: &AtomicBool) -> bool {
        self.send(e).is_ok()
    }
}

impl Sink for SyncSender<Event> {
    fn put(&self, mut e: Event, stop: &AtomicBool) -> bool {
        loop {
            match self.try_send(e) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    e = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Logs bad lines: the first few, then at most one summary per minute.
struct BadLog(RateLimit);

impl BadLog {
    fn note(&mut self, name: &str, e: &LineError) {
        if let Some(r) = self.0.note() {
            log::warn!(
                "sensor {name}: bad line ({e}); {} bad so far, {} since the last report",
                r.total,
                r.since_last
            );
        }
    }
}

/// Reads `reader` until it ends, `stop` is set or the receiver hangs up, sending one event per
/// line. Read timeouts (serial ports) just re-check `stop`.
pub fn pump<R: Read, S: Sink>(
    spec: &SensorSpec,
    reader: R,
    tx: &S,
    stop: &AtomicBool,
) -> std::io::Result<End> {
    let mut lines = LineReader::new(reader);
    let mut bad = BadLog(RateLimit::standard());
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
        let e = Event {
            sensor: spec.index,
            t,
            kind,
        };
        if !tx.put(e, stop) {
            return Ok(if stop.load(Ordering::Relaxed) {
                End::Stopped
            } else {
                End::Receiver
            });
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

impl Source {
    /// Whether the source ends at its end or is reopened.
    pub fn lifetime(&self) -> Lifetime {
        match self {
            Source::File(_) | Source::Stdin => Lifetime::ReadOnce,
            Source::Serial { .. } | Source::Fifo(_) => Lifetime::Reconnect,
        }
    }
}

fn open(source: &Source) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match source {
        Source::Serial { path, baud } => {
            let path = path.to_string_lossy();
            // A read timeout is required: serialport's default of zero would spin.
            let port = serialport::new(path.as_ref(), *baud)
                .timeout(source::TICK)
                .open()
                .map_err(std::io::Error::other)?;
            Box::new(port)
        }
        Source::File(p) => Box::new(std::fs::File::open(p)?),
        Source::Fifo(p) => Box::new(source::open_fifo(p)?),
        Source::Stdin => Box::new(source::stdin()?),
    })
}

/// Starts the driver thread for `spec` under supervision: a panic is counted in `health` and
/// the driver restarted (reopening its source).
pub fn spawn<S: Sink + Send + 'static>(
    spec: SensorSpec,
    tx: S,
    stop: Stop,
    health: Arc<Health>,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("sensor-{}", spec.name);
    let s = stop.clone();
    supervise(&name, health, stop, move || run(&spec, &tx, &s))
}

fn send<S: Sink>(tx: &S, spec: &SensorSpec, kind: EventKind, stop: &Stop) -> bool {
    let e = Event {
        sensor: spec.index,
        t: None,
        kind,
    };
    tx.put(e, stop.flag())
}

fn run<S: Sink>(spec: &SensorSpec, tx: &S, stop: &Stop) {
    let once = spec.source.lifetime() == Lifetime::ReadOnce;
    let mut attempt = 0;
    while !stop.stopped() {
        let reader = match open(&spec.source) {
            Ok(r) => r,
            Err(e) if once => {
                // A file that is not there will not appear: the sensor ends, and says why.
                log::error!("sensor {}: cannot open ({e}); it sends nothing", spec.name);
                send(tx, spec, EventKind::Disconnected(e.to_string()), stop);
                send(tx, spec, EventKind::Eof, stop);
                return;
            }
            Err(e) => {
                let wait = source::backoff(attempt);
                log::warn!(
                    "sensor {}: cannot open ({e}); retrying in {wait:?}",
                    spec.name
                );
                if !send(tx, spec, EventKind::Disconnected(e.to_string()), stop) {
                    return;
                }
                attempt += 1;
                stop.sleep(wait);
                continue;
            }
        };
        attempt = 0;
        log::info!("sensor {}: connected", spec.name);
        if !send(tx, spec, EventKind::Connected, stop) {
            return;
        }
        let why = match pump(spec, reader, tx, stop.flag()) {
            Ok(End::Stopped | End::Receiver) => return,
            Ok(End::Eof) if once => {
                send(tx, spec, EventKind::Eof, stop);
                return;
            }
            Ok(End::Eof) => "end of stream".to_string(),
            Err(e) => e.to_string(),
        };
        log::warn!("sensor {}: disconnected ({why}); reconnecting", spec.name);
        if !send(tx, spec, EventKind::Disconnected(why), stop) {
            return;
        }
        stop.sleep(source::backoff(0));
    }
}
