//! Resizing planes the way OpenCV's `cv2.resize` does (half-pixel centres, edges replicated):
//! bilinear for camera frames and dataset upscaling, bicubic for the corruptions that need it.
//! Matching OpenCV matters twice: the corruptions must agree with `imagecorruptions` (which calls
//! OpenCV), and a model trained on images resized one way should see frames resized the same way.

/// OpenCV `resize` with half-pixel centres: `INTER_LINEAR` (`cubic = false`) or `INTER_CUBIC`
/// (a = −0.75), edges replicated.
pub fn resize_cv(p: &[f32], h: usize, w: usize, oh: usize, ow: usize, cubic: bool) -> Vec<f32> {
    resize_cv_window(p, (h, w), (oh, ow), cubic, (0, 0), (oh, ow))
}

/// The window of `size` (rows, columns) at `origin` of [`resize_cv`]'s `out`-sized output,
/// computed alone: each output pixel depends only on its own coordinates, so the values are
/// bit-identical to cropping the full resize, at the cost of the window only.
pub fn resize_cv_window(
    p: &[f32],
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    cubic: bool,
    (y0, x0): (usize, usize),
    (wh, ww): (usize, usize),
) -> Vec<f32> {
    let taps = |o: usize, n_in: usize, n_out: usize| -> Vec<(usize, f64)> {
        let f = (o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5;
        let i0 = f.floor();
        let t = f - i0;
        let at = |k: isize| (i0 as isize + k).clamp(0, n_in as isize - 1) as usize;
        if cubic {
            let a = -0.75;
            let cub = |x: f64| {
                let x = x.abs();
                if x <= 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
                } else {
                    0.0
                }
            };
            (-1..=2).map(|k| (at(k), cub(t - k as f64))).collect()
        } else {
            linear_taps(o, n_in, n_out).to_vec()
        }
    };
    let tx: Vec<_> = (x0..x0 + ww).map(|x| taps(x, w, ow)).collect();
    let ty: Vec<_> = (y0..y0 + wh).map(|y| taps(y, h, oh)).collect();
    let mut out = vec![0f32; wh * ww];
    for (y, wy) in ty.iter().enumerate() {
        for (x, wx) in tx.iter().enumerate() {
            let mut acc = 0f64;
            for &(sy, cy) in wy {
                for &(sx, cx) in wx {
                    acc += cy * cx * f64::from(p[sy * w + sx]);
                }
            }
            out[y * ww + x] = acc as f32;
        }
    }
    out
}

/// The two source samples and weights of output coordinate `o` for a bilinear resize from
/// `n_in` to `n_out` samples (half-pixel centres, edges replicated): the one definition both
/// [`resize_cv`] and the fused frame path ([`crate::tensor::ToInput`]) use.
pub fn linear_taps(o: usize, n_in: usize, n_out: usize) -> [(usize, f64); 2] {
    let f = (o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5;
    let i0 = f.floor();
    let t = f - i0;
    let at = |k: isize| (i0 as isize + k).clamp(0, n_in as isize - 1) as usize;
    [(at(0), 1.0 - t), (at(1), t)]
}

/// Bilinear resize with half-pixel centres (OpenCV `INTER_LINEAR`) of one plane.
pub fn resize_linear(p: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    resize_cv(p, h, w, oh, ow, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resize_window_is_the_crop_of_the_full_resize_bit_for_bit() {
        let (h, w) = (13, 17);
        let p: Vec<f32> = (0..h * w)
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect();
        for cubic in [false, true] {
            for (oh, ow) in [(29, 23), (7, 9)] {
                let full = resize_cv(&p, h, w, oh, ow, cubic);
                let (y0, x0, wh, ww) = (oh / 3, ow / 4, oh / 2, ow / 2);
                let win = resize_cv_window(&p, (h, w), (oh, ow), cubic, (y0, x0), (wh, ww));
                for y in 0..wh {
                    for x in 0..ww {
                        let (a, b) = (win[y * ww + x], full[(y0 + y) * ow + x0 + x]);
                        assert_eq!(a.to_bits(), b.to_bits(), "cubic {cubic} ({y}, {x})");
                    }
                }
            }
        }
    }
}
