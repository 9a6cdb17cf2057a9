//! CIFAR-10 in its binary format, the paper-scale route (`--dataset cifar10 --data DIR` on a
//! CUDA host): `data_batch_1.bin` … `data_batch_5.bin` (train) and `test_batch.bin` (test), each a
//! run of 3073-byte records: the label (0–9), then 1024 red, 1024 green and 1024 blue bytes of a
//! 32×32 image, row-major (<https://www.cs.toronto.edu/~kriz/cifar.html>). The dataset does not
//! ship with rws; a test uses a small synthetic file in the same format.

use std::path::Path;

use rws_image::Image;

use crate::data::{DataError, Dataset, Split, SIDE};

/// Bytes of one record: the label and three 32×32 planes.
pub const RECORD: usize = 1 + 3 * SIDE * SIDE;
/// The train files, in the order their records are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";
/// The class names, by label.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn error(path: &Path, reason: String) -> DataError {
    DataError {
        path: path.to_path_buf(),
        line: None,
        column: None,
        reason,
    }
}

/// Decodes one batch file's bytes: every record whole, every label a class.
pub fn decode(path: &Path, bytes: &[u8], name: &str) -> Result<Dataset, DataError> {
    if bytes.is_empty() {
        return Err(error(path, "no records".into()));
    }
    let whole = bytes.len() / RECORD;
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(error(
            path,
            format!(
                "record {whole}: truncated ({} of {RECORD} bytes; {} bytes in all, not a multiple of {RECORD})",
                bytes.len() % RECORD,
                bytes.len()
            ),
        ));
    }
    let plane = SIDE * SIDE;
    let mut images = Vec::with_capacity(whole);
    let mut labels = Vec::with_capacity(whole);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = rec[0];
        if label > 9 {
            return Err(error(
                path,
                format!("record {i}: label: {label} is not a class 0–9"),
            ));
        }
        let to_f32 = |p: &[u8]| {
            p.iter()
                .map(|&v| f32::from(v) / 255.0)
                .collect::<Vec<f32>>()
        };
        let (r, g, b) = (
            to_f32(&rec[1..1 + plane]),
            to_f32(&rec[1 + plane..1 + 2 * plane]),
            to_f32(&rec[1 + 2 * plane..]),
        );
        images.push(Image::from_planes(SIDE, SIDE, [&r, &g, &b]));
        labels.push(label);
    }
    Ok(Dataset {
        name: name.to_string(),
        images,
        labels,
    })
}

fn read(path: &Path, name: &str) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, e.to_string()))?;
    decode(path, &bytes, name)
}

/// The official split from `dir`: the five train batches, then the test batch.
pub fn load_split(dir: &Path) -> Result<Split, DataError> {
    let mut train = Dataset {
        name: "cifar10/train".into(),
        images: Vec::new(),
        labels: Vec::new(),
    };
    for f in TRAIN_FILES {
        let part = read(&dir.join(f), "cifar10/train")?;
        train.images.extend(part.images);
        train.labels.extend(part.labels);
    }
    let test = read(&dir.join(TEST_FILE), "cifar10/test")?;
    Ok(Split { train, test })
}
