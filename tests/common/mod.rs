//! Fixtures shared by the integration tests, generated from seeds so every run sees the same data.
#![allow(dead_code)]

use prost::Message;
use rws::arch::{ints, node, tensor as initializer, value_info as input};
use rws::format::{DType, Metadata, Role, SignatureTensor};
use rws::rng::Rng;
use tract_onnx::pb;

/// A small conv net's patched tensors: (name, role, shape).
pub fn small_layers() -> Vec<(&'static str, Role, Vec<usize>)> {
    vec![
        ("conv0.weight", Role::Weight, vec![8, 3, 3, 3]),
        ("conv0.bias", Role::Bias, vec![8]),
        ("conv1.weight", Role::Weight, vec![16, 8, 3, 3]),
        ("conv1.bias", Role::Bias, vec![16]),
    ]
}

/// Gaussian values with per-row magnitudes that differ, as real signatures do.
pub fn random_tensor(rng: &mut Rng, shape: &[usize], scale: f64) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let rows = if shape.len() >= 2 { shape[0] } else { 1 };
    let row_len = n / rows;
    (0..n)
        .map(|i| {
            let row_gain = 1.0 + (i / row_len) as f64 * 0.37;
            (rng.normal() * scale * row_gain) as f32
        })
        .collect()
}

pub fn signature_tensors(seed: u64, layers: &[(&str, Role, Vec<usize>)]) -> Vec<SignatureTensor> {
    let mut rng = Rng::new(seed);
    layers
        .iter()
        .map(|(name, role, shape)| SignatureTensor {
            name: name.to_string(),
            role: *role,
            shape: shape.clone(),
            values: random_tensor(&mut rng, shape, 0.01),
        })
        .collect()
}

pub fn meta(corruption: &str) -> Metadata {
    let mut m = Metadata::new(corruption, 5);
    m.group = "weather".into();
    m.source_model = "test-cnn".into();
    m.source_dataset = "synthetic".into();
    m.layers = 2;
    m
}

pub fn encode(seed: u64, dtype: DType) -> Vec<u8> {
    let tensors = signature_tensors(seed, &small_layers());
    rws::format::encode(
        &meta("fog"),
        &tensors,
        dtype,
        std::path::Path::new("mem.rws"),
    )
    .expect("encode")
    .0
}

/// A runnable ONNX model (conv-relu-conv-relu-flatten-gemm on 1×3×8×8) whose conv tensors are
/// exactly `small_layers()`, or, with `wide = true`, an architecture whose conv1 has 32 channels.
pub fn small_cnn_onnx(seed: u64, wide: bool) -> Vec<u8> {
    cnn_onnx(seed, wide, false, 0.1)
}

/// The same network, optionally with a BatchNormalization after conv0 (`bn.scale`, `bn.bias`,
/// `bn.mean`, `bn.var`), weights drawn with standard deviation `scale`.
pub fn cnn_onnx(seed: u64, wide: bool, bn: bool, scale: f64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let c1 = if wide { 32 } else { 16 };
    let mut layers: Vec<(&str, Vec<usize>)> = vec![
        ("conv0.weight", vec![8, 3, 3, 3]),
        ("conv0.bias", vec![8]),
        ("conv1.weight", vec![c1, 8, 3, 3]),
        ("conv1.bias", vec![c1]),
        ("fc.weight", vec![10, c1 * 64]),
        ("fc.bias", vec![10]),
    ];
    if bn {
        for n in ["bn.scale", "bn.bias", "bn.mean"] {
            layers.push((n, vec![8]));
        }
    }
    let mut initializers: Vec<pb::TensorProto> = layers
        .iter()
        .map(|(n, s)| initializer(n, s, &random_tensor(&mut rng, s, scale)))
        .collect();
    let mut conv0 = node("Conv", &["x", "conv0.weight", "conv0.bias"], "c0");
    conv0.attribute = vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])];
    let mut nodes = vec![conv0];
    let relu_in = if bn {
        let var: Vec<f32> = (0..8).map(|_| (1.0 + rng.uniform()) as f32).collect();
        initializers.push(initializer("bn.var", &[8], &var));
        nodes.push(node(
            "BatchNormalization",
            &["c0", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
            "b0",
        ));
        "b0"
    } else {
        "c0"
    };
    let mut conv1 = node("Conv", &["r0", "conv1.weight", "conv1.bias"], "c1");
    conv1.attribute = vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])];
    let mut gemm = node("Gemm", &["f", "fc.weight", "fc.bias"], "logits");
    gemm.attribute = vec![pb::AttributeProto {
        name: "transB".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    }];
    nodes.extend([
        node("Relu", &[relu_in], "r0"),
        conv1,
        node("Relu", &["c1"], "r1"),
        node("Flatten", &["r1"], "f"),
        gemm,
    ]);
    let graph = pb::GraphProto {
        name: "small_cnn".into(),
        node: nodes,
        initializer: initializers,
        input: vec![input("x", &[1, 3, 8, 8])],
        output: vec![input("logits", &[1, 10])],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "rws-tests".into(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// Byte positions of one table entry's fields, located by walking the table as the spec says.
pub struct EntryPos {
    pub dtype: usize,
    pub dims: usize,
    pub payload_offset: usize,
    pub payload_len: usize,
    pub payload_crc: usize,
    pub scale_count: usize,
    pub scales: usize,
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn entry_positions(b: &[u8]) -> Vec<EntryPos> {
    let table = u64_at(b, 40) as usize;
    let count = u32_at(b, 36) as usize;
    let mut p = table;
    let mut out = Vec::new();
    for _ in 0..count {
        let name_len = u16::from_le_bytes([b[p], b[p + 1]]) as usize;
        p += 2 + name_len;
        let dtype = p;
        let rank = b[p + 2] as usize;
        p += 4;
        let dims = p;
        p += 8 * rank;
        let payload_offset = p;
        let payload_len = p + 8;
        let payload_crc = p + 16;
        let scale_count = p + 20;
        let n = u32_at(b, scale_count) as usize;
        let scales = p + 24;
        p = scales + 4 * n + 12;
        out.push(EntryPos {
            dtype,
            dims,
            payload_offset,
            payload_len,
            payload_crc,
            scale_count,
            scales,
        });
    }
    out
}

/// Recomputes the header CRC independently of the library (spec: CRC-32C over header bytes
/// 0..60, then the metadata, then the table).
pub fn reseal(b: &mut [u8]) {
    let meta = (u64_at(b, 24) as usize, u32_at(b, 32) as usize);
    let table = (u64_at(b, 40) as usize, u32_at(b, 48) as usize);
    let fits = |(o, l): (usize, usize)| o.checked_add(l).is_some_and(|e| e <= b.len());
    if !fits(meta) || !fits(table) {
        return; // nothing to seal; the reader's bounds checks come before the CRC
    }
    let mut crc = crc32c::crc32c(&b[..60]);
    crc = crc32c::crc32c_append(crc, &b[meta.0..meta.0 + meta.1]);
    crc = crc32c::crc32c_append(crc, &b[table.0..table.0 + table.1]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// A command for one of the crate's binaries (through `RWS_EXEC_WRAPPER` under emulation).
pub fn bin(path: &str) -> std::process::Command {
    rws::bench::runtime::command(std::path::Path::new(path))
}

/// Runs the `rws` binary: (exit code, stdout, stderr).
pub fn rws(args: &[&str]) -> (i32, String, String) {
    let out = bin(env!("CARGO_BIN_EXE_rws")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
