//! The control protocol, spoken on rwsd's UNIX socket: one JSON request line per connection, one
//! JSON response line back. The daemon ([`crate::control`]) and its client (`rwsctl`,
//! [`crate::client`]) both use these types, so the two cannot drift apart
//! (`docs/protocols.md` documents the wire form).
//!
//! ```text
//! {"cmd":"status"}
//! {"cmd":"override","signature":"fog","alpha":0.6,"ttl_s":600}
//! {"cmd":"override","signature":"fog","alpha":null}        (clears that override)
//! {"cmd":"clear_overrides"}
//! → {"ok":true,"status":{…}} | {"ok":true} | {"ok":false,"error":"…"}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sensors::Counters;

/// Where the daemon listens unless its config says otherwise (`control.socket`).
pub const DEFAULT_SOCKET: &str = "/run/rwsd/rwsd.sock";

/// Longest request line the daemon reads, in bytes.
pub const MAX_REQUEST: u64 = 4096;

/// A request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The daemon's status.
    Status,
    /// Holds `signature` at `alpha` (for `ttl_s` seconds of the daemon's clock, or until
    /// cleared); `alpha: null` clears this signature's override.
    Override {
        signature: String,
        #[serde(default)]
        alpha: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_s: Option<f64>,
    },
    /// Clears every override, the config's included.
    ClearOverrides,
}

/// A response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Done, but not exactly as asked (an override above the policy's cap on the total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    /// Success without a body.
    pub fn ok() -> Self {
        Response {
            ok: true,
            error: None,
            note: None,
            status: None,
        }
    }

    /// Success, with something the client should be told.
    pub fn ok_with(note: impl Into<String>) -> Self {
        Response {
            note: Some(note.into()),
            ..Response::ok()
        }
    }

    /// A refusal and why.
    pub fn error(reason: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(reason.into()),
            note: None,
            status: None,
        }
    }

    /// The status.
    pub fn status(status: Status) -> Self {
        Response {
            ok: true,
            error: None,
            note: None,
            status: Some(status),
        }
    }
}

/// What `{"cmd":"status"}` answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The config file the daemon runs.
    pub config: String,
    pub model: String,
    /// Seconds on the daemon's clock at the last frame.
    pub t: f64,
    pub frames: u64,
    pub frame_errors: u64,
    /// The coefficient of every loaded signature, by corruption name (0 = off).
    pub alpha: BTreeMap<String, f64>,
    /// Generation of the coefficient set the last frame ran on.
    pub generation: u64,
    pub overrides: BTreeMap<String, OverrideStatus>,
    pub sensors: Vec<SensorStatus>,
    /// Successful reloads (SIGHUP) so far.
    pub reloads: u64,
    /// Why the last reload failed, if it did (cleared by a successful one).
    pub last_reload_error: Option<String>,
    pub prefix_builds: u64,
    pub prefix_build_failures: u64,
    /// Frame results that could not be written (a full disk, a closed pipe).
    #[serde(default)]
    pub output_errors: u64,
    #[serde(default)]
    pub frame_source: FrameSourceStatus,
    /// The daemon's supervised threads (sensor drivers, frame source, control socket).
    #[serde(default)]
    pub threads: Vec<ThreadStatus>,
    /// The signature set's seal: `unsigned`, `verified: signed by NAME (key ID)`, or signed
    /// but not checked (no `[trust]`).
    #[serde(default)]
    pub signature_set: String,
    /// How long frames took, from leaving the queue to their line written.
    #[serde(default)]
    pub frame_seconds: FrameLatency,
    /// The Prometheus textfile's writes (`None`: no `[metrics]`).
    #[serde(default)]
    pub metrics: Option<MetricsStatus>,
    /// The camera-only oracle's view (`None`: no `[oracle]`).
    #[serde(default)]
    pub oracle: Option<OracleStatus>,
}

/// What the camera-only oracle makes of the stream (smoothed over frames).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OracleStatus {
    /// The head file.
    pub file: String,
    /// Frames it has seen.
    pub frames: u64,
    /// The corruption whose signature it has engaged, if any.
    pub engaged: Option<String>,
    /// Smoothed probability that the frames are clean.
    pub clean: f64,
    /// The most probable corruptions.
    pub top: Vec<OracleClass>,
    /// Times a corruption engaged from none, and times the engaged one changed to another:
    /// on a fixed camera both should be rare (a rising count is flapping).
    pub engagements: u64,
    pub switches: u64,
}

/// One corruption as the oracle sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OracleClass {
    pub class: String,
    /// Smoothed probability.
    pub p: f64,
    /// Smoothed severity estimate (1–5).
    pub severity: f64,
}

