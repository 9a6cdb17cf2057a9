//! The parser behind [`super::SignatureFile`]: the header, the metadata, the tensor table and the
//! payloads, each checked as `docs/rws-format.md` specifies, in that order, on a plain byte slice
//! through a bounds-checked cursor, so no input can make it read out of bounds or panic.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use super::super::{
    checked_numel, fingerprint, hdr, scale_groups, DType, FormatError, FormatErrorKind as K,
    Metadata, QuantStats, Role, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_META_LEN, MAX_NAME_LEN,
    MAX_RANK, MAX_TENSORS,
};
use super::cursor::{le_u32, le_u64, region, Cursor};
use super::payloads::check_payloads;
use super::TensorEntry;

pub(super) fn truncated_header(path: &Path, len: usize) -> FormatError {
    FormatError::new(
        path,
        K::Truncated,
        "header",
        format!("file is {len} bytes, shorter than the {HEADER_LEN}-byte header"),
    )
}

/// A validated file's contents.
pub(super) struct Parsed {
    pub version: u32,
    pub meta: Metadata,
    pub tensors: Vec<TensorEntry>,
    pub fingerprint: u32,
}

/// Validates the whole file `b`.
pub(super) fn parse(path: &Path, b: &[u8]) -> Result<Parsed, FormatError> {
    let e = |kind, field: &str, reason: String| FormatError::new(path, kind, field, reason);
    let header = parse_header(path, b)?;
    let head_end = header.meta.end.max(header.table.end);
    let meta = parse_meta(path, &b[header.meta.clone()])?;
    let count = le_u32(b, hdr::TENSOR_COUNT) as usize;
    if count == 0 || count > MAX_TENSORS {
        return Err(e(
            K::Invalid,
            "tensor_count",
            format!("{count} tensors; must be 1..={MAX_TENSORS}"),
        ));
    }
    let tensors = parse_table(path, &b[header.table], count)?;
    check_payloads(path, b, &tensors, head_end)?;
    let fp = fingerprint(
        tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice())),
    );
    let stored_fp = le_u32(b, hdr::FINGERPRINT);
    if fp != stored_fp {
        return Err(e(
            K::Checksum,
            "fingerprint",
            format!("stored {stored_fp:#010x}, table gives {fp:#010x}"),
        ));
    }
    Ok(Parsed {
        version: header.version,
        meta,
        tensors,
        fingerprint: fp,
    })
}

/// The fixed header, checked: what it says and where the metadata and the table are.
struct Header {
    version: u32,
    meta: Range<usize>,
    table: Range<usize>,
}

/// Magic, version, declared length, the metadata and table regions and the header checksum;
/// nothing is interpreted beyond the regions before the checksum holds.
fn parse_header(path: &Path, b: &[u8]) -> Result<Header, FormatError> {
    let e = |kind, field: &str, reason: String| FormatError::new(path, kind, field, reason);
    let version = check_identity(path, b)?;
    let meta_len = le_u32(b, hdr::META_LEN) as u64;
    let table_len = le_u32(b, hdr::TABLE_LEN) as u64;
    let meta = region(
        path,
        b.len(),
        "meta_offset",
        le_u64(b, hdr::META_OFFSET),
        meta_len,
    )?;
    let table = region(
        path,
        b.len(),
        "table_offset",
        le_u64(b, hdr::TABLE_OFFSET),
        table_len,
    )?;
    // The checksum comes before any field is interpreted further: a flipped bit in a count or
    // an offset must read as corruption, not as a confusing downstream error.
    let mut crc = crc32c::crc32c(&b[..hdr::HEADER_CRC]);
    crc = crc32c::crc32c_append(crc, &b[meta.clone()]);
    crc = crc32c::crc32c_append(crc, &b[table.clone()]);
    let stored = le_u32(b, hdr::HEADER_CRC);
    if crc != stored {
        return Err(e(
            K::Checksum,
            "header_crc",
            format!(
                "stored {stored:#010x}, computed {crc:#010x}: header, metadata or table is corrupt"
            ),
        ));
    }
    let (flags, reserved) = (le_u32(b, hdr::FLAGS), le_u32(b, hdr::RESERVED));
    if flags != 0 || reserved != 0 {
        return Err(e(
            K::Invalid,
            "flags",
            format!("flags {flags:#x} / reserved {reserved:#x} must be 0 in version 1"),
        ));
    }
    // Version 1 lays the header block out contiguously: header, metadata, table. Fixing the
    // layout leaves no unchecked gap there.
    if meta.start != HEADER_LEN || table.start != meta.end {
        return Err(e(
            K::Overlap,
            "table_offset",
            format!(
                "metadata must start at {HEADER_LEN} and the table right after it (metadata {}..{}, table {}..{})",
                meta.start, meta.end, table.start, table.end
            ),
        ));
    }
    Ok(Header {
        version,
        meta,
        table,
    })
}

