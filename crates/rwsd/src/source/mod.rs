//! One lifecycle for everything rwsd reads from outside, sensors and frames alike:
//!
//! - **open** without blocking: a FIFO opens at once even with no writer (`O_NONBLOCK`), so a
//!   camera pipeline that has not started cannot hold the daemon (or `rwsd --check`) in `open()`;
//! - **read** with a tick: every read returns within [`TICK`], data or not ([`Polled`]), so a
//!   stop request is seen within a tick and a stopped source's thread can be joined;
//! - **end or reconnect**: read-once sources (a file, stdin, a directory) end at their end;
//!   reconnecting ones (serial ports, FIFOs, V4L2 devices) are reopened with [`backoff`] when
//!   they fail or their writer goes away, forever, while the rest of the daemon keeps serving;
//! - **stop**: a [`Stop`] flag shared by the source's thread and its owner.
//!
//! Threads that run sources are started under [`crate::health::supervise`], which catches a
//! panic, counts it in the status and restarts the thread.

mod sys;

pub use sys::{
    background_priority, bound_malloc_arenas, release_freed_memory, wait_readable, MALLOC_ARENAS,
};

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a read of a source blocks before its thread looks at its stop flag again.
pub const TICK: Duration = Duration::from_millis(200);

/// What a source does at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// A file, stdin or a directory: its end is the end.
    ReadOnce,
    /// A serial port, FIFO or device: reopened with backoff.
    Reconnect,
}

/// A stop request, shared by a source's thread and its owner.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for code that takes an `&AtomicBool`.
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }

    /// Sleeps `d`, waking early when stopped; returns whether it was stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        true
    }
}

/// Backoff between reconnects: 0.5 s doubling to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// A descriptor read with a tick: a read waits at most [`TICK`] for data and then fails with
/// `TimedOut`, which callers treat as "nothing yet, check the stop flag". End of stream reads as
/// `Ok(0)` as usual (a FIFO's writer went away, stdin closed).
pub struct Polled {
    file: File,
}

impl Read for Polled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !sys::wait_readable(self.file.as_fd(), TICK)? {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match self.file.read(buf) {
            // Readable but nothing there (a FIFO between writers): no data yet.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
            r => r,
        }
    }
}

/// Opens a FIFO for reading without waiting for a writer. Until one connects, reads time out;
/// when the last writer closes, a read returns end of stream (reopen to wait for the next).
pub fn open_fifo(path: &Path) -> io::Result<Polled> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    Ok(Polled { file })
}

/// Standard input, read with a tick.
pub fn stdin() -> io::Result<Polled> {
    Ok(Polled {
        file: sys::dup_stdin()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rws_testkit::mkfifo;
    use std::io::Write;

    #[test]
    fn a_fifo_opens_without_a_writer_and_sees_writers_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        mkfifo(&path);
        let start = Instant::now();
        let mut r = open_fifo(&path).unwrap();
        assert!(start.elapsed() < TICK, "open did not wait for a writer");
        let mut buf = [0u8; 16];
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "no writer yet: a tick");
        let mut w = File::options().write(true).open(&path).unwrap();
        w.write_all(b"hello").unwrap();
        assert_eq!(r.read(&mut buf).unwrap(), 5);
        drop(w);
        assert_eq!(
            r.read(&mut buf).unwrap(),
            0,
            "the writer left: end of stream"
        );
        // Reopened, it waits for the next writer again.
        let mut r = open_fifo(&path).unwrap();
        assert_eq!(
            r.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn stop_wakes_a_sleep_and_backoff_is_bounded() {
        let stop = Stop::new();
        let s2 = stop.clone();
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(60));
        stop.stop();
        assert!(t.join().unwrap(), "woken by the stop");
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
