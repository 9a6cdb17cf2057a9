//! Quantizing signature tensors to `i8` (symmetric, per output channel), `f16` or `f32`, and
//! measuring what that costs in accuracy.
//!
//! Symmetric per-channel int8 is the default because signatures are zero-centred deltas whose
//! magnitude varies by an order of magnitude between output channels; one scale per tensor would
//! waste most of the 8 bits on the quiet channels. The error of every tensor (max abs, relative L2)
//! is computed here in f64 and recorded in the file, so `rws inspect` can report it.

use half::f16;

use crate::format::{scale_groups, DType, QuantStats};

/// A quantized tensor, ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub enum Quantized {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I8 { q: Vec<i8>, scales: Vec<f32> },
}

impl Quantized {
    /// The payload bytes, little-endian.
    pub fn payload(&self) -> &[u8] {
        match self {
            Quantized::F32(v) => bytemuck::cast_slice(v),
            Quantized::F16(v) => bytemuck::cast_slice(v),
            Quantized::I8 { q, .. } => bytemuck::cast_slice(q),
        }
    }

    /// Per-channel scales (i8 only).
    pub fn scales(&self) -> &[f32] {
        match self {
            Quantized::I8 { scales, .. } => scales,
            _ => &[],
        }
    }

    /// Dequantized values.
    pub fn dequantize(&self) -> Vec<f32> {
        match self {
            Quantized::F32(v) => v.clone(),
            Quantized::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Quantized::I8 { q, scales } => dequantize_i8(q, scales),
        }
    }
}

/// `q[i] · scales[g]` for per-output-channel int8: `scales.len()` groups of equal length.
pub fn dequantize_i8(q: &[i8], scales: &[f32]) -> Vec<f32> {
    let group = (q.len() / scales.len().max(1)).max(1);
    q.chunks(group)
        .zip(scales)
        .flat_map(|(row, &s)| row.iter().map(move |&x| f32::from(x) * s))
        .collect()
}

/// Why a tensor could not be quantized.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantError {
    #[error("value {index} is {value}; signatures must be finite")]
    NonFinite { index: usize, value: f32 },
    #[error("{len} values do not fill shape {shape:?}")]
    ShapeMismatch { len: usize, shape: Vec<usize> },
    #[error("value {index} is {value}, beyond the f16 range (±65504)")]
    F16Overflow { index: usize, value: f32 },
    #[error("value {index} is {value}, beyond the int8 range (±127 × {max_scale:e})", max_scale = crate::format::MAX_SCALE)]
    I8Overflow { index: usize, value: f32 },
}

/// Quantizes `values` (of `shape`, row-major) to `dtype` and measures the error.
pub fn quantize(
    values: &[f32],
    shape: &[usize],
    dtype: DType,
) -> Result<(Quantized, QuantStats), QuantError> {
    if crate::format::checked_numel(shape) != Some(values.len()) || values.is_empty() {
        return Err(QuantError::ShapeMismatch {
            len: values.len(),
            shape: shape.to_vec(),
        });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(QuantError::NonFinite { index, value });
    }
    let quantized = match dtype {
        DType::F32 => Quantized::F32(values.to_vec()),
        DType::F16 => {
            if let Some((index, &value)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| v.abs() > f16::MAX.to_f32())
            {
                return Err(QuantError::F16Overflow { index, value });
            }
            Quantized::F16(values.iter().map(|&v| f16::from_f32(v)).collect())
        }
        DType::I8 => quantize_i8(values, scale_groups(shape))?,
    };
    let stats = error_stats(values, &quantized.dequantize());
    Ok((quantized, stats))
}

