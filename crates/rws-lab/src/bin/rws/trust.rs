//! `rws keygen` and `rws sign`: the keys that sign signature sets, and the signing
//! (docs/reliability.md says who holds which key and how keys are rotated).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_trust::SecretKey;

/// Make an ed25519 key pair for signing signature sets.
///
/// Writes KEY (the private key, mode 0600: keep it off the devices, on the build host or in the
/// release pipeline's secret store) and KEY.pub (the public key, which devices list in their
/// config's `[trust] public_keys`). Never overwrites an existing key.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where the private key goes; the public key goes to the same path + `.pub`. Its file name
    /// becomes the key's name, shown in status (e.g. `release-2026`).
    #[arg(long)]
    out: PathBuf,
}

pub fn keygen(args: &KeygenArgs) -> Result<ExitCode> {
    let name = args
        .out
        .file_name()
        .and_then(|n| n.to_str())
        .context("--out must end in a file name")?;
    let key = SecretKey::generate(name)?;
    let pub_path = key.save(&args.out)?;
    outln!(
        "wrote {} (private, 0600) and {} (public; key {})",
        args.out.display(),
        pub_path.display(),
        key.public().id()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Sign a signature set.
///
/// Checks every file DIR/manifest.json lists against its length and CRC-32C, writes each file's
/// SHA-256 into the manifest, and signs the manifest's bytes into DIR/manifest.json.sig. Both
/// files are replaced atomically. Sign again after any change to the set.
#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The signature set: a directory holding manifest.json, the model and the .rws files.
    dir: PathBuf,
    /// The private key (`rws keygen`).
    #[arg(long)]
    key: PathBuf,
}

pub fn sign(args: &SignArgs) -> Result<ExitCode> {
    let key = SecretKey::load(&args.key)?;
    let manifest = rws_trust::sign_set(&args.dir, &key)?;
    outln!(
        "signed {} with {}: {}",
        manifest.display(),
        key.public().label(),
        args.dir.join(rws_trust::SEAL_FILE).display()
    )?;
    Ok(ExitCode::SUCCESS)
}
