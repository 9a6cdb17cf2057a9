//! The client side of the control protocol, behind `rwsctl status` and `rwsctl override`: one
//! typed request out, one typed response back, and the human-readable status.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::protocol::{Request, Response, SourceState, Status, ThreadState};

/// Longest response line read back (a status with many sensors is a few kilobytes).
const MAX_RESPONSE: u64 = 1 << 20;

/// Sends one request and returns the daemon's response if it says `ok`.
pub fn request(socket: &Path, req: &Request) -> Result<Response> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {} (is rwsd running?)", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let line = serde_json::to_string(req)?;
    writeln!(s, "{line}")?;
    let mut answer = String::new();
    BufReader::new((&s).take(MAX_RESPONSE))
        .read_line(&mut answer)
        .with_context(|| format!("reading rwsd's answer on {}", socket.display()))?;
    let r: Response = serde_json::from_str(&answer).context("rwsd's answer is not a response")?;
    if !r.ok {
        bail!("rwsd: {}", r.error.as_deref().unwrap_or("request failed"));
    }
    Ok(r)
}

/// The daemon's status.
pub fn status(socket: &Path) -> Result<Status> {
    request(socket, &Request::Status)?
        .status
        .context("rwsd answered a status request without a status")
}

/// Parses `signature=alpha` or `signature=off` into an override request.
pub fn override_request(setting: &str, ttl_s: Option<f64>) -> Result<Request> {
    let (sig, value) = setting
        .split_once('=')
        .with_context(|| format!("'{setting}': expected signature=alpha or signature=off"))?;
    let alpha = match value {
        "off" => None,
        v => Some(
            v.parse::<f64>()
                .ok()
                .filter(|a| a.is_finite())
                .with_context(|| format!("'{v}' is not a number"))?,
        ),
    };
    Ok(Request::Override {
        signature: sig.to_string(),
        alpha,
        ttl_s,
    })
}

/// The status as `rwsctl status` prints it.
/// One sensor's line: fresh or stale, connected, and its counters.
fn sensor_line(sensor: &crate::protocol::SensorStatus) -> String {
    let c = &sensor.counters;
    format!(
        "sensor {:<16} {:<5} connected={} readings={} bad={} (checksum {}, too long {}, binary {})\n",
        sensor.name,
        if sensor.fresh { "ok" } else { "STALE" },
        sensor.connected,
        c.readings,
        c.bad,
        c.checksum,
        c.too_long,
        c.binary,
    )
}

/// The camera-only oracle's line: what it has engaged, what it sees, and how often it changed
/// its mind (a rising `switches` on a fixed camera is flapping).
fn oracle_line(o: &crate::protocol::OracleStatus) -> String {
    let top: Vec<String> = o
        .top
        .iter()
        .map(|c| format!("{} {:.2} (severity {:.1})", c.class, c.p, c.severity))
        .collect();
    format!(
        "oracle engaged={} clean {:.2}, then {}; frames={} engagements={} switches={}\n",
        o.engaged.as_deref().unwrap_or("none"),
        o.clean,
        top.join(", "),
        o.frames,
        o.engagements,
        o.switches
    )
}

pub fn format_status(s: &Status) -> String {
    let mut out = format!(
        "config {}  t={}s  frames {} ({} errors)\n",
        s.config, s.t, s.frames, s.frame_errors
    );
    let active: Vec<String> = s
        .alpha
        .iter()
        .filter(|(_, &a)| a != 0.0)
        .map(|(k, a)| format!("{k}={a}"))
        .collect();
    if active.is_empty() {
        out.push_str("active: none (clean model)\n");
    } else {
        out.push_str(&format!("active: {}\n", active.join(" ")));
    }
    if !s.overrides.is_empty() {
        let o: Vec<String> = s
            .overrides
            .iter()
            .map(|(k, o)| match o.until_t {
                Some(u) => format!("{k}={} until t={u}", o.alpha),
                None => format!("{k}={}", o.alpha),
            })
            .collect();
        out.push_str(&format!("overrides: {}\n", o.join(" ")));
    }
    out.push_str(&frame_source_line(s));
    if !s.signature_set.is_empty() {
        out.push_str(&format!("signature set: {}\n", s.signature_set));
    }
    for sensor in &s.sensors {
        out.push_str(&sensor_line(sensor));
    }
    if let Some(o) = &s.oracle {
        out.push_str(&oracle_line(o));
    }
    // Only the threads worth a technician's look: a running thread that never panicked is
    // the normal case and would only bury the ones that matter.
    for t in s
        .threads
        .iter()
        .filter(|t| t.state == ThreadState::Restarting || t.panics > 0)
    {
        out.push_str(&format!(
            "thread {:<16} {:<10} panics={} last: {}\n",
            t.name,
            if t.state == ThreadState::Restarting {
                "RESTARTING"
            } else {
                "recovered"
            },
            t.panics,
            t.last_panic.as_deref().unwrap_or("-"),
        ));
    }
    if let Some(e) = &s.last_reload_error {
        out.push_str(&format!("last reload failed: {e}\n"));
    }
    if let Some(m) = &s.metrics {
        out.push_str(&format!(
            "metrics {}: {} writes, {} failed{}\n",
            m.textfile,
            m.writes,
            m.failures,
            m.last_error
                .as_deref()
                .map_or(String::new(), |e| format!(" (last: {e})")),
        ));
    }
    out
}

