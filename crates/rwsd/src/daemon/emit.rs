//! What the frame loop writes: one JSON line per frame ([`super::output`]'s records), error
//! lines for frames that could not be read or run, the optional coefficient trace, and the
//! accounting of writes that fail (a fault of their own, never a reason to stop).

use std::collections::BTreeMap;
use std::io::Write;

use super::output::{self, FrameErrorRecord, FrameRecord};
use super::Daemon;

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

    pub(super) fn emit_frame(
        &mut self,
        t: f64,
        name: &str,
        out: &rws_runtime::FrameOutput,
        latency_ms: f64,
    ) {
        let cfg = &self.loaded.cfg;
        let top = output::top_k(&out.logits, cfg.top_k, &cfg.labels);
        let alpha: BTreeMap<&str, f64> = self
            .loaded
            .corruptions
            .iter()
            .zip(out.alphas.iter())
            .filter(|(_, &a)| a != 0.0)
            .map(|(c, &a)| (c.as_str(), output::round(f64::from(a), 3)))
            .collect();
        let expected = cfg
            .label_from_name
            .then(|| output::label_from_name(name))
            .flatten();
        let correct = expected.map(|e| output::is_correct(&top, e));
        if let Some(c) = correct {
            self.counts.labelled.1 += 1;
            self.counts.labelled.0 += u64::from(c);
        }
        let record = FrameRecord {
            alpha,
            correct,
            expected,
            frame: self.counts.frames,
            generation: out.generation,
            latency_ms: output::round(latency_ms, 3),
            name,
            t: output::round(t, 3),
            top,
        };
        if let Err(e) = self.out.emit(&record) {
            self.output_failed(&e);
        }
    }

    pub(super) fn write_trace(&mut self, t: f64, alphas: &[f64]) {
        if let Some(f) = &mut self.trace {
            let _ = writeln!(f, "{}", crate::replay::line(t, &self.loaded.names, alphas));
        }
    }
}
