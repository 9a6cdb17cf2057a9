//! `rws inspect`: what a `.rws` file holds, for people (a table) or tools (`--json`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rws_signature::format::{DType, SignatureFile, TensorEntry};
use serde::Serialize;

/// Show what a signature file holds.
///
/// Also accepts the other files of a signature directory: a manifest (.json; its checksums are
/// verified), an ONNX model (.onnx; its initializers are listed) and the camera-only oracle's
/// head (.rwo; its classes, form and binding).
///
/// Show a signature file's metadata and, per tensor, its shape, dtype, scale range, quantization
/// error and norm. The file is fully validated first (checksums included).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.rws` file(s) to inspect.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON object per file (one per line) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    file_len: usize,
    version: u32,
    fingerprint: String,
    metadata: &'a rws_signature::Metadata,
    params: usize,
    tensors: Vec<TensorReport<'a>>,
}

#[derive(Serialize)]
struct TensorReport<'a> {
    name: &'a str,
    shape: &'a [usize],
    dtype: DType,
    role: rws_signature::Role,
    payload_bytes: usize,
    scale_min: Option<f32>,
    scale_max: Option<f32>,
    l2_norm: f32,
    max_abs_err: f32,
    rel_l2_err: f32,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    for path in &args.files {
        // The other files a signature directory ships: its manifest and its clean model.
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                inspect_manifest(path, args.json)?;
                continue;
            }
            Some("onnx") => {
                inspect_model(path, args.json)?;
                continue;
            }
            Some("rwo") => {
                inspect_oracle(path, args.json)?;
                continue;
            }
            _ => {}
        }
        let sig = SignatureFile::open(path)?;
        let report = report(&sig);
        if args.json {
            outln!("{}", serde_json::to_string(&report)?)?;
        } else {
            print_table(&report)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(sig: &SignatureFile) -> Report<'_> {
    Report {
        file: sig.path().display().to_string(),
        file_len: sig.file_len(),
        version: sig.version(),
        fingerprint: format!("{:08x}", sig.fingerprint()),
        metadata: sig.metadata(),
        params: sig.tensors().iter().map(TensorEntry::numel).sum(),
        tensors: sig.tensors().iter().map(tensor_report).collect(),
    }
}

fn tensor_report(t: &TensorEntry) -> TensorReport<'_> {
    let min = t.scales.iter().copied().reduce(f32::min);
    let max = t.scales.iter().copied().reduce(f32::max);
    TensorReport {
        name: &t.name,
        shape: &t.shape,
        dtype: t.dtype,
        role: t.role,
        payload_bytes: t.len,
        scale_min: min,
        scale_max: max,
        l2_norm: t.stats.l2_norm,
        max_abs_err: t.stats.max_abs_err,
        rel_l2_err: t.stats.rel_l2_err,
    }
}

fn print_table(r: &Report<'_>) -> std::io::Result<()> {
    let m = r.metadata;
    outln!(
        "file         {} ({} bytes, format v{})",
        r.file,
        r.file_len,
        r.version
    )?;
    let group = if m.group.is_empty() {
        String::new()
    } else {
        format!(" ({})", m.group)
    };
    outln!(
        "corruption   {}{group}, trained at severity {}",
        m.corruption,
        m.severity
    )?;
    outln!(
        "source       model '{}', dataset '{}'",
        m.source_model,
        m.source_dataset
    )?;
    outln!("method       {} over {} layer(s)", m.method, m.layers)?;
    outln!("written by   {}", m.tool)?;
    outln!("fingerprint  {}", r.fingerprint)?;
    outln!("tensors      {} ({} parameters)", r.tensors.len(), r.params)?;
    let width = r
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!(
        "  {:width$}  {:18} {:5} {:>21}  {:>10}  {:>10}  {:>9}",
        "name",
        "shape",
        "dtype",
        "scale range",
        "l2 norm",
        "max |err|",
        "rel L2"
    )?;
    for t in &r.tensors {
        let scales = match (t.scale_min, t.scale_max) {
            (Some(lo), Some(hi)) => format!("{lo:.3e}..{hi:.3e}"),
            _ => "-".to_string(),
        };
        outln!(
            "  {:width$}  {:18} {:5} {:>21}  {:>10.4e}  {:>10.3e}  {:>9.2e}",
            t.name,
            format!("{:?}", t.shape),
            t.dtype.to_string(),
            scales,
            t.l2_norm,
            t.max_abs_err,
            t.rel_l2_err
        )?;
    }
    Ok(())
}

/// A manifest: parsed, its files' checksums verified, then printed.
fn inspect_manifest(path: &std::path::Path, json: bool) -> Result<()> {
    let m = rws_signature::manifest::Manifest::load(path)?;
    m.verify_files(path.parent().unwrap_or(std::path::Path::new(".")))?;
    if json {
        outln!(
            "{}",
            serde_json::json!({"file": path.display().to_string(), "manifest": m})
        )?;
    } else {
        outln!("manifest     {} (all checksums match)", path.display())?;
        outln!(
            "model        {} ({}, {}, {})",
            m.model.file,
            m.model.arch,
            m.model.dataset,
            m.model.input
        )?;
        for s in &m.signatures {
            outln!(
                "  {:18} {:8} severity {} {} ({} bytes, crc32c {})",
                s.corruption,
                s.group,
                s.severity,
                s.file,
                s.bytes,
                s.crc32c
            )?;
        }
    }
    Ok(())
}

/// An ONNX model: its initializers (the tensors signatures can patch).
fn inspect_model(path: &std::path::Path, json: bool) -> Result<()> {
    let model = rws_runtime::onnx::OnnxModel::open(path)?;
    let inits = model.initializers()?;
    let params: usize = inits
        .iter()
        .map(|i| i.shape.iter().product::<usize>())
        .sum();
    if json {
        let tensors: Vec<_> = inits
            .iter()
            .map(|i| serde_json::json!({"name": i.name, "shape": i.shape, "dtype": i.dtype.to_string()}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({"file": path.display().to_string(), "model": {"params": params, "initializers": tensors}})
        )?;
    } else {
        outln!(
            "model        {} ({} initializers, {params} parameters)",
            path.display(),
            inits.len()
        )?;
        for i in &inits {
            outln!("  {:24} {:?} {}", i.name, i.shape, i.dtype)?;
        }
    }
    Ok(())
}

/// The camera-only oracle's head: its form, classes and the set it is bound to.
fn inspect_oracle(path: &std::path::Path, json: bool) -> Result<()> {
    let f = rws_oracle::OracleFile::open(path)?;
    let (h, w) = f.input;
    let report = serde_json::json!({
        "file": path.display().to_string(),
        "oracle": {
            "classes": f.head.classes(),
            "hidden_units": f.head.hidden_units(),
            "features": rws_oracle::features::NAMES,
            "feature_version": rws_oracle::features::FEATURE_VERSION,
            "input": [h, w],
            "model_crc32c": format!("{:08x}", f.model_crc32c),
        }
    });
    if json {
        outln!("{report}")?;
        return Ok(());
    }
    let form = match f.head.hidden_units() {
        0 => "multinomial logistic regression".to_string(),
        n => format!("one tanh layer of {n} units"),
    };
    outln!("oracle head  {} ({form})", path.display())?;
    outln!(
        "bound to     the set whose clean model has CRC-32C {:08x}, {w}x{h} inputs",
        f.model_crc32c
    )?;
    outln!(
        "features     {} (bank version {})",
        rws_oracle::N_FEATURES,
        rws_oracle::features::FEATURE_VERSION
    )?;
    outln!("classes      {}", f.head.classes().join(", "))?;
    Ok(())
}