/// Symmetric int8 with one scale per group of equal length: `scale = max|x| / 127`, values rounded
/// to nearest and clamped to ±127 (−128 is never used, so negation stays exact). A scale above
/// [`MAX_SCALE`](crate::format::MAX_SCALE) is refused here, by the rule readers apply, so the
/// writer never makes a file its reader would refuse.
fn quantize_i8(values: &[f32], groups: usize) -> Result<Quantized, QuantError> {
    let group_len = values.len() / groups;
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(groups);
    for (g, row) in values.chunks(group_len).enumerate() {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = max / 127.0;
        if scale > crate::format::MAX_SCALE {
            let at = row.iter().position(|v| v.abs() == max).unwrap_or(0);
            let index = g * group_len + at;
            return Err(QuantError::I8Overflow {
                index,
                value: values[index],
            });
        }
        scales.push(scale);
        if scale == 0.0 {
            // An all-zero channel: scale 0 and q 0, rather than 0/0.
            q.extend(std::iter::repeat_n(0i8, row.len()));
            continue;
        }
        let inv = 1.0 / f64::from(scale);
        q.extend(
            row.iter()
                .map(|&v| (f64::from(v) * inv).round().clamp(-127.0, 127.0) as i8),
        );
    }
    Ok(Quantized::I8 { q, scales })
}

/// Max absolute and relative L2 error of `approx` against `exact`, computed in f64.
pub fn error_stats(exact: &[f32], approx: &[f32]) -> QuantStats {
    let (mut norm2, mut err2, mut max) = (0f64, 0f64, 0f64);
    for (&a, &b) in exact.iter().zip(approx) {
        let d = f64::from(a) - f64::from(b);
        norm2 += f64::from(a) * f64::from(a);
        err2 += d * d;
        max = max.max(d.abs());
    }
    let norm = norm2.sqrt();
    QuantStats {
        l2_norm: norm as f32,
        max_abs_err: max as f32,
        rel_l2_err: if norm > 0.0 {
            (err2.sqrt() / norm) as f32
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i8_is_per_channel_and_bounded() {
        let values = [1.0, -0.5, 0.25, 100.0, -50.0, 25.0];
        let (q, stats) = quantize(&values, &[2, 3], DType::I8).unwrap();
        let Quantized::I8 { q: codes, scales } = &q else {
            panic!("expected i8")
        };
        assert_eq!(scales.len(), 2);
        assert_eq!(codes[0], 127);
        assert_eq!(codes[3], 127);
        assert!((scales[1] / scales[0] - 100.0).abs() < 1e-4);
        // Round-to-nearest: error at most half a step per channel.
        assert!(stats.max_abs_err <= scales[1] / 2.0 + 1e-6);
    }

    #[test]
    fn zero_channel_has_zero_scale_not_nan() {
        let (q, stats) = quantize(&[0.0, 0.0, 1.0, 2.0], &[2, 2], DType::I8).unwrap();
        assert_eq!(q.scales()[0], 0.0);
        assert!(stats.rel_l2_err.is_finite());
        assert_eq!(q.dequantize()[..2], [0.0, 0.0]);
    }

    #[test]
    fn rejects_non_finite_and_bad_shape() {
        assert!(matches!(
            quantize(&[1.0, f32::NAN], &[2], DType::I8),
            Err(QuantError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            quantize(&[1.0, 2.0], &[3], DType::F32),
            Err(QuantError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            quantize(&[1e6], &[1], DType::F16),
            Err(QuantError::F16Overflow { .. })
        ));
        assert!(matches!(
            quantize(&[1.0, f32::MAX], &[2], DType::I8),
            Err(QuantError::I8Overflow { index: 1, .. })
        ));
        let (q, _) = quantize(&[-1.0, 127.0 * crate::format::MAX_SCALE], &[2], DType::I8).unwrap();
        assert!(q.dequantize().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn f32_is_lossless() {
        let v = [0.1f32, -3.5, 1e-20];
        let (q, stats) = quantize(&v, &[3], DType::F32).unwrap();
        assert_eq!(q.dequantize(), v);
        assert_eq!(stats.max_abs_err, 0.0);
    }
}
