//! Training with candle and exporting to ONNX: tract must reproduce candle's logits, and a seeded
//! run must be reproducible.

use candle_core::Device;
use rws_lab::arch::Arch;
use rws_lab::data::{default_path, load, Kind};
use rws_lab::eval::Classifier;
use rws_lab::train::{train, Augment, Net, Schedule};

fn few(n: usize) -> (Vec<rws_image::Image>, Vec<u8>) {
    let d = load(Kind::Digits, default_path(Kind::Digits)).unwrap();
    (d.images[..n].to_vec(), d.labels[..n].to_vec())
}

#[test]
fn exported_onnx_reproduces_candle_logits() {
    let arch = Arch::demo();
    let (images, labels) = few(96);
    let mut net = Net::new(&arch, &arch.init(5), &Device::Cpu).unwrap();
    // A little training so the weights are not just the init.
    train(
        &mut net,
        &images,
        &labels,
        Augment::Clean,
        Schedule {
            epochs: 1,
            batch: 32,
            lr: 1e-3,
            seed: 1,
            preset: rws_lab::corrupt::Preset::Cifar,
        },
        |_, _| {},
    )
    .unwrap();
    let refs: Vec<&rws_image::Image> = images[..8].iter().collect();
    let candle = net
        .forward(&net.batch(&refs).unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let onnx = arch.to_onnx_bytes(&net.weights().unwrap()).unwrap();
    let tract = Classifier::from_onnx(&onnx, 32).unwrap();
    for (img, want) in images[..8].iter().zip(&candle) {
        let got = tract.logits(img).unwrap();
        assert_eq!(got.len(), 10);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-4, "tract {g} vs candle {w}");
        }
    }
    // Initializer names are the trainer's tensor names.
    let model = rws_runtime::onnx::OnnxModel::from_bytes(&onnx, "net.onnx").unwrap();
    let names: Vec<String> = model
        .initializers()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    let expected: Vec<String> = arch.param_shapes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, expected);
}

#[test]
fn seeded_training_is_reproducible_and_learns() {
    let arch = Arch::demo();
    let (images, labels) = few(256);
    let run = |seed| {
        let mut net = Net::new(&arch, &arch.init(3), &Device::Cpu).unwrap();
        let mut losses = Vec::new();
        let sched = Schedule {
            epochs: 3,
            batch: 32,
            lr: 3e-3,
            seed,
            preset: rws_lab::corrupt::Preset::Cifar,
        };
        train(
            &mut net,
            &images,
            &labels,
            Augment::One(
                rws_lab::corrupt::Corruption::GaussianNoise,
                rws_lab::train::Severities::one(3).expect("severity"),
            ),
            sched,
            |_, l| losses.push(l),
        )
        .unwrap();
        (net.weights().unwrap(), losses)
    };
    let (a, la) = run(7);
    let (b, _) = run(7);
    let (c, _) = run(8);
    assert_eq!(a, b, "same seeds must give the same model");
    assert_ne!(a, c, "the seed must matter");
    assert!(la[2] < la[0], "loss should fall: {la:?}");
}
