//! The status the control socket serves, rebuilt from the frame loop's state on frames and on
//! idle ticks alike (at most every 250 ms), so a stalled camera shows as one, with sensors
//! going stale, instead of freezing the status at the last frame.

use crate::protocol::{OverrideStatus, Status};

use super::{output, Daemon};

impl Daemon {
    pub(super) fn update_status(&self) {
        let engine = self.shared.engine();
        let t = self.now();
        let alpha = match &self.last.alphas {
            Some(a) => self
                .loaded
                .corruptions
                .iter()
                .zip(a.iter())
                .map(|(c, &a)| (c.clone(), output::round(f64::from(a), 3)))
                .collect(),
            None => self
                .loaded
                .corruptions
                .iter()
                .map(|c| (c.clone(), 0.0))
                .collect(),
        };
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
            // Freshness at the daemon's clock now, not at the last frame.
            sensors: self.sensors.status(&engine, t),
            reloads: self.counts.reloads,
            last_reload_error: self.counts.last_reload_error.clone(),
            prefix_builds: stats.builds,
            prefix_build_failures: stats.failures,
            output_errors: self.counts.output_errors,
            frame_source: self.feed.status(),
            threads: self.health.snapshot(),
        };
        drop(engine);
        *self.shared.status() = status;
    }
}
