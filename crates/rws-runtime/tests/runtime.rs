//! The device runtime: split-model prefix plans against offline patching, exact take-off, frames
//! that never mix two coefficient sets, BatchNorm + residual models, and refusals.

use rws_testkit as common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use rws_rng::Rng;
use rws_runtime::apply::patch_model;
use rws_runtime::onnx::{build::node, pb, OnnxModel};
use rws_runtime::{Runtime, RuntimeError, RuntimeOptions, Session, WholeModel};
use rws_signature::format::{encode, DType, Metadata, SignatureFile, SignatureTensor};
use rws_testkit::demo_dir;

fn demo_sigs(names: &[&str]) -> Vec<SignatureFile> {
    names
        .iter()
        .map(|n| {
            SignatureFile::open(demo_dir().join(format!("{n}.rws"))).expect("shipped signature")
        })
        .collect()
}

/// The shipped demo model with the named shipped signatures, loaded with default options.
fn demo_runtime(names: &[&str]) -> Arc<Runtime> {
    let model = demo_dir().join("clean.onnx");
    Arc::new(Runtime::load(&model, demo_sigs(names), &RuntimeOptions::default()).unwrap())
}

/// A deterministic input in [0, 1].
fn frame(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    (0..n).map(|_| rng.uniform() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Output of the whole model `proto` optimized as one plan (what `rws patch` + tract gives).
fn offline(proto: &pb::ModelProto, shape: &[usize], input: &[f32]) -> Vec<f32> {
    WholeModel::from_proto(Path::new("offline.onnx"), proto, shape)
        .unwrap()
        .run(input)
        .unwrap()
}

#[test]
fn patched_prefix_matches_offline_patching_and_zero_is_the_clean_model() {
    let names = ["fog", "contrast", "gaussian_noise"];
    let rt = demo_runtime(&names);
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
        let got = rt.run_with(&prefix, &x).unwrap();
        let want = offline(patched.proto(), rt.input_shape(), &x);
        let d = max_abs_diff(&got, &want);
        assert!(
            d <= 1e-5,
            "frame {seed}: runtime vs rws patch differ by {d}"
        );
        let off = rt.run_with(&zero, &x).unwrap();
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
    let rt = demo_runtime(&["fog"]);
    let x = frame(rt.input_shape(), 42);
    let on_plan = rt.build_prefix(&[1.0]).unwrap();
    let on = rt.run_with(&on_plan, &x).unwrap();
    let off = rt.run_with(rt.clean_prefix(), &x).unwrap();
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
        let out = session.run(&x).unwrap();
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
    let rt = demo_runtime(&["fog", "snow"]);
    let x = frame(rt.input_shape(), 7);
    let mut s = Session::new(rt.clone()).unwrap();
    let clean = s.run(&x).unwrap();
    assert_eq!(clean.generation, 0);
    // Rapid requests coalesce: only the last one must be applied.
    for a in [0.1f32, 0.2, 0.3, 0.4] {
        s.set_coefficients(&[(0, a), (1, 0.5)]).unwrap();
    }
    assert!(s.wait_ready(Duration::from_secs(30)));
    let out = s.run(&x).unwrap();
    assert_eq!(&*out.alphas, &[0.4, 0.5]);
    let want = rt
        .run_with(&rt.build_prefix(&[0.4, 0.5]).unwrap(), &x)
        .unwrap();
    assert_eq!(out.logits, want);
    // All off: served from the clean prefix by the worker (no build), so it is ready at once.
    let builds = s.stats().builds;
    s.set_coefficients(&[]).unwrap();
    assert!(s.wait_ready(Duration::from_secs(30)));
    assert_eq!(
        s.stats().builds,
        builds,
        "the clean prefix is never built again"
    );
    let back = s.run(&x).unwrap();
    assert_eq!(back.generation, 5);
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
    layers: &[(String, rws_signature::Role, Vec<usize>)],
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
        let (proto, params) = rws_testkit::residual_demo(5, symbolic);
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
            let got = rt.run_with(&prefix, &x).unwrap();
            let want = offline(patched.proto(), rt.input_shape(), &x);
            let d = max_abs_diff(&got, &want);
            assert!(d <= 1e-5, "symbolic={symbolic} frame {seed}: differ by {d}");
            let off = rt.run_with(rt.clean_prefix(), &x).unwrap();
            assert_eq!(off, offline(clean.proto(), rt.input_shape(), &x));
            assert!(max_abs_diff(&got, &off) > 1e-4);
        }
    }
}

