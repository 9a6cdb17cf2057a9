//! Encoding signatures into `.rws` bytes and writing them atomically.
//!
//! The writer quantizes each tensor (see [`crate::quant`]), lays out header, metadata, table and
//! 64-byte-aligned payloads exactly as `docs/rws-format.md` specifies, and seals everything with
//! CRC-32C. Files are written to a temporary beside the target and renamed over it, so a reader
//! (or a daemon reloading on SIGHUP) never sees a half-written file.

use std::io::Write;
use std::path::Path;

use super::{
    align_up, fingerprint, hdr, DType, FormatError, FormatErrorKind as K, Metadata, QuantStats,
    Role, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_META_LEN, MAX_NAME_LEN, MAX_RANK, MAX_TENSORS,
};
use crate::quant::{quantize, Quantized};

/// One tensor to store: the f32 signature of one ONNX initializer.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureTensor {
    pub name: String,
    pub role: Role,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// What the writer did to each tensor, in table order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteReport {
    pub tensors: Vec<(String, DType, QuantStats)>,
    pub file_len: usize,
}

/// Encodes a signature into the bytes of a `.rws` file. `label` names the output in errors.
pub fn encode(
    meta: &Metadata,
    tensors: &[SignatureTensor],
    dtype: DType,
    label: &Path,
) -> Result<(Vec<u8>, WriteReport), FormatError> {
    let e = |kind, field: &str, reason: String| FormatError::new(label, kind, field, reason);
    let meta_bytes = encode_meta(meta, tensors.len(), label)?;
    let quantized = quantize_all(tensors, dtype, label)?;
    let layout = Layout::new(tensors, &quantized, meta_bytes.len()).ok_or_else(|| {
        e(
            K::Invalid,
            "file_len",
            "file would exceed the address space".into(),
        )
    })?;
    let mut table = Vec::with_capacity(layout.table_len);
    for ((t, (q, stats)), &off) in tensors.iter().zip(&quantized).zip(&layout.offsets) {
        write_entry(&mut table, t, dtype, q, stats, off);
    }
    let mut out = vec![0u8; layout.file_len];
    write_header(&mut out, &layout, tensors, meta_bytes.len(), table.len());
    let (meta_offset, table_offset) = (HEADER_LEN, layout.table_offset);
    out[meta_offset..table_offset].copy_from_slice(&meta_bytes);
    out[table_offset..table_offset + table.len()].copy_from_slice(&table);
    for ((q, _), &off) in quantized.iter().zip(&layout.offsets) {
        out[off..off + q.payload().len()].copy_from_slice(q.payload());
    }
    seal_header(&mut out);
    let report = WriteReport {
        tensors: tensors
            .iter()
            .zip(&quantized)
            .map(|(t, (_, s))| (t.name.clone(), dtype, *s))
            .collect(),
        file_len: layout.file_len,
    };
    Ok((out, report))
}

/// The metadata as the JSON block of the file, after checking it and the tensor count.
fn encode_meta(meta: &Metadata, count: usize, label: &Path) -> Result<Vec<u8>, FormatError> {
    let e = |kind, field: &str, reason: String| FormatError::new(label, kind, field, reason);
    meta.validate()
        .map_err(|(field, reason)| e(K::Metadata, &format!("metadata.{field}"), reason))?;
    if count == 0 || count > MAX_TENSORS {
        return Err(e(
            K::Invalid,
            "tensor_count",
            format!("{count} tensors; must be 1..={MAX_TENSORS}"),
        ));
    }
    let meta_bytes =
        serde_json::to_vec(meta).map_err(|err| e(K::Metadata, "metadata", err.to_string()))?;
    if meta_bytes.len() > MAX_META_LEN {
        return Err(e(
            K::Metadata,
            "metadata",
            format!("{} bytes of JSON exceeds {MAX_META_LEN}", meta_bytes.len()),
        ));
    }
    Ok(meta_bytes)
}

/// Each tensor checked (name, shape) and quantized, with its error statistics.
fn quantize_all(
    tensors: &[SignatureTensor],
    dtype: DType,
    label: &Path,
) -> Result<Vec<(Quantized, QuantStats)>, FormatError> {
    let e = |kind, field: &str, reason: String| FormatError::new(label, kind, field, reason);
    let mut quantized = Vec::with_capacity(tensors.len());
    let mut seen = std::collections::HashSet::new();
    for t in tensors {
        let field = |f: &str| format!("tensor '{}'.{f}", t.name);
        if t.name.is_empty() || t.name.len() > MAX_NAME_LEN || !seen.insert(t.name.as_str()) {
            return Err(e(
                K::Invalid,
                &field("name"),
                "empty, too long, or given twice".into(),
            ));
        }
        if t.shape.len() > MAX_RANK || t.shape.iter().any(|&d| d == 0 || d > u32::MAX as usize) {
            return Err(e(
                K::Invalid,
                &field("dims"),
                format!("shape {:?} is not storable", t.shape),
            ));
        }
        let (q, stats) = quantize(&t.values, &t.shape, dtype)
            .map_err(|err| e(K::NonFinite, &field("values"), err.to_string()))?;
        quantized.push((q, stats));
    }
    Ok(quantized)
}

