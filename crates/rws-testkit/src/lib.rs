//! rws-testkit: fixtures the workspace's tests share, generated from seeds so every run sees the
//! same data: random signatures and small ONNX models (a conv net, a BatchNorm + residual net),
//! byte positions inside `.rws` files for damage tests, paths into the repository, and the
//! binaries started the way CI needs under emulation. A dev-dependency only.

pub mod man;
pub mod prom;

use std::path::{Path, PathBuf};

use prost::Message;
use rws_rng::Rng;
use rws_runtime::onnx::build::{
    ints, node, sym_value_info, tensor as initializer, value_info as input,
};
use rws_runtime::onnx::pb;
use rws_signature::format::{DType, Metadata, Role, SignatureTensor};

/// The repository's root (where `signatures/`, `firmware-config/` and `tests/data/` are).
pub fn repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The shipped demo signature directory (`signatures/`).
pub fn demo_dir() -> PathBuf {
    repo().join("signatures")
}

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
    rws_signature::format::encode(
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

/// A copy of the shipped signature set (`signatures/`: manifest, model, every `.rws`) in
/// `dir/name`, for tests that edit, sign or break one; returns the copy's directory.
pub fn copy_signatures(dir: &Path, name: &str) -> PathBuf {
    let sigs = dir.join(name);
    std::fs::create_dir_all(&sigs).expect("the copy's directory");
    for e in std::fs::read_dir(repo().join("signatures")).expect("signatures/") {
        let p = e.expect("a directory entry").path();
        let to = sigs.join(p.file_name().expect("a file name"));
        std::fs::copy(&p, &to)
            .unwrap_or_else(|e| panic!("{} → {}: {e}", p.display(), to.display()));
    }
    sigs
}

/// Makes a FIFO at `path` (with the system's `mkfifo`, so tests need no FFI).
pub fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
}

/// A command for one of the workspace's binaries, through the emulator named by
/// `RWS_EXEC_WRAPPER` when set (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`): under qemu-user a
/// cross-built test cannot start another cross-built binary by itself.
pub fn bin(path: &str) -> std::process::Command {
    match std::env::var("RWS_EXEC_WRAPPER")
        .ok()
        .filter(|w| !w.trim().is_empty())
    {
        Some(w) => {
            let mut parts = w.split_whitespace();
            let mut c = std::process::Command::new(parts.next().unwrap_or_default());
            c.args(parts).arg(path);
            c
        }
        None => std::process::Command::new(path),
    }
}

/// Whether the calling test should run its body here: true in a child process of this test
/// binary started for `test` alone (`--exact`, one test thread); otherwise starts that child,
/// asserts it passed the one test, and returns false. For tests that measure the whole
/// process (RSS, threads, fds): the harness runs the binary's other tests in parallel threads,
/// and their allocations would land in the figure.
pub fn isolated(test: &str) -> bool {
    const CHILD: &str = "RWS_ISOLATED_TEST";
    if std::env::var(CHILD).is_ok_and(|t| t == test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = bin(&exe.to_string_lossy())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, test)
        .output()
        .expect("the test binary starts again");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{test} in its own process:\n{text}"
    );
    false
}