/// Length, magic, version and the declared file length; returns the version.
fn check_identity(path: &Path, b: &[u8]) -> Result<u32, FormatError> {
    let e = |kind, field: &str, reason: String| FormatError::new(path, kind, field, reason);
    if b.len() < HEADER_LEN {
        return Err(truncated_header(path, b.len()));
    }
    if b[hdr::MAGIC..hdr::MAGIC + 8] != MAGIC {
        return Err(e(
            K::BadMagic,
            "magic",
            format!(
                "expected {:02x?}, found {:02x?}: not an .rws file",
                MAGIC,
                &b[..8]
            ),
        ));
    }
    let version = le_u32(b, hdr::VERSION);
    if version == 0 || version > FORMAT_VERSION {
        return Err(e(
            K::UnsupportedVersion,
            "version",
            format!("format version {version}; this rws reads versions 1..={FORMAT_VERSION}"),
        ));
    }
    let declared = le_u64(b, hdr::FILE_LEN);
    if declared > b.len() as u64 {
        return Err(e(
            K::Truncated,
            "file_len",
            format!("header says {declared} bytes, file has {}", b.len()),
        ));
    }
    if declared < b.len() as u64 {
        return Err(e(
            K::Invalid,
            "file_len",
            format!(
                "header says {declared} bytes, file has {} (trailing data)",
                b.len()
            ),
        ));
    }
    Ok(version)
}

fn parse_meta(path: &Path, bytes: &[u8]) -> Result<Metadata, FormatError> {
    let e = |field: &str, reason: String| FormatError::new(path, K::Metadata, field, reason);
    if bytes.len() > MAX_META_LEN {
        return Err(e(
            "meta_len",
            format!(
                "{} bytes exceeds the {MAX_META_LEN}-byte limit",
                bytes.len()
            ),
        ));
    }
    let meta: Metadata = serde_json::from_slice(bytes).map_err(|err| {
        e(
            "metadata",
            format!("not a valid metadata JSON object: {err}"),
        )
    })?;
    meta.validate()
        .map_err(|(field, reason)| e(&format!("metadata.{field}"), reason))?;
    Ok(meta)
}

fn parse_table(path: &Path, table: &[u8], count: usize) -> Result<Vec<TensorEntry>, FormatError> {
    let mut cur = Cursor {
        buf: table,
        pos: 0,
        path,
        field: String::new(),
    };
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        cur.field = format!("tensor[{i}]");
        let entry = parse_entry(&mut cur)?;
        if !names.insert(entry.name.clone()) {
            return Err(cur.err(
                K::Invalid,
                "name",
                format!("'{}' appears twice", entry.name),
            ));
        }
        out.push(entry);
    }
    if cur.pos != table.len() {
        return Err(FormatError::new(
            path,
            K::Invalid,
            "table_len",
            format!(
                "{count} entries use {} of {} table bytes",
                cur.pos,
                table.len()
            ),
        ));
    }
    Ok(out)
}

