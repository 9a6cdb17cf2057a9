//! The frame source on a thread of its own, following the [`crate::source`] lifecycle: it opens
//! the source (never blocking on a FIFO without a writer), reads and decodes frames ahead of the
//! frame loop into a queue of [`FEED_QUEUE`] frames, reopens a FIFO or a camera with backoff when
//! it fails or its writer goes away, and ends a read-once source (a directory, a file, stdin) at
//! its end. The frame loop waits on the queue for at most a tick at a time, so a stalled camera
//! never keeps it from signals, reloads, sensors or the status. Images the frame loop is done
//! with come back through [`Feed::recycle`] (a queue of [`RECYCLED`]), and the source decodes the
//! next frames into them: a steady stream allocates no frame buffers.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Clock, Config, FrameSource};
use crate::frames::{self, Frame, FrameError};
use crate::health::{supervise, Health};
use crate::protocol::{FrameSourceStatus, SourceState};
use crate::source::{backoff, Lifetime, Stop};
use rws_image::Image;

/// Decoded frames waiting for the frame loop (each one model-input-sized or bounded by
/// `frames.max_pixels`): the source never runs more than this far ahead.
pub const FEED_QUEUE: usize = 2;

/// Images waiting to be decoded into again: one per frame that can be queued or in the loop's
/// hands (more would only be freed later).
pub const RECYCLED: usize = FEED_QUEUE + 2;

/// What the feed hands the frame loop.
#[derive(Debug)]
pub enum Item {
    Frame(Frame),
    /// A frame that could not be read or decoded; the next may be fine.
    Bad {
        name: String,
        reason: String,
    },
    /// A read-once source was read to its end.
    Ended,
}

/// A running frame source.
pub struct Feed {
    rx: Receiver<Item>,
    recycle: SyncSender<Image>,
    stop: Stop,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    status: FrameSourceStatus,
    last_frame: Option<Instant>,
    /// Time spent reading and decoding frames, and frames read (the daemon's overhead figure).
    busy: Duration,
    read: u64,
}