/// Runs binary `path` with `args`: (exit code, stdout, stderr).
pub fn run(path: &str, args: &[&str]) -> (i32, String, String) {
    let out = bin(path).args(args).output().expect("the binary starts");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether the tests run under qemu-user (CI's ARM lane sets `RWS_QEMU`).
pub fn emulated() -> bool {
    std::env::var_os("RWS_QEMU").is_some()
}

/// A small ResNet-style network for 16×16 inputs, exported for the runtime's tests and
/// benchmarks: a stem (3×3 conv without bias, BatchNorm, ReLU6 as `Clip`), one basic block (two
/// 3×3 convs with BatchNorm and a 1×1 convolution + BatchNorm on the shortcut, joined by `Add`),
/// HardSwish, global average pooling and a linear classifier; opset 14, seeded random weights.
///
/// With `symbolic`, the batch dimension is the symbol `N` and every intermediate tensor carries
/// a `value_info` with symbolic dimensions, as PyTorch's exporter writes with dynamic axes.
/// Returns the model and its parameters `(name, role, shape)` in graph order.
pub fn residual_demo(
    seed: u64,
    symbolic: bool,
) -> (pb::ModelProto, Vec<(String, Role, Vec<usize>)>) {
    let mut b = GraphBuilder {
        rng: Rng::new(seed),
        params: Vec::new(),
        initializer: Vec::new(),
        nodes: Vec::new(),
    };
    b.conv_bn("stem", "input", (3, 8, 3));
    b.add("relu6.min", Role::Bias, vec![], vec![0.0]);
    b.add("relu6.max", Role::Bias, vec![], vec![6.0]);
    b.op("Clip", &["stem.bn", "relu6.min", "relu6.max"], "stem.relu6");
    b.conv_bn("block.a", "stem.relu6", (8, 16, 3));
    b.op("Relu", &["block.a.bn"], "block.a.relu");
    b.conv_bn("block.b", "block.a.relu", (16, 16, 3));
    b.conv_bn("block.down", "stem.relu6", (8, 16, 1));
    b.op("Add", &["block.b.bn", "block.down.bn"], "block.add");
    b.op("HardSwish", &["block.add"], "block.out");
    b.op("GlobalAveragePool", &["block.out"], "pool");
    b.op("Flatten", &["pool"], "flat");
    let fc_w: Vec<f32> = (0..10 * 16)
        .map(|_| (b.rng.normal() * 0.25) as f32)
        .collect();
    b.add("fc.weight", Role::Weight, vec![10, 16], fc_w);
    b.add("fc.bias", Role::Bias, vec![10], vec![0.01; 10]);
    let mut gemm = node("Gemm", &["flat", "fc.weight", "fc.bias"], "logits");
    gemm.attribute = vec![pb::AttributeProto {
        name: "transB".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    }];
    b.nodes.push(gemm);
    let GraphBuilder {
        mut params,
        initializer,
        nodes,
        ..
    } = b;
    params.retain(|p| !p.0.starts_with("relu6"));
    let batch = if symbolic { None } else { Some(1) };
    let value_info = if symbolic {
        let shapes: [(&str, usize, usize); 6] = [
            ("stem.conv", 8, 16),
            ("stem.relu6", 8, 16),
            ("block.a.relu", 16, 16),
            ("block.add", 16, 16),
            ("block.out", 16, 16),
            ("pool", 16, 1),
        ];
        shapes
            .iter()
            .map(|&(n, c, s)| sym_value_info(n, &[None, Some(c), Some(s), Some(s)]))
            .collect()
    } else {
        Vec::new()
    };
    let graph = pb::GraphProto {
        name: "residual-demo".into(),
        node: nodes,
        initializer,
        input: vec![sym_value_info(
            "input",
            &[batch, Some(3), Some(16), Some(16)],
        )],
        output: vec![sym_value_info("logits", &[batch, Some(10)])],
        value_info,
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 14,
        }],
        producer_name: "rws-testkit".into(),
        graph: Some(graph),
        ..Default::default()
    };
    (model, params)
}

/// Accumulates the nodes and initializers of [`residual_demo`].
struct GraphBuilder {
    rng: Rng,
    params: Vec<(String, Role, Vec<usize>)>,
    initializer: Vec<pb::TensorProto>,
    nodes: Vec<pb::NodeProto>,
}

impl GraphBuilder {
    fn add(&mut self, name: &str, role: Role, shape: Vec<usize>, values: Vec<f32>) {
        self.initializer.push(initializer(name, &shape, &values));
        self.params.push((name.to_string(), role, shape));
    }

    fn op(&mut self, op: &str, inputs: &[&str], output: &str) {
        self.nodes.push(node(op, inputs, output));
    }

    /// Per-channel values `base + spread · r`, r normal or uniform in [0, 1).
    fn channel_values(&mut self, n: usize, base: f64, spread: f64, uniform: bool) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let r = if uniform {
                    self.rng.uniform()
                } else {
                    self.rng.normal()
                };
                (base + spread * r) as f32
            })
            .collect()
    }

    /// `{prefix}.conv` (k×k, same padding, no bias, Kaiming-normal), then BatchNorm to
    /// `{prefix}.bn`.
    fn conv_bn(&mut self, prefix: &str, input: &str, (cin, cout, k): (usize, usize, usize)) {
        let std = (2.0 / (cin * k * k) as f64).sqrt();
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| (self.rng.normal() * std) as f32)
            .collect();
        let weight = format!("{prefix}.conv.weight");
        self.add(&weight, Role::Weight, vec![cout, cin, k, k], w);
        let conv_out = format!("{prefix}.conv");
        let mut c = node("Conv", &[input, &weight], &conv_out);
        let p = (k / 2) as i64;
        c.attribute = vec![
            ints("kernel_shape", &[k as i64, k as i64]),
            ints("pads", &[p, p, p, p]),
        ];
        self.nodes.push(c);
        let bn = |s: &str| format!("{prefix}.bn.{s}");
        let values = [
            (
                Role::BnScale,
                "weight",
                self.channel_values(cout, 1.0, 0.1, false),
            ),
            (
                Role::BnBias,
                "bias",
                self.channel_values(cout, 0.0, 0.1, false),
            ),
            (
                Role::BnMean,
                "running_mean",
                self.channel_values(cout, 0.0, 0.1, false),
            ),
            (
                Role::BnVar,
                "running_var",
                self.channel_values(cout, 0.5, 1.0, true),
            ),
        ];
        let mut inputs = vec![conv_out];
        for (role, name, v) in values {
            self.add(&bn(name), role, vec![cout], v);
            inputs.push(bn(name));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.op("BatchNormalization", &refs, &format!("{prefix}.bn"));
    }
}

