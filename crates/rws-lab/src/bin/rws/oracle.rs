//! `rws oracle train`: the camera-only oracle's head for a signature set
//! ([`rws_lab::oracle`]), written next to the signatures and listed in their manifest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rws_lab::data;
use rws_lab::oracle::{self, Config};
use rws_signature::manifest::{self, Manifest, OracleEntry};

/// The camera-only oracle: a head that tells from each frame which corruption it shows.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Train(TrainArgs),
}

/// Train the oracle's head on corrupted training images and add it to a signature set.
///
/// Makes one clean feature row and one per corruption × severity from --images images of the
/// dataset's training split (seeded), fits logistic regression and a one-layer tanh network on
/// three quarters of the images, keeps the form with the better held-out group accuracy at
/// severities 3-5 (within 0.5 pt, the smaller), refits it on all rows and writes
/// <signatures>/oracle.rwo, bound to the set's clean model, and lists it in manifest.json.
/// Prints the report (both forms' held-out figures, the choice and why) as JSON. The same
/// arguments give the same file, byte for byte.
#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Directory with manifest.json and the clean model; the head is written here.
    #[arg(long, default_value = "signatures")]
    signatures: PathBuf,
    /// Dataset whose training split the rows come from: mnist-5k or digits.
    #[arg(long, default_value = "mnist-5k")]
    dataset: String,
    /// Dataset file (default: the committed copy under data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training images (spread over the classes).
    #[arg(long, default_value_t = 300)]
    images: usize,
    /// Seed of the corruptions and of the fits.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Write the head here instead of <signatures>/oracle.rwo, and leave the manifest alone.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.command {
        Command::Train(a) => train(a),
    }
}

fn train(args: &TrainArgs) -> Result<ExitCode> {
    if args.images < 4 {
        anyhow::bail!(
            "--images {}: at least 4 are needed to hold a quarter out",
            args.images
        );
    }
    let manifest_path = args.signatures.join("manifest.json");
    let mut manifest = Manifest::load(&manifest_path)?;
    let model_crc32c = manifest::parse_crc(&manifest.model.crc32c)
        .with_context(|| format!("{}: model.crc32c", manifest_path.display()))?;
    let split = data::open_split(&args.dataset, args.data.as_deref())?;
    let mut config = Config::standard(args.seed);
    config.images = args.images;
    let (file, report) = oracle::train(&split.train, &config, model_crc32c, data::SIDE)?;
    let bytes = file.to_bytes();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.signatures.join("oracle.rwo"));
    rws_signature::format::writer::write_atomic(&out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    if args.out.is_none() {
        let (crc32c, len) = manifest::checksum(&out)?;
        manifest.oracle = Some(OracleEntry {
            file: "oracle.rwo".into(),
            crc32c,
            bytes: len,
            sha256: None,
        });
        manifest.save(&manifest_path)?;
        eprintln!(
            "wrote {} ({len} bytes) and listed it in {}",
            out.display(),
            manifest_path.display()
        );
    }
    outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `rws eval --oracle`.
pub fn eval(args: &crate::eval::Args) -> Result<ExitCode> {
    if args.mode != crate::eval::Mode::Table
        || args.models.is_some()
        || args.transfer_from.is_some()
    {
        anyhow::bail!("--oracle is a mode of its own: no --mode, --models or --transfer-from");
    }
    if !(0.0..=1.0).contains(&args.threshold) {
        anyhow::bail!(
            "--threshold {} must be a probability (0 to 1)",
            args.threshold
        );
    }
    let manifest_path = args.signatures.join("manifest.json");
    let manifest = Manifest::load(&manifest_path)?;
    let Some(entry) = &manifest.oracle else {
        anyhow::bail!(
            "{}: lists no oracle head (make one with `rws oracle train --signatures {}`)",
            manifest_path.display(),
            args.signatures.display()
        );
    };
    let head_path = args.signatures.join(&entry.file);
    let bytes = rws_oracle::OracleFile::read(&head_path)?;
    let expected = manifest.oracle_expected().context("oracle entry")?;
    expected.check_bytes(&head_path, &bytes)?;
    let file = rws_oracle::OracleFile::parse(&head_path, &bytes)?;
    let crc = manifest::parse_crc(&manifest.model.crc32c).context("model.crc32c")?;
    file.check_set(&head_path, crc, (data::SIDE, data::SIDE), |c| {
        manifest.find(c).is_some()
    })?;
    let lab = crate::mode::open(args)?;
    let severities = if args.severities.is_empty() {
        vec![1, 2, 3, 4, 5]
    } else {
        args.severities.clone()
    };
    let mut head = file.head;
    let e = rws_lab::experiments::oracle::run(
        &lab,
        &mut head,
        &severities,
        args.threshold,
        args.alpha,
        crate::mode::command_line(),
    )?;
    crate::mode::write_plot(args, || rws_lab::experiments::plot::confusion(&e))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&e)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&e)?;
    Ok(ExitCode::SUCCESS)
}

fn print_table(e: &rws_lab::experiments::oracle::OracleEval) -> Result<()> {
    let pct = |v: f64| v * 100.0;
    outln!(
        "Camera-only oracle, {} test images, α = {}, threshold {}; head: {} hidden units\n",
        e.provenance.images,
        e.alpha,
        e.threshold,
        e.head_hidden_units
    )?;
    outln!("| corruption | severity | type acc. | group acc. | severity MAE | RA clean | RA perfect | RA oracle | regret |")?;
    outln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &e.rows {
        outln!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:+.1} |",
            r.corruption,
            r.severity,
            pct(r.type_accuracy),
            pct(r.group_accuracy),
            r.severity_mae,
            pct(r.ra_clean),
            pct(r.ra_rws),
            pct(r.ra_oracle),
            pct(r.regret)
        )?;
    }
    outln!(
        "\nTA clean {:.1}, with the oracle {:.1} (clean frames kept clean {:.1} %)",
        pct(e.ta_clean),
        pct(e.ta_oracle),
        pct(e.clean_kept)
    )?;
    outln!(
        "Mean RA at the top severity: clean {:.1}, perfect oracle {:.1}, this oracle {:.1}: keeps {:.0} % of the gain",
        pct(e.mean_ra_clean),
        pct(e.mean_ra_rws),
        pct(e.mean_ra_oracle),
        pct(e.gain_kept)
    )?;
    outln!(
        "Severities 3-5: group accuracy {:.1} %, type accuracy {:.1} %, severity MAE {:.2}",
        pct(e.group_accuracy),
        pct(e.type_accuracy),
        e.severity_mae
    )?;
    let s = &e.stream;
    outln!(
        "Stream ({} frames): RA {:.1} (clean model {:.1}); engaged frames on clear stretches after release: {}; switches there: {}",
        s.trace.len(),
        pct(s.ra_oracle),
        pct(s.ra_clean),
        s.false_engaged_frames,
        s.clear_switches
    )?;
    for st in &s.stretches {
        outln!(
            "  {:<16} sev {} × {:>2}: RA {:.1} (clean {:.1}), engaged after {:?}, released after {:?}, wrong {} , switches {}",
            st.corruption.as_deref().unwrap_or("clear"),
            st.severity,
            st.frames,
            pct(st.ra_oracle),
            pct(st.ra_clean),
            st.frames_to_engage,
            st.frames_to_release,
            st.wrong_engaged,
            st.switches
        )?;
    }
    Ok(())
}
