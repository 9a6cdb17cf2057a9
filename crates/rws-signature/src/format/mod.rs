//! The `.rws` signature file format, version 1: its constants, its types, and its errors.
//!
//! A `.rws` file holds one Robust Weight Signature: a set of named tensors (one per patched ONNX
//! initializer), each quantized to `i8` with per-output-channel scales, `f16` or `f32`, with metadata
//! saying where it came from. The layout is specified in `docs/rws-format.md`; this module owns that
//! specification in code. [`reader`] opens and validates files (used in place from a memory map),
//! [`writer`] encodes them.
//!
//! Everything is little-endian. The daemon targets (x86-64, aarch64, armv7) are all little-endian
//! hosts, and payloads are reinterpreted in place, so big-endian hosts are refused at compile time.

pub mod reader;
pub mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use reader::{SignatureFile, TensorData, TensorEntry};
pub use writer::{encode, write_signature, SignatureTensor, WriteReport};

#[cfg(target_endian = "big")]
compile_error!("rws reads .rws payloads in place and only supports little-endian hosts");

/// The eight bytes every `.rws` file starts with. Like PNG's magic, the high-bit byte and the
/// CR LF / ^Z / LF tail catch files mangled by 7-bit or text-mode transfers.
pub const MAGIC: [u8; 8] = *b"\x89RWS\r\n\x1a\n";
/// The format version this code writes and the highest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header at offset 0.
pub const HEADER_LEN: usize = 64;
/// Every payload starts at a multiple of this, so it can be used in place from a memory map and
/// so SIMD loads over it start on a cache line.
pub const PAYLOAD_ALIGN: usize = 64;
/// Upper bound on the metadata block: it is a small JSON object, never megabytes.
pub const MAX_META_LEN: usize = 64 * 1024;
/// Upper bound on tensors per file. A signature covers the shallowest layers of one model.
pub const MAX_TENSORS: usize = 4096;
/// Upper bound on a tensor's rank (ONNX weights are rank ≤ 5 in practice).
pub const MAX_RANK: usize = 8;
/// Upper bound on an initializer name's length in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Upper bound on an int8 channel's scale: `127 × scale` must stay a finite f32, or a file with
/// every checksum right would dequantize to ±inf (found by the `rws_file` fuzz target). Dividing
/// by 128 rather than 127 is exact, so `127 × MAX_SCALE` cannot round up to infinity.
pub const MAX_SCALE: f32 = f32::MAX / 128.0;

/// Byte offsets of the fixed header's fields (see `docs/rws-format.md`).
pub(crate) mod hdr {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    pub const FILE_LEN: usize = 16;
    pub const META_OFFSET: usize = 24;
    pub const META_LEN: usize = 32;
    pub const TENSOR_COUNT: usize = 36;
    pub const TABLE_OFFSET: usize = 40;
    pub const TABLE_LEN: usize = 48;
    pub const FINGERPRINT: usize = 52;
    pub const RESERVED: usize = 56;
    pub const HEADER_CRC: usize = 60;
}

/// How a tensor's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE-754 single precision, 4 bytes per value.
    F32,
    /// IEEE-754 half precision, 2 bytes per value.
    F16,
    /// Symmetric 8-bit integers in `[-127, 127]` with one f32 scale per output channel.
    I8,
}

impl DType {
    /// The code stored in the tensor table.
    pub fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::I8 => 2,
        }
    }

    /// Parses a table code; `None` for codes this version does not know.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::I8),
            _ => None,
        }
    }

    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
        })
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "i8" => Ok(DType::I8),
            other => Err(format!("unknown dtype '{other}' (expected i8, f16 or f32)")),
        }
    }
}

/// What a tensor is in its layer. The patch engine needs it for one reason: a BatchNorm running
/// variance must stay positive after patching, whatever α is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Weight,
    Bias,
    BnScale,
    BnBias,
    BnMean,
    BnVar,
}

impl Role {
    /// The code stored in the tensor table.
    pub fn code(self) -> u8 {
        match self {
            Role::Weight => 0,
            Role::Bias => 1,
            Role::BnScale => 2,
            Role::BnBias => 3,
            Role::BnMean => 4,
            Role::BnVar => 5,
        }
    }

    /// Parses a table code; `None` for codes this version does not know.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Role::Weight,
            1 => Role::Bias,
            2 => Role::BnScale,
            3 => Role::BnBias,
            4 => Role::BnMean,
            5 => Role::BnVar,
            _ => return None,
        })
    }
}

