//! Images as model input: resized to the model's side, normalized per channel, laid out as
//! `[3, H, W]` planes (the `1 × 3 × H × W` NCHW input of every rws model). The daemon's frames
//! and the offline evaluator both go through [`to_input`], so a model sees a frame exactly as it
//! saw its test images.

use crate::resize::resize_linear;
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
/// normalized as `[3, height, width]` planes into `out`, which is resized to fit.
pub fn to_input(
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
    if height == 0 || width == 0 {
        return Err(ImageError::Shape {
            len: 0,
            height,
            width,
            channels: 3,
        });
    }
    let resized;
    let img = if image.height == height && image.width == width {
        image
    } else {
        let planes: Vec<Vec<f32>> = (0..3)
            .map(|c| resize_linear(&image.channel(c), image.height, image.width, height, width))
            .collect();
        resized = Image::from_planes(height, width, [&planes[0], &planes[1], &planes[2]]);
        &resized
    };
    let plane = height * width;
    out.clear();
    out.resize(3 * plane, 0.0);
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] - norm.mean[c]) / norm.std[c];
        }
    }
    Ok(())
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
    fn resizes_to_the_model_side() {
        let img = Image::new(7, 5);
        let mut out = vec![1.0; 4];
        to_input(&img, (4, 4), &Normalize::IDENTITY, &mut out).unwrap();
        assert_eq!(out, vec![0.0; 48]);
        assert!(to_input(&img, (0, 4), &Normalize::IDENTITY, &mut out).is_err());
    }
}