#[test]
fn signature_of_another_architecture_is_refused_with_the_list() {
    let (proto, _) = rws_testkit::residual_demo(5, false);
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
    let mut c = node("Constant", &[], "features.0.weight");
    c.attribute.push(pb::AttributeProto {
        name: "value".into(),
        r#type: pb::attribute_proto::AttributeType::Tensor as i32,
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
    // so patching one bias must not leak into the others. The demo model with zero biases:
    let mut model = OnnxModel::open(demo_dir().join("clean.onnx")).unwrap();
    let biases: Vec<(String, usize)> = model
        .initializers()
        .unwrap()
        .into_iter()
        .filter(|i| i.name.ends_with("bias"))
        .map(|i| (i.name, i.shape.iter().product()))
        .collect();
    assert!(biases.len() >= 4);
    for (name, n) in &biases {
        model.set_initializer_f32(name, &vec![0.0; *n]).unwrap();
    }
    let proto = model.proto().clone();
    let layers: Vec<_> = model
        .initializers()
        .unwrap()
        .into_iter()
        .filter(|i| i.name.starts_with("features."))
        .take(4)
        .map(|i| {
            let role = if i.name.ends_with("bias") {
                rws_signature::Role::Bias
            } else {
                rws_signature::Role::Weight
            };
            (i.name, role, i.shape)
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
    let got = rt.run_with(&rt.build_prefix(&[0.7]).unwrap(), &x).unwrap();
    let want = offline(patched.proto(), rt.input_shape(), &x);
    assert!(max_abs_diff(&got, &want) <= 1e-5);
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

#[test]
fn switching_for_hours_does_not_grow_memory() {
    // Every request is a new coefficient set: a prefix build on the worker, a swap on this
    // thread. Dropping run states on the worker once leaked tract's per-state scratch on the
    // frame thread, ~3 KB per build (6,000 builds: 19.7 → 40.7 MB). Alone in its own process:
    // RSS is the whole process's, and this binary's other tests run in parallel threads.
    if !rws_testkit::isolated("runtime::switching_for_hours_does_not_grow_memory") {
        return;
    }
    let rt = demo_runtime(&["fog"]);
    let x = frame(rt.input_shape(), 1);
    let mut s = Session::new(rt.clone()).unwrap();
    let (warm, total) = if rws_testkit::emulated() {
        (50, 300)
    } else {
        (200, 1200)
    };
    let mut at_warm = 0.0;
    for i in 0..total {
        let want = 0.1 + i as f32 * 1e-5;
        s.set_coefficients(&[(0, want)]).unwrap();
        assert!(s.wait_ready(Duration::from_secs(30)));
        // A frame takes a ready plan unless the worker holds the lock that instant (then the
        // next one does): under emulation that happens, so allow a few frames.
        let ran = (0..100).any(|_| s.run(&x).unwrap().alphas[0] == want);
        assert!(ran, "set {i} never took effect");
        if i == warm {
            at_warm = rss_mb();
        }
    }
    let grown = rss_mb() - at_warm;
    assert!(
        grown < 2.0,
        "{} builds grew RSS by {grown:.1} MB",
        total - warm
    );
    assert!(s.stats().builds >= total as u64 - 4);
}

#[test]
fn a_model_without_outputs_is_refused_at_load_not_at_the_first_frame() {
    let mut model = OnnxModel::open(demo_dir().join("clean.onnx")).unwrap();
    model.proto_mut().graph.as_mut().unwrap().output.clear();
    let err = Runtime::from_proto(
        Path::new("no-output.onnx"),
        model.proto().clone(),
        demo_sigs(&["fog"]),
        &RuntimeOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no-output.onnx") && err.contains("graph.output"),
        "{err}"
    );
}
