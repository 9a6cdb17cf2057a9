//! The control socket's server: [`crate::protocol`] requests answered from the daemon's shared
//! state, which is also where the policy engine lives ([`Shared::engine`] is its one owner; the
//! frame loop and the socket both lock it there).
//!
//! Bounds, so no client can take the socket down or make the daemon grow: a request is at most
//! [`MAX_REQUEST`] bytes and must arrive within [`REQUEST_TIME`] in all (not per read), each
//! connection is served on its own thread, and at most [`MAX_CLIENTS`] are served at once (more
//! are answered "busy" and closed). The socket (its file is [`socket`]'s) has mode 0660, so only
//! the daemon's user and group can change coefficients.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::health::{supervise, Health};
use crate::policy::Engine;
use crate::protocol::{Request, Response, Status, MAX_REQUEST};
use crate::source::Stop;

mod socket;

pub use socket::{claim, inspect, PathState};

/// Connections served at once; one more is answered "busy".
pub const MAX_CLIENTS: usize = 8;
/// The whole request line must arrive within this time.
pub const REQUEST_TIME: Duration = Duration::from_secs(2);

/// What the control socket shares with the frame loop.
pub struct Shared {
    /// The policy engine (its one owner).
    pub engine: Mutex<Engine>,
    /// The status the socket serves, refreshed by the frame loop.
    pub status: Mutex<Status>,
    /// Seconds on the daemon's clock (f64 bits), for override expiry.
    now: AtomicU64,
}

impl Shared {
    pub fn new(engine: Engine) -> Self {
        Shared {
            engine: Mutex::new(engine),
            status: Mutex::new(Status::default()),
            now: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Locks the engine, recovering it if a panicking thread poisoned the lock (the engine is
    /// left consistent between its method calls).
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the served status.
    pub fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The daemon's clock as of the last frame.
    pub fn now(&self) -> f64 {
        f64::from_bits(self.now.load(Ordering::Relaxed))
    }

    pub fn set_now(&self, t: f64) {
        self.now.store(t.to_bits(), Ordering::Relaxed);
    }
}

/// A running control socket; stops serving and removes its socket file when dropped.
pub struct Server {
    path: PathBuf,
    stop: Stop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let wake = socket::unpublish(&self.path);
        self.stop.stop();
        // Wake the accept loop.
        let _ = UnixStream::connect(&wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        socket::remove_socket(&wake);
    }
}

/// Binds `path` (replacing a stale socket) and serves requests on a supervised thread.
pub fn serve(path: &Path, shared: Arc<Shared>, health: &Arc<Health>) -> Result<Server> {
    claim(path)?;
    let listener = socket::publish(path)?;
    let stop = Stop::new();
    let s = stop.clone();
    let active = Arc::new(AtomicUsize::new(0));
    let thread = supervise("control", health.clone(), stop.clone(), move || {
        accept_loop(&listener, &shared, s.flag(), &active)
    })?;
    Ok(Server {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

/// A taken client slot, given back when the client's thread ends (even by a panic).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(
    listener: &UnixListener,
    shared: &Arc<Shared>,
    stop: &AtomicBool,
    active: &Arc<AtomicUsize>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = conn else { continue };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            drop(Slot(active.clone()));
            busy(stream);
            continue;
        }
        let slot = Slot(active.clone());
        let shared = shared.clone();
        // If the thread cannot start, the closure (and the slot in it) is dropped here.
        let _ = std::thread::Builder::new()
            .name("control-client".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = handle(stream, &shared) {
                    log::debug!("control: {e:#}");
                }
            });
    }
}

/// Answers a connection over the limit without reading it.
fn busy(mut stream: UnixStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = write_response(
        &mut stream,
        &Response::error(format!("busy: {MAX_CLIENTS} clients are being served")),
    );
}

fn write_response(stream: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    writeln!(stream, "{line}")
}

fn handle(mut stream: UnixStream, shared: &Shared) -> Result<()> {
    stream.set_write_timeout(Some(REQUEST_TIME))?;
    let response = match read_request(&mut stream) {
        Ok(bytes) => respond(&bytes, shared),
        Err(reason) => Response::error(reason),
    };
    write_response(&mut stream, &response)?;
    Ok(())
}

/// The answer to one request line (its bytes, without the newline): everything the daemon does
/// with what a client sent once it is read. Public for the fuzz target (`fuzz/`).
pub fn respond(bytes: &[u8], shared: &Shared) -> Response {
    match std::str::from_utf8(bytes) {
        Err(_) => Response::error("bad request: not UTF-8 text"),
        Ok(text) => match serde_json::from_str::<Request>(text) {
            Err(e) => Response::error(format!("bad request: {e}")),
            Ok(r) => answer(&r, shared),
        },
    }
}

/// Reads one request line (without its newline), or the end of the stream, within
/// [`REQUEST_TIME`] in all and [`MAX_REQUEST`] bytes.
fn read_request(stream: &mut UnixStream) -> std::result::Result<Vec<u8>, String> {
    let deadline = Instant::now() + REQUEST_TIME;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("request not complete within {REQUEST_TIME:?}"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("request not complete within {REQUEST_TIME:?}"))
            }
            Err(e) => return Err(e.to_string()),
        };
        let got = &chunk[..n];
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            buf.extend_from_slice(&got[..end]);
        } else {
            buf.extend_from_slice(got);
        }
        if buf.len() as u64 > MAX_REQUEST {
            return Err(format!("request longer than {MAX_REQUEST} bytes"));
        }
        if n == 0 || got.contains(&b'\n') {
            return Ok(buf);
        }
    }
}