/// Where everything goes: the table after the metadata, then each payload at the next multiple
/// of [`super::PAYLOAD_ALIGN`]; the last payload is not padded (the file ends where it ends).
struct Layout {
    table_offset: usize,
    table_len: usize,
    offsets: Vec<usize>,
    file_len: usize,
}

impl Layout {
    /// `None` if the file would not fit the address space.
    fn new(
        tensors: &[SignatureTensor],
        quantized: &[(Quantized, QuantStats)],
        meta_len: usize,
    ) -> Option<Layout> {
        let table_len: usize = tensors
            .iter()
            .zip(quantized)
            .map(|(t, (q, _))| entry_len(t, q))
            .sum();
        let table_offset = HEADER_LEN + meta_len;
        let mut offset = align_up(table_offset + table_len)?;
        let mut offsets = Vec::with_capacity(tensors.len());
        for (q, _) in quantized {
            offsets.push(offset);
            offset = align_up(offset.checked_add(q.payload().len())?)?;
        }
        let file_len = offsets.last().copied().unwrap_or(offset)
            + quantized
                .last()
                .map(|(q, _)| q.payload().len())
                .unwrap_or(0);
        Some(Layout {
            table_offset,
            table_len,
            offsets,
            file_len,
        })
    }
}

/// The fixed header's fields (the CRC is sealed last, over the finished header block).
fn write_header(
    out: &mut [u8],
    layout: &Layout,
    tensors: &[SignatureTensor],
    meta_len: usize,
    table_len: usize,
) {
    out[hdr::MAGIC..hdr::MAGIC + 8].copy_from_slice(&MAGIC);
    put_u32(out, hdr::VERSION, FORMAT_VERSION);
    put_u32(out, hdr::FLAGS, 0);
    put_u64(out, hdr::FILE_LEN, layout.file_len as u64);
    put_u64(out, hdr::META_OFFSET, HEADER_LEN as u64);
    put_u32(out, hdr::META_LEN, meta_len as u32);
    put_u32(out, hdr::TENSOR_COUNT, tensors.len() as u32);
    put_u64(out, hdr::TABLE_OFFSET, layout.table_offset as u64);
    put_u32(out, hdr::TABLE_LEN, table_len as u32);
    let fp = fingerprint(
        tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice())),
    );
    put_u32(out, hdr::FINGERPRINT, fp);
    put_u32(out, hdr::RESERVED, 0);
}

/// Recomputes the header CRC of an encoded file in place (over header bytes 0..60, the metadata
/// and the table, as located by the header). Returns false if the header is too short or points
/// outside the buffer. Exposed for tools and tests that edit files deliberately.
pub fn seal_header(bytes: &mut [u8]) -> bool {
    if bytes.len() < HEADER_LEN {
        return false;
    }
    let range = |off: usize, len: usize| -> Option<std::ops::Range<usize>> {
        let o = u64::from_le_bytes(bytes[off..off + 8].try_into().ok()?) as usize;
        let l = u32::from_le_bytes(bytes[len..len + 4].try_into().ok()?) as usize;
        let end = o.checked_add(l)?;
        (end <= bytes.len()).then_some(o..end)
    };
    let (Some(meta), Some(table)) = (
        range(hdr::META_OFFSET, hdr::META_LEN),
        range(hdr::TABLE_OFFSET, hdr::TABLE_LEN),
    ) else {
        return false;
    };
    let mut crc = crc32c::crc32c(&bytes[..hdr::HEADER_CRC]);
    crc = crc32c::crc32c_append(crc, &bytes[meta]);
    crc = crc32c::crc32c_append(crc, &bytes[table]);
    put_u32(bytes, hdr::HEADER_CRC, crc);
    true
}

/// Encodes and writes a signature to `path` atomically (temporary file + rename).
pub fn write_signature(
    path: &Path,
    meta: &Metadata,
    tensors: &[SignatureTensor],
    dtype: DType,
) -> Result<WriteReport, FormatError> {
    let (bytes, report) = encode(meta, tensors, dtype, path)?;
    write_atomic(path, &bytes)
        .map_err(|err| FormatError::new(path, K::Io, "file", err.to_string()))?;
    Ok(report)
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn entry_len(t: &SignatureTensor, q: &Quantized) -> usize {
    2 + t.name.len() + 4 + 8 * t.shape.len() + 8 + 8 + 4 + 4 + 4 * q.scales().len() + 12
}

fn write_entry(
    out: &mut Vec<u8>,
    t: &SignatureTensor,
    dtype: DType,
    q: &Quantized,
    stats: &QuantStats,
    offset: usize,
) {
    let payload = q.payload();
    out.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
    out.extend_from_slice(t.name.as_bytes());
    out.extend_from_slice(&[dtype.code(), t.role.code(), t.shape.len() as u8, 0]);
    for &d in &t.shape {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    out.extend_from_slice(&(offset as u64).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(&(q.scales().len() as u32).to_le_bytes());
    for s in q.scales() {
        out.extend_from_slice(&s.to_le_bytes());
    }
    for v in [stats.l2_norm, stats.max_abs_err, stats.rel_l2_err] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
