//! Timings: the patch kernel against memcpy (here) and the runtime against the unpatched plan
//! ([`runtime`]), each in one process, interleaved.
//!
//! Speed is measured here, never asserted in tests. Every figure is a ratio against a baseline
//! timed in the same process and in alternating rounds, so machine noise hits both sides alike;
//! the median of the rounds is reported. `benches/patch.rs` prints the kernel rows; `rws bench`
//! prints the runtime report.

pub mod probe;
pub mod runtime;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use rws_rng::Rng;
use rws_signature::format::{encode, DType, Metadata, Role, SignatureFile, SignatureTensor};
use rws_signature::patch::Patcher;

/// The first five convolutions of VGG-16 on CIFAR (`features.0/2/5/7/10`) with their biases:
/// 555,328 parameters, the layers the paper patches.
pub fn vgg16_shallow_layers() -> Vec<(String, Role, Vec<usize>)> {
    let convs = [
        (0, 64, 3),
        (2, 64, 64),
        (5, 128, 64),
        (7, 128, 128),
        (10, 256, 128),
    ];
    convs
        .iter()
        .flat_map(|&(i, out, inp)| {
            [
                (
                    format!("features.{i}.weight"),
                    Role::Weight,
                    vec![out, inp, 3, 3],
                ),
                (format!("features.{i}.bias"), Role::Bias, vec![out]),
            ]
        })
        .collect()
}

/// One measured configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PatchTiming {
    /// What was run, e.g. `i8 x4` or `naive i8 x1`.
    pub label: String,
    /// Active signatures.
    pub active: usize,
    /// Median time of one full patch of all tensors, microseconds.
    pub patch_us: f64,
    /// Median time of copying the same output bytes, microseconds.
    pub memcpy_us: f64,
    /// patch_us / memcpy_us.
    pub ratio: f64,
}

/// Random signatures (in memory, validated like files) over `layers`.
pub fn synthetic_signatures(
    layers: &[(String, Role, Vec<usize>)],
    count: usize,
    dtype: DType,
    seed: u64,
) -> Vec<SignatureFile> {
    (0..count)
        .map(|s| {
            let tensors = random_tensors(layers, &mut Rng::new(seed + s as u64));
            let label = format!("synthetic-{s}.rws");
            let meta = Metadata::new(&format!("synthetic{s}"), 5);
            // Encoding synthetic finite data of valid shapes cannot fail.
            let (bytes, _) = encode(&meta, &tensors, dtype, Path::new(&label)).expect("encode");
            SignatureFile::from_bytes(&bytes, &label).expect("validate")
        })
        .collect()
}

/// Gaussian tensors (σ = 0.01) over `layers`: synthetic signature contents.
pub fn random_tensors(
    layers: &[(String, Role, Vec<usize>)],
    rng: &mut Rng,
) -> Vec<SignatureTensor> {
    layers
        .iter()
        .map(|(name, role, shape)| SignatureTensor {
            name: name.clone(),
            role: *role,
            shape: shape.clone(),
            values: (0..shape.iter().product::<usize>())
                .map(|_| (rng.normal() * 0.01) as f32)
                .collect(),
        })
        .collect()
}

/// Times one patch with `active` of `sigs` switched on, against memcpy of the output.
pub fn time_patch(
    sigs: &[SignatureFile],
    clean: &[Vec<f32>],
    active: usize,
    rounds: usize,
    label: &str,
) -> PatchTiming {
    let refs: Vec<&SignatureFile> = sigs.iter().collect();
    // Binding all sigs with only `active` non-zero shows that loaded-but-off costs nothing.
    let patcher = Patcher::new(&refs).expect("synthetic signatures share one layout");
    let clean_refs: Vec<&[f32]> = clean.iter().map(|v| v.as_slice()).collect();
    let mut out: Vec<Vec<f32>> = clean.iter().map(|v| vec![0.0; v.len()]).collect();
    let alphas: Vec<f32> = (0..sigs.len())
        .map(|s| {
            if s < active {
                0.5 + s as f32 * 0.1
            } else {
                0.0
            }
        })
        .collect();
    let patch = |out: &mut Vec<Vec<f32>>| {
        patcher
            .patch(black_box(&clean_refs), black_box(&alphas), out)
            .expect("shapes agree");
    };
    let (patch_us, memcpy_us) = interleaved(rounds, &mut out, patch, |o| copy_all(o, clean));
    PatchTiming {
        label: label.to_string(),
        active,
        patch_us,
        memcpy_us,
        ratio: patch_us / memcpy_us,
    }
}

