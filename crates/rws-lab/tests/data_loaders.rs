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
