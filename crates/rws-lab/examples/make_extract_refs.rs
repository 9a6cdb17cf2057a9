//! Writes the committed numpy references of the extraction tests (`tests/data/extract/*.json`):
//! for each case of `rws_testkit::REFERENCE_CASES`, the seeded test models are written to a
//! temporary directory, `scripts/reference_extract.py` (numpy + the `onnx` package, no rws code)
//! computes the projection residual, and its output is stored with the CRC-32C of every input
//! model (so a change to the fixtures' generator is caught, not silently compared against) and
//! the versions that produced it.
//!
//! Run: `pip install numpy onnx && cargo run -p rws-lab --example make_extract_refs`
//! (`RWS_PYTHON` names another interpreter). Deterministic: the same models give the same files.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

fn python() -> String {
    std::env::var("RWS_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn versions() -> Result<Value> {
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, numpy, onnx; print(sys.version.split()[0], numpy.__version__, onnx.__version__)",
        ])
        .output()
        .context("running python3 (pip install numpy onnx)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<&str> = text.split_whitespace().collect();
    if !out.status.success() || v.len() != 3 {
        bail!(
            "python3 with numpy and onnx is needed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(json!({"python": v[0], "numpy": v[1], "onnx": v[2]}))
}

fn main() -> Result<()> {
    let out_dir = rws_testkit::repo().join("tests/data/extract");
    std::fs::create_dir_all(&out_dir)?;
    let versions = versions()?;
    for case in rws_testkit::REFERENCE_CASES {
        let dir = tempfile::tempdir()?;
        let models = rws_testkit::extract_models(dir.path(), case.bn);
        let run = Command::new(python())
            .args(rws_testkit::reference_args(dir.path(), case))
            .output()
            .context("running scripts/reference_extract.py")?;
        if !run.status.success() {
            bail!("reference failed: {}", String::from_utf8_lossy(&run.stderr));
        }
        let reference: Value = serde_json::from_slice(&run.stdout)?;
        let crcs: Map<String, Value> = models
            .iter()
            .map(|(f, crc)| (f.clone(), json!(format!("{crc:08x}"))))
            .collect();
        let fixture = json!({
            "provenance": {
                "generator": "cargo run -p rws-lab --example make_extract_refs",
                "reference": "scripts/reference_extract.py",
                "versions": versions,
            },
            "case": {"robust": case.robust, "layers": case.layers, "bn": case.bn},
            "models_crc32c": crcs,
            "reference": reference,
        });
        let path = out_dir.join(format!("{}.json", case.name));
        write(&path, &fixture)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn write(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string(v)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
