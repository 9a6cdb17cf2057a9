//! Bounds-checked little-endian reading of the file's bytes: a cursor over one region, the
//! fixed-offset header fields, and regions checked against the file's length. Every read of the
//! parser goes through these, so none can run past the data.

use std::ops::Range;
use std::path::Path;

use super::super::{FormatError, FormatErrorKind as K};

/// A bounds-checked little-endian reader over one region of the file.
pub(super) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub path: &'a Path,
    /// Which table entry is being read, for error messages.
    pub field: String,
}

impl<'a> Cursor<'a> {
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(FormatError::new(
                self.path,
                K::OutOfBounds,
                format!("{}.{what}", self.field),
                format!(
                    "needs {n} bytes at table byte {}, table has {}",
                    self.pos,
                    self.buf.len()
                ),
            )),
        }
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn f32(&mut self, what: &str) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32(what)?))
    }

    pub fn err(&self, kind: K, what: &str, reason: String) -> FormatError {
        FormatError::new(self.path, kind, format!("{}.{what}", self.field), reason)
    }
}

pub(super) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A region `[offset, offset + len)` of the file, checked against its length.
pub(super) fn region(
    path: &Path,
    file_len: usize,
    field: &str,
    offset: u64,
    len: u64,
) -> Result<Range<usize>, FormatError> {
    let end = offset.checked_add(len);
    match end {
        Some(end) if end <= file_len as u64 => Ok(offset as usize..end as usize),
        _ => Err(FormatError::new(
            path,
            K::OutOfBounds,
            field,
            format!("bytes {offset}..+{len} lie outside the {file_len}-byte file"),
        )),
    }
}