/// `frames receiving (last 0.0s ago) reconnects=0 output errors=0`, and the last error if any.
fn frame_source_line(s: &Status) -> String {
    let f = &s.frame_source;
    let state = match f.state {
        SourceState::Waiting => "waiting",
        SourceState::Receiving => "receiving",
        SourceState::Down => "DOWN",
        SourceState::Ended => "ended",
    };
    let last = match f.since_last_frame_s {
        Some(t) => format!("last {t:.1}s ago"),
        None => "none yet".to_string(),
    };
    let mut line = format!(
        "frames {state} ({last}) reconnects={} output errors={}",
        f.reconnects, s.output_errors
    );
    if let Some(e) = &f.last_error {
        line.push_str(&format!(" last error: {e}"));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{SensorStatus, ThreadStatus};

    #[test]
    fn override_settings_parse_or_say_why_not() {
        assert_eq!(
            override_request("fog=0.8", Some(600.0)).unwrap(),
            Request::Override {
                signature: "fog".into(),
                alpha: Some(0.8),
                ttl_s: Some(600.0)
            }
        );
        assert!(matches!(
            override_request("fog=off", None).unwrap(),
            Request::Override { alpha: None, .. }
        ));
        for bad in ["fog", "fog=much", "fog=nan", "fog=inf"] {
            assert!(override_request(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_text_marks_stale_sensors_and_failed_reloads() {
        let mut s = Status::default();
        s.alpha.insert("fog".into(), 0.5);
        s.alpha.insert("snow".into(), 0.0);
        s.sensors.push(SensorStatus {
            name: "pwd".into(),
            ..Default::default()
        });
        s.last_reload_error = Some("x.toml:3: policy: bad".into());
        s.oracle = Some(crate::protocol::OracleStatus {
            engaged: Some("fog".into()),
            clean: 0.05,
            top: vec![crate::protocol::OracleClass {
                class: "fog".into(),
                p: 0.93,
                severity: 3.06,
            }],
            frames: 12,
            engagements: 1,
            ..Default::default()
        });
        let text = format_status(&s);
        assert!(
            text.contains("oracle engaged=fog clean 0.05, then fog 0.93 (severity 3.1); frames=12 engagements=1 switches=0\n"),
            "{text}"
        );
        assert!(text.contains("active: fog=0.5\n"), "{text}");
        assert!(text.contains("STALE"), "{text}");
        assert!(text.contains("last reload failed: x.toml:3"), "{text}");
        assert!(!s.healthy());
    }

    #[test]
    fn status_text_shows_a_down_frame_source_and_a_restarting_thread() {
        let mut s = Status::default();
        s.frame_source.state = SourceState::Down;
        s.frame_source.last_error = Some("/run/rwsd/frames: gone".into());
        s.output_errors = 3;
        s.threads.push(ThreadStatus {
            name: "sensor-pwd".into(),
            state: ThreadState::Restarting,
            panics: 2,
            last_panic: Some("boom".into()),
        });
        s.threads.push(ThreadStatus {
            name: "control".into(),
            state: ThreadState::Running,
            panics: 0,
            last_panic: None,
        });
        let text = format_status(&s);
        assert!(text.contains("frames DOWN (none yet) reconnects=0 output errors=3 last error: /run/rwsd/frames: gone\n"), "{text}");
        assert!(text.contains("RESTARTING panics=2 last: boom"), "{text}");
        assert!(!text.contains("control"), "{text}");
        assert!(!s.healthy());
    }
}
