//! The reload state machine (SIGHUP): a new state is prepared on a thread of its own while frames
//! go on, and taken between two frames; a SIGHUP during a preparation asks for one more after it
//! (so the last config written is the one loaded), never for two at once.
//!
//! ```text
//!            request()                      finished, poll() → Some(result)
//!   Idle ─────────────────▶ Preparing ──────────────────────────────────▶ Idle
//!                            │    ▲
//!                 request()  │    │ finished, poll() → Some(result), prepares again
//!                            ▼    │
//!                       Preparing + again
//! ```
//!
//! What a result means is the caller's business: the daemon swaps a good state in whole and keeps
//! the running one on an error.

use std::sync::Arc;
use std::thread::JoinHandle;

/// Prepares the new state; runs on the reload thread.
pub type Prepare<T> = Arc<dyn Fn() -> Result<T, String> + Send + Sync>;

/// Reloads prepared off the caller's thread, one at a time.
pub struct Reloader<T> {
    prepare: Prepare<T>,
    pending: Option<JoinHandle<Result<T, String>>>,
    again: bool,
}

impl<T: Send + 'static> Reloader<T> {
    pub fn new(prepare: Prepare<T>) -> Self {
        Reloader {
            prepare,
            pending: None,
            again: false,
        }
    }

    /// Whether a preparation is running.
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// A reload is asked for: starts preparing one, or, if one is being prepared, marks that
    /// another follows it. Fails only if the thread cannot be started.
    pub fn request(&mut self) -> Result<(), String> {
        if self.pending.is_some() {
            self.again = true;
            return Ok(());
        }
        let prepare = self.prepare.clone();
        let handle = std::thread::Builder::new()
            .name("rwsd-reload".into())
            .spawn(move || prepare())
            .map_err(|e| format!("starting the reload thread: {e}"))?;
        self.pending = Some(handle);
        Ok(())
    }

    /// Between frames: the finished preparation's result, if one finished (never waits). If
    /// another reload was asked for meanwhile, it is started.
    pub fn poll(&mut self) -> Option<Result<T, String>> {
        let handle = self.pending.take_if(|h| h.is_finished())?;
        let result = handle
            .join()
            .unwrap_or_else(|_| Err("the reload thread panicked".into()));
        if std::mem::take(&mut self.again) {
            if let Err(e) = self.request() {
                log::error!("rwsd: {e}");
            }
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A reloader whose preparations wait for a go from the test and return their run number.
    fn gated() -> (Reloader<usize>, mpsc::Sender<()>, Arc<AtomicUsize>) {
        let (go, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let prepare: Prepare<usize> = Arc::new(move || {
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            wait.lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            if n == 3 {
                Err("config.toml:1: bad".into())
            } else {
                Ok(n)
            }
        });
        (Reloader::new(prepare), go, runs)
    }

    fn finish(r: &mut Reloader<usize>) -> Result<usize, String> {
        for _ in 0..1000 {
            if let Some(res) = r.poll() {
                return res;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the preparation did not finish");
    }

    #[test]
    fn requests_during_a_preparation_coalesce_into_one_more() {
        let (mut r, go, runs) = gated();
        assert!(r.poll().is_none(), "nothing to take when idle");
        r.request().unwrap();
        r.request().unwrap();
        r.request().unwrap();
        assert!(r.busy());
        assert!(r.poll().is_none(), "never waits for a running preparation");
        go.send(()).unwrap();
        assert_eq!(finish(&mut r), Ok(1));
        // The two requests made meanwhile gave one more preparation, started by poll().
        assert!(r.busy());
        go.send(()).unwrap();
        assert_eq!(finish(&mut r), Ok(2));
        assert!(!r.busy());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_preparation_is_a_result_and_the_next_request_runs() {
        let (mut r, go, _) = gated();
        for want in [Ok(1), Ok(2), Err("config.toml:1: bad".to_string()), Ok(4)] {
            r.request().unwrap();
            go.send(()).unwrap();
            assert_eq!(finish(&mut r), want);
        }
    }

    #[test]
    fn a_panicking_preparation_is_reported_not_propagated() {
        let mut r: Reloader<()> = Reloader::new(Arc::new(|| panic!("boom")));
        r.request().unwrap();
        for _ in 0..1000 {
            if let Some(res) = r.poll() {
                assert_eq!(res, Err("the reload thread panicked".into()));
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no result");
    }
}
