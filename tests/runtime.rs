//! The device runtime: split-model prefix plans against offline patching, exact take-off, frames
//! that never mix two coefficient sets, BatchNorm + residual models, and refusals.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rws::apply::patch_model;
use rws::format::{encode, DType, Metadata, SignatureFile, SignatureTensor};
use rws::onnx::OnnxModel;
use rws::rng::Rng;
use rws::runtime::{self, Runtime, RuntimeError, RuntimeOptions, Session};
use tract_onnx::prelude::*;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("signatures")
}

fn demo_sigs(names: &[&str]) -> Vec<SignatureFile> {
    names
        .iter()
        .map(|n| {
            SignatureFile::open(demo_dir().join(format!("{n}.rws"))).expect("shipped signature")
        })
        .collect()
}

/// A deterministic input in [0, 1].
fn frame(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
    Tensor::from_shape(shape, &v).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Output of the whole model `proto` optimized as one plan (what `rws patch` + tract gives).
fn offline(proto: &tract_onnx::pb::ModelProto, shape: &[usize], input: &Tensor) -> Vec<f32> {
    let plan = runtime::full_plan(Path::new("offline.onnx"), proto, shape).unwrap();
    runtime::run_plan(Path::new("offline.onnx"), &plan, input.clone()).unwrap()
}

#[test]
fn patched_prefix_matches_offline_patching_and_zero_is_the_clean_model() {
    let names = ["fog", "contrast", "gaussian_noise"];
    let rt = Arc::new(
        Runtime::load(
            &demo_dir().join("clean.onnx"),
            demo_sigs(&names),
            &RuntimeOptions::default(),
        )
        .unwrap(),
    );
    assert_eq!(rt.input_shape(), [1, 3, 32, 32]);
    let clean = OnnxModel::open(demo_dir().join("clean.onnx")).unwrap();
    let alphas = [0.8f32, 0.0, 0.5];
    let sigs = demo_sigs(&names);
    let pairs: Vec<(&SignatureFile, f32)> = sigs.iter().zip(alphas).collect();
    let patched = patch_model(&clean, &pairs).unwrap();
    let prefix = rt.build_prefix(&alphas).unwrap();
    let zero = rt.build_prefix(&[0.0; 3]).unwrap();
    assert!(
        Arc::ptr_eq(&zero, rt.clean_prefix()),
        "α = 0 reuses the clean prefix"
    );
    for seed in 0..8 {
        let x = frame(rt.input_shape(), seed);
        let got = rt.run_with(&prefix, x.clone()).unwrap();
        let want = offline(patched.proto(), rt.input_shape(), &x);
        let d = max_abs_diff(&got, &want);
        assert!(
            d <= 1e-5,
            "frame {seed}: runtime vs rws patch differ by {d}"
        );
        let off = rt.run_with(&zero, x.clone()).unwrap();
        let clean_out = offline(clean.proto(), rt.input_shape(), &x);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&off),
            bits(&clean_out),
            "frame {seed}: α = 0 is not the clean model"
        );
        assert!(max_abs_diff(&got, &off) > 1e-3, "the patch has an effect");
    }
}

