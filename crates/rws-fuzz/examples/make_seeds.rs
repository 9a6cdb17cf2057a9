//! Writes the fuzz targets' seed inputs into `DIR/<target>/` (default `fuzz/corpus-raw`), from
//! the project's real inputs: the shipped signatures, manifest and configs, the recorded sensor
//! logs, the demo's frames, example control requests, and a freshly made key and seal. The
//! committed corpora (`fuzz/corpus/`) are these seeds after fuzzing and `cargo fuzz cmin`.
//!
//! `cargo run -p rws-fuzz --example make_seeds [-- DIR]`

use std::path::{Path, PathBuf};

use rws_signature::format::{encode, SignatureTensor};
use rws_signature::{DType, Metadata, Role};

type Seeds = Vec<(&'static str, String, Vec<u8>)>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = rws_fuzz::repo_root();
    let out = std::env::args()
        .nth(1)
        .map_or_else(|| root.join("fuzz/corpus-raw"), PathBuf::from);
    let mut seeds: Seeds = Vec::new();
    signature_seeds(&root, &mut seeds)?;
    oracle_seeds(&root, &mut seeds)?;
    text_seeds(&root, &mut seeds)?;
    sensor_seeds(&root, &mut seeds)?;
    frame_seeds(&root, &mut seeds)?;
    trust_seeds(&root, &mut seeds)?;
    for (target, name, bytes) in &seeds {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("{} seeds under {}", seeds.len(), out.display());
    Ok(())
}

fn read(p: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()).into())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    Ok(v)
}

/// Four shipped `.rws` files, and small ones of each dtype (fast to mutate).
fn signature_seeds(root: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    for p in files(&root.join("signatures"), "rws")?.iter().take(4) {
        seeds.push(("rws_file", file_name(p), read(p)?));
    }
    let tensors = vec![
        SignatureTensor {
            name: "features.0.weight".into(),
            role: Role::Weight,
            shape: vec![2, 1, 3, 3],
            values: (0..18).map(|i| (i as f32 - 9.0) * 0.01).collect(),
        },
        SignatureTensor {
            name: "features.0.bias".into(),
            role: Role::Bias,
            shape: vec![2],
            values: vec![0.5, -0.25],
        },
    ];
    for (dtype, tag) in [(DType::I8, "i8"), (DType::F16, "f16"), (DType::F32, "f32")] {
        let (bytes, _) = encode(&Metadata::new("fog", 3), &tensors, dtype, Path::new("s"))?;
        seeds.push(("rws_file", format!("small-{tag}.rws"), bytes));
    }
    Ok(())
}

/// The shipped head, and one of each form cut down to two classes (small, fast to mutate).
fn oracle_seeds(root: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    let shipped = read(&root.join("signatures/oracle.rwo"))?;
    let f = rws_oracle::OracleFile::parse(Path::new("oracle.rwo"), &shipped)?;
    seeds.push(("oracle_file", "oracle.rwo".into(), shipped));
    let n = rws_oracle::N_FEATURES;
    for hidden in [0, 2] {
        use rws_oracle::head::{Dense, Parts};
        let into_out = if hidden > 0 { hidden } else { n };
        let parts = Parts {
            classes: vec!["clean".into(), "fog".into()],
            mean: vec![0.5; n],
            scale: vec![2.0; n],
            hidden: (hidden > 0).then(|| Dense::zeros(n, hidden)),
            out: Dense::zeros(into_out, 2),
            severity: Dense::zeros(n, 1),
        };
        let small = rws_oracle::OracleFile {
            head: rws_oracle::Head::new(parts)?,
            input: (32, 32),
            model_crc32c: f.model_crc32c,
        };
        seeds.push((
            "oracle_file",
            format!("small-{hidden}.rwo"),
            small.to_bytes(),
        ));
    }
    Ok(())
}

