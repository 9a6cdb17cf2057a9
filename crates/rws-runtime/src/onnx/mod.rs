//! Reading ONNX model files as data: initializer names, shapes, types and values, and which
//! tensors live in `Constant` nodes.
//!
//! This is the protobuf layer only, with every field the rest of rws relies on checked: dims
//! non-negative and bounded, data length equal to shape × type size, no external data. Running a
//! model is the backend's business; extracting and patching weights only needs this. [`build`]
//! writes models (exporters, test fixtures); [`f32_raw`] / [`tensor_f32`] are the one encoding
//! and decoding of f32 tensor data.

pub mod build;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use pb::{tensor_proto::DataType, ModelProto, TensorProto};
use prost::Message;
/// The ONNX protobuf schema (generated from `onnx.proto3`; tract-onnx carries the generated
/// types, and they are re-exported here so no other crate needs tract to read or write ONNX).
pub use tract_onnx::pb;

/// An ONNX file could not be used. The message names the file, the field and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct OnnxError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
}

impl OnnxError {
    fn new(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        OnnxError {
            path: path.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The element types rws distinguishes; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnnxDataType {
    Float,
    Float16,
    Double,
    Int8,
    Int32,
    Int64,
    Other(i32),
}

impl From<i32> for OnnxDataType {
    fn from(code: i32) -> Self {
        match DataType::try_from(code) {
            Ok(DataType::Float) => OnnxDataType::Float,
            Ok(DataType::Float16) => OnnxDataType::Float16,
            Ok(DataType::Double) => OnnxDataType::Double,
            Ok(DataType::Int8) => OnnxDataType::Int8,
            Ok(DataType::Int32) => OnnxDataType::Int32,
            Ok(DataType::Int64) => OnnxDataType::Int64,
            _ => OnnxDataType::Other(code),
        }
    }
}

impl fmt::Display for OnnxDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnnxDataType::Float => f.write_str("float32"),
            OnnxDataType::Float16 => f.write_str("float16"),
            OnnxDataType::Double => f.write_str("float64"),
            OnnxDataType::Int8 => f.write_str("int8"),
            OnnxDataType::Int32 => f.write_str("int32"),
            OnnxDataType::Int64 => f.write_str("int64"),
            OnnxDataType::Other(c) => write!(f, "ONNX data type {c}"),
        }
    }
}

/// Name, shape and type of one initializer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitializerInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: OnnxDataType,
}

/// A decoded ONNX model.
pub struct OnnxModel {
    path: PathBuf,
    proto: ModelProto,
}

/// Largest model file rws reads (protobuf itself caps messages at 2 GiB).
const MAX_MODEL_BYTES: u64 = 2 << 30;