/// One table entry: name, dtype, role, shape, then the payload's place, the scales and the
/// quantization statistics.
fn parse_entry(cur: &mut Cursor<'_>) -> Result<TensorEntry, FormatError> {
    let name = parse_name(cur)?;
    // From here on, errors name the tensor rather than its index.
    cur.field = format!("tensor '{name}'");
    let code = cur.u8("dtype")?;
    let dtype = DType::from_code(code)
        .ok_or_else(|| cur.err(K::Invalid, "dtype", format!("unknown dtype code {code}")))?;
    let code = cur.u8("role")?;
    let role = Role::from_code(code)
        .ok_or_else(|| cur.err(K::Invalid, "role", format!("unknown role code {code}")))?;
    let shape = parse_shape(cur)?;
    let offset = cur.u64("payload_offset")?;
    let len = cur.u64("payload_len")?;
    let crc = cur.u32("payload_crc")?;
    let scales = parse_scales(cur, dtype, &shape)?;
    let stats = parse_stats(cur)?;
    let numel = checked_numel(&shape).ok_or_else(|| {
        cur.err(
            K::SizeMismatch,
            "dims",
            format!("element count of {shape:?} overflows"),
        )
    })?;
    let want = numel.checked_mul(dtype.size());
    if want.map(|w| w as u64) != Some(len) {
        return Err(cur.err(
            K::SizeMismatch,
            "payload_len",
            format!(
                "{len} bytes, but shape {shape:?} of {dtype} needs {}",
                numel as u128 * dtype.size() as u128
            ),
        ));
    }
    Ok(TensorEntry {
        name,
        dtype,
        role,
        shape,
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        len: len as usize,
        crc,
        scales,
        stats,
    })
}

fn parse_name(cur: &mut Cursor<'_>) -> Result<String, FormatError> {
    let name_len = cur.u16("name_len")? as usize;
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(cur.err(
            K::Invalid,
            "name_len",
            format!("{name_len}; must be 1..={MAX_NAME_LEN}"),
        ));
    }
    Ok(std::str::from_utf8(cur.take(name_len, "name")?)
        .map_err(|err| cur.err(K::Invalid, "name", format!("not UTF-8: {err}")))?
        .to_string())
}

fn parse_shape(cur: &mut Cursor<'_>) -> Result<Vec<usize>, FormatError> {
    let rank = cur.u8("rank")? as usize;
    let reserved = cur.u8("reserved")?;
    if rank > MAX_RANK || reserved != 0 {
        return Err(cur.err(
            K::Invalid,
            "rank",
            format!("rank {rank} (max {MAX_RANK}), reserved byte {reserved} (must be 0)"),
        ));
    }
    let mut shape = Vec::with_capacity(rank);
    for d in 0..rank {
        let dim = cur.u64("dims")?;
        if dim == 0 || dim > u32::MAX as u64 {
            return Err(cur.err(
                K::Invalid,
                "dims",
                format!("dimension {d} is {dim}; must be 1..=2^32-1"),
            ));
        }
        shape.push(dim as usize);
    }
    Ok(shape)
}

/// The per-channel scales: one per output channel for i8, none otherwise; finite, ≥ 0 and at
/// most [`MAX_SCALE`](crate::format::MAX_SCALE), so every dequantized value is finite.
fn parse_scales(
    cur: &mut Cursor<'_>,
    dtype: DType,
    shape: &[usize],
) -> Result<Vec<f32>, FormatError> {
    let scale_count = cur.u32("scale_count")? as usize;
    let expected = if dtype == DType::I8 {
        scale_groups(shape)
    } else {
        0
    };
    if scale_count != expected {
        return Err(cur.err(
            K::SizeMismatch,
            "scale_count",
            format!(
                "{scale_count} scales for a {dtype} tensor of shape {shape:?}; expected {expected}"
            ),
        ));
    }
    let mut scales = Vec::with_capacity(scale_count.min(cur.buf.len() / 4));
    for g in 0..scale_count {
        let s = cur.f32("scales")?;
        if !s.is_finite() || s < 0.0 {
            return Err(cur.err(
                K::NonFinite,
                "scales",
                format!("scale {g} is {s}; must be finite and ≥ 0"),
            ));
        }
        if s > crate::format::MAX_SCALE {
            return Err(cur.err(
                K::NonFinite,
                "scales",
                format!(
                    "scale {g} is {s}; above {:e}, 127 × scale is not a finite f32",
                    crate::format::MAX_SCALE
                ),
            ));
        }
        scales.push(s);
    }
    Ok(scales)
}

fn parse_stats(cur: &mut Cursor<'_>) -> Result<QuantStats, FormatError> {
    let stats = QuantStats {
        l2_norm: cur.f32("l2_norm")?,
        max_abs_err: cur.f32("max_abs_err")?,
        rel_l2_err: cur.f32("rel_l2_err")?,
    };
    for (what, v) in [
        ("l2_norm", stats.l2_norm),
        ("max_abs_err", stats.max_abs_err),
        ("rel_l2_err", stats.rel_l2_err),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(cur.err(K::NonFinite, what, format!("{v}; must be finite and ≥ 0")));
        }
    }
    Ok(stats)
}
