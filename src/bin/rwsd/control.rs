//! The control socket: one JSON request line per connection, one JSON answer line.
//!
//! Requests (docs/sensors.md, "Control socket"): `{"cmd":"status"}`,
//! `{"cmd":"override","signature":"fog","alpha":0.6,"ttl_s":600}`,
//! `{"cmd":"override","signature":"fog","alpha":null}` (clear one),
//! `{"cmd":"clear_overrides"}`. The socket is created with mode 0660 so only the daemon's user
//! and group can change coefficients.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use rws::policy::Engine;

/// What the control thread shares with the frame loop.
pub struct Shared {
    pub engine: Mutex<Engine>,
    pub status: Mutex<Value>,
    /// Seconds on the daemon's clock, for override expiry.
    pub now: Mutex<f64>,
}

#[derive(Deserialize)]
struct Request {
    cmd: String,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    alpha: Option<f64>,
    #[serde(default)]
    ttl_s: Option<f64>,
}

/// A running control socket; removes its file when dropped.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (replacing a stale socket file) and serves requests on a thread.
pub fn serve(path: &Path, shared: Arc<Shared>) -> Result<Server> {
    if path.exists() {
        // A socket left by a previous run that no one answers on is stale.
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("{}: another rwsd is listening there", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(stream) = conn {
                    if let Err(e) = handle(stream, &shared) {
                        log::warn!("control: {e:#}");
                    }
                }
            }
        })?;
    Ok(Server {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

fn handle(stream: UnixStream, shared: &Shared) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    // At most 4 KiB per request.
    BufReader::new(&stream).take_line(&mut line, 4096)?;
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        Ok(r) => answer(&r, shared),
    };
    let mut w = &stream;
    writeln!(w, "{answer}")?;
    Ok(())
}

fn answer(r: &Request, shared: &Shared) -> Value {
    let lock_engine = || shared.engine.lock().unwrap_or_else(|p| p.into_inner());
    match r.cmd.as_str() {
        "status" => {
            let s = shared
                .status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            json!({"ok": true, "status": s})
        }
        "override" => {
            let Some(sig) = &r.signature else {
                return json!({"ok": false, "error": "override needs a signature"});
            };
            let now = *shared.now.lock().unwrap_or_else(|p| p.into_inner());
            let until = r.ttl_s.map(|t| now + t.max(0.0));
            match lock_engine().set_override(sig, r.alpha, until) {
                Ok(()) => {
                    log::info!(
                        "control: override {sig} = {:?} (ttl {:?} s)",
                        r.alpha,
                        r.ttl_s
                    );
                    json!({"ok": true})
                }
                Err(e) => json!({"ok": false, "error": e}),
            }
        }
        "clear_overrides" => {
            lock_engine().clear_overrides();
            log::info!("control: overrides cleared");
            json!({"ok": true})
        }
        other => json!({"ok": false, "error": format!("unknown cmd '{other}'")}),
    }
}

/// Reading one bounded line.
trait TakeLine {
    fn take_line(&mut self, line: &mut String, max: u64) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(&mut self, line: &mut String, max: u64) -> std::io::Result<usize> {
        use std::io::Read;
        self.take(max).read_line(line)
    }
}