fn answer(r: &Request, shared: &Shared) -> Response {
    match r {
        Request::Status => Response::status(shared.status().clone()),
        Request::Override {
            signature,
            alpha,
            ttl_s,
        } => {
            let until = match ttl_s {
                None => None,
                Some(t) if t.is_finite() && *t > 0.0 => Some(shared.now() + t),
                Some(t) => {
                    return Response::error(format!("ttl_s = {t}: must be positive seconds"))
                }
            };
            // -0.0 is kept as 0.0: an override is a coefficient, and its sign bit means nothing.
            let alpha = alpha.map(|a| a + 0.0);
            let mut engine = shared.engine();
            match engine.set_override(signature, alpha, until) {
                Ok(()) => {
                    log::info!("control: override {signature} = {alpha:?} (ttl {ttl_s:?} s)");
                    let cap = engine.max_total_alpha();
                    match alpha.filter(|&a| a > cap) {
                        // Said, not silent: the frames will run on the capped value.
                        Some(a) => Response::ok_with(format!(
                            "α = {a} is above policy.max_total_alpha = {cap}: coefficients are scaled to that total"
                        )),
                        None => Response::ok(),
                    }
                }
                Err(e) => Response::error(e),
            }
        }
        Request::ClearOverrides => {
            shared.engine().clear_overrides();
            log::info!("control: overrides cleared");
            Response::ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;

    fn shared() -> Arc<Shared> {
        let policy = crate::policy::tests::fog_policy();
        Arc::new(Shared::new(Engine::new(policy, vec![])))
    }

    /// Sends raw bytes (then half-closes if `close`) and reads the response line.
    fn exchange(path: &Path, bytes: &[u8], close: bool) -> Response {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(bytes).unwrap();
        if close {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let mut line = String::new();
        std::io::BufReader::new(&s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    #[test]
    fn a_regular_file_at_the_socket_path_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious.txt");
        std::fs::write(&path, "keep me").unwrap();
        let err = serve(&path, shared(), &Health::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn a_second_server_on_a_live_socket_is_refused_and_the_first_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rwsd.sock");
        let _first = serve(&path, shared(), &Health::new()).unwrap();
        let err = serve(&path, shared(), &Health::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another rwsd"), "{err}");
        assert!(exchange(&path, b"{\"cmd\":\"status\"}\n", false).ok);
    }

    #[test]
    fn a_socket_that_can_be_seen_accepts_from_its_first_moment_to_its_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rwsd.sock");
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, done) = (path.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut seen, mut refused) = (0u32, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    if let Ok(meta) = std::fs::symlink_metadata(&path) {
                        seen += 1;
                        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
                        // NotFound: the name went between the look and the connect (and
                        // may be back, the next server's, by now); not visible, so not refused.
                        if let Err(e) = UnixStream::connect(&path) {
                            if e.kind() != std::io::ErrorKind::NotFound && path.exists() {
                                refused.push(e.to_string());
                            }
                        }
                    }
                }
                (seen, refused)
            })
        };
        for _ in 0..30 {
            let server = serve(&path, shared(), &Health::new()).unwrap();
            // The watcher's connections may fill the slots: served or busy, but answered.
            let r = exchange(&path, b"{\"cmd\":\"status\"}\n", false);
            assert!(r.ok || r.error.is_some_and(|e| e.starts_with("busy")));
            drop(server);
            assert!(!path.exists());
        }
        done.store(true, Ordering::Relaxed);
        let (seen, refused) = watcher.join().unwrap();
        assert!(seen > 0, "the watcher saw the socket");
        assert_eq!(refused, Vec::<String>::new());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "no private socket is left: {left:?}");
    }

    #[test]
    fn every_request_gets_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rwsd.sock");
        let sh = shared();
        let _server = serve(&path, sh.clone(), &Health::new()).unwrap();
        // No newline, then end of stream: still a request.
        assert!(exchange(&path, br#"{"cmd":"status"}"#, true).ok);
        let r = exchange(&path, b"\xff\xfe{}\n", false);
        assert!(r.error.unwrap().contains("UTF-8"));
        let r = exchange(&path, &[b'x'; 5000], true);
        assert!(r.error.unwrap().contains("longer than 4096"));
        let r = exchange(
            &path,
            br#"{"cmd":"override","signature":"fog","alpha":-0.0}"#,
            true,
        );
        assert!(r.ok);
        let alpha = sh.engine().overrides()["fog"].alpha;
        assert!(
            alpha == 0.0 && alpha.is_sign_positive(),
            "-0.0 is kept as 0.0"
        );
        let r = exchange(
            &path,
            br#"{"cmd":"override","signature":"fog","alpha":3}"#,
            true,
        );
        assert!(r.ok, "{r:?}");
        assert!(
            r.note.unwrap().contains("max_total_alpha = 1.5"),
            "not silent"
        );
        let r = exchange(
            &path,
            br#"{"cmd":"override","signature":"fog","alpha":1,"ttl_s":-5}"#,
            true,
        );
        assert!(r.error.unwrap().contains("ttl_s"));
    }

    #[test]
    fn slow_and_idle_clients_do_not_hold_up_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rwsd.sock");
        let _server = serve(&path, shared(), &Health::new()).unwrap();
        // Idle connections beyond the limit, and one client dripping a byte at a time.
        let idle: Vec<UnixStream> = (0..MAX_CLIENTS + 20)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        let mut drip = UnixStream::connect(&path).unwrap();
        drip.write_all(b"{").unwrap();
        // The slots are taken by the idle clients until their requests time out; a status
        // request is answered (busy or served) at once, and served once the slots free up.
        let start = Instant::now();
        let first = exchange(&path, b"{\"cmd\":\"status\"}\n", false);
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "answered at once"
        );
        if !first.ok {
            assert!(first.error.unwrap().starts_with("busy"));
        }
        std::thread::sleep(REQUEST_TIME + Duration::from_millis(300));
        let start = Instant::now();
        assert!(exchange(&path, b"{\"cmd\":\"status\"}\n", false).ok);
        assert!(start.elapsed() < Duration::from_millis(500));
        drop(idle);
    }
}
