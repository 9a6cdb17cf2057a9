//! `rws replay`: the coefficient trace a config's policy gives for recorded sensor logs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rws::config::Config;
use rws::policy::Engine;
use rws::sensors::driver::Source;

/// Print the coefficient trace of recorded sensor logs under a config's policy.
///
/// Every sensor of the config must read a file with timestamps (`file = "...", timestamps =
/// true`). The trace has one line per second of log time at which a coefficient changed, then
/// one counter line per sensor; `tests/data/*.trace` are made with this command.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The daemon config whose sensors and policy to replay.
    #[arg(long, short)]
    config: PathBuf,
    /// Seconds evaluated after the last reading (to show staleness and ramps ending).
    #[arg(long, default_value_t = 20.0)]
    tail: f64,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let cfg = Config::load(&args.config)?;
    let mut events = Vec::new();
    for spec in &cfg.sensors {
        let Source::File(path) = &spec.source else {
            bail!("sensor {}: replay needs `file = ...`", spec.name);
        };
        if !spec.timestamps {
            bail!("sensor {}: replay needs `timestamps = true`", spec.name);
        }
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        events.extend(rws::replay::read_events(spec, f)?);
    }
    let mut engine = Engine::new(cfg.policy.clone(), cfg.stale_after.clone());
    let names: Vec<String> = cfg.sensors.iter().map(|s| s.name.clone()).collect();
    print!(
        "{}",
        rws::replay::trace(&mut engine, &names, &events, args.tail)
    );
    Ok(ExitCode::SUCCESS)
}
