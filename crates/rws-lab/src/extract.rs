//! Extracting Robust Weight Signatures from ONNX models.
//!
//! Per patched tensor `k`, with θ0 the shared init, θstd the clean model and θc the model fine-tuned
//! on corruption `c` (both trained from θ0):
//!
//! ```text
//! d_std = θstd[k] − θ0[k]      d_c = θc[k] − θ0[k]          (flattened)
//! RWS_c[k] = d_c − (⟨d_c, d_std⟩ / ⟨d_std, d_std⟩) · d_std
//! ```
//!
//! i.e. the residual of projecting `d_c` onto the single vector `d_std`, which is what the
//! authors' `get_projection` computes with a pseudoinverse of one column. When `d_std` is zero
//! (the clean model never moved that tensor) there is nothing to project out and `RWS = d_c`.
//! Arithmetic is f64; the result is rounded to f32 once.
//!
//! Which tensors: by default the shallowest `K` weight-bearing layers (Conv, ConvTranspose, Gemm,
//! MatMul with an initializer weight) in graph order (ONNX requires nodes in topological order),
//! with their biases and the four tensors of a BatchNormalization that directly follows one; or
//! every f32 initializer whose name matches a regular expression.
//!
//! Models are read one at a time and only the selected tensors are kept, so peak memory is one
//! decoded model plus its file plus the (small) selected tensors: under 3× the largest model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rws_runtime::onnx::{OnnxDataType, OnnxError, OnnxModel};
use rws_signature::format::{self, DType, Metadata, Role, SignatureTensor, WriteReport};

/// What to extract.
#[derive(Clone, Debug)]
pub enum Selection {
    /// The shallowest K weight-bearing layers, with biases and BatchNorm tensors.
    Layers(usize),
    /// Every f32 initializer whose name matches.
    Matching(regex::Regex),
}

/// Extraction failed. Messages name the model file and tensor.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error("{}: no tensor selected ({what})", path.display())]
    NothingSelected { path: PathBuf, what: String },
    #[error("{}: tensor '{name}' is missing (present in {})", path.display(), reference.display())]
    Missing {
        path: PathBuf,
        name: String,
        reference: PathBuf,
    },
    #[error("{}: tensor '{name}' has shape {found:?}, {} has {expected:?}", path.display(), reference.display())]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        reference: PathBuf,
    },
    #[error("{}: tensor '{name}' value {index} is {value}; weights must be finite", path.display())]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
    #[error("robust model name '{0}' must be 1-64 characters of A-Z a-z 0-9 _ -")]
    BadName(String),
}

/// A selected tensor: name, role, shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub role: Role,
    pub shape: Vec<usize>,
}

const WEIGHT_OPS: [&str; 4] = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// Chooses the tensors to extract from `model` (normally θ0).
/// How many weight-bearing layers (the K of [`Selection::Layers`]) `model` has in all.
pub fn weight_layers(model: &OnnxModel) -> Result<usize, ExtractError> {
    Ok(select(model, &Selection::Layers(usize::MAX))?
        .iter()
        .filter(|s| s.role == Role::Weight)
        .count())
}

pub fn select(model: &OnnxModel, selection: &Selection) -> Result<Vec<Selected>, ExtractError> {
    let inits = model.initializers()?;
    let floats: HashMap<&str, &[usize]> = inits
        .iter()
        .filter(|i| i.dtype == OnnxDataType::Float)
        .map(|i| (i.name.as_str(), i.shape.as_slice()))
        .collect();
    let nodes = model
        .proto()
        .graph
        .as_ref()
        .map_or(&[][..], |g| &g.node[..]);
    let roles = roles(nodes);
    let mut out: Vec<Selected> = Vec::new();
    let mut push = |name: &str, role: Role| {
        if let Some(shape) = floats.get(name) {
            if !out.iter().any(|s| s.name == name) {
                out.push(Selected {
                    name: name.to_string(),
                    role,
                    shape: shape.to_vec(),
                });
            }
        }
    };
    let what = match selection {
        Selection::Layers(k) => {
            let mut layers = 0;
            for node in nodes
                .iter()
                .filter(|n| WEIGHT_OPS.contains(&n.op_type.as_str()))
            {
                if layers == *k {
                    break;
                }
                let Some(weight) = node
                    .input
                    .get(1)
                    .filter(|w| floats.contains_key(w.as_str()))
                else {
                    continue; // e.g. a MatMul of two activations
                };
                layers += 1;
                push(weight, Role::Weight);
                if let Some(bias) = node.input.get(2) {
                    push(bias, Role::Bias);
                }
                let out_name = node.output.first().map(String::as_str).unwrap_or("");
                for bn in nodes.iter().filter(|n| n.op_type == "BatchNormalization") {
                    if bn.input.first().map(String::as_str) == Some(out_name) {
                        for (i, role) in [Role::BnScale, Role::BnBias, Role::BnMean, Role::BnVar]
                            .into_iter()
                            .enumerate()
                        {
                            if let Some(t) = bn.input.get(i + 1) {
                                push(t, role);
                            }
                        }
                    }
                }
            }
            format!("{k} weight-bearing layers")
        }
        Selection::Matching(re) => {
            for i in inits
                .iter()
                .filter(|i| i.dtype == OnnxDataType::Float && re.is_match(&i.name))
            {
                push(
                    &i.name,
                    roles.get(i.name.as_str()).copied().unwrap_or(Role::Weight),
                );
            }
            format!("initializers matching /{}/", re.as_str())
        }
    };
    if out.is_empty() {
        return Err(ExtractError::NothingSelected {
            path: model.path().to_path_buf(),
            what,
        });
    }
    Ok(out)
}

