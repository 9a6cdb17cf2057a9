//! `rws train`: the training recipes (feature `train`).
//!
//! `--recipe demo` regenerates the whole shipped demo from scratch: θ0, θstd, 19 robust models and
//! a data-augmentation model on MNIST-5k, then the 19 int8 signatures, the clean model and the
//! manifest in `--signatures`. The other recipes run one step, for a workstation or CUDA host.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use rws_lab::arch::{Arch, Weights};
use rws_lab::corrupt::{Corruption, Preset};
use rws_lab::data;
use rws_lab::train::{train, Augment, Net, Schedule, Severities};
use rws_runtime::onnx::OnnxModel;
use rws_signature::manifest::{checksum, Manifest, ModelEntry, SignatureEntry};

/// Train clean and robust models from a shared initialization, and export them to ONNX.
///
/// Recipes: demo (everything, then signatures and manifest), init (θ0 from scratch), standard
/// (θstd: θ0 continued on clean data), robust (θc: θ0 fine-tuned on one corruption at --severity),
/// augment (θ0 fine-tuned on all 19 corruptions mixed).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// demo, init, standard, robust or augment.
    #[arg(long, default_value = "demo")]
    recipe: String,
    /// Architecture: demo (small VGG, CPU), demo-deep (8 convolutions, CPU) or vgg16 (for a
    /// CUDA host).
    #[arg(long, default_value = "demo")]
    arch: String,
    /// Dataset: mnist-5k, digits, or cifar10 (with --data DIR).
    #[arg(long, default_value = "mnist-5k")]
    dataset: String,
    /// Dataset file (default: the committed copy under data/), or CIFAR-10's directory of
    /// data_batch_*.bin and test_batch.bin.
    #[arg(long)]
    data: Option<PathBuf>,
    /// θ0 to start from (standard, robust, augment). With demo: the anchor, e.g. the θ0 of a run
    /// on another dataset (the paper's pretrained init), used instead of training θ0 from scratch;
    /// that is how the transfer experiment's target set is made.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Corruption for the robust recipe.
    #[arg(long)]
    corruption: Option<String>,
    /// Corruption constants: imagenet, cifar, or auto (by image size). The demo uses imagenet:
    /// MNIST digits shrug off CIFAR-10-C's noise and blur levels, so those would teach nothing.
    #[arg(long, default_value = "imagenet")]
    preset: String,
    /// Training severity of the robust and augment recipes: one level (5) or a range drawn
    /// per image (3-5). Manifests and signatures record the highest level.
    #[arg(long, default_value = "5")]
    severity: Severities,
    /// Epochs from scratch (θ0).
    #[arg(long, default_value_t = 6)]
    init_epochs: usize,
    /// Epochs of each continuation/fine-tune (θstd, θc, augment).
    #[arg(long, default_value_t = 2)]
    finetune_epochs: usize,
    /// Learning rate (AdamW) of each continuation/fine-tune.
    #[arg(long, default_value_t = 1e-3)]
    finetune_lr: f64,
    /// Base seed; the recipe derives every other seed from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (single recipes) or directory (demo).
    #[arg(long)]
    out: PathBuf,
    /// demo: where to write the signatures, clean model and manifest.
    #[arg(long, default_value = "signatures")]
    signatures: PathBuf,
}

fn device() -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        return Ok(Device::new_cuda(0)?);
    }
    #[allow(unreachable_code)]
    Ok(Device::Cpu)
}

struct Ctx {
    arch: Arch,
    preset: Preset,
    device: Device,
    split: data::Split,
    args_seed: u64,
}

impl Ctx {
    fn run(
        &self,
        what: &str,
        start: &Weights,
        augment: Augment,
        epochs: usize,
        lr: f64,
        seed: u64,
    ) -> Result<Weights> {
        let t = Instant::now();
        let mut net = Net::new(&self.arch, start, &self.device)?;
        let train_set = &self.split.train;
        let bar = rws_lab::progress::bar(epochs as u64, what);
        train(
            &mut net,
            &train_set.images,
            &train_set.labels,
            augment,
            Schedule {
                epochs,
                batch: 64,
                lr,
                seed,
                preset: self.preset,
            },
            |e, loss| {
                // Above the bar on a terminal, plain lines in a log.
                bar.suspend(|| eprintln!("  {what}: epoch {}/{epochs} loss {loss:.4}", e + 1));
                bar.inc(1);
            },
        )?;
        bar.finish_and_clear();
        let acc = net.accuracy(&self.split.test.images, &self.split.test.labels)?;
        eprintln!(
            "  {what}: clean test accuracy {:.2}% ({:.0} s)",
            acc * 100.0,
            t.elapsed().as_secs_f64()
        );
        Ok(net.weights()?)
    }

