//! The payloads of a `.rws` file: where each lies (in bounds, aligned, after the header block,
//! overlapping none), that nothing but zero padding lies between them and nothing after the
//! last, their checksums, and their values.

use std::path::Path;

use super::super::{DType, FormatError, FormatErrorKind as K, PAYLOAD_ALIGN};
use super::cursor::region;
use super::TensorEntry;

/// Bounds, alignment, overlap and checksum of every payload.
pub(super) fn check_payloads(
    path: &Path,
    b: &[u8],
    tensors: &[TensorEntry],
    head_end: usize,
) -> Result<(), FormatError> {
    let e = |kind, t: &TensorEntry, field: &str, reason: String| {
        FormatError::new(path, kind, format!("tensor '{}'.{field}", t.name), reason)
    };
    for t in tensors {
        region(
            path,
            b.len(),
            &format!("tensor '{}'.payload_offset", t.name),
            t.offset as u64,
            t.len as u64,
        )?;
        if t.offset % PAYLOAD_ALIGN != 0 {
            return Err(e(
                K::Misaligned,
                t,
                "payload_offset",
                format!("{} is not a multiple of {PAYLOAD_ALIGN}", t.offset),
            ));
        }
        if t.offset < head_end {
            return Err(e(
                K::Overlap,
                t,
                "payload_offset",
                format!(
                    "{} overlaps the header, metadata or table (which end at {head_end})",
                    t.offset
                ),
            ));
        }
    }
    let mut order: Vec<&TensorEntry> = tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    for pair in order.windows(2) {
        if pair[0].offset + pair[0].len > pair[1].offset {
            return Err(e(
                K::Overlap,
                pair[1],
                "payload_offset",
                format!(
                    "payload at {} overlaps tensor '{}' ({}..{})",
                    pair[1].offset,
                    pair[0].name,
                    pair[0].offset,
                    pair[0].offset + pair[0].len
                ),
            ));
        }
    }
    check_gaps_zero(path, b, &order, head_end)?;
    // The writer never pads after the last payload: a file ends where its last payload ends,
    // so no byte of a valid file lies outside the checked regions.
    let end = order.last().map_or(head_end, |t| t.offset + t.len);
    if end != b.len() {
        return Err(FormatError::new(
            path,
            K::Invalid,
            "file_len",
            format!(
                "{} bytes follow the last payload (which ends at {end})",
                b.len() - end
            ),
        ));
    }
    tensors.iter().try_for_each(|t| check_contents(path, b, t))
}

/// A payload's checksum, then its values: finite for f32 and f16, never −128 for i8 (the
/// symmetric range the writer uses is −127..=127). A NaN in a signature would silently ruin
/// every prediction it patches.
fn check_contents(path: &Path, b: &[u8], t: &TensorEntry) -> Result<(), FormatError> {
    let e = |kind, field: &str, reason: String| {
        FormatError::new(path, kind, format!("tensor '{}'.{field}", t.name), reason)
    };
    let raw = &b[t.offset..t.offset + t.len];
    let crc = crc32c::crc32c(raw);
    if crc != t.crc {
        return Err(e(
            K::Checksum,
            "payload_crc",
            format!(
                "stored {:#010x}, computed {crc:#010x}: payload is corrupt",
                t.crc
            ),
        ));
    }
    let bad = match t.dtype {
        DType::F32 => raw
            .chunks_exact(4)
            .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
        DType::F16 => raw
            .chunks_exact(2)
            .position(|c| !half::f16::from_le_bytes([c[0], c[1]]).is_finite()),
        DType::I8 => raw.iter().position(|&q| q == 0x80),
    };
    match bad {
        None => Ok(()),
        Some(i) if t.dtype == DType::I8 => Err(e(
            K::Invalid,
            "payload",
            format!("value {i} is -128; int8 payloads hold -127..=127"),
        )),
        Some(i) => Err(e(
            K::NonFinite,
            "payload",
            format!("value {i} is not finite"),
        )),
    }
}

/// Padding between the header block and payloads, and between payloads, must be zero. With the
/// checksums this leaves no byte of a valid file unchecked: any single flipped bit is refused.
fn check_gaps_zero(
    path: &Path,
    b: &[u8],
    payloads_by_offset: &[&TensorEntry],
    head_end: usize,
) -> Result<(), FormatError> {
    let mut pos = head_end;
    for t in payloads_by_offset {
        if let Some(i) = b[pos..t.offset].iter().position(|&x| x != 0) {
            return Err(FormatError::new(
                path,
                K::Invalid,
                "padding",
                format!("byte {} before tensor '{}' is not zero", pos + i, t.name),
            ));
        }
        pos = t.offset + t.len;
    }
    Ok(())
}