/// The role each initializer plays in the graph.
fn roles(nodes: &[rws_runtime::onnx::pb::NodeProto]) -> HashMap<&str, Role> {
    let mut roles = HashMap::new();
    for n in nodes {
        if WEIGHT_OPS.contains(&n.op_type.as_str()) {
            if let Some(b) = n.input.get(2) {
                roles.insert(b.as_str(), Role::Bias);
            }
        }
        if n.op_type == "BatchNormalization" {
            for (i, r) in [Role::BnScale, Role::BnBias, Role::BnMean, Role::BnVar]
                .into_iter()
                .enumerate()
            {
                if let Some(t) = n.input.get(i + 1) {
                    roles.insert(t.as_str(), r);
                }
            }
        }
    }
    roles
}

/// `d_c − (⟨d_c, d_std⟩ / ⟨d_std, d_std⟩) · d_std`, in f64; `d_c` when `d_std` is zero.
pub fn projection_residual(d_c: &[f64], d_std: &[f64]) -> Vec<f64> {
    let dot: f64 = d_c.iter().zip(d_std).map(|(a, b)| a * b).sum();
    let norm2: f64 = d_std.iter().map(|b| b * b).sum();
    if norm2 == 0.0 {
        return d_c.to_vec();
    }
    let k = dot / norm2;
    d_c.iter().zip(d_std).map(|(a, b)| a - k * b).collect()
}

/// The selected tensors of one model, checked against the selection's shapes.
fn read_tensors(
    path: &Path,
    selected: &[Selected],
    reference: &Path,
) -> Result<Vec<Vec<f32>>, ExtractError> {
    let model = OnnxModel::open(path)?;
    let inits = model.initializers()?;
    selected
        .iter()
        .map(|s| {
            let info =
                inits
                    .iter()
                    .find(|i| i.name == s.name)
                    .ok_or_else(|| ExtractError::Missing {
                        path: path.to_path_buf(),
                        name: s.name.clone(),
                        reference: reference.to_path_buf(),
                    })?;
            if info.shape != s.shape {
                return Err(ExtractError::Shape {
                    path: path.to_path_buf(),
                    name: s.name.clone(),
                    expected: s.shape.clone(),
                    found: info.shape.clone(),
                    reference: reference.to_path_buf(),
                });
            }
            let values = model.initializer_f32(&s.name)?;
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(ExtractError::NonFinite {
                    path: path.to_path_buf(),
                    name: s.name.clone(),
                    index,
                    value,
                });
            }
            Ok(values)
        })
        .collect()
}

fn deltas(a: &[Vec<f32>], base: &[Vec<f32>]) -> Vec<Vec<f64>> {
    a.iter()
        .zip(base)
        .map(|(x, b)| {
            x.iter()
                .zip(b)
                .map(|(&x, &b)| f64::from(x) - f64::from(b))
                .collect()
        })
        .collect()
}

/// Everything `extract` needs besides the model files.
#[derive(Clone, Debug)]
pub struct Options {
    pub selection: Selection,
    pub dtype: DType,
    /// Severity the robust models were trained at (0 = mixed/unknown).
    pub severity: u8,
    pub dataset: String,
    pub out_dir: PathBuf,
}

/// One written signature.
#[derive(Clone, Debug)]
pub struct Extracted {
    pub name: String,
    pub path: PathBuf,
    pub report: WriteReport,
}

/// Extracts one signature per robust model and writes `<out_dir>/<name>.rws`. `progress` is
/// called before each robust model with (index, count, name).
pub fn extract(
    init: &Path,
    standard: &Path,
    robust: &[(String, PathBuf)],
    opts: &Options,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Vec<Extracted>, ExtractError> {
    for (name, _) in robust {
        if format::check_corruption_name(name).is_err() {
            return Err(ExtractError::BadName(name.clone()));
        }
    }
    let selected = select(&OnnxModel::open(init)?, &opts.selection)?;
    let theta0 = read_tensors(init, &selected, init)?;
    let d_std = deltas(&read_tensors(standard, &selected, init)?, &theta0);
    let layers = match &opts.selection {
        Selection::Layers(k) => *k as u32,
        Selection::Matching(_) => selected.iter().filter(|s| s.role == Role::Weight).count() as u32,
    };
    let source = standard
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(robust.len());
    for (i, (name, path)) in robust.iter().enumerate() {
        progress(i, robust.len(), name);
        let d_c = deltas(&read_tensors(path, &selected, init)?, &theta0);
        let tensors: Vec<SignatureTensor> = selected
            .iter()
            .zip(d_c.iter().zip(&d_std))
            .map(|(s, (dc, ds))| SignatureTensor {
                name: s.name.clone(),
                role: s.role,
                shape: s.shape.clone(),
                values: projection_residual(dc, ds)
                    .iter()
                    .map(|&v| v as f32)
                    .collect(),
            })
            .collect();
        let mut meta = Metadata::new(name, opts.severity);
        meta.group = name
            .parse::<crate::corrupt::Corruption>()
            .map(|c| c.group().to_string())
            .unwrap_or_default();
        meta.source_model = source.clone();
        meta.source_dataset = opts.dataset.clone();
        meta.layers = layers;
        let file = opts.out_dir.join(format!("{name}.rws"));
        let report = format::write_signature(&file, &meta, &tensors, opts.dtype)?;
        out.push(Extracted {
            name: name.clone(),
            path: file,
            report,
        });
    }
    Ok(out)
}
