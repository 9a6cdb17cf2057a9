//! The `.rws` format: round trips for every dtype, and one crafted file per validation failure.

use rws_signature::format::{DType, FormatErrorKind as K, SignatureFile, TensorData};
use rws_testkit::*;

fn open(bytes: &[u8]) -> Result<SignatureFile, rws_signature::format::FormatError> {
    SignatureFile::from_bytes(bytes, "crafted.rws")
}

fn expect(bytes: &[u8], kind: K, field_part: &str) {
    match open(bytes) {
        Ok(_) => panic!("accepted a file that should fail with {kind:?}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "wrong error: {e}");
            assert!(
                e.field.contains(field_part),
                "field '{}' should mention '{field_part}': {e}",
                e.field
            );
            assert!(
                e.to_string().starts_with("crafted.rws: "),
                "message must name the file: {e}"
            );
        }
    }
}

#[test]
fn round_trip_every_dtype_through_a_memory_map() {
    let dir = tempfile::tempdir().unwrap();
    let layers = small_layers();
    let tensors = signature_tensors(11, &layers);
    for dtype in [DType::I8, DType::F16, DType::F32] {
        let path = dir.path().join(format!("fog-{dtype}.rws"));
        let report =
            rws_signature::format::write_signature(&path, &meta("fog"), &tensors, dtype).unwrap();
        let sig = SignatureFile::open(&path).unwrap();
        assert_eq!(sig.metadata(), &meta("fog"));
        assert_eq!(sig.file_len(), report.file_len);
        // The whole-file CRC the format assembles from its payload checksums is the file's.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(sig.file_crc32c(), crc32c::crc32c(&bytes), "{dtype}");
        assert_eq!(sig.tensors().len(), tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let e = &sig.tensors()[i];
            assert_eq!(
                (e.name.as_str(), e.role, &e.shape, e.dtype),
                (t.name.as_str(), t.role, &t.shape, dtype)
            );
            assert_eq!(e.offset % 64, 0);
            let back = sig.data(i).to_f32();
            let max_err = t
                .values
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert_eq!(e.stats.max_abs_err, report.tensors[i].2.max_abs_err);
            // The recorded error is the real one.
            assert!(
                (max_err - e.stats.max_abs_err).abs() <= 1e-9,
                "{max_err} vs {}",
                e.stats.max_abs_err
            );
            match (dtype, sig.data(i)) {
                (DType::F32, TensorData::F32(v)) => assert_eq!(v, &t.values[..]),
                (DType::F16, TensorData::F16(_)) => assert!(e.stats.rel_l2_err < 1e-3),
                (DType::I8, TensorData::I8 { scales, .. }) => {
                    assert_eq!(
                        scales.len(),
                        if t.shape.len() >= 2 { t.shape[0] } else { 1 }
                    );
                    assert!(e.stats.rel_l2_err < 0.02, "rel err {}", e.stats.rel_l2_err);
                }
                (d, _) => panic!("dtype {d} read back as another type"),
            }
        }
        // The same bytes from memory validate the same way.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(open(&bytes).unwrap().tensors(), sig.tensors());
    }
}

