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

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;

use super::{
    checked_numel, fingerprint, hdr, scale_groups, DType, FormatError, FormatErrorKind as K,
    Metadata, QuantStats, Role, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_META_LEN, MAX_NAME_LEN,
    MAX_RANK, MAX_TENSORS, PAYLOAD_ALIGN,
};

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
        let io = |e: std::io::Error| FormatError::new(path, K::Io, "file", e.to_string());
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < HEADER_LEN as u64 {
            return Err(truncated_header(path, len as usize));
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
        let parsed = parse(&path, bytes.as_slice())?;
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

fn truncated_header(path: &Path, len: usize) -> FormatError {
    FormatError::new(
        path,
        K::Truncated,
        "header",
        format!("file is {len} bytes, shorter than the {HEADER_LEN}-byte header"),
    )
}

struct Parsed {
    version: u32,
    meta: Metadata,
    tensors: Vec<TensorEntry>,
    fingerprint: u32,
}

/// A bounds-checked little-endian reader over one region of the file.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Which table entry is being read, for error messages.
    field: String,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
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

    fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn f32(&mut self, what: &str) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32(what)?))
    }

    fn err(&self, kind: K, what: &str, reason: String) -> FormatError {
        FormatError::new(self.path, kind, format!("{}.{what}", self.field), reason)
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A region `[offset, offset + len)` of the file, checked against its length.
fn region(
    path: &Path,
    file_len: usize,
    field: &str,
    offset: u64,
    len: u64,
) -> Result<std::ops::Range<usize>, FormatError> {
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

fn parse(path: &Path, b: &[u8]) -> Result<Parsed, FormatError> {
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
    let flags = le_u32(b, hdr::FLAGS);
    let reserved = le_u32(b, hdr::RESERVED);
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

    let head_end = meta.end.max(table.end);
    let meta = parse_meta(path, &b[meta])?;
    let count = le_u32(b, hdr::TENSOR_COUNT) as usize;
    if count == 0 || count > MAX_TENSORS {
        return Err(e(
            K::Invalid,
            "tensor_count",
            format!("{count} tensors; must be 1..={MAX_TENSORS}"),
        ));
    }
    let tensors = parse_table(path, &b[table], count)?;
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
        version,
        meta,
        tensors,
        fingerprint: fp,
    })
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

fn parse_entry(cur: &mut Cursor<'_>) -> Result<TensorEntry, FormatError> {
    let name_len = cur.u16("name_len")? as usize;
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(cur.err(
            K::Invalid,
            "name_len",
            format!("{name_len}; must be 1..={MAX_NAME_LEN}"),
        ));
    }
    let name = std::str::from_utf8(cur.take(name_len, "name")?)
        .map_err(|err| cur.err(K::Invalid, "name", format!("not UTF-8: {err}")))?
        .to_string();
    // From here on, errors name the tensor rather than its index.
    cur.field = format!("tensor '{name}'");
    let code = cur.u8("dtype")?;
    let dtype = DType::from_code(code)
        .ok_or_else(|| cur.err(K::Invalid, "dtype", format!("unknown dtype code {code}")))?;
    let code = cur.u8("role")?;
    let role = Role::from_code(code)
        .ok_or_else(|| cur.err(K::Invalid, "role", format!("unknown role code {code}")))?;
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
    let offset = cur.u64("payload_offset")?;
    let len = cur.u64("payload_len")?;
    let crc = cur.u32("payload_crc")?;
    let scale_count = cur.u32("scale_count")? as usize;
    let expected_scales = if dtype == DType::I8 {
        scale_groups(&shape)
    } else {
        0
    };
    if scale_count != expected_scales {
        return Err(cur.err(
            K::SizeMismatch,
            "scale_count",
            format!("{scale_count} scales for a {dtype} tensor of shape {shape:?}; expected {expected_scales}"),
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
        scales.push(s);
    }
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

/// Bounds, alignment, overlap and checksum of every payload.
fn check_payloads(
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
    for t in tensors {
        let crc = crc32c::crc32c(&b[t.offset..t.offset + t.len]);
        if crc != t.crc {
            return Err(e(
                K::Checksum,
                t,
                "payload_crc",
                format!(
                    "stored {:#010x}, computed {crc:#010x}: payload is corrupt",
                    t.crc
                ),
            ));
        }
    }
    Ok(())
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
