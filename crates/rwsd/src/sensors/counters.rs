//! Per-sensor event counters: readings, bad lines by kind, connects and disconnects. The daemon's
//! status, `rwsctl status` and replay traces all count with this one type.

use super::driver::EventKind;

/// Per-sensor counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub readings: u64,
    pub bad: u64,
    pub checksum: u64,
    pub too_long: u64,
    pub binary: u64,
    pub connects: u64,
    pub disconnects: u64,
}

impl Counters {
    /// Counts one event.
    pub fn count(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Reading(_) => self.readings += 1,
            EventKind::Bad(e) => {
                self.bad += 1;
                match e.kind() {
                    "checksum" => self.checksum += 1,
                    "too_long" => self.too_long += 1,
                    "binary" => self.binary += 1,
                    _ => {}
                }
            }
            EventKind::Connected => self.connects += 1,
            EventKind::Disconnected(_) => self.disconnects += 1,
            EventKind::Eof => {}
        }
    }
}
