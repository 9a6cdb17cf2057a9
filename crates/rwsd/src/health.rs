//! Thread health: every long-lived thread of the daemon (sensor drivers, the frame source, the
//! control socket) runs under [`supervise`]. A panic is caught, counted, logged and shown in the
//! status; the thread is restarted after a backoff (0.5 s doubling to 30 s); `rwsctl status`
//! exits 1 while a thread is down. A bug in one parser therefore costs that source a restart,
//! never the daemon, and never silently.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::protocol::{ThreadState, ThreadStatus};
use crate::source::{backoff, Stop};

/// The daemon's threads and how they are doing.
#[derive(Debug, Default)]
pub struct Health {
    threads: Mutex<Vec<ThreadStatus>>,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ThreadStatus>> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The threads' states, for the status.
    pub fn snapshot(&self) -> Vec<ThreadStatus> {
        self.lock().clone()
    }

    /// Panics counted so far, over all threads.
    pub fn panics(&self) -> u64 {
        self.lock().iter().map(|t| t.panics).sum()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut ThreadStatus)) {
        let mut threads = self.lock();
        let i = match threads.iter().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                threads.push(ThreadStatus {
                    name: name.to_string(),
                    state: ThreadState::Running,
                    panics: 0,
                    last_panic: None,
                });
                threads.len() - 1
            }
        };
        f(&mut threads[i]);
    }

    /// Forgets a thread that was stopped on purpose (a sensor removed by a reload).
    pub fn remove(&self, name: &str) {
        self.lock().retain(|t| t.name != name);
    }
}

/// A thread name the OS accepts: control characters (a NUL would make `spawn` panic) become `?`.
pub fn thread_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Runs `body` on a thread named `name`, again after a backoff each time it panics, until it
/// returns or `stop` is set. Its state is kept in `health` under `name`.
pub fn supervise(
    name: &str,
    health: Arc<Health>,
    stop: Stop,
    mut body: impl FnMut() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let name = thread_name(name);
    health.update(&name, |t| t.state = ThreadState::Running);
    let tname = name.clone();
    std::thread::Builder::new().name(tname).spawn(move || {
        let mut attempt = 0;
        loop {
            match catch_unwind(AssertUnwindSafe(&mut body)) {
                Ok(()) => {
                    health.update(&name, |t| t.state = ThreadState::Stopped);
                    return;
                }
                Err(p) => {
                    let msg = panic_message(p.as_ref());
                    log::error!("thread {name} panicked ({msg}); restarting it");
                    health.update(&name, |t| {
                        t.state = ThreadState::Restarting;
                        t.panics += 1;
                        t.last_panic = Some(msg);
                    });
                }
            }
            if stop.sleep(backoff(attempt)) {
                health.update(&name, |t| t.state = ThreadState::Stopped);
                return;
            }
            attempt += 1;
            health.update(&name, |t| t.state = ThreadState::Running);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[test]
    fn a_panicking_thread_is_counted_and_restarted() {
        let health = Health::new();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let handle = supervise("sensor-p\0wd", health.clone(), Stop::new(), move || {
            if r.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("byte index 3 is not a char boundary");
            }
        })
        .unwrap();
        handle.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "ran again after the panic");
        let t = &health.snapshot()[0];
        assert_eq!(t.name, "sensor-p?wd", "a NUL in a name is not a panic");
        assert_eq!((t.panics, t.state), (1, ThreadState::Stopped));
        assert!(t.last_panic.as_deref().unwrap().contains("char boundary"));
    }

    #[test]
    fn a_stop_ends_the_backoff() {
        let health = Health::new();
        let stop = Stop::new();
        let handle =
            supervise("always", health.clone(), stop.clone(), || panic!("always")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(health.snapshot()[0].state, ThreadState::Restarting);
        stop.stop();
        handle.join().unwrap();
        assert_eq!(health.snapshot()[0].state, ThreadState::Stopped);
        assert!(health.panics() >= 1);
    }
}
