//! The daemon's sensor hub: the driver threads of the configured sensors, the events they sent
//! that the frame loop has not applied yet, and each sensor's health as the status shows it.
//!
//! Live, every event received so far is applied before a frame, stamped with the frame's time.
//! In replay, a frame at time `t` waits until every sensor has either ended or sent an event
//! past `t`, then applies exactly the events stamped `≤ t`, in time order across sensors: the
//! same logs always give the same coefficients, whatever the threads' timing.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::config::{Clock, Config};
use crate::health::Health;
use crate::policy::Engine;
use crate::protocol::SensorStatus;
use crate::sensors::driver::{self, Event, EventKind, SensorSpec};
use crate::sensors::Counters;
use crate::source::{Stop, TICK};

/// How long a replayed frame waits, in all, for sensors that have sent nothing past its time.
const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// Events in flight from all sensor threads to the hub. A sensor that sends faster than the
/// hub applies waits (backpressure); the daemon's memory does not grow with sensor traffic.
pub const EVENT_QUEUE: usize = 1024;

/// Events a replay may hold per sensor ahead of the frames (timestamped readings waiting for
/// their time). A sensor that fills it is not waited for any more.
pub const REPLAY_AHEAD: usize = 4096;

/// The sensor threads and what they have sent but the loop has not applied yet.
pub struct SensorHub {
    rx: Receiver<Event>,
    stop: Stop,
    threads: Vec<JoinHandle<()>>,
    health: Option<Arc<Health>>,
    specs: Vec<SensorSpec>,
    buffered: Vec<VecDeque<Event>>,
    eof: Vec<bool>,
    counters: Vec<Counters>,
    connected: Vec<bool>,
}

impl SensorHub {
    /// Starts one driver thread per configured sensor.
    pub fn start(cfg: &Config, health: &Arc<Health>) -> Result<SensorHub> {
        let (tx, rx) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
        let stop = Stop::new();
        let mut hub = SensorHub::from_channel(rx, cfg.sensors.clone());
        for spec in &cfg.sensors {
            let t = driver::spawn(spec.clone(), tx.clone(), stop.clone(), health.clone());
            match t {
                Ok(t) => hub.threads.push(t),
                Err(e) => {
                    // Stop the ones already started before reporting.
                    stop.stop();
                    hub.stop();
                    return Err(e.into());
                }
            }
        }
        hub.stop = stop;
        hub.health = Some(health.clone());
        Ok(hub)
    }

    /// A hub over events arriving on `rx` for `specs`, with no threads of its own (tests, and
    /// the building block of [`SensorHub::start`]).
    pub fn from_channel(rx: Receiver<Event>, specs: Vec<SensorSpec>) -> SensorHub {
        let n = specs.len();
        SensorHub {
            rx,
            stop: Stop::new(),
            threads: Vec::new(),
            health: None,
            specs,
            buffered: vec![VecDeque::new(); n],
            eof: vec![false; n],
            counters: vec![Counters::default(); n],
            connected: vec![false; n],
        }
    }

    /// The sensors this hub reads.
    pub fn specs(&self) -> &[SensorSpec] {
        &self.specs
    }

    /// Stops the threads and waits for them: every read of a source returns within a tick,
    /// so a stopped driver ends promptly, with its descriptor closed.
    pub fn stop(&mut self) {
        self.stop.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(h) = &self.health {
            for spec in &self.specs {
                h.remove(&crate::health::thread_name(&format!(
                    "sensor-{}",
                    spec.name
                )));
            }
        }
    }

    fn push(&mut self, e: Event) {
        if e.sensor < self.buffered.len() {
            if e.kind == EventKind::Eof {
                self.eof[e.sensor] = true;
            }
            self.buffered[e.sensor].push_back(e);
        }
    }

    /// Whether replay still waits for sensor `s` at time `t`: it has not ended, has sent
    /// nothing past `t`, and has room for more.
    fn waiting_for(&self, s: usize, t: f64) -> bool {
        let q = &self.buffered[s];
        !self.eof[s] && q.len() < REPLAY_AHEAD && !q.iter().any(|e| e.t.is_some_and(|et| et > t))
    }

