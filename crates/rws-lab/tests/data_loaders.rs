//! The dataset loaders on the committed files, and on damaged copies of them.

use std::io::Write;

use rws_lab::data::{default_path, load, Kind};

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn mnist_5k_loads_with_a_fixed_stratified_split() {
    let d = load(Kind::Mnist5k, default_path(Kind::Mnist5k)).unwrap();
    assert_eq!(d.len(), 5000);
    for class in 0..10u8 {
        assert_eq!(d.labels.iter().filter(|&&l| l == class).count(), 500);
    }
    let img = &d.images[0];
    assert_eq!(
        (img.height, img.width, img.data.len()),
        (32, 32, 32 * 32 * 3)
    );
    // Padding is black, channels are equal, and the digit is there.
    assert_eq!(img.at(0, 0, 0), 0.0);
    assert!(img.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(img.data.iter().any(|&v| v > 0.9));
    let split = d.split();
    assert_eq!((split.train.len(), split.test.len()), (4000, 1000));
    assert_eq!(split, d.split(), "the split must be the same every time");
    for class in 0..10u8 {
        assert_eq!(
            split.test.labels.iter().filter(|&&l| l == class).count(),
            100
        );
    }
    // A sample of the class-ordered test split keeps every class, equally.
    let sample = split.test.spread(250);
    assert_eq!(sample.len(), 250);
    for class in 0..10u8 {
        assert_eq!(sample.labels.iter().filter(|&&l| l == class).count(), 25);
    }
    assert_eq!(split.test.spread(5000), split.test);
}

#[test]
fn digits_load_upscaled() {
    let d = load(Kind::Digits, default_path(Kind::Digits)).unwrap();
    assert_eq!(d.len(), 1797);
    let s = d.split();
    assert_eq!(s.train.len() + s.test.len(), 1797);
    assert!(d
        .images
        .iter()
        .all(|i| i.height == 32 && i.data.iter().all(|v| (0.0..=1.0).contains(v))));
}

#[test]
fn damaged_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(default_path(Kind::Digits)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.csv.gz", good[..good.len() / 2].to_vec(), "gzip"),
        ("plain.csv.gz", b"0,1,2\n".to_vec(), "gzip"),
        (
            "short-row.csv.gz",
            gz(&format!("{}\n", ["0"; 10].join(","))),
            "10 fields",
        ),
        (
            "bad-pixel.csv.gz",
            gz(&format!("{},3\n", ["17"; 64].join(","))),
            "column 1: pixel 17 exceeds 16",
        ),
        (
            "bad-label.csv.gz",
            gz(&format!("{},12\n", ["1"; 64].join(","))),
            "label 12",
        ),
        (
            "text.csv.gz",
            gz(&format!("{},x\n", ["1"; 64].join(","))),
            "'x' is not",
        ),
        ("empty.csv.gz", gz(""), "no rows"),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = load(Kind::Digits, &p).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
    }
    let err = load(Kind::Mnist5k, dir.path().join("missing.csv.gz")).unwrap_err();
    assert!(err.to_string().contains("missing.csv.gz"));
}

/// A CIFAR-10 binary record: `label`, then red, green and blue planes filled by `f(channel, i)`.
fn cifar_record(label: u8, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut r = vec![label];
    for ch in 0..3 {
        r.extend((0..1024).map(|i| f(ch, i)));
    }
    r
}

/// Five train batches of 3 records and a test batch of 2, in CIFAR-10's binary format.
fn write_cifar(dir: &std::path::Path) {
    for (b, name) in rws_lab::cifar::TRAIN_FILES.iter().enumerate() {
        let bytes: Vec<u8> = (0..3)
            .flat_map(|k| {
                cifar_record(((b * 3 + k) % 10) as u8, move |ch, i| {
                    ((ch * 7 + i + b) % 256) as u8
                })
            })
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let test: Vec<u8> = [
        cifar_record(3, |ch, _| [255, 0, 128][ch]),
        cifar_record(9, |_, i| (i % 256) as u8),
    ]
    .concat();
    std::fs::write(dir.join(rws_lab::cifar::TEST_FILE), test).unwrap();
}

#[test]
fn cifar10_binary_batches_load_as_the_official_split() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let split = rws_lab::data::open_split("cifar10", Some(dir.path())).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (15, 2));
    assert_eq!(
        split.train.labels,
        (0..15).map(|i| (i % 10) as u8).collect::<Vec<_>>()
    );
    assert_eq!(split.test.labels, [3, 9]);
    // Planes become interleaved RGB in [0, 1].
    let img = &split.test.images[0];
    assert_eq!((img.height, img.width), (32, 32));
    assert_eq!(&img.data[..3], &[1.0, 0.0, 128.0 / 255.0]);
    let second = &split.test.images[1];
    let px = 5 * 32 + 7; // row 5, column 7
    assert_eq!(second.data[px * 3], (px % 256) as f32 / 255.0);
    // Batch 2, record 1, green channel at pixel 0: (1·7 + 0 + 1) % 256.
    assert_eq!(split.train.images[4].data[1], 8.0 / 255.0);
}

#[test]
fn a_damaged_cifar10_batch_is_refused_with_file_record_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let test = dir.path().join(rws_lab::cifar::TEST_FILE);
    let good = std::fs::read(&test).unwrap();
    std::fs::write(&test, &good[..good.len() - 5]).unwrap();
    let e = rws_lab::data::open_split("cifar10", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("record 1: truncated (3068 of 3073 bytes"),
        "{e}"
    );
    let mut bad = good.clone();
    bad[3073] = 12;
    std::fs::write(&test, &bad).unwrap();
    let e = rws_lab::data::open_split("cifar10", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 1: label: 12 is not a class"), "{e}");
    std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
    let e = rws_lab::data::open_split("cifar10", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("data_batch_3.bin"), "{e}");
    let e = rws_lab::data::open_split("cifar10", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--data DIR"), "{e}");
    let e = rws_lab::data::open_split("imagenet", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cifar10"), "{e}");
}
