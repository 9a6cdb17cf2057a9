//! Opening and validating `.rws` files, and handing out their payloads in place.
//!
//! [`SignatureFile::open`] memory-maps a file and checks everything the spec promises before any
//! payload is used: magic, version, declared length, every offset and length, alignment, overlaps,
//! shape × dtype = payload size, finite scales and statistics, and the CRC-32C of the header block
//! and of every payload. A file that passes is then read without copies: [`SignatureFile::data`]
//! reinterprets the mapped bytes as `&[i8]`, `&[f16]` or `&[f32]`.
//!
//! The parser works on a plain byte slice through a bounds-checked cursor, so no input can make it
//! read out of bounds or panic; `tests/format.rs` flips every bit of a file to hold it to that.

mod cursor;
mod parse;
mod payloads;

use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;

use super::{DType, FormatError, Metadata, QuantStats, Role};

/// One tensor of a signature, as described by the table. The payload stays in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    /// The ONNX initializer this tensor patches.
    pub name: String,
    pub dtype: DType,
    pub role: Role,
    pub shape: Vec<usize>,
    /// Byte range of the payload in the file.
    pub offset: usize,
    pub len: usize,
    pub crc: u32,
    /// Per-output-channel scales (i8 only; empty otherwise).
    pub scales: Vec<f32>,
    /// Quantization error recorded when the file was written.
    pub stats: QuantStats,
}

impl TensorEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        // Validated at open: the product fits and equals len / dtype size.
        self.len / self.dtype.size()
    }
}

/// A tensor's payload, borrowed from the file.
#[derive(Clone, Copy, Debug)]
pub enum TensorData<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    /// Quantized values; element `i` of output channel `g` means `q[i] * scales[g]`.
    I8 {
        q: &'a [i8],
        scales: &'a [f32],
    },
}

impl TensorData<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::I8 { q, .. } => q.len(),
        }
    }

    /// True when the tensor has no elements (never the case for a validated file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dequantizes into a new f32 vector (for tools and tests; the patch engine never does this).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::F32(v) => v.to_vec(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::I8 { q, scales } => crate::quant::dequantize_i8(q, scales),
        }
    }
}

/// Where the file's bytes live: a read-only map of the file, or an aligned heap copy.
enum Bytes {
    Mapped(Mmap),
    /// `u64` words keep payloads (at multiples of 64 from the start) aligned for f32 and f16.
    Heap(Vec<u64>, usize),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Heap(words, len) => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
        }
    }
}

/// A validated `.rws` file.
pub struct SignatureFile {
    path: PathBuf,
    bytes: Bytes,
    version: u32,
    meta: Metadata,
    tensors: Vec<TensorEntry>,
    fingerprint: u32,
}

impl std::fmt::Debug for SignatureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureFile")
            .field("path", &self.path)
            .field("corruption", &self.meta.corruption)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl SignatureFile {
    /// Maps `path` read-only and validates it.
    ///
    /// Deploy new files by writing a temporary and renaming it over the old one (the writer does),
    /// never by rewriting a mapped file in place: the map would see the change after validation.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FormatError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| {
            FormatError::new(path, super::FormatErrorKind::Io, "file", e.to_string())
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < super::HEADER_LEN as u64 {
            return Err(parse::truncated_header(path, len as usize));
        }
        // SAFETY: the map is read-only and private to this process. rws never writes signature
        // files in place (they are replaced by rename), so the mapped bytes do not change while
        // borrowed; see the deployment notes in docs/rws-format.md.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::validate(path.to_path_buf(), Bytes::Mapped(map))
    }

    /// Validates an in-memory file; `label` names it in errors.
    pub fn from_bytes(bytes: &[u8], label: impl AsRef<Path>) -> Result<Self, FormatError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self::validate(
            label.as_ref().to_path_buf(),
            Bytes::Heap(words, bytes.len()),
        )
    }

    fn validate(path: PathBuf, bytes: Bytes) -> Result<Self, FormatError> {
        let parsed = parse::parse(&path, bytes.as_slice())?;
        Ok(SignatureFile {
            path,
            bytes,
            version: parsed.version,
            meta: parsed.meta,
            tensors: parsed.tensors,
            fingerprint: parsed.fingerprint,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The architecture fingerprint stored in (and checked against) the table.
    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// CRC-32C of the whole file, as a manifest lists it. Computed on the bytes already mapped
    /// and validated (resident: no second read from storage; hardware CRC on x86-64 and ARMv8).
    /// Assembling it from the payload checksums with `crc32c_combine` instead was measured
    /// slower: the combine costs microseconds per payload, the pass nanoseconds per kilobyte.
    pub fn file_crc32c(&self) -> u32 {
        crc32c::crc32c(self.bytes.as_slice())
    }

    /// The whole file, as mapped and validated (what a manifest's CRC-32C and SHA-256 cover).
    pub fn file_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.bytes.as_slice().len()
    }

    /// Index of the tensor patching initializer `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The payload of tensor `index`, in place. Panics if `index` is out of range (a caller bug,
    /// never input-dependent: indices come from [`Self::tensors`] or [`Self::find`]).
    pub fn data(&self, index: usize) -> TensorData<'_> {
        let t = &self.tensors[index];
        let raw = &self.bytes.as_slice()[t.offset..t.offset + t.len];
        // Alignment and length were validated at open, so these casts cannot fail.
        match t.dtype {
            DType::F32 => TensorData::F32(bytemuck::cast_slice(raw)),
            DType::F16 => TensorData::F16(bytemuck::cast_slice(raw)),
            DType::I8 => TensorData::I8 {
                q: bytemuck::cast_slice(raw),
                scales: &t.scales,
            },
        }
    }
}