#[test]
fn writer_is_deterministic_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.rws");
    let tensors = signature_tensors(3, &small_layers());
    rws_signature::format::write_signature(&path, &meta("snow"), &tensors, DType::I8).unwrap();
    let first = std::fs::read(&path).unwrap();
    rws_signature::format::write_signature(&path, &meta("snow"), &tensors, DType::I8).unwrap();
    assert_eq!(first, std::fs::read(&path).unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn truncated() {
    let b = encode(1, DType::I8);
    expect(&b[..b.len() - 1], K::Truncated, "file_len");
    expect(&b[..40], K::Truncated, "header");
    expect(&[], K::Truncated, "header");
}

#[test]
fn bad_magic() {
    let mut b = encode(1, DType::I8);
    b[1] = b'X';
    expect(&b, K::BadMagic, "magic");
    let mut text = b"\x89RWS\n\x1a\n".to_vec(); // CR LF mangled to LF
    text.resize(200, 0);
    expect(&text, K::BadMagic, "magic");
}

#[test]
fn future_version() {
    let mut b = encode(1, DType::I8);
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    reseal(&mut b);
    expect(&b, K::UnsupportedVersion, "version");
}

#[test]
fn offset_out_of_bounds() {
    let mut b = encode(1, DType::I8);
    let pos = &entry_positions(&b)[1];
    b[pos.payload_offset..pos.payload_offset + 8].copy_from_slice(&(u64::MAX - 10).to_le_bytes());
    reseal(&mut b);
    expect(&b, K::OutOfBounds, "conv0.bias");
    // The table itself pointing past the end.
    let mut b = encode(1, DType::I8);
    b[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect(&b, K::OutOfBounds, "table_offset");
}

#[test]
fn overlapping_payloads() {
    let mut b = encode(1, DType::F32);
    let pos = entry_positions(&b);
    // Point tensor 2's payload at tensor 0's.
    let first = u64_at(&b, pos[0].payload_offset);
    b[pos[2].payload_offset..pos[2].payload_offset + 8].copy_from_slice(&first.to_le_bytes());
    reseal(&mut b);
    expect(&b, K::Overlap, "payload_offset");
}

#[test]
fn misaligned_payload() {
    let mut b = encode(1, DType::F32);
    let pos = &entry_positions(&b)[0];
    let off = u64_at(&b, pos.payload_offset);
    b[pos.payload_offset..pos.payload_offset + 8].copy_from_slice(&(off + 4).to_le_bytes());
    reseal(&mut b);
    expect(&b, K::Misaligned, "conv0.weight");
}

#[test]
fn bad_checksums() {
    // A payload byte.
    let mut b = encode(1, DType::I8);
    let pos = &entry_positions(&b)[2];
    let off = u64_at(&b, pos.payload_offset) as usize;
    b[off + 5] ^= 0x10;
    expect(&b, K::Checksum, "conv1.weight");
    // A metadata byte, without resealing.
    let mut b = encode(1, DType::I8);
    b[70] ^= 0x01;
    expect(&b, K::Checksum, "header_crc");
}

#[test]
fn nan_scale() {
    let mut b = encode(1, DType::I8);
    let pos = &entry_positions(&b)[0];
    b[pos.scales + 4..pos.scales + 8].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut b);
    expect(&b, K::NonFinite, "scales");
}

/// A finite scale whose 127 multiple overflows f32: with every checksum right, the file would
/// dequantize to ±inf (the `rws_file` fuzz target's finding). The largest allowed scale reads.
#[test]
fn scale_too_large_for_a_finite_value() {
    let mut b = encode(1, DType::I8);
    let pos = &entry_positions(&b)[0];
    b[pos.scales + 4..pos.scales + 8].copy_from_slice(&(f32::MAX / 100.0).to_le_bytes());
    reseal(&mut b);
    expect(&b, K::NonFinite, "scales");
    let mut b = encode(1, DType::I8);
    let max = rws_signature::format::MAX_SCALE;
    b[pos.scales + 4..pos.scales + 8].copy_from_slice(&max.to_le_bytes());
    reseal(&mut b);
    let sig = open(&b).expect("a file at MAX_SCALE reads");
    assert!(sig.data(0).to_f32().iter().all(|v| v.is_finite()));
}

#[test]
fn shape_and_size_mismatch() {
    let mut b = encode(1, DType::F32);
    let pos = &entry_positions(&b)[1]; // conv0.bias [8]
    b[pos.dims..pos.dims + 8].copy_from_slice(&9u64.to_le_bytes());
    reseal(&mut b);
    // Fingerprint is checked later; the size check must fire first.
    expect(&b, K::SizeMismatch, "payload_len");
    let mut b = encode(1, DType::F32);
    let pos = &entry_positions(&b)[1];
    b[pos.payload_len..pos.payload_len + 8].copy_from_slice(&31u64.to_le_bytes());
    reseal(&mut b);
    expect(&b, K::SizeMismatch, "payload_len");
    // An i8 tensor with the wrong number of scales cannot be fixed up by resealing either.
    let mut b = encode(1, DType::I8);
    let pos = &entry_positions(&b)[0];
    b[pos.scale_count..pos.scale_count + 4].copy_from_slice(&7u32.to_le_bytes());
    reseal(&mut b);
    expect(&b, K::SizeMismatch, "scale_count");
}

#[test]
fn metadata_is_validated() {
    let tensors = signature_tensors(1, &small_layers());
    let mut m = meta("fog");
    m.corruption = "fog; rm -rf /".into();
    let err = rws_signature::format::encode(&m, &tensors, DType::I8, "x.rws".as_ref()).unwrap_err();
    assert_eq!(err.kind, K::Metadata);
    assert!(err.field.contains("corruption"));
}

/// No input may panic or be accepted when any single bit is flipped, or at any truncation.
#[test]
fn every_bit_flip_and_truncation_is_refused_without_panic() {
    for dtype in [DType::I8, DType::F16] {
        let b = encode(5, dtype);
        assert!(open(&b).is_ok());
        for i in 0..b.len() {
            for bit in [0u8, 3, 7] {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(
                    open(&c).is_err(),
                    "bit {bit} of byte {i} flipped and accepted"
                );
            }
        }
        for n in 0..b.len() {
            assert!(open(&b[..n]).is_err());
        }
    }
}

/// Flips with the header CRC recomputed, so the structural checks (not the checksum) must catch
/// or tolerate each one without panicking or reading out of bounds.
#[test]
fn resealed_corruptions_never_panic() {
    let b = encode(9, DType::I8);
    let meta_end = 64 + u32_at(&b, 32) as usize;
    let table_end = meta_end + u32_at(&b, 48) as usize;
    for i in (0..table_end).filter(|i| !(60..64).contains(i)) {
        for v in [0x00u8, 0xff, 0x80, 0x7f, 0x01] {
            let mut c = b.clone();
            c[i] = v;
            reseal(&mut c);
            let _ = open(&c);
        }
    }
}

/// Writes `bytes` at `at` inside entry `k`'s payload, then fixes the payload's CRC and the
/// header CRC, as a careful forger would: only the value checks can refuse the result.
fn forge_payload(b: &mut [u8], k: usize, at: usize, bytes: &[u8]) {
    let pos = &entry_positions(b)[k];
    let off = u64_at(b, pos.payload_offset) as usize;
    let len = u64_at(b, pos.payload_len) as usize;
    b[off + at..off + at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32c::crc32c(&b[off..off + len]);
    b[pos.payload_crc..pos.payload_crc + 4].copy_from_slice(&crc.to_le_bytes());
    reseal(b);
}

#[test]
fn non_finite_payloads_and_int8_minus_128_are_refused() {
    for (dtype, value) in [
        (DType::F32, f32::NAN.to_le_bytes().to_vec()),
        (DType::F32, f32::INFINITY.to_le_bytes().to_vec()),
        (DType::F16, half::f16::NAN.to_le_bytes().to_vec()),
        (DType::F16, half::f16::NEG_INFINITY.to_le_bytes().to_vec()),
    ] {
        let mut b = encode(1, dtype);
        forge_payload(&mut b, 2, 8, &value);
        expect(&b, K::NonFinite, "conv1.weight");
        let e = open(&b).unwrap_err().to_string();
        assert!(
            e.contains("value 2 is not finite") || e.contains("value 4 is not finite"),
            "{e}"
        );
    }
    let mut b = encode(1, DType::I8);
    forge_payload(&mut b, 0, 3, &[0x80]);
    expect(&b, K::Invalid, "conv0.weight");
    assert!(open(&b).unwrap_err().to_string().contains("-128"));
}

#[test]
fn bytes_after_the_last_payload_are_refused() {
    let mut b = encode(1, DType::I8);
    let n = b.len();
    b.extend_from_slice(&[0u8; 64]);
    b[16..24].copy_from_slice(&((n + 64) as u64).to_le_bytes());
    reseal(&mut b);
    expect(&b, K::Invalid, "file_len");
    assert!(open(&b)
        .unwrap_err()
        .to_string()
        .contains("64 bytes follow the last payload"));
}