    /// Replay: waits until every sensor has ended, sent an event past `t` or filled its
    /// buffer, for at most [`REPLAY_WAIT`] in all, and not past `interrupted()` (a signal).
    fn fill_until(&mut self, t: f64, interrupted: &dyn Fn() -> bool) {
        let deadline = Instant::now() + REPLAY_WAIT;
        while (0..self.buffered.len()).any(|s| self.waiting_for(s, t)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!(
                    "replay: a sensor sent nothing past t = {t} for 10 s; going on without it"
                );
                return;
            }
            if interrupted() {
                return;
            }
            match self.rx.recv_timeout(left.min(TICK)) {
                Ok(e) => self.push(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// The events due at time `t`, in the order they are applied: live, everything received;
    /// replay, everything stamped `≤ t` once every sensor has been heard past `t` (or ended),
    /// sorted by time (stable, so one sensor's events keep their order).
    pub fn take_due(&mut self, t: f64, clock: Clock, interrupted: &dyn Fn() -> bool) -> Vec<Event> {
        // Live, at most what the queue holds now: a sensor sending without pause cannot keep
        // the loop here.
        for _ in 0..EVENT_QUEUE {
            match self.rx.try_recv() {
                Ok(e) => self.push(e),
                Err(_) => break,
            }
        }
        if clock == Clock::Replay {
            self.fill_until(t, interrupted);
        }
        let mut due: Vec<Event> = Vec::new();
        for q in &mut self.buffered {
            while q
                .front()
                .is_some_and(|e| clock == Clock::Live || e.t.is_none_or(|et| et <= t))
            {
                due.extend(q.pop_front());
            }
        }
        due.sort_by(|a, b| a.t.unwrap_or(t).total_cmp(&b.t.unwrap_or(t)));
        due
    }

    /// Applies events from [`Self::take_due`] at time `t` (events without a time get `t`; live,
    /// everything is stamped `t`). Take them without the engine's lock (replay may wait there)
    /// and apply them under it.
    pub fn apply_due(&mut self, due: Vec<Event>, t: f64, engine: &mut Engine) {
        for e in due {
            let s = e.sensor;
            self.counters[s].count(&e.kind);
            match &e.kind {
                EventKind::Reading(v) => {
                    self.connected[s] = true;
                    engine.observe(s, e.t.unwrap_or(t), v);
                }
                EventKind::Connected => self.connected[s] = true,
                EventKind::Disconnected(_) | EventKind::Eof => self.connected[s] = false,
                EventKind::Bad(_) => {}
            }
        }
    }

    /// Each sensor's health at time `t`.
    pub fn status(&self, engine: &Engine, t: f64) -> Vec<SensorStatus> {
        self.specs
            .iter()
            .enumerate()
            .map(|(i, spec)| SensorStatus {
                name: spec.name.clone(),
                connected: self.connected[i],
                fresh: engine.fresh(i, t),
                last_reading_age_s: engine.reading_age(i, t),
                ended: self.eof[i],
                counters: self.counters[i].clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::driver::Source;
    use crate::sensors::{LineError, Protocol};

    fn spec(index: usize) -> SensorSpec {
        SensorSpec {
            index,
            name: format!("s{index}"),
            protocol: Protocol::Pwd,
            source: Source::Stdin,
            timestamps: true,
        }
    }

    fn reading(sensor: usize, t: f64) -> Event {
        Event {
            sensor,
            t: Some(t),
            kind: EventKind::Reading(vec![("x".into(), t)]),
        }
    }

    #[test]
    fn replay_applies_exactly_the_events_up_to_the_frame_in_time_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        // Sensor 1's events arrive first, and out of step with sensor 0's.
        for e in [reading(1, 0.5), reading(1, 2.5), reading(1, 9.0)] {
            tx.send(e).unwrap();
        }
        for e in [
            reading(0, 0.0),
            reading(0, 1.0),
            reading(0, 2.0),
            reading(0, 3.0),
        ] {
            tx.send(e).unwrap();
        }
        let mut hub = SensorHub::from_channel(rx, vec![spec(0), spec(1)]);
        let times = |v: &[Event]| {
            v.iter()
                .map(|e| (e.sensor, e.t.unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            times(&hub.take_due(2.0, Clock::Replay, &|| false)),
            [(0, 0.0), (1, 0.5), (0, 1.0), (0, 2.0)]
        );
        // Sensor 0 has nothing past t = 3 yet: its end lets the frame at 3 go on.
        tx.send(Event {
            sensor: 0,
            t: None,
            kind: EventKind::Eof,
        })
        .unwrap();
        let due = hub.take_due(3.0, Clock::Replay, &|| false);
        assert_eq!(times(&due[..2]), [(1, 2.5), (0, 3.0)]);
        assert_eq!(due[2].kind, EventKind::Eof);
        // Sensor 1 has nothing past 10 either; its end lets the last frame go on.
        tx.send(Event {
            sensor: 1,
            t: None,
            kind: EventKind::Eof,
        })
        .unwrap();
        let due = hub.take_due(10.0, Clock::Replay, &|| false);
        assert_eq!(times(&due[..1]), [(1, 9.0)]);
        assert_eq!(due.len(), 2);
    }

    #[test]
    fn a_sensor_sending_only_noise_cannot_grow_a_replay_or_hold_it() {
        // A replayed "sensor" reading /dev/urandom: bad lines without time stamps, endlessly.
        let (tx, rx) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
        let stop = Stop::new();
        let s2 = stop.clone();
        let noise = std::thread::spawn(move || {
            let bad = || Event {
                sensor: 0,
                t: None,
                kind: EventKind::Bad(LineError::Binary),
            };
            while !s2.stopped() {
                // Full or not, it keeps sending.
                let _ = tx.try_send(bad());
                std::thread::yield_now();
            }
        });
        let mut hub = SensorHub::from_channel(rx, vec![spec(0)]);
        let start = Instant::now();
        for frame in 0..5 {
            let due = hub.take_due(frame as f64, Clock::Replay, &|| false);
            assert!(due.len() <= REPLAY_AHEAD + EVENT_QUEUE, "{}", due.len());
            assert!(hub.buffered[0].len() <= REPLAY_AHEAD);
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "frames were not held"
        );
        stop.stop();
        noise.join().unwrap();
    }

    #[test]
    fn live_applies_everything_received_and_counts_it() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut hub = SensorHub::from_channel(rx, vec![spec(0)]);
        tx.send(reading(0, 100.0)).unwrap();
        tx.send(Event {
            sensor: 0,
            t: None,
            kind: EventKind::Bad(LineError::Binary),
        })
        .unwrap();
        let policy = crate::policy::Policy {
            rules: Vec::new(),
            max_total_alpha: 1.0,
            ramp_per_s: 1.0,
            hysteresis: 0.0,
            overrides: Default::default(),
        };
        let mut engine = Engine::new(policy, vec![10.0]);
        let due = hub.take_due(1.0, Clock::Live, &|| false);
        hub.apply_due(due, 1.0, &mut engine);
        let st = hub.status(&engine, 1.0);
        assert_eq!(st[0].counters.readings, 1);
        assert_eq!(st[0].counters.binary, 1);
        assert!(st[0].connected && st[0].fresh);
        assert!(!hub.status(&engine, 200.0)[0].fresh);
    }
}
