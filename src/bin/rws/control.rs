//! `rws status` and `rws override`: clients of rwsd's control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const DEFAULT_SOCKET: &str = "/run/rwsd/rwsd.sock";

/// Show a running rwsd's coefficients, sensor health and counters.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The daemon's control socket (`control.socket` in its config).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// Set or clear a manual coefficient override on a running rwsd.
///
/// `rws override fog=0.8 --ttl 600` holds fog at 0.8 for ten minutes; `rws override fog=off`
/// clears one; `rws override --clear` clears all (including the config's).
#[derive(clap::Args, Debug)]
pub struct OverrideArgs {
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// `signature=alpha` or `signature=off`.
    #[arg(required_unless_present = "clear")]
    setting: Option<String>,
    /// Seconds the override lasts (default: until cleared).
    #[arg(long)]
    ttl: Option<f64>,
    /// Clear every override.
    #[arg(long, conflicts_with = "setting")]
    clear: bool,
}

/// Sends one request, returns the answer.
pub fn request(socket: &Path, req: &Value) -> Result<Value> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {} (is rwsd running?)", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(s, "{req}")?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line).context("reading rwsd's answer")?;
    if v["ok"] != json!(true) {
        bail!("rwsd: {}", v["error"].as_str().unwrap_or("request failed"));
    }
    Ok(v)
}

pub fn status(args: &StatusArgs) -> Result<ExitCode> {
    let v = request(&args.socket, &json!({"cmd": "status"}))?;
    let s = &v["status"];
    if args.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "config {}  t={}s  frames {} ({} errors)",
        s["config"], s["t"], s["frames"], s["frame_errors"]
    );
    let active: Vec<String> = s["alpha"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, a)| a.as_f64() != Some(0.0))
                .map(|(k, a)| format!("{k}={a}"))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "active: {}",
        if active.is_empty() {
            "none (clean model)".into()
        } else {
            active.join(" ")
        }
    );
    if let Some(o) = s["overrides"].as_object().filter(|o| !o.is_empty()) {
        println!("overrides: {}", Value::Object(o.clone()));
    }
    let mut healthy = true;
    for sensor in s["sensors"].as_array().into_iter().flatten() {
        let fresh = sensor["fresh"] == json!(true);
        healthy &= fresh;
        println!(
            "sensor {:<16} {:<5} connected={} counters={}",
            sensor["name"].as_str().unwrap_or("?"),
            if fresh { "ok" } else { "STALE" },
            sensor["connected"],
            sensor["counters"]
        );
    }
    if let Some(e) = s["last_reload_error"].as_str() {
        println!("last reload failed: {e}");
        healthy = false;
    }
    // Exit 1 when a sensor is stale or a reload failed, for monitoring scripts.
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn set_override(args: &OverrideArgs) -> Result<ExitCode> {
    let req = if args.clear {
        json!({"cmd": "clear_overrides"})
    } else {
        let setting = args.setting.as_deref().unwrap_or_default();
        let (sig, value) = setting
            .split_once('=')
            .with_context(|| format!("'{setting}': expected signature=alpha or signature=off"))?;
        let alpha: Option<f64> = match value {
            "off" => None,
            v => Some(
                v.parse()
                    .with_context(|| format!("'{v}' is not a number"))?,
            ),
        };
        json!({"cmd": "override", "signature": sig, "alpha": alpha, "ttl_s": args.ttl})
    };
    request(&args.socket, &req)?;
    println!("ok");
    Ok(ExitCode::SUCCESS)
}