/// The naive way, for contrast: one indexed loop per element, scale looked up per element.
pub fn time_naive(sig: &SignatureFile, clean: &[Vec<f32>], rounds: usize) -> PatchTiming {
    let mut out: Vec<Vec<f32>> = clean.iter().map(|v| vec![0.0; v.len()]).collect();
    let naive = |out: &mut Vec<Vec<f32>>| {
        for (k, (o, c)) in out.iter_mut().zip(clean).enumerate() {
            let rws_signature::format::TensorData::I8 { q, scales } = sig.data(k) else {
                return;
            };
            let group = q.len() / scales.len();
            for i in 0..o.len() {
                o[i] = black_box(c[i] + 0.5 * scales[i / group] * f32::from(q[i]));
            }
        }
    };
    let (patch_us, memcpy_us) = interleaved(rounds, &mut out, naive, |o| copy_all(o, clean));
    PatchTiming {
        label: "naive indexed i8 x1".into(),
        active: 1,
        patch_us,
        memcpy_us,
        ratio: patch_us / memcpy_us,
    }
}

/// The baseline: copying the clean tensors into the output buffers.
fn copy_all(out: &mut [Vec<f32>], clean: &[Vec<f32>]) {
    for (o, c) in out.iter_mut().zip(clean) {
        o.copy_from_slice(black_box(c));
    }
}

/// Alternates `a` and `b` for `rounds` rounds (each round runs each enough times to take ~2 ms)
/// and returns their median per-call times in microseconds.
fn interleaved<T>(
    rounds: usize,
    state: &mut T,
    mut a: impl FnMut(&mut T),
    mut b: impl FnMut(&mut T),
) -> (f64, f64) {
    // Warm caches and pick an iteration count from a first timing of `b`.
    a(state);
    b(state);
    let t = Instant::now();
    b(state);
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let iters = ((2e-3 / one) as usize).clamp(1, 10_000);
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        for _ in 0..iters {
            a(state);
        }
        ta.push(t.elapsed().as_secs_f64() / iters as f64);
        let t = Instant::now();
        for _ in 0..iters {
            b(state);
        }
        tb.push(t.elapsed().as_secs_f64() / iters as f64);
        black_box(&*state);
    }
    (median(&mut ta) * 1e6, median(&mut tb) * 1e6)
}

/// The median of `v` (sorted in place); `v` must not be empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|x, y| x.total_cmp(y));
    v[v.len() / 2]
}

/// The full patch-kernel benchmark on VGG-16's shallow layers: i8 with 1, 2, 4, 8 active of 8
/// loaded, f16 and f32 with one, and the naive loop.
pub fn patch_kernel_suite(rounds: usize) -> Vec<PatchTiming> {
    let layers = vgg16_shallow_layers();
    let mut rng = Rng::new(42);
    let clean: Vec<Vec<f32>> = layers
        .iter()
        .map(|(_, _, s)| {
            (0..s.iter().product::<usize>())
                .map(|_| (rng.normal() * 0.05) as f32)
                .collect()
        })
        .collect();
    let i8s = synthetic_signatures(&layers, 8, DType::I8, 100);
    let mut rows: Vec<PatchTiming> = [1, 2, 4, 8]
        .iter()
        .map(|&n| time_patch(&i8s, &clean, n, rounds, &format!("i8 x{n} (of 8 loaded)")))
        .collect();
    for dtype in [DType::F16, DType::F32] {
        let sigs = synthetic_signatures(&layers, 1, dtype, 200);
        rows.push(time_patch(&sigs, &clean, 1, rounds, &format!("{dtype} x1")));
    }
    rows.push(time_naive(&i8s[0], &clean, rounds));
    rows
}