/// The shipped manifest, the configs, and control requests as docs/protocols.md writes them.
fn text_seeds(root: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    seeds.push((
        "manifest",
        "manifest.json".into(),
        read(&root.join("signatures/manifest.json"))?,
    ));
    for p in files(&root.join("firmware-config"), "toml")? {
        seeds.push(("config", file_name(&p), read(&p)?));
    }
    for p in files(&root.join("tests/data"), "toml")? {
        seeds.push(("config", format!("tests-{}", file_name(&p)), read(&p)?));
    }
    let requests = [
        r#"{"cmd":"status"}"#,
        r#"{"cmd":"override","signature":"fog","alpha":0.6,"ttl_s":600}"#,
        r#"{"cmd":"override","signature":"snow","alpha":null}"#,
        r#"{"cmd":"override","signature":"fog","alpha":9.5}"#,
        r#"{"cmd":"clear_overrides"}"#,
    ];
    for (i, r) in requests.iter().enumerate() {
        seeds.push((
            "control",
            format!("request-{i}.json"),
            r.as_bytes().to_vec(),
        ));
    }
    Ok(())
}

/// The recorded sensor logs, each for its protocol (lines as replay logs hold them), and all
/// of them for the line reader with two leading bytes (line limit, read rhythm).
fn sensor_seeds(root: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    let mut logs = files(&root.join("firmware-config/demo"), "log")?;
    logs.extend(files(&root.join("tests/data"), "log")?);
    for p in logs {
        let name = file_name(&p);
        let target = if name.contains("pwd") {
            "sensor_pwd"
        } else if name.contains("nmea") {
            "sensor_nmea"
        } else {
            "sensor_camera"
        };
        // The first 40 lines: enough of each log's variety, small enough to mutate quickly.
        // (The noisy logs hold binary bytes: lines are split as bytes.)
        let raw = read(&p)?;
        let head: Vec<&[u8]> = raw.split(|&b| b == b'\n').take(40).collect();
        let bytes = head.join(&b'\n');
        let mut framed = vec![255, 7];
        framed.extend_from_slice(&bytes);
        seeds.push(("line_reader", name.clone(), framed));
        seeds.push((target, name, bytes));
    }
    Ok(())
}

/// Demo frames as PNG and as JPEG, and their pixels as raw rgb24 and gray8 streams.
fn frame_seeds(root: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("rws-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    for p in files(&root.join("firmware-config/demo/frames"), "png")?
        .iter()
        .take(3)
    {
        seeds.push(("frame_image", file_name(p), read(p)?));
        let image = rws_image::Image::open(p)?;
        let jpeg = tmp.join("frame.jpg");
        image.save(&jpeg)?;
        seeds.push((
            "frame_image",
            file_name(p).replace(".png", ".jpg"),
            read(&jpeg)?,
        ));
        // 16×16 of the frame: [width − 1, height − 1, format] then two frames of pixels.
        let px: Vec<u8> = image.to_u8();
        let rgb: Vec<u8> = (0..16 * 16 * 3 * 2).map(|i| px[i % px.len()]).collect();
        let mut raw = vec![15, 15, 0];
        raw.extend_from_slice(&rgb);
        seeds.push(("frame_raw", file_name(p).replace(".png", ".rgb24"), raw));
        let mut gray = vec![15, 15, 1];
        gray.extend(rgb.iter().step_by(3));
        seeds.push(("frame_raw", file_name(p).replace(".png", ".gray8"), gray));
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// A fresh public key and a seal of the shipped manifest, as `rws keygen` and `rws sign`
/// write them, and the seal with its key line swapped for the key's.
fn trust_seeds(root: &Path, seeds: &mut Seeds) -> Result<(), Box<dyn std::error::Error>> {
    let key = rws_trust::SecretKey::generate("seed")?;
    seeds.push((
        "trust",
        "seed.pub".into(),
        key.public().to_text().into_bytes(),
    ));
    let manifest = read(&root.join("signatures/manifest.json"))?;
    let seal = rws_trust::Seal::sign(&manifest, &key).to_text();
    seeds.push((
        "trust",
        "manifest.json.sig".into(),
        seal.clone().into_bytes(),
    ));
    let mixed = format!("{}{}", key.public().to_text(), seal);
    seeds.push(("trust", "both.txt".into(), mixed.into_bytes()));
    Ok(())
}