/// Where a signature came from, stored as a JSON object in the file.
///
/// Unknown keys are kept in `extra` so that files written by a newer minor revision still open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Corruption name, e.g. `fog` or `gaussian_noise`: `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub corruption: String,
    /// Corruption group (`noise`, `blur`, `weather`, `digital`), empty when unknown.
    #[serde(default)]
    pub group: String,
    /// Severity the robust model was trained at, 1–5; 0 for mixed or unknown.
    pub severity: u8,
    /// The model the signature was extracted from (architecture and version).
    pub source_model: String,
    /// The dataset the models were trained on.
    pub source_dataset: String,
    /// Extraction method, e.g. `projection-residual`.
    pub method: String,
    /// Number of weight-bearing layers covered (the paper's K).
    pub layers: u32,
    /// The tool and version that wrote the file.
    pub tool: String,
    /// Keys this version does not know, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Metadata {
    /// Metadata with the required fields and this tool's version.
    pub fn new(corruption: &str, severity: u8) -> Self {
        Metadata {
            corruption: corruption.to_string(),
            group: String::new(),
            severity,
            source_model: String::new(),
            source_dataset: String::new(),
            method: "projection-residual".to_string(),
            layers: 0,
            tool: concat!("rws ", env!("CARGO_PKG_VERSION")).to_string(),
            extra: BTreeMap::new(),
        }
    }

    /// Checks the field constraints the spec puts on metadata; returns (field, reason) on failure.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_corruption_name(&self.corruption).map_err(|r| ("corruption", r))?;
        if self.severity > 5 {
            return Err(("severity", format!("must be 0 to 5, got {}", self.severity)));
        }
        Ok(())
    }
}

/// The rule for corruption (signature) names, the spec's and everyone's who names a signature:
/// `[A-Za-z0-9_-]`, 1 to 64 characters. Returns why a name breaks it.
pub fn check_corruption_name(c: &str) -> Result<(), String> {
    if c.is_empty() || c.len() > 64 {
        return Err(format!("must be 1 to 64 characters, got {}", c.len()));
    }
    if !c
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        return Err(format!("'{c}' may only hold A-Z, a-z, 0-9, '_' and '-'"));
    }
    Ok(())
}

/// Quantization error of one tensor, measured against the f32 signature at write time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantStats {
    /// L2 norm of the original (unquantized) tensor.
    pub l2_norm: f32,
    /// Largest absolute difference between original and dequantized values.
    pub max_abs_err: f32,
    /// ‖original − dequantized‖₂ / ‖original‖₂ (0 when the tensor is zero).
    pub rel_l2_err: f32,
}

/// Which check a file failed. Tests and callers match on this; the message is in [`FormatError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatErrorKind {
    Io,
    Truncated,
    BadMagic,
    UnsupportedVersion,
    OutOfBounds,
    Misaligned,
    Overlap,
    Checksum,
    NonFinite,
    SizeMismatch,
    Metadata,
    Invalid,
}

/// A `.rws` file could not be read or written. The message names the file, the field and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {field}: {reason}", path.display())]
pub struct FormatError {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
    pub kind: FormatErrorKind,
}

impl FormatError {
    pub(crate) fn new(
        path: &Path,
        kind: FormatErrorKind,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        FormatError {
            path: path.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
            kind,
        }
    }
}

/// The architecture fingerprint: CRC-32C over each tensor's name, a NUL, its rank and dims as
/// little-endian u64, in table order. Two files with equal fingerprints patch the same tensors of
/// the same shapes; the full check is still by names and shapes.
pub fn fingerprint<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> u32 {
    let mut crc = 0u32;
    for (name, shape) in tensors {
        crc = crc32c::crc32c_append(crc, name.as_bytes());
        crc = crc32c::crc32c_append(crc, &[0]);
        crc = crc32c::crc32c_append(crc, &(shape.len() as u64).to_le_bytes());
        for &d in shape {
            crc = crc32c::crc32c_append(crc, &(d as u64).to_le_bytes());
        }
    }
    crc
}

/// Number of quantization groups (scales) for an i8 tensor of this shape: one per output channel
/// (axis 0) for rank ≥ 2, a single one for scalars and vectors such as biases.
pub fn scale_groups(shape: &[usize]) -> usize {
    if shape.len() >= 2 {
        shape[0]
    } else {
        1
    }
}

/// Element count of a shape, or `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Rounds `x` up to the next multiple of [`PAYLOAD_ALIGN`].
pub(crate) fn align_up(x: usize) -> Option<usize> {
    x.checked_add(PAYLOAD_ALIGN - 1)
        .map(|v| v / PAYLOAD_ALIGN * PAYLOAD_ALIGN)
}
