//! `rws corrupt`: apply one of the 19 corruptions to an image file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_image::Image;
use rws_lab::corrupt::{corrupt, Corruption, Preset};

/// Apply one of the 19 corruptions to an image.
///
/// Corrupt an image (PNG or JPEG) the Hendrycks–Dietterich way and write the result (PNG, or JPEG
/// by extension). Small images (both sides ≤ 64) get CIFAR-10-C constants, larger ones ImageNet-C
/// constants, unless --preset says otherwise.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Corruption name, e.g. fog, gaussian_noise, jpeg_compression (see --list).
    #[arg(long = "type", short = 't', required_unless_present = "list")]
    kind: Option<String>,
    /// Severity, 1 (mild) to 5 (strong).
    #[arg(long, short, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    severity: u8,
    /// Constant set: cifar, imagenet, or auto (by image size).
    #[arg(long, default_value = "auto")]
    preset: String,
    /// Seed of the random corruptions; the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// List the corruptions with their groups and exit.
    #[arg(long)]
    list: bool,
    /// Input image.
    #[arg(required_unless_present = "list")]
    input: Option<PathBuf>,
    /// Output image.
    #[arg(required_unless_present = "list")]
    output: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.list {
        for c in Corruption::ALL {
            let kind = if c.is_random() {
                "random"
            } else {
                "deterministic"
            };
            outln!("{:18} {:8} {kind}", c.name(), c.group().to_string())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(kind), Some(input), Some(output)) = (&args.kind, &args.input, &args.output) else {
        anyhow::bail!("--type, INPUT and OUTPUT are required");
    };
    let corruption: Corruption = kind.parse()?;
    let preset: Preset = args.preset.parse()?;
    let image = Image::open(input)?;
    let out = corrupt(&image, corruption, args.severity, preset, args.seed)
        .with_context(|| format!("{}: cannot apply {corruption}", input.display()))?;
    out.save(output)?;
    Ok(ExitCode::SUCCESS)
}
