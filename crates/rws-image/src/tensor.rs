//! Images as model input: resized to the model's side, normalized per channel, laid out as
//! `[3, H, W]` planes (the `1 × 3 × H × W` NCHW input of every rws model). The daemon's frames
//! and the offline evaluator both go through [`to_input`], so a model sees a frame exactly as it
//! saw its test images.

use crate::resize::linear_taps;
use crate::{Image, ImageError};

/// Per-channel normalization after scaling to [0, 1]: `(x − mean[c]) / std[c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// No normalization (the demo models take [0, 1] input).
    pub const IDENTITY: Normalize = Normalize {
        mean: [0.0; 3],
        std: [1.0; 3],
    };
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize::IDENTITY
    }
}

/// Writes `image` resized (bilinear, OpenCV half-pixel centres) to `height × width` and
/// normalized as `[3, height, width]` planes into `out`, which is resized to fit. One-off
/// callers use this; a frame loop keeps a [`ToInput`] so nothing is allocated per frame.
pub fn to_input(
    image: &Image,
    size: (usize, usize),
    norm: &Normalize,
    out: &mut Vec<f32>,
) -> Result<(), ImageError> {
    ToInput::default().run(image, size, norm, out)
}

/// The frame → model input step with its tables kept: resize and normalize fused into one pass
/// over the output (no intermediate planes), the bilinear taps computed once per pair of sizes.
/// The values are bit-identical to resizing each plane with [`crate::resize::resize_linear`]
/// and normalizing afterwards: the same taps, summed in the same order in f64.
#[derive(Debug, Default)]
pub struct ToInput {
    /// (source height, source width, height, width) the taps are for.
    sizes: (usize, usize, usize, usize),
    rows: Vec<[(usize, f64); 2]>,
    cols: Vec<[(usize, f64); 2]>,
}

impl ToInput {
    /// Writes `image` as the model input of `(height, width)` into `out` (reused; it allocates
    /// only when the sizes change).
    pub fn run(
        &mut self,
        image: &Image,
        (height, width): (usize, usize),
        norm: &Normalize,
        out: &mut Vec<f32>,
    ) -> Result<(), ImageError> {
        if image.data.len() != image.height * image.width * 3 {
            return Err(ImageError::Shape {
                len: image.data.len(),
                height: image.height,
                width: image.width,
                channels: 3,
            });
        }
        if height == 0 || width == 0 || image.height == 0 || image.width == 0 {
            return Err(ImageError::Shape {
                len: 0,
                height,
                width,
                channels: 3,
            });
        }
        let plane = height * width;
        out.clear();
        out.resize(3 * plane, 0.0);
        if image.height == height && image.width == width {
            for (i, px) in image.data.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = (px[c] - norm.mean[c]) / norm.std[c];
                }
            }
            return Ok(());
        }
        self.prepare(image.height, image.width, height, width);
        let src_w = image.width;
        for c in 0..3 {
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (y, wy) in self.rows.iter().enumerate() {
                for (x, wx) in self.cols.iter().enumerate() {
                    let mut acc = 0f64;
                    for &(sy, cy) in wy {
                        for &(sx, cx) in wx {
                            acc += cy * cx * f64::from(image.data[(sy * src_w + sx) * 3 + c]);
                        }
                    }
                    dst[y * width + x] = (acc as f32 - norm.mean[c]) / norm.std[c];
                }
            }
        }
        Ok(())
    }

    fn prepare(&mut self, ih: usize, iw: usize, oh: usize, ow: usize) {
        if self.sizes == (ih, iw, oh, ow) && !self.rows.is_empty() {
            return;
        }
        self.sizes = (ih, iw, oh, ow);
        self.rows.clear();
        self.rows.extend((0..oh).map(|y| linear_taps(y, ih, oh)));
        self.cols.clear();
        self.cols.extend((0..ow).map(|x| linear_taps(x, iw, ow)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_channel_major_and_normalized() {
        let mut img = Image::new(2, 3);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = i as f32 / 18.0;
        }
        let norm = Normalize {
            mean: [0.5, 0.0, 0.25],
            std: [0.5, 1.0, 2.0],
        };
        let mut out = Vec::new();
        to_input(&img, (2, 3), &norm, &mut out).unwrap();
        assert_eq!(out.len(), 18);
        // Pixel 4 (row 1, column 1), green: sample 13 of the interleaved data.
        assert_eq!(out[6 + 4], 13.0 / 18.0);
        // Red of pixel 0, normalized: (0 - 0.5) / 0.5.
        assert_eq!(out[0], -1.0);
        // Blue of pixel 5: (17/18 - 0.25) / 2.
        assert_eq!(out[12 + 5], (17.0 / 18.0 - 0.25) / 2.0);
    }

    #[test]
    fn the_fused_pass_equals_resizing_planes_then_normalizing_bit_for_bit() {
        use crate::resize::resize_linear;
        let (h, w) = (13, 21);
        let mut img = Image::new(h, w);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = ((i * 37) % 101) as f32 / 101.0;
        }
        let norm = Normalize {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        };
        let mut fused = ToInput::default();
        let mut out = Vec::new();
        for (oh, ow) in [(32, 32), (7, 9), (13, 21)] {
            fused.run(&img, (oh, ow), &norm, &mut out).unwrap();
            for c in 0..3 {
                let plane = if (oh, ow) == (h, w) {
                    img.channel(c)
                } else {
                    resize_linear(&img.channel(c), h, w, oh, ow)
                };
                for (i, v) in plane.iter().enumerate() {
                    let want = (v - norm.mean[c]) / norm.std[c];
                    assert_eq!(
                        out[c * oh * ow + i].to_bits(),
                        want.to_bits(),
                        "{oh}x{ow} c{c} {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn resizes_to_the_model_side() {
        let img = Image::new(7, 5);
        let mut out = vec![1.0; 4];
        to_input(&img, (4, 4), &Normalize::IDENTITY, &mut out).unwrap();
        assert_eq!(out, vec![0.0; 48]);
        assert!(to_input(&img, (0, 4), &Normalize::IDENTITY, &mut out).is_err());
    }
}
