//! `rwsd --check`: the config loaded and the runtime built as a start would, and everything a
//! start would touch looked at — without touching it. Nothing is created, truncated, bound,
//! opened or started, so a config can be checked beside a running daemon before a SIGHUP.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::{Config, FrameSource};
use crate::control::{self, PathState};
use crate::sensors::driver::Source;

/// Checks what a start would use; returns notes (things that are fine but worth saying).
pub fn preflight(cfg: &Config) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if let Some(sock) = &cfg.socket {
        socket(sock, &mut notes)?;
    }
    frames(&cfg.frames, &mut notes)?;
    if let Some(out) = cfg.output.as_deref().filter(|p| *p != Path::new("-")) {
        writable_dir(out, "output.path")?;
    }
    if let Some(trace) = &cfg.trace {
        writable_dir(trace, "output.trace")?;
    }
    for s in &cfg.sensors {
        match &s.source {
            Source::File(p) if !p.is_file() => {
                bail!("sensor {}: {} is not a file", s.name, p.display())
            }
            Source::Fifo(p) | Source::Serial { path: p, .. } if !p.exists() => notes.push(format!(
                "sensor {}: {} does not exist yet (rwsd waits for it)",
                s.name,
                p.display()
            )),
            _ => {}
        }
    }
    Ok(notes)
}

fn socket(sock: &Path, notes: &mut Vec<String>) -> Result<()> {
    match control::inspect(sock) {
        PathState::Free => {}
        PathState::Stale => notes.push(format!(
            "control.socket: {} is a stale socket; a start replaces it",
            sock.display()
        )),
        PathState::Listening => notes.push(format!(
            "control.socket: an rwsd is listening on {} (reload it with SIGHUP)",
            sock.display()
        )),
        PathState::NotASocket => bail!(
            "control.socket: {} exists and is not a socket; rwsd never replaces it",
            sock.display()
        ),
    }
    if let Some(dir) = sock.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("control.socket: directory {} does not exist", dir.display());
        }
    }
    Ok(())
}

fn frames(source: &FrameSource, notes: &mut Vec<String>) -> Result<()> {
    match source {
        FrameSource::Dir(p) if !p.is_dir() => {
            bail!("frames.path: {} is not a directory", p.display())
        }
        FrameSource::Raw { path, .. } if path != Path::new("-") && !path.exists() => {
            notes.push(format!(
                "frames.path: {} does not exist yet (rwsd waits for it)",
                path.display()
            ))
        }
        FrameSource::V4l2 { path, .. } if !path.exists() => notes.push(format!(
            "frames.path: {} does not exist yet (rwsd retries it)",
            path.display()
        )),
        _ => {}
    }
    Ok(())
}

fn writable_dir(file: &Path, key: &str) -> Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        if !dir.is_dir() {
            bail!("{key}: directory {} does not exist", dir.display());
        }
    }
    if file.is_dir() {
        bail!("{key}: {} is a directory", file.display());
    }
    Ok(())
}
