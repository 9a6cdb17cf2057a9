//! Reloads between frames: what SIGHUP prepares off the frame thread ([`prepare_reload`], the
//! heavy part in the idle scheduling class), and how a finished one is swapped in whole — the
//! engine's state carried over, the old session retired off the frame thread, sensors restarted
//! on a thread of their own when the config changed them — or refused, keeping everything.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::loaded::{self, Loaded};
use super::reload;
use super::sensors::SensorHub;
use super::Daemon;
use crate::config::{Clock, Config};
use crate::control::Shared;
use crate::policy::Engine;

/// Loads `path` on the reload thread; a failure is published in the status at once. The heavy
/// part runs on a helper in the idle scheduling class, so it never takes a core from a frame;
/// the session (and its prefix worker) is started back on the reload thread, at normal
/// priority.
pub(super) fn prepare_reload(
    path: PathBuf,
    shared: Arc<Shared>,
) -> reload::Prepare<(Loaded, Engine)> {
    Arc::new(move || {
        let heavy = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("rwsd-load".into())
                .spawn_scoped(s, || {
                    crate::source::background_priority();
                    loaded::prepare(&path)
                })
                .map(|h| h.join())
        });
        let prepared = match heavy {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(anyhow::anyhow!("the load thread panicked")),
            Err(e) => Err(anyhow::anyhow!("starting the load thread: {e}")),
        };
        prepared
            .and_then(|(cfg, rt)| loaded::assemble(cfg, rt))
            .with_context(|| format!("reloading {}", path.display()))
            .map_err(|e| {
                let msg = format!("{e:#}");
                shared.status().last_reload_error = Some(msg.clone());
                msg
            })
    })
}

impl Daemon {
    /// SIGHUP: starts preparing a reload (parsing the config, mapping and checking the
    /// signatures and optimizing the model take ~10 ms for the demo and ~100 ms for VGG-16,
    /// frames the camera would otherwise have to hold back).
    pub fn request_reload(&mut self) {
        log::info!("rwsd: SIGHUP, reloading {}", self.path.display());
        if let Err(e) = self.reloader.request() {
            self.reload_failed(e);
            self.publish_reload_status();
        }
    }

    /// Between frames: takes a finished reload, if any, and swaps it in whole; on any error
    /// everything stays as it was. Returns whether a reload finished.
    pub fn finish_reload(&mut self) -> bool {
        self.take_sensor_restart();
        let Some(result) = self.reloader.poll() else {
            return false;
        };
        match result {
            Err(e) => self.reload_failed(e),
            Ok(new) => self.swap_in(new),
        }
        self.publish_reload_status();
        true
    }

    fn reload_failed(&mut self, msg: String) {
        log::error!("rwsd: reload failed, keeping the running config: {msg}");
        self.counts.last_reload_error = Some(msg);
    }

    fn swap_in(&mut self, (mut new, mut engine): (Loaded, Engine)) {
        if let (Some(n), Some(o)) = (new.oracle.as_mut(), self.loaded.oracle.as_ref()) {
            n.carry_from(o);
        }
        {
            let mut running = self.shared.engine();
            engine.carry_from(&running);
            *running = engine;
        }
        let old_cfg = &self.loaded.cfg;
        if new.cfg.frames != old_cfg.frames
            || new.cfg.output != old_cfg.output
            || new.cfg.metrics != old_cfg.metrics
        {
            log::warn!("rwsd: frame source, output and metrics changes take effect on restart");
        }
        if new.cfg.sensors != self.sensors.specs() {
            self.restart_sensors(&new.cfg);
        }
        let old = std::mem::replace(&mut self.loaded, new);
        // The old session's run states are dropped here, where they ran; its worker is joined
        // off the frame thread, which then gives what the old set held back to the kernel.
        let finish = old.session.retire();
        let _ = std::thread::Builder::new()
            .name("rwsd-drop".into())
            .spawn(move || {
                finish();
                crate::source::release_freed_memory();
            });
        self.requested = None;
        self.status_at = None;
        self.counts.reloads += 1;
        self.counts.last_reload_error = None;
        log::info!(
            "rwsd: reloaded ({} signatures)",
            self.loaded.cfg.signatures.len()
        );
    }

    /// New sensors for a reloaded config. The old threads are stopped and joined first (each
    /// read returns within a tick), so no thread or descriptor outlives its sensor and a port
    /// the new config names again is free. Live, that happens on a thread of its own while
    /// frames go on (with no sensor events for that moment); in replay, here, so the trace
    /// stays deterministic.
    fn restart_sensors(&mut self, cfg: &Config) {
        if self.loaded.cfg.clock == Clock::Replay || cfg.clock == Clock::Replay {
            self.sensors.stop();
            match SensorHub::start(cfg, &self.health) {
                Ok(s) => self.sensors = s,
                Err(e) => log::error!("rwsd: restarting sensors failed: {e:#}"),
            }
            return;
        }
        let (_, nothing) = std::sync::mpsc::sync_channel(1);
        let mut old = std::mem::replace(
            &mut self.sensors,
            SensorHub::from_channel(nothing, Vec::new()),
        );
        let (cfg, health) = (cfg.clone(), self.health.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let started = std::thread::Builder::new()
            .name("rwsd-sensors".into())
            .spawn(move || {
                old.stop();
                let _ = tx.send(SensorHub::start(&cfg, &health));
            });
        match started {
            Ok(_) => self.sensor_restart = Some(rx),
            Err(e) => log::error!("rwsd: restarting sensors failed: {e}"),
        }
    }

    /// Takes the restarted sensor hub, if it is ready.
    fn take_sensor_restart(&mut self) {
        let Some(rx) = &self.sensor_restart else {
            return;
        };
        match rx.try_recv() {
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Ok(Ok(hub)) => self.sensors = hub,
            Ok(Err(e)) => log::error!("rwsd: restarting sensors failed: {e:#}"),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                log::error!("rwsd: the sensor restart thread ended without a result")
            }
        }
        self.sensor_restart = None;
        self.status_at = None;
    }

    /// Status shows the outcome at once, not only after the next frame.
    fn publish_reload_status(&self) {
        let mut status = self.shared.status();
        status.reloads = self.counts.reloads;
        status.last_reload_error = self.counts.last_reload_error.clone();
    }
}
