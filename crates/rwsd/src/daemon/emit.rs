//! What the frame loop writes: one JSON line per frame ([`super::output`]'s records), error
//! lines for frames that could not be read or run, the optional coefficient trace, and the
//! accounting of writes that fail (a fault of their own, never a reason to stop).

use std::io::Write;

use super::output::{self, Alphas, FrameErrorRecord, FrameRecord, TopK};
use super::Daemon;
use crate::frames::FrameName;

impl Daemon {
    /// A frame that could not be read or run: counted, logged and written as an error line.
    pub(super) fn frame_failed(&mut self, t: f64, name: &str, reason: &str) {
        self.counts.frame_errors += 1;
        log::warn!("rwsd: frame {name}: {reason}");
        let record = FrameErrorRecord {
            error: reason,
            frame: self.counts.frames,
            name,
            t,
        };
        self.emit(&record);
        self.counts.frames += 1;
    }

    /// Writes a line; a failure is a fault of its own (counted, in the status, logged at a
    /// limited rate), never a reason to stop answering frames.
    fn emit<T: serde::Serialize>(&mut self, record: &T) {
        if let Err(e) = self.out.emit(record) {
            self.output_failed(&e);
        }
    }

    pub(super) fn output_failed(&mut self, e: &std::io::Error) {
        self.counts.output_errors += 1;
        if let Some(r) = self.out_log.note() {
            log::error!(
                "rwsd: writing frame results failed ({e}); {} lost so far, {} since the last report",
                r.total,
                r.since_last
            );
        }
    }

    /// Writes a frame's line from the loop's buffers (`self.top`, the session's coefficients).
    pub(super) fn emit_frame(
        &mut self,
        t: f64,
        name: &FrameName,
        info: &rws_runtime::FrameInfo,
        latency_ms: f64,
    ) {
        let cfg = &self.loaded.cfg;
        output::softmax_into(&self.buf.logits, &mut self.buf.probs);
        output::top_k_into(&self.buf.probs, cfg.top_k, &mut self.buf.top);
        // The demo's accuracy: only with `label_from_name`, never on a production line.
        let judged = self
            .score
            .as_mut()
            .and_then(|s| s.judge(name, &self.buf.top, &cfg.labels));
        let record = FrameRecord {
            alpha: Alphas {
                names: &self.loaded.corruptions,
                order: &self.loaded.alpha_order,
                values: &info.alphas,
            },
            correct: judged.map(|j| j.1),
            expected: judged.map(|j| j.0),
            frame: self.counts.frames,
            generation: info.generation,
            latency_ms: output::round(latency_ms, 3),
            name,
            oracle: self.loaded.oracle.as_ref().map(crate::oracle::Oracle::view),
            t: output::round(t, 3),
            top: TopK {
                entries: &self.buf.top,
                labels: &cfg.labels,
            },
        };
        if let Err(e) = self.out.emit(&record) {
            self.output_failed(&e);
        }
    }

    pub(super) fn write_trace(&mut self, t: f64) {
        if let Some(f) = &mut self.trace {
            let line = crate::replay::TraceLine {
                t,
                names: &self.loaded.names,
                alphas: &self.buf.alphas,
            };
            let _ = writeln!(f, "{line}").and_then(|()| f.flush());
        }
    }
}
