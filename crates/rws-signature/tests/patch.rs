//! The patch engine against an f64 reference: exact take-off, composition, every dtype.

use rws_rng::Rng;
use rws_signature::format::{DType, Role, SignatureFile};
use rws_signature::patch::{patch_into, PatchError, Patcher, Term};
use rws_testkit::*;

fn sig(seed: u64, dtype: DType) -> SignatureFile {
    SignatureFile::from_bytes(&encode(seed, dtype), format!("sig{seed}.rws")).unwrap()
}

fn clean_tensors(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    small_layers()
        .iter()
        .map(|(_, _, shape)| random_tensor(&mut rng, shape, 0.2))
        .collect()
}

fn run(patcher: &Patcher<'_>, clean: &[Vec<f32>], alphas: &[f32]) -> Vec<Vec<f32>> {
    let refs: Vec<&[f32]> = clean.iter().map(|v| v.as_slice()).collect();
    let mut out: Vec<Vec<f32>> = clean.iter().map(|v| vec![f32::NAN; v.len()]).collect();
    patcher.patch(&refs, alphas, &mut out).unwrap();
    out
}

/// f64 reference: clean + Σ α·dequant(sig), with dequantization itself done in f64.
fn reference(clean: &[Vec<f32>], sigs: &[&SignatureFile], alphas: &[f32]) -> Vec<Vec<f64>> {
    clean
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut acc: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
            for (s, &a) in sigs.iter().zip(alphas) {
                let vals: Vec<f64> = match s.data(k) {
                    rws_signature::format::TensorData::I8 { q, scales } => {
                        let g = q.len() / scales.len();
                        q.iter()
                            .enumerate()
                            .map(|(i, &x)| f64::from(x) * f64::from(scales[i / g]))
                            .collect()
                    }
                    other => other.to_f32().into_iter().map(f64::from).collect(),
                };
                for (x, v) in acc.iter_mut().zip(vals) {
                    *x += f64::from(a) * v;
                }
            }
            acc
        })
        .collect()
}

/// Each element within 1e-6 of the magnitude of the terms that produced it.
fn assert_close(got: &[Vec<f32>], want: &[Vec<f64>], clean: &[Vec<f32>]) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
            let scale = f64::from(clean[k][i]).abs().max(w.abs()).max(1e-3);
            let rel = (f64::from(g) - w).abs() / scale;
            assert!(
                rel <= 1e-6,
                "tensor {k} element {i}: {g} vs {w} (rel {rel:e})"
            );
        }
    }
}

