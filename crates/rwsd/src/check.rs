//! `rwsctl check`: everything about a config that can be verified without building the model in
//! the inference engine, so the small device client can vet a config before a SIGHUP: the config
//! itself, the set's seal against `[trust]`, every signature file the policy uses (the format's
//! checks, then the manifest's length and CRC-32C, and a signed set's SHA-256), the model's
//! protobuf (checked against the manifest or `model.crc32c` as it is read), each signature
//! against the model's tensors, and that the graph splits after the patched layers.
//! `rwsd --check` does all of this and then builds the runtime.

use std::collections::HashSet;

use rws_runtime::{compat, read_model_checked, split, RuntimeError};
use rws_signature::SignatureFile;

use crate::config::Config;

/// Why a config does not check out.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0:#}")]
    Config(anyhow::Error),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{}: cannot split for patching: {source}", path.display())]
    Split {
        path: std::path::PathBuf,
        source: split::SplitError,
    },
}

/// Checks `cfg`'s signatures and model; returns a summary of what was checked.
pub fn check(cfg: &Config) -> Result<String, CheckError> {
    let sigs = cfg.open_signatures().map_err(CheckError::Config)?;
    let model = read_model_checked(&cfg.model, Some(&cfg.model_expected))?;
    let refs: Vec<&SignatureFile> = sigs.iter().collect();
    let patcher = compat::bind(&model, &refs)?;
    let patched: HashSet<String> = patcher.targets().iter().map(|t| t.name.clone()).collect();
    let cut = split::split(model.into_proto(), &patched).map_err(|source| CheckError::Split {
        path: cfg.model.clone(),
        source,
    })?;
    Ok(format!(
        "config {}: ok\nsignature set: {}\nmodel {}: {} patched tensors, cut at {:?}\nsignatures: {}\nsensors: {}",
        cfg.path.display(),
        cfg.trust,
        cfg.model.display(),
        patched.len(),
        cut.cut,
        cfg.signatures
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.sensors
            .iter()
            .map(|s| format!("{} ({})", s.name, s.protocol))
            .collect::<Vec<_>>()
            .join(", "),
    ))
}