impl OnnxModel {
    /// Reads and decodes `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OnnxError> {
        let path = path.as_ref();
        let file =
            std::fs::File::open(path).map_err(|e| OnnxError::new(path, "file", e.to_string()))?;
        let len = file
            .metadata()
            .map_err(|e| OnnxError::new(path, "file", e.to_string()))?
            .len();
        if len > MAX_MODEL_BYTES {
            return Err(OnnxError::new(
                path,
                "file",
                format!("{len} bytes exceeds the 2 GiB protobuf limit"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| OnnxError::new(path, "file", e.to_string()))?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes an in-memory model; `label` names it in errors.
    pub fn from_bytes(bytes: &[u8], label: impl AsRef<Path>) -> Result<Self, OnnxError> {
        let path = label.as_ref();
        let proto = ModelProto::decode(bytes).map_err(|e| {
            OnnxError::new(
                path,
                "ModelProto",
                format!("not an ONNX model (protobuf decode failed: {e})"),
            )
        })?;
        // Arbitrary bytes sometimes decode as an empty message; a model has a graph and an IR version.
        if proto.ir_version <= 0 || proto.graph.is_none() {
            return Err(OnnxError::new(
                path,
                "ModelProto",
                "not an ONNX model (no ir_version or no graph)",
            ));
        }
        Ok(OnnxModel {
            path: path.to_path_buf(),
            proto,
        })
    }

    /// Wraps an already built model (e.g. from the exporter).
    pub fn from_proto(proto: ModelProto, label: impl AsRef<Path>) -> Self {
        OnnxModel {
            path: label.as_ref().to_path_buf(),
            proto,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    pub fn proto_mut(&mut self) -> &mut ModelProto {
        &mut self.proto
    }

    /// The decoded model, without a copy.
    pub fn into_proto(self) -> ModelProto {
        self.proto
    }

    fn initializer_protos(&self) -> &[TensorProto] {
        self.proto.graph.as_ref().map_or(&[], |g| &g.initializer)
    }

    /// Name, shape and type of every initializer, in file order.
    pub fn initializers(&self) -> Result<Vec<InitializerInfo>, OnnxError> {
        self.initializer_protos()
            .iter()
            .map(|t| {
                Ok(InitializerInfo {
                    name: t.name.clone(),
                    shape: self.shape_of(t)?,
                    dtype: OnnxDataType::from(t.data_type),
                })
            })
            .collect()
    }

    /// Outputs of `Constant` nodes in the main graph (weights some exporters put there).
    pub fn constant_outputs(&self) -> Vec<String> {
        self.proto.graph.as_ref().map_or_else(Vec::new, |g| {
            g.node
                .iter()
                .filter(|n| n.op_type == "Constant")
                .flat_map(|n| n.output.iter().cloned())
                .collect()
        })
    }

    /// The values of f32 initializer `name`, from `raw_data` (little-endian) or `float_data`.
    pub fn initializer_f32(&self, name: &str) -> Result<Vec<f32>, OnnxError> {
        let field = format!("initializer '{name}'");
        let t = self
            .initializer_protos()
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| OnnxError::new(&self.path, &field, "no such initializer"))?;
        tensor_f32(&self.path, &field, t, &self.shape_of(t)?)
    }

    /// Replaces the values of f32 initializer `name` (stored as `raw_data`).
    pub fn set_initializer_f32(&mut self, name: &str, values: &[f32]) -> Result<(), OnnxError> {
        let path = self.path.clone();
        let field = format!("initializer '{name}'");
        let graph = self
            .proto
            .graph
            .as_mut()
            .ok_or_else(|| OnnxError::new(&path, "graph", "model has no graph"))?;
        let t = graph
            .initializer
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| OnnxError::new(&path, &field, "no such initializer"))?;
        let numel = dims_numel(&path, &field, &t.dims)?;
        if numel != values.len() || OnnxDataType::from(t.data_type) != OnnxDataType::Float {
            return Err(OnnxError::new(
                &path,
                &field,
                format!(
                    "cannot store {} f32 values in a {} tensor of {numel} elements",
                    values.len(),
                    OnnxDataType::from(t.data_type)
                ),
            ));
        }
        store_f32(t, values);
        Ok(())
    }

    /// Encodes the model back to protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    fn shape_of(&self, t: &TensorProto) -> Result<Vec<usize>, OnnxError> {
        let field = format!("initializer '{}'.dims", t.name);
        dims_numel(&self.path, &field, &t.dims)?;
        Ok(t.dims.iter().map(|&d| d as usize).collect())
    }
}

/// Checks dims (each 0..=2^32, product bounded) and returns the element count.
fn dims_numel(path: &Path, field: &str, dims: &[i64]) -> Result<usize, OnnxError> {
    let mut n: usize = 1;
    for &d in dims {
        if !(0..=u32::MAX as i64).contains(&d) {
            return Err(OnnxError::new(
                path,
                field,
                format!("dimension {d} out of range"),
            ));
        }
        n = n
            .checked_mul(d as usize)
            .filter(|&n| n <= (MAX_MODEL_BYTES as usize))
            .ok_or_else(|| OnnxError::new(path, field, format!("shape {dims:?} is too large")))?;
    }
    Ok(n)
}

/// The values of an f32 tensor, from `raw_data` (little-endian) or `float_data`, checked
/// against `shape`; `field` names it in errors.
pub fn tensor_f32(
    path: &Path,
    field: &str,
    t: &TensorProto,
    shape: &[usize],
) -> Result<Vec<f32>, OnnxError> {
    if OnnxDataType::from(t.data_type) != OnnxDataType::Float {
        return Err(OnnxError::new(
            path,
            field,
            format!("is {}, not float32", OnnxDataType::from(t.data_type)),
        ));
    }
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(OnnxError::new(
            path,
            field,
            "stored as external data, which rws does not read",
        ));
    }
    let numel: usize = shape.iter().product();
    if !t.raw_data.is_empty() {
        if t.raw_data.len() != numel * 4 {
            return Err(OnnxError::new(
                path,
                field,
                format!(
                    "raw_data has {} bytes, shape {shape:?} needs {}",
                    t.raw_data.len(),
                    numel * 4
                ),
            ));
        }
        return Ok(t
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect());
    }
    if t.float_data.len() != numel {
        return Err(OnnxError::new(
            path,
            field,
            format!(
                "float_data has {} values, shape {shape:?} needs {numel}",
                t.float_data.len()
            ),
        ));
    }
    Ok(t.float_data.clone())
}

/// f32 values as ONNX `raw_data` bytes (little-endian; rws only builds for little-endian hosts).
pub fn f32_raw(values: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(values).to_vec()
}

/// Stores `values` in `t` as `raw_data`, clearing `float_data`.
pub fn store_f32(t: &mut TensorProto, values: &[f32]) {
    t.float_data.clear();
    t.raw_data = f32_raw(values);
}

/// The bytes of a tensor's data, whichever field holds it (to compare two tensors' values).
pub fn data_bytes(t: &TensorProto) -> Cow<'_, [u8]> {
    if t.raw_data.is_empty() {
        Cow::Owned(bytemuck::cast_slice(&t.float_data).to_vec())
    } else {
        Cow::Borrowed(&t.raw_data)
    }
}
