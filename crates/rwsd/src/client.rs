//! The client side of the control protocol, behind `rwsctl status` and `rwsctl override`: one
//! typed request out, one typed response back, and the human-readable status.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::protocol::{Request, Response, Status};

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
    for sensor in &s.sensors {
        let c = &sensor.counters;
        out.push_str(&format!(
            "sensor {:<16} {:<5} connected={} readings={} bad={} (checksum {}, too long {}, binary {})\n",
            sensor.name,
            if sensor.fresh { "ok" } else { "STALE" },
            sensor.connected,
            c.readings,
            c.bad,
            c.checksum,
            c.too_long,
            c.binary,
        ));
    }
    if let Some(e) = &s.last_reload_error {
        out.push_str(&format!("last reload failed: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SensorStatus;

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
        let text = format_status(&s);
        assert!(text.contains("active: fog=0.5\n"), "{text}");
        assert!(text.contains("STALE"), "{text}");
        assert!(text.contains("last reload failed: x.toml:3"), "{text}");
        assert!(!s.healthy());
    }
}