#[test]
fn frames_toggled_from_another_thread_never_mix_two_sets() {
    let rt = Arc::new(
        Runtime::load(
            &demo_dir().join("clean.onnx"),
            demo_sigs(&["fog"]),
            &RuntimeOptions::default(),
        )
        .unwrap(),
    );
    let x = frame(rt.input_shape(), 42);
    let on_plan = rt.build_prefix(&[1.0]).unwrap();
    let on = rt.run_with(&on_plan, x.clone()).unwrap();
    let off = rt.run_with(rt.clean_prefix(), x.clone()).unwrap();
    assert!(
        max_abs_diff(&on, &off) > 1e-3,
        "the signature must change the output"
    );

    let mut session = Session::new(rt.clone()).unwrap();
    let control = session.controller();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let toggler = std::thread::spawn(move || {
        let mut k = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            let alpha = if k.is_multiple_of(2) { 1.0 } else { 0.0 };
            control.set_coefficients(&[(0, alpha)]).unwrap();
            k += 1;
            std::thread::sleep(Duration::from_micros(300));
        }
        k
    });
    let (mut n_on, mut n_off) = (0, 0);
    // 1000 frames natively (a fraction of a second); under qemu-user, where a frame takes ~45 ms
    // and the toggler still switches every 0.3 ms, stop after one second once 100 frames ran.
    let started = std::time::Instant::now();
    for i in 0..1000 {
        if i >= 100 && started.elapsed() > Duration::from_secs(1) {
            break;
        }
        let out = session.run(x.clone()).unwrap();
        let expected = if out.alphas[0] == 1.0 { &on } else { &off };
        assert!(
            out.logits == *expected,
            "frame {i} (α = {}) is neither the on nor the off output",
            out.alphas[0]
        );
        if out.logits == on {
            n_on += 1;
        } else {
            n_off += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let requests = toggler.join().unwrap();
    assert!(requests > 10, "the toggler ran ({requests} requests)");
    assert!(
        n_on > 0 && n_off > 0,
        "both sets were used: on {n_on}, off {n_off}"
    );
    let stats = session.stats();
    assert!(stats.builds >= 1 && stats.builds <= stats.requests);
}

#[test]
fn session_switches_and_takes_everything_off_exactly() {
    let rt = Arc::new(
        Runtime::load(
            &demo_dir().join("clean.onnx"),
            demo_sigs(&["fog", "snow"]),
            &RuntimeOptions::default(),
        )
        .unwrap(),
    );
    let x = frame(rt.input_shape(), 7);
    let mut s = Session::new(rt.clone()).unwrap();
    let clean = s.run(x.clone()).unwrap();
    assert_eq!(clean.generation, 0);
    // Rapid requests coalesce: only the last one must be applied.
    for a in [0.1f32, 0.2, 0.3, 0.4] {
        s.set_coefficients(&[(0, a), (1, 0.5)]).unwrap();
    }
    assert!(s.wait_ready(Duration::from_secs(30)));
    let out = s.run(x.clone()).unwrap();
    assert_eq!(&*out.alphas, &[0.4, 0.5]);
    let want = rt
        .run_with(&rt.build_prefix(&[0.4, 0.5]).unwrap(), x.clone())
        .unwrap();
    assert_eq!(out.logits, want);
    s.set_coefficients(&[]).unwrap();
    let back = s.run(x.clone()).unwrap();
    assert_eq!(
        back.logits, clean.logits,
        "taking every signature off is exact"
    );
    assert!(matches!(
        s.set_coefficients(&[(5, 1.0)]),
        Err(RuntimeError::Coefficient { index: 5, .. })
    ));
    assert!(s.set_coefficients(&[(0, f32::NAN)]).is_err());
}

/// A random signature over `layers` (int8 like shipped ones).
fn synthetic_sig(
    layers: &[(String, rws::Role, Vec<usize>)],
    seed: u64,
    scale: f64,
) -> SignatureFile {
    let mut rng = Rng::new(seed);
    let tensors: Vec<SignatureTensor> = layers
        .iter()
        .map(|(name, role, shape)| SignatureTensor {
            name: name.clone(),
            role: *role,
            shape: shape.clone(),
            values: common::random_tensor(&mut rng, shape, scale),
        })
        .collect();
    let (bytes, _) = encode(
        &Metadata::new("fog", 5),
        &tensors,
        DType::I8,
        Path::new("syn.rws"),
    )
    .unwrap();
    SignatureFile::from_bytes(&bytes, "syn.rws").unwrap()
}

#[test]
fn batchnorm_residual_model_from_our_exporter_patches_correctly() {
    for symbolic in [false, true] {
        let (proto, params) = rws::arch::residual_demo(5, symbolic);
        // Patch the stem and the block's first conv with their BatchNorms: the cut then carries
        // the block's main branch and the skip connection.
        let layers: Vec<_> = params
            .into_iter()
            .filter(|p| p.0.starts_with("stem.") || p.0.starts_with("block.a."))
            .collect();
        assert_eq!(layers.len(), 10);
        let sig = synthetic_sig(&layers, 9, 0.05);
        let dir = tempdir();
        let path = dir.join("residual.onnx");
        std::fs::write(&path, proto.encode_to_vec()).unwrap();
        let rt = Runtime::load(
            &path,
            vec![synthetic_sig(&layers, 9, 0.05)],
            &RuntimeOptions::default(),
        )
        .unwrap();
        assert_eq!(rt.input_shape(), [1, 3, 16, 16]);
        assert_eq!(
            rt.cut().len(),
            2,
            "main branch and skip cross the cut: {:?}",
            rt.cut()
        );
        let clean = OnnxModel::open(&path).unwrap();
        let patched = patch_model(&clean, &[(&sig, 1.0)]).unwrap();
        let prefix = rt.build_prefix(&[1.0]).unwrap();
        for seed in 0..4 {
            let x = frame(rt.input_shape(), seed);
            let got = rt.run_with(&prefix, x.clone()).unwrap();
            let want = offline(patched.proto(), rt.input_shape(), &x);
            let d = max_abs_diff(&got, &want);
            assert!(d <= 1e-5, "symbolic={symbolic} frame {seed}: differ by {d}");
            let off = rt.run_with(rt.clean_prefix(), x.clone()).unwrap();
            assert_eq!(off, offline(clean.proto(), rt.input_shape(), &x));
            assert!(max_abs_diff(&got, &off) > 1e-4);
        }
    }
}

#[test]
fn signature_of_another_architecture_is_refused_with_the_list() {
    let (proto, _) = rws::arch::residual_demo(5, false);
    let dir = tempdir();
    let path = dir.join("residual.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let err = Runtime::load(&path, demo_sigs(&["fog"]), &RuntimeOptions::default()).unwrap_err();
    let RuntimeError::Mismatch { mismatches, .. } = &err else {
        panic!("expected a mismatch, got {err}");
    };
    assert_eq!(mismatches.0.len(), 10, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("fog.rws") && text.contains("features.0.weight"),
        "{text}"
    );
}

#[test]
fn patched_tensor_in_a_constant_node_is_refused() {
    // The demo model with conv0's weight moved from an initializer into a Constant node.
    let mut model = OnnxModel::open(demo_dir().join("clean.onnx")).unwrap();
    let g = model.proto_mut().graph.as_mut().unwrap();
    let pos = g
        .initializer
        .iter()
        .position(|t| t.name == "features.0.weight")
        .unwrap();
    let t = g.initializer.remove(pos);
    let mut c = rws::arch::node("Constant", &[], "features.0.weight");
    c.attribute.push(tract_onnx::pb::AttributeProto {
        name: "value".into(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Tensor as i32,
        t: Some(t),
        ..Default::default()
    });
    g.node.insert(0, c);
    let err = Runtime::from_proto(
        Path::new("const.onnx"),
        model.proto().clone(),
        demo_sigs(&["fog"]),
        &RuntimeOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("Constant node"), "{err}");
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rws-runtime-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn identical_initializers_are_patched_separately() {
    // Freshly initialized VGG biases are all zero; tract merges equal constants while typing,
    // so patching one bias must not leak into the others.
    let arch = rws::arch::Arch::demo();
    let proto = arch.to_onnx(&arch.init(3)).unwrap();
    let layers: Vec<_> = arch
        .param_shapes()
        .into_iter()
        .take(4)
        .map(|(n, s)| {
            let role = if n.ends_with("bias") {
                rws::Role::Bias
            } else {
                rws::Role::Weight
            };
            (n, role, s)
        })
        .collect();
    let sig = synthetic_sig(&layers, 4, 0.05);
    let rt = Runtime::from_proto(
        Path::new("init.onnx"),
        proto.clone(),
        vec![synthetic_sig(&layers, 4, 0.05)],
        &RuntimeOptions::default(),
    )
    .unwrap();
    let clean = OnnxModel::from_proto(proto, "init.onnx");
    let patched = patch_model(&clean, &[(&sig, 0.7)]).unwrap();
    let x = frame(rt.input_shape(), 3);
    let got = rt
        .run_with(&rt.build_prefix(&[0.7]).unwrap(), x.clone())
        .unwrap();
    let want = offline(patched.proto(), rt.input_shape(), &x);
    assert!(max_abs_diff(&got, &want) <= 1e-5);
}

#[test]
fn bench_json_has_every_documented_key() {
    let dir = demo_dir();
    let (code, out, err) = common::rws(&[
        "bench",
        "--model",
        dir.join("clean.onnx").to_str().unwrap(),
        "--signatures",
        dir.to_str().unwrap(),
        "--frames",
        "5",
        "--switches",
        "1",
        "--fps",
        "200",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "clean_frame_ms",
        "patched_frame_ms",
        "steady_ratio",
        "switch_ms",
        "switch_frames",
        "stalled_frames",
        "patch_vs_memcpy",
        "rss_clean_mb",
        "rss_all_mb",
        "full_reload_ms",
    ] {
        let x = v[key].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x >= 0.0, "{key} = {}", v[key]);
    }
    assert_eq!(v["signatures"], 19);
}