/// Everything the source thread needs from the config.
struct Settings {
    source: FrameSource,
    max_pixels: u64,
    /// Live clock with a directory: frames at this interval (other sources pace themselves).
    pace: Option<Duration>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Feed {
    /// Starts reading `cfg`'s frame source on a supervised thread.
    pub fn start(cfg: &Config, health: &Arc<Health>) -> std::io::Result<Feed> {
        let settings = Settings {
            source: cfg.frames.clone(),
            max_pixels: cfg.max_pixels,
            pace: (cfg.clock == Clock::Live && matches!(cfg.frames, FrameSource::Dir(_)))
                .then(|| Duration::from_millis(cfg.frame_interval_ms)),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(FEED_QUEUE);
        let (recycle, spares) = std::sync::mpsc::sync_channel(RECYCLED);
        let stop = Stop::new();
        let state = Arc::new(Mutex::new(State::default()));
        let (s, st) = (stop.clone(), state.clone());
        let thread = supervise("frames", health.clone(), stop.clone(), move || {
            let ends = Ends {
                tx: &tx,
                spares: &spares,
                stop: &s,
                state: &st,
            };
            read_frames(&settings, &ends)
        })?;
        Ok(Feed {
            rx,
            recycle,
            stop,
            thread: Some(thread),
            state,
        })
    }

    /// The next item, waiting at most `timeout`; `None` if nothing came (or the source thread
    /// is being restarted).
    pub fn next(&self, timeout: Duration) -> Option<Item> {
        match self.rx.recv_timeout(timeout) {
            Ok(item) => Some(item),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Item::Ended),
        }
    }

    /// Hands an image the frame loop is done with back to the source, to decode a later frame
    /// into (dropped if enough are waiting already).
    pub fn recycle(&self, image: Image) {
        let _ = self.recycle.try_send(image);
    }

    /// Time the source thread spent reading and decoding frames, and how many it read.
    pub fn read_time(&self) -> (Duration, u64) {
        let st = lock(&self.state);
        (st.busy, st.read)
    }

    /// The source's state, for the status.
    pub fn status(&self) -> FrameSourceStatus {
        let st = lock(&self.state);
        let mut s = st.status.clone();
        s.since_last_frame_s = st.last_frame.map(|t| t.elapsed().as_secs_f64());
        s
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.stop();
        // The receiver goes first, so a source thread waiting to hand over a frame is released
        // (its send fails) and the join below returns.
        let (_, closed) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.rx, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hands `item` over, waiting while the queue is full (the frame loop takes the next one the
/// moment it is free); `false` when stopped or nobody listens. The wait ends when the feed is
/// dropped: its receiver goes first, which fails the send.
fn put(tx: &SyncSender<Item>, item: Item, stop: &Stop) -> bool {
    !stop.stopped() && tx.send(item).is_ok()
}

/// What the source thread talks to: the frame queue, the recycled images, the stop flag and the
/// shared state.
struct Ends<'a> {
    tx: &'a SyncSender<Item>,
    spares: &'a Receiver<Image>,
    stop: &'a Stop,
    state: &'a Mutex<State>,
}

/// The source thread: open, read until the end or a failure, then end or reopen.
fn read_frames(cfg: &Settings, ends: &Ends<'_>) {
    let (tx, stop, state) = (ends.tx, ends.stop, ends.state);
    let once = cfg.source.lifetime() == Lifetime::ReadOnce;
    let mut attempt = 0u32;
    while !stop.stopped() {
        let why = match frames::open(&cfg.source, stop, cfg.max_pixels) {
            Err(e) => e.to_string(),
            Ok(mut source) => {
                attempt = 0;
                lock(state).status.state = SourceState::Waiting;
                match pump(source.as_mut(), cfg, ends) {
                    Pumped::Stopped => return,
                    Pumped::End if once => {
                        lock(state).status.state = SourceState::Ended;
                        put(tx, Item::Ended, stop);
                        return;
                    }
                    Pumped::End => {
                        // A FIFO's writer went away (the camera pipeline restarts): waiting for
                        // the next one is the normal state, reopened at once (the open does not
                        // block, and reads wait in ticks).
                        let mut st = lock(state);
                        st.status.state = SourceState::Waiting;
                        st.status.reconnects += 1;
                        continue;
                    }
                    Pumped::Failed(why) => why,
                }
            }
        };
        if once {
            log::error!("rwsd: frame source failed: {why}");
            let mut st = lock(state);
            st.status.state = SourceState::Ended;
            st.status.last_error = Some(why);
            drop(st);
            put(tx, Item::Ended, stop);
            return;
        }
        let wait = backoff(attempt);
        log::warn!("rwsd: frame source: {why}; reopening in {wait:?}");
        {
            let mut st = lock(state);
            st.status.state = SourceState::Down;
            st.status.last_error = Some(why);
            st.status.reconnects += 1;
        }
        attempt += 1;
        stop.sleep(wait);
    }
}

/// Why [`pump`] returned.
enum Pumped {
    Stopped,
    End,
    Failed(String),
}

fn pump(source: &mut dyn frames::Frames, cfg: &Settings, ends: &Ends<'_>) -> Pumped {
    let (tx, stop, state) = (ends.tx, ends.stop, ends.state);
    loop {
        let started = Instant::now();
        let spare = ends.spares.try_recv().ok();
        let item = match source.next_frame(spare) {
            _ if stop.stopped() => return Pumped::Stopped,
            Ok(None) => return Pumped::End,
            Ok(Some(f)) => {
                let mut st = lock(state);
                st.status.state = SourceState::Receiving;
                let now = Instant::now();
                st.last_frame = Some(now);
                st.busy += now - started;
                st.read += 1;
                Item::Frame(f)
            }
            Err(FrameError::Bad { name, reason }) => Item::Bad { name, reason },
            Err(e @ FrameError::Source { .. }) => return Pumped::Failed(e.to_string()),
        };
        if !put(tx, item, stop) {
            return Pumped::Stopped;
        }
        if let Some(rest) = cfg.pace.and_then(|p| p.checked_sub(started.elapsed())) {
            if stop.sleep(rest) {
                return Pumped::Stopped;
            }
        }
    }
}