#[test]
fn all_alpha_zero_restores_clean_bit_for_bit() {
    let clean = clean_tensors(1);
    for dtype in [DType::I8, DType::F16, DType::F32] {
        let (a, b) = (sig(2, dtype), sig(3, dtype));
        let patcher = Patcher::new(&[&a, &b]).unwrap();
        // Patch on, then off, reusing the output buffers: off must not carry any residue.
        let refs: Vec<&[f32]> = clean.iter().map(|v| v.as_slice()).collect();
        let mut out: Vec<Vec<f32>> = clean.iter().map(|v| vec![0.0; v.len()]).collect();
        patcher.patch(&refs, &[0.7, -1.3], &mut out).unwrap();
        assert_ne!(out, clean);
        patcher.patch(&refs, &[0.0, 0.0], &mut out).unwrap();
        for (o, c) in out.iter().zip(&clean) {
            assert!(o.iter().zip(c).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        // -0.0 is also "off".
        let off = run(&patcher, &clean, &[-0.0, 0.0]);
        assert!(off
            .iter()
            .flatten()
            .zip(clean.iter().flatten())
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn matches_f64_reference_for_every_dtype_and_sign() {
    let clean = clean_tensors(4);
    for dtype in [DType::I8, DType::F16, DType::F32] {
        let s = sig(5, dtype);
        let patcher = Patcher::new(&[&s]).unwrap();
        for alpha in [1.0f32, 0.35, -0.8, 2.5] {
            let got = run(&patcher, &clean, &[alpha]);
            assert_close(&got, &reference(&clean, &[&s], &[alpha]), &clean);
        }
    }
}

#[test]
fn composition_of_two_signatures() {
    let clean = clean_tensors(6);
    let (fog, snow) = (sig(7, DType::I8), sig(8, DType::I8));
    let both = Patcher::new(&[&fog, &snow]).unwrap();
    let got = run(&both, &clean, &[0.6, 0.9]);
    assert_close(
        &got,
        &reference(&clean, &[&fog, &snow], &[0.6, 0.9]),
        &clean,
    );
    // Order of signatures does not matter beyond rounding.
    let swapped = Patcher::new(&[&snow, &fog]).unwrap();
    let got2 = run(&swapped, &clean, &[0.9, 0.6]);
    assert_close(
        &got2,
        &reference(&clean, &[&fog, &snow], &[0.6, 0.9]),
        &clean,
    );
    // Mixed dtypes compose too.
    let f16 = sig(9, DType::F16);
    let mixed = Patcher::new(&[&fog, &f16]).unwrap();
    let got3 = run(&mixed, &clean, &[1.0, -0.5]);
    assert_close(
        &got3,
        &reference(&clean, &[&fog, &f16], &[1.0, -0.5]),
        &clean,
    );
}

#[test]
fn inactive_signatures_change_nothing() {
    let clean = clean_tensors(10);
    let sigs: Vec<SignatureFile> = (20..26).map(|s| sig(s, DType::I8)).collect();
    let refs: Vec<&SignatureFile> = sigs.iter().collect();
    let all = Patcher::new(&refs).unwrap();
    let one = Patcher::new(&refs[2..3]).unwrap();
    let mut alphas = vec![0.0; sigs.len()];
    alphas[2] = 0.8;
    assert_eq!(run(&all, &clean, &alphas), run(&one, &clean, &[0.8]));
}

#[test]
fn batchnorm_variance_stays_positive() {
    let layers = vec![("bn.running_var", Role::BnVar, vec![4])];
    let mut tensors = signature_tensors(1, &layers);
    tensors[0].values = vec![1.0, 1.0, 1.0, 1.0];
    let bytes =
        rws_signature::format::encode(&meta("fog"), &tensors, DType::F32, "bn.rws".as_ref())
            .unwrap()
            .0;
    let s = SignatureFile::from_bytes(&bytes, "bn.rws").unwrap();
    let clean = vec![vec![0.5f32, 2.0, 0.1, 3.0]];
    let out = run(&Patcher::new(&[&s]).unwrap(), &clean, &[-1.0]);
    assert_eq!(out[0][1], 1.0);
    assert!(out[0].iter().all(|&v| v > 0.0), "{:?}", out[0]);
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let s = sig(1, DType::I8);
    let p = Patcher::new(&[&s]).unwrap();
    let clean = clean_tensors(1);
    let refs: Vec<&[f32]> = clean.iter().map(|v| v.as_slice()).collect();
    let mut out: Vec<Vec<f32>> = clean.clone();
    assert!(matches!(
        p.patch(&refs, &[1.0, 2.0], &mut out),
        Err(PatchError::Count { .. })
    ));
    assert!(matches!(
        p.patch(&refs, &[f32::NAN], &mut out),
        Err(PatchError::Alpha { .. })
    ));
    let mut short = vec![0f32; 3];
    let term = Term {
        data: s.data(0),
        alpha: 1.0,
    };
    assert!(matches!(
        patch_into("x", Role::Weight, &clean[0], &[term], &mut short),
        Err(PatchError::Length { .. })
    ));
    // Two signatures that disagree on a shared tensor's shape cannot be bound together.
    let other = vec![("conv0.weight", Role::Weight, vec![4, 3, 3, 3])];
    let t = signature_tensors(1, &other);
    let bytes = rws_signature::format::encode(&meta("snow"), &t, DType::I8, "o.rws".as_ref())
        .unwrap()
        .0;
    let o = SignatureFile::from_bytes(&bytes, "o.rws").unwrap();
    let err = Patcher::new(&[&s, &o]).unwrap_err();
    assert!(err.to_string().contains("conv0.weight"), "{err}");
}