    fn save(&self, weights: &Weights, path: &Path) -> Result<()> {
        let bytes = self
            .arch
            .to_onnx_bytes(weights)
            .map_err(anyhow::Error::msg)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        rws_signature::format::writer::write_atomic(path, &bytes)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn load(&self, path: &Path) -> Result<Weights> {
        Ok(self.arch.weights_from_onnx(&OnnxModel::open(path)?)?)
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let arch = Arch::by_name(&args.arch)
        .with_context(|| format!("unknown --arch '{}' (demo, demo-deep, vgg16)", args.arch))?;
    let split = data::open_split(&args.dataset, args.data.as_deref())?;
    let preset: Preset = args.preset.parse()?;
    let ctx = Ctx {
        arch,
        preset,
        device: device()?,
        split,
        args_seed: args.seed,
    };
    let fine = |a| (a, args.finetune_epochs, args.finetune_lr);
    match args.recipe.as_str() {
        "demo" => demo(&ctx, args)?,
        "init" => {
            let w = ctx.run(
                "θ0",
                &ctx.arch.init(ctx.args_seed),
                Augment::Clean,
                args.init_epochs,
                2e-3,
                ctx.args_seed,
            )?;
            ctx.save(&w, &args.out)?;
        }
        "standard" | "robust" | "augment" => {
            let from = args.from.as_ref().context("--from θ0.onnx is required")?;
            let start = ctx.load(from)?;
            let (augment, epochs, lr) = match args.recipe.as_str() {
                "standard" => fine(Augment::Clean),
                "augment" => fine(Augment::Mixed(args.severity)),
                _ => {
                    let c: Corruption = args
                        .corruption
                        .as_deref()
                        .context("--corruption is required")?
                        .parse()?;
                    fine(Augment::One(c, args.severity))
                }
            };
            let w = ctx.run(&args.recipe, &start, augment, epochs, lr, ctx.args_seed + 1)?;
            ctx.save(&w, &args.out)?;
        }
        other => bail!("unknown --recipe '{other}' (demo, init, standard, robust, augment)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole demo: models into `--out`, signatures + clean model + manifest into `--signatures`.
fn demo(ctx: &Ctx, args: &Args) -> Result<()> {
    let out = &args.out;
    std::fs::create_dir_all(out.join("robust"))?;
    let seed = ctx.args_seed;
    let theta0 = match &args.from {
        // A shared anchor from elsewhere: θstd and every θc start from it, as in the paper's
        // transfer setting (both datasets' models fine-tuned from one pretrained network).
        Some(anchor) => {
            eprintln!("θ0: the anchor {}", anchor.display());
            ctx.load(anchor)?
        }
        None => {
            eprintln!("θ0: training from scratch");
            ctx.run(
                "θ0",
                &ctx.arch.init(seed),
                Augment::Clean,
                args.init_epochs,
                2e-3,
                seed,
            )?
        }
    };
    ctx.save(&theta0, &out.join("theta0.onnx"))?;
    // θstd and every θc share the data-order seed, so their deltas differ by what the data
    // differs in, which is what the projection isolates.
    let ft = seed + 1;
    let std = ctx.run(
        "θstd",
        &theta0,
        Augment::Clean,
        args.finetune_epochs,
        args.finetune_lr,
        ft,
    )?;
    ctx.save(&std, &out.join("standard.onnx"))?;
    let mut robust = Vec::new();
    for c in Corruption::ALL {
        let w = ctx.run(
            c.name(),
            &theta0,
            Augment::One(c, args.severity),
            args.finetune_epochs,
            args.finetune_lr,
            ft,
        )?;
        let p = out.join("robust").join(format!("{}.onnx", c.name()));
        ctx.save(&w, &p)?;
        robust.push((c.name().to_string(), p));
    }
    let aug = ctx.run(
        "augment",
        &theta0,
        Augment::Mixed(args.severity),
        args.finetune_epochs,
        args.finetune_lr,
        ft,
    )?;
    ctx.save(&aug, &out.join("augmented.onnx"))?;

    let sig_dir = &args.signatures;
    std::fs::create_dir_all(sig_dir)?;
    let opts = rws_lab::extract::Options {
        selection: rws_lab::extract::Selection::Layers(5),
        dtype: rws_signature::DType::I8,
        severity: args.severity.max(),
        dataset: ctx.split.train.name.trim_end_matches("/train").to_string(),
        out_dir: sig_dir.clone(),
    };
    let mut bar = rws_lab::progress::Lazy::new("extract");
    let done = rws_lab::extract::extract(
        &out.join("theta0.onnx"),
        &out.join("standard.onnx"),
        &robust,
        &opts,
        |i, n, name| bar.step(i, n, name),
    )?;
    bar.finish();
    let clean = sig_dir.join("clean.onnx");
    std::fs::copy(out.join("standard.onnx"), &clean)?;
    let (crc, bytes) = checksum(&clean)?;
    let mut manifest = Manifest {
        model: ModelEntry {
            file: "clean.onnx".into(),
            arch: ctx.arch.name.clone(),
            dataset: opts.dataset.clone(),
            input: format!("NCHW 1x3x{0}x{0} RGB in [0,1]", ctx.arch.side),
            crc32c: crc,
            bytes,
            sha256: None,
        },
        signatures: Vec::new(),
        oracle: None,
    };
    for e in &done {
        let c: Corruption = e.name.parse()?;
        let (crc, bytes) = checksum(&e.path)?;
        manifest.signatures.push(SignatureEntry {
            corruption: e.name.clone(),
            file: format!("{}.rws", e.name),
            group: c.group().to_string(),
            severity: args.severity.max(),
            crc32c: crc,
            bytes,
            sha256: None,
        });
    }
    manifest.save(sig_dir.join("manifest.json"))?;
    eprintln!(
        "demo written: models in {}, signatures in {}",
        out.display(),
        sig_dir.display()
    );
    Ok(())
}