/// How writing the metrics textfile goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsStatus {
    pub textfile: String,
    pub writes: u64,
    pub failures: u64,
    /// Why the last write failed, if it did (cleared by a good one).
    pub last_error: Option<String>,
}

/// Upper bounds (seconds) of [`FrameLatency`]'s buckets: from a small model's 0.2 ms frame to a
/// 224 × 224 model's on a Pi (about a second); a frame above the last lands only in the total.
pub const FRAME_SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram of frame times, fixed-size so the frame loop records into it without allocating.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameLatency {
    /// Frames at or under each bound of [`FRAME_SECONDS_BUCKETS`] (not cumulative).
    pub buckets: [u64; FRAME_SECONDS_BUCKETS.len()],
    /// Frames recorded, and their total time in seconds.
    pub count: u64,
    pub sum_s: f64,
}

impl FrameLatency {
    /// Records one frame that took `seconds`.
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = FRAME_SECONDS_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_s += seconds;
    }
}

/// Where frames come from, and how that is going.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameSourceStatus {
    pub state: SourceState,
    /// Times the source was reopened (a FIFO's writer came back, a camera reconnected).
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// Seconds since the last frame arrived (`None` before the first).
    pub since_last_frame_s: Option<f64>,
}

/// A frame source's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Open, no frame yet (or none since it reconnected).
    #[default]
    Waiting,
    /// Frames are arriving.
    Receiving,
    /// Failed; being reopened with backoff.
    Down,
    /// A read-once source read to its end.
    Ended,
}

/// One supervised thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadStatus {
    pub name: String,
    pub state: ThreadState,
    /// Panics caught so far (each followed by a restart).
    pub panics: u64,
    pub last_panic: Option<String>,
}

/// A supervised thread's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadState {
    Running,
    /// It panicked and waits to be started again.
    Restarting,
    /// It finished (its source ended, or the daemon stopped it).
    Stopped,
}

/// An active override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideStatus {
    pub alpha: f64,
    /// When it expires on the daemon's clock (`None`: until cleared).
    pub until_t: Option<f64>,
}

/// One sensor's health.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorStatus {
    pub name: String,
    pub connected: bool,
    /// Reported a good reading within its `stale_after_s`.
    pub fresh: bool,
    /// Seconds since its last good reading, on the daemon's clock (`None`: none yet).
    #[serde(default)]
    pub last_reading_age_s: Option<f64>,
    /// A read-once source (a file, stdin) has been read to its end.
    pub ended: bool,
    pub counters: Counters,
}

impl Status {
    /// Whether everything is as it should be: every sensor fresh, the last reload good, no
    /// thread down, the frame source not failing. `rwsctl status` exits 1 otherwise, for
    /// monitoring scripts.
    pub fn healthy(&self) -> bool {
        self.sensors.iter().all(|s| s.fresh)
            && self.last_reload_error.is_none()
            && self
                .threads
                .iter()
                .all(|t| t.state != ThreadState::Restarting)
            && self.frame_source.state != SourceState::Down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_wire_form() {
        let parse = |s: &str| serde_json::from_str::<Request>(s);
        assert_eq!(parse(r#"{"cmd":"status"}"#).unwrap(), Request::Status);
        assert_eq!(
            parse(r#"{"cmd":"override","signature":"fog","alpha":0.6,"ttl_s":600}"#).unwrap(),
            Request::Override {
                signature: "fog".into(),
                alpha: Some(0.6),
                ttl_s: Some(600.0)
            }
        );
        assert_eq!(
            parse(r#"{"cmd":"override","signature":"fog","alpha":null}"#).unwrap(),
            Request::Override {
                signature: "fog".into(),
                alpha: None,
                ttl_s: None
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::ClearOverrides).unwrap(),
            r#"{"cmd":"clear_overrides"}"#
        );
        assert!(parse(r#"{"cmd":"reboot"}"#).is_err());
        // A misspelt field is refused, not ignored (`ttl` for `ttl_s` would silently mean forever).
        assert!(parse(r#"{"cmd":"override","signature":"fog","alpha":1,"ttl":5}"#).is_err());
        assert!(parse(r#"{"cmd":"override"}"#).is_err());
    }

    #[test]
    fn responses_round_trip_and_omit_what_is_empty() {
        assert_eq!(
            serde_json::to_string(&Response::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        let e = Response::error("no");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
        let mut s = Status::default();
        s.sensors.push(SensorStatus {
            name: "pwd".into(),
            fresh: true,
            ..Default::default()
        });
        let r = Response::status(s.clone());
        let back: Response = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.status, Some(s));
        assert!(back.status.unwrap().healthy());
    }
}