/// θ = base + mix·(toward − base) + noise: models "trained from" a shared init, whose deltas share
/// a direction the projection must remove.
pub fn derive(base: &[u8], toward: &[u8], mix: f32, noise: f64, seed: u64) -> Vec<u8> {
    use rws_runtime::onnx::OnnxModel;
    let b = OnnxModel::from_bytes(base, "base").expect("base decodes");
    let t = OnnxModel::from_bytes(toward, "toward").expect("toward decodes");
    let mut out = OnnxModel::from_bytes(base, "derived").expect("base decodes");
    let mut rng = Rng::new(seed);
    for info in b.initializers().expect("initializers") {
        let (x, y) = (
            b.initializer_f32(&info.name).expect("f32"),
            t.initializer_f32(&info.name).expect("f32"),
        );
        let v: Vec<f32> = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| x + mix * (y - x) + (noise * rng.normal()) as f32)
            .collect();
        out.set_initializer_f32(&info.name, &v).expect("same shape");
    }
    out.to_bytes()
}

/// The extraction test family, written into `dir` as `<name>.onnx`: θ0 (`t0`), θstd (`std`),
/// robust models `fog` and `snow`, `same` (= θ0) and `wide` (another architecture), with a
/// BatchNormalization after the first convolution when `bn`. Returns (name, CRC-32C) per file.
pub fn extract_models(dir: &Path, bn: bool) -> Vec<(String, u32)> {
    let t0 = cnn_onnx(1, false, bn, 0.1);
    let target = cnn_onnx(2, false, bn, 0.1);
    let std = derive(&t0, &target, 0.05, 0.0, 0);
    let fog = derive(&std, &cnn_onnx(3, false, bn, 0.1), 0.02, 0.0, 0);
    let snow = derive(&t0, &target, 0.03, 0.002, 9);
    let wide = cnn_onnx(1, true, bn, 0.1);
    let files = [
        ("t0", &t0),
        ("std", &std),
        ("fog", &fog),
        ("snow", &snow),
        ("same", &t0),
        ("wide", &wide),
    ];
    files
        .iter()
        .map(|(name, bytes)| {
            let file = format!("{name}.onnx");
            std::fs::write(dir.join(&file), bytes).expect("writing a test model");
            (file, crc32c::crc32c(bytes))
        })
        .collect()
}

/// One committed numpy reference (`tests/data/extract/<name>.json`): the robust models, the
/// number of layers, and whether the family has BatchNorm.
pub struct ReferenceCase {
    pub name: &'static str,
    pub bn: bool,
    pub robust: &'static [&'static str],
    pub layers: usize,
}

/// The cases `tests/data/extract/` holds; `rws-lab`'s `make_extract_refs` example writes them
/// with `scripts/reference_extract.py`, and its extraction tests compare against them.
pub const REFERENCE_CASES: &[ReferenceCase] = &[
    ReferenceCase {
        name: "plain-k2",
        bn: false,
        robust: &["fog", "snow"],
        layers: 2,
    },
    ReferenceCase {
        name: "plain-k5",
        bn: false,
        robust: &["fog"],
        layers: 5,
    },
    ReferenceCase {
        name: "bn-k1",
        bn: true,
        robust: &["fog"],
        layers: 1,
    },
];

/// The command line of `scripts/reference_extract.py` for `case`, models in `dir`.
pub fn reference_args(dir: &Path, case: &ReferenceCase) -> Vec<String> {
    let p = |n: &str| dir.join(format!("{n}.onnx")).to_string_lossy().into_owned();
    let mut args = vec![
        repo()
            .join("scripts/reference_extract.py")
            .to_string_lossy()
            .into_owned(),
        "--init".into(),
        p("t0"),
        "--standard".into(),
        p("std"),
    ];
    for r in case.robust {
        args.push("--robust".into());
        args.push(format!("{r}={}", p(r)));
    }
    args.push("--layers".into());
    args.push(case.layers.to_string());
    args
}
