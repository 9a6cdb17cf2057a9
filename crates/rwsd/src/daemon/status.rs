//! The status the control socket serves, rebuilt from the frame loop's state on frames and on
//! idle ticks alike (at most every 250 ms), so a stalled camera shows as one, with sensors
//! going stale, instead of freezing the status at the last frame.

use crate::protocol::{OverrideStatus, Status};

use super::{output, Daemon};

impl Daemon {
    pub(super) fn update_status(&self) {
        // Before the first frame every coefficient is 0 (the clean model).
        let last = self.last.alphas.as_deref().unwrap_or(&[]);
        let alpha = self
            .loaded
            .corruptions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let a = last.get(i).copied().unwrap_or(0.0);
                (c.clone(), output::round(f64::from(a), 3))
            })
            .collect();
        // The engine's lock only for what the engine holds: the control socket waits on it.
        let (overrides, sensors) = {
            let engine = self.shared.engine();
            let overrides = engine
                .overrides()
                .iter()
                .map(|(k, o)| {
                    let o = OverrideStatus {
                        alpha: o.alpha,
                        until_t: o.until,
                    };
                    (k.clone(), o)
                })
                .collect();
            // Freshness at the daemon's clock now, not at the last frame.
            (overrides, self.sensors.status(&engine, self.now()))
        };
        let stats = self.loaded.session.stats();
        let status = Status {
            config: self.path.display().to_string(),
            model: self.loaded.cfg.model.display().to_string(),
            t: output::round(self.last.t, 3),
            frames: self.counts.frames,
            frame_errors: self.counts.frame_errors,
            alpha,
            generation: self.last.generation,
            overrides,
            sensors,
            reloads: self.counts.reloads,
            last_reload_error: self.counts.last_reload_error.clone(),
            prefix_builds: stats.builds,
            prefix_build_failures: stats.failures,
            output_errors: self.counts.output_errors,
            frame_source: self.feed.status(),
            threads: self.health.snapshot(),
            signature_set: self.loaded.cfg.trust.to_string(),
            frame_seconds: self.counts.latency.clone(),
            metrics: self.metrics.as_ref().map(|m| m.status()),
            oracle: self
                .loaded
                .oracle
                .as_ref()
                .map(crate::oracle::Oracle::status),
        };
        *self.shared.status() = status;
    }
}
