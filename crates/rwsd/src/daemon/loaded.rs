//! What a config load produces, swapped in whole on reload: the validated config, the runtime
//! session on its model and signatures, and the map from the policy's signatures to the
//! runtime's coefficient slots. The slow part (parse, map and check every signature, split and
//! optimize the model, start the session) runs wherever [`load`] is called: on the main thread
//! at start, on the reload thread on SIGHUP.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rws_runtime::{Runtime, RuntimeOptions, Session};

use crate::config::Config;
use crate::oracle::Oracle;
use crate::policy::Engine;

/// A loaded config.
pub struct Loaded {
    pub cfg: Config,
    pub session: Session,
    /// The policy's signatures, in the engine's output order.
    pub names: Vec<String>,
    /// Per policy signature, its index among the runtime's signatures.
    pub map: Vec<usize>,
    /// Per runtime signature, its corruption name (as frames and the status report it).
    pub corruptions: Vec<String>,
    /// Runtime signature indices in corruption-name order (the key order of a frame's `alpha`).
    pub alpha_order: Vec<usize>,
    /// The camera-only oracle (`[oracle]`), whose signals the engine reads in the slot after
    /// the sensors'.
    pub oracle: Option<Oracle>,
}

/// Loads `path`: the state and a fresh policy engine for it (the caller decides whether the
/// engine takes over a running one's state).
pub fn load(path: &Path) -> Result<(Loaded, Engine)> {
    let (cfg, rt) = prepare(path)?;
    assemble(cfg, rt)
}

/// The heavy part of a load, which starts no thread: the config, every signature opened and
/// checked, the model mapped, checked, split and optimized, a blank frame run. A reload runs it
/// in the idle scheduling class (a thread started from there would inherit the class).
pub fn prepare(path: &Path) -> Result<(Config, Arc<Runtime>)> {
    let cfg = Config::load(path)?;
    let sigs = cfg.open_signatures()?;
    let opts = RuntimeOptions {
        input_shape: Some(vec![1, 3, cfg.input.height, cfg.input.width]),
        model_expected: Some(cfg.model_expected.clone()),
    };
    let rt = Arc::new(Runtime::load(&cfg.model, sigs, &opts)?);
    probe(&cfg, &rt)?;
    Ok((cfg, rt))
}

/// The rest: the policy engine, the signature map, and the session (whose prefix worker starts
/// here, with the calling thread's priority).
pub fn assemble(cfg: Config, rt: Arc<Runtime>) -> Result<(Loaded, Engine)> {
    let mut stale_after = cfg.stale_after.clone();
    let oracle = match &cfg.oracle {
        Some(spec) => {
            stale_after.push(spec.stale_after);
            let input = (cfg.input.height, cfg.input.width);
            Some(Oracle::load(spec, input, cfg.sensors.len())?)
        }
        None => None,
    };
    let engine = Engine::new(cfg.policy.clone(), stale_after);
    let map = engine
        .signatures()
        .iter()
        .map(|s| {
            cfg.signatures
                .iter()
                .position(|(n, _)| n == s)
                .with_context(|| format!("signature '{s}' was not loaded"))
        })
        .collect::<Result<Vec<_>>>()?;
    let corruptions: Vec<String> = rt
        .signatures()
        .iter()
        .map(|s| s.metadata().corruption.clone())
        .collect();
    let mut alpha_order: Vec<usize> = (0..corruptions.len()).collect();
    alpha_order.sort_by(|&a, &b| corruptions[a].cmp(&corruptions[b]));
    let loaded = Loaded {
        alpha_order,
        session: Session::new(rt)?,
        names: engine.signatures().to_vec(),
        cfg,
        oracle,
        map,
        corruptions,
    };
    Ok((loaded, engine))
}

/// Runs one blank frame through the clean model: a model that cannot run a frame is refused
/// here (at start, `--check` and reload), not on the first camera frame; and the labels must
/// name every class the model outputs.
fn probe(cfg: &Config, rt: &Runtime) -> Result<()> {
    let logits = rt
        .run_with(rt.clean_prefix(), &vec![0.0; rt.input_len()])
        .with_context(|| format!("{}: running a blank frame", cfg.model.display()))?;
    if logits.is_empty() {
        anyhow::bail!("{}: the model's first output is empty", cfg.model.display());
    }
    if !cfg.labels.is_empty() && cfg.labels.len() != logits.len() {
        anyhow::bail!(
            "{}:{}: model.labels: {} labels for a model with {} outputs",
            cfg.path.display(),
            cfg.labels_line,
            cfg.labels.len(),
            logits.len()
        );
    }
    Ok(())
}

impl Loaded {
    /// One paragraph about what was loaded (`rwsd --check`).
    pub fn summary(&self) -> String {
        let c = &self.cfg;
        let rt = self.session.runtime();
        let sensors: Vec<String> = c
            .sensors
            .iter()
            .map(|s| format!("{} ({}, {:?})", s.name, s.protocol, s.source))
            .collect();
        format!(
            "config {}: ok\nsignature set: {}\nmodel {} (input {:?}, cut at {:?}, {} prefix builds)\nsignatures: {}\nsensors: {}\noracle: {}\nframes: {:?}\nclock: {:?}",
            c.path.display(),
            c.trust,
            c.model.display(),
            rt.input_shape(),
            rt.cut(),
            rt.prefix_mode(),
            c.signatures
                .iter()
                .map(|s| s.0.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            sensors.join("; "),
            self.oracle.as_ref().map_or("none".to_string(), Oracle::describe),
            c.frames,
            c.clock,
        )
    }

    /// The coefficient requests for the engine's output `alphas` into `out` (reused by the
    /// frame loop): (runtime slot, α).
    pub fn coefficients_into(&self, alphas: &[f64], out: &mut Vec<(usize, f32)>) {
        out.clear();
        out.extend(self.map.iter().zip(alphas).map(|(&i, &a)| (i, a as f32)));
    }
}
