//! Image-processing primitives the corruptions are built from, each matching the library call the
//! reference implementation makes (scipy.ndimage, skimage, OpenCV, PIL), including its border rule
//! and rounding of sizes, because those details decide whether outputs agree to 30 dB.
//!
//! All functions work on single-channel planes (`Vec<f32>`, row-major, `h × w`).

/// How samples outside a plane are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// Clamp to the edge (scipy `nearest`, skimage's default).
    Nearest,
    /// Half-sample symmetric `dcba|abcd|dcba` (scipy `reflect`).
    Reflect,
    /// Whole-sample symmetric `dcb|abcd|cba` (OpenCV's default, `BORDER_REFLECT_101`).
    Reflect101,
}

/// Maps index `i` (possibly outside) into `0..n`.
pub fn border_index(i: isize, n: usize, mode: Border) -> usize {
    let n = n as isize;
    if (0..n).contains(&i) {
        return i as usize;
    }
    match mode {
        Border::Nearest => i.clamp(0, n - 1) as usize,
        Border::Reflect => {
            let period = 2 * n;
            let m = i.rem_euclid(period);
            (if m < n { m } else { period - 1 - m }) as usize
        }
        Border::Reflect101 => {
            if n == 1 {
                return 0;
            }
            let period = 2 * n - 2;
            let m = i.rem_euclid(period);
            (if m < n { m } else { period - m }) as usize
        }
    }
}

/// scipy's 1-D Gaussian weights: radius `int(truncate·σ + 0.5)`, normalized.
pub fn gaussian_weights(sigma: f64, truncate: f64) -> Vec<f32> {
    let radius = (truncate * sigma + 0.5) as isize;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x as f64 / sigma).powi(2)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| (v / sum) as f32).collect()
}

/// Correlates rows (axis 1) then columns (axis 0) with 1-D kernels centred on their middle tap.
pub fn separable(p: &[f32], h: usize, w: usize, ky: &[f32], kx: &[f32], mode: Border) -> Vec<f32> {
    let rx = (kx.len() / 2) as isize;
    let ry = (ky.len() / 2) as isize;
    let mut tmp = vec![0f32; h * w];
    for y in 0..h {
        let row = &p[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = 0f64;
            for (k, &kv) in kx.iter().enumerate() {
                let xi = border_index(x as isize + k as isize - rx, w, mode);
                acc += f64::from(kv) * f64::from(row[xi]);
            }
            tmp[y * w + x] = acc as f32;
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f64;
            for (k, &kv) in ky.iter().enumerate() {
                let yi = border_index(y as isize + k as isize - ry, h, mode);
                acc += f64::from(kv) * f64::from(tmp[yi * w + x]);
            }
            out[y * w + x] = acc as f32;
        }
    }
    out
}

/// `scipy.ndimage.gaussian_filter` on one plane (σ per axis; σ = 0 leaves that axis alone).
pub fn gaussian(
    p: &[f32],
    h: usize,
    w: usize,
    sigma_y: f64,
    sigma_x: f64,
    mode: Border,
    truncate: f64,
) -> Vec<f32> {
    let k = |s: f64| {
        if s > 0.0 {
            gaussian_weights(s, truncate)
        } else {
            vec![1.0]
        }
    };
    separable(p, h, w, &k(sigma_y), &k(sigma_x), mode)
}

/// `cv2.filter2D` (correlation, anchor at the centre, `BORDER_REFLECT_101`).
pub fn filter2d(p: &[f32], h: usize, w: usize, kernel: &[f32], kh: usize, kw: usize) -> Vec<f32> {
    let (ry, rx) = ((kh / 2) as isize, (kw / 2) as isize);
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f64;
            for ky in 0..kh {
                let yi = border_index(y as isize + ky as isize - ry, h, Border::Reflect101);
                for kx in 0..kw {
                    let xi = border_index(x as isize + kx as isize - rx, w, Border::Reflect101);
                    acc += f64::from(kernel[ky * kw + kx]) * f64::from(p[yi * w + xi]);
                }
            }
            out[y * w + x] = acc as f32;
        }
    }
    out
}

/// OpenCV's `getGaussianKernel(ksize, sigma)` for σ > 0.
pub fn cv_gaussian_kernel(ksize: usize, sigma: f64) -> Vec<f32> {
    let c = (ksize as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..ksize)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// The reference's anti-aliased disk: an indicator of `x² + y² ≤ r²` on a grid of half-width
/// `max(8, r)`, normalized, then `cv2.GaussianBlur` (3×3 up to r = 8, else 5×5) with σ = alias_blur.
pub fn disk(radius: f64, alias_blur: f64) -> (Vec<f32>, usize) {
    let (half, ksize) = if radius <= 8.0 {
        (8isize, 3)
    } else {
        (radius as isize, 5)
    };
    let n = (2 * half + 1) as usize;
    let mut k = vec![0f32; n * n];
    for (i, y) in (-half..=half).enumerate() {
        for (j, x) in (-half..=half).enumerate() {
            if ((x * x + y * y) as f64) <= radius * radius {
                k[i * n + j] = 1.0;
            }
        }
    }
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let g = cv_gaussian_kernel(ksize, alias_blur);
    (separable(&k, n, n, &g, &g, Border::Reflect101), n)
}

/// Python's `round` (half to even), as scipy uses for output shapes.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        (r - 1.0) as usize
    } else {
        r as usize
    }
}

/// `scipy.ndimage.zoom(order=1)` on one plane: output `round(h·z) × round(w·z)`, corners mapped
/// to corners (`grid_mode=False`), linear interpolation.
pub fn zoom_linear(p: &[f32], h: usize, w: usize, z: f64) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = (round_half_even(h as f64 * z), round_half_even(w as f64 * z));
    let scale = |n: usize, o: usize| {
        if o > 1 {
            (n as f64 - 1.0) / (o as f64 - 1.0)
        } else {
            0.0
        }
    };
    let (sy, sx) = (scale(h, oh), scale(w, ow));
    let mut out = vec![0f32; oh * ow];
    for y in 0..oh {
        let fy = y as f64 * sy;
        let y0 = (fy.floor() as usize).min(h - 1);
        let y1 = (y0 + 1).min(h - 1);
        let ty = fy - y0 as f64;
        for x in 0..ow {
            let fx = x as f64 * sx;
            let x0 = (fx.floor() as usize).min(w - 1);
            let x1 = (x0 + 1).min(w - 1);
            let tx = fx - x0 as f64;
            let v = |yy: usize, xx: usize| f64::from(p[yy * w + xx]);
            let top = v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx;
            let bot = v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx;
            out[y * ow + x] = (top * (1.0 - ty) + bot * ty) as f32;
        }
    }
    (out, oh, ow)
}

/// Crops rows `top..top+ch`, columns `left..left+cw`.
pub fn crop(p: &[f32], w: usize, top: usize, left: usize, ch: usize, cw: usize) -> Vec<f32> {
    (top..top + ch)
        .flat_map(|y| p[y * w + left..y * w + left + cw].iter().copied())
        .collect()
}

/// `clipped_zoom` of imagecorruptions: crop the centre `ceil(h/z) × ceil(w/z)`, zoom, keep the
/// top-left `h × w` (zero-padded if the zoom came out smaller).
pub fn clipped_zoom_imagenet(p: &[f32], h: usize, w: usize, z: f64) -> Vec<f32> {
    let ch = ((h as f64 / z).ceil() as usize).min(h);
    let cw = ((w as f64 / z).ceil() as usize).min(w);
    let (top, left) = ((h - ch) / 2, (w - cw) / 2);
    let (zoomed, zh, zw) = zoom_linear(&crop(p, w, top, left, ch, cw), ch, cw, z);
    let mut out = vec![0f32; h * w];
    for y in 0..h.min(zh) {
        for x in 0..w.min(zw) {
            out[y * w + x] = zoomed[y * zw + x];
        }
    }
    out
}

/// `clipped_zoom` of make_cifar_c: a square centre crop of side `ceil(h/z)` (both axes use the
/// height), zoom, then the centred `h × h` (square images; other sizes use the same rule per axis).
pub fn clipped_zoom_cifar(p: &[f32], h: usize, w: usize, z: f64) -> Vec<f32> {
    let ch = ((h as f64 / z).ceil() as usize).min(h);
    let cw = ((w as f64 / z).ceil() as usize).min(w);
    let (top, left) = ((h - ch) / 2, (w - cw) / 2);
    let (zoomed, zh, zw) = zoom_linear(&crop(p, w, top, left, ch, cw), ch, cw, z);
    let (ty, tx) = (zh.saturating_sub(h) / 2, zw.saturating_sub(w) / 2);
    let mut out = vec![0f32; h * w];
    for y in 0..h.min(zh - ty) {
        for x in 0..w.min(zw - tx) {
            out[y * w + x] = zoomed[(y + ty) * zw + x + tx];
        }
    }
    out
}

/// imagecorruptions' `_motion_blur`: a one-sided Gaussian-weighted sum of copies shifted along
/// `angle` (degrees), edges replicated.
pub fn motion_blur(
    p: &[f32],
    h: usize,
    w: usize,
    radius: usize,
    sigma: f64,
    angle: f64,
) -> Vec<f32> {
    let width = radius * 2 + 1;
    let k: Vec<f64> = (0..width)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let ksum: f64 = k.iter().sum();
    let (s, c) = angle.to_radians().sin_cos();
    let mut out = vec![0f64; h * w];
    for (i, &ki) in k.iter().enumerate() {
        // point = (width·sin, width·cos), hypot = width, so i·point/hypot = i·(sin, cos).
        let dy = -((i as f64 * s) - 0.5).ceil() as isize;
        let dx = -((i as f64 * c) - 0.5).ceil() as isize;
        if dy.unsigned_abs() >= h || dx.unsigned_abs() >= w {
            break;
        }
        let wgt = ki / ksum;
        for y in 0..h {
            let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
            for x in 0..w {
                let sx = (x as isize - dx).clamp(0, w as isize - 1) as usize;
                out[y * w + x] += wgt * f64::from(p[sy * w + sx]);
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// PIL's separable resampling with the box filter (`Image.BOX`), in floating point.
pub fn resize_box(p: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let cx = box_coeffs(w, ow);
    let cy = box_coeffs(h, oh);
    let mut tmp = vec![0f32; h * ow];
    for y in 0..h {
        for (x, (start, ws)) in cx.iter().enumerate() {
            tmp[y * ow + x] = ws
                .iter()
                .enumerate()
                .map(|(k, &c)| c * p[y * w + start + k])
                .sum();
        }
    }
    let mut out = vec![0f32; oh * ow];
    for (y, (start, ws)) in cy.iter().enumerate() {
        for x in 0..ow {
            out[y * ow + x] = ws
                .iter()
                .enumerate()
                .map(|(k, &c)| c * tmp[(start + k) * ow + x])
                .sum();
        }
    }
    out
}

/// PIL's `precompute_coeffs` for the box filter (support 0.5).
fn box_coeffs(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5).floor().max(0.0)) as usize;
            let xmax = ((center + support + 0.5).floor() as usize).min(n_in);
            let mut ws: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = (x as f64 - center + 0.5) / filterscale;
                    if (-0.5..0.5).contains(&t) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let s: f64 = ws.iter().sum();
            if s > 0.0 {
                ws.iter_mut().for_each(|v| *v /= s);
            }
            (xmin, ws.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// PIL's `Image.NEAREST` resize: source index `floor((o + 0.5) · in / out)`.
pub fn resize_nearest(p: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let idx = |o: usize, n_in: usize, n_out: usize| {
        (((o as f64 + 0.5) * n_in as f64 / n_out as f64) as usize).min(n_in - 1)
    };
    let mut out = vec![0f32; oh * ow];
    for y in 0..oh {
        let sy = idx(y, h, oh);
        for x in 0..ow {
            out[y * ow + x] = p[sy * w + idx(x, w, ow)];
        }
    }
    out
}

/// skimage `rgb2hsv` on one pixel (ties: blue, then green, then red decide the hue).
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    let s = if v == 0.0 || delta == 0.0 {
        0.0
    } else {
        delta / v
    };
    if delta == 0.0 {
        return (0.0, s, v);
    }
    let h = if b == v {
        4.0 + (r - g) / delta
    } else if g == v {
        2.0 + (b - r) / delta
    } else {
        (g - b) / delta
    };
    ((h / 6.0).rem_euclid(1.0), s, v)
}

/// skimage `hsv2rgb` on one pixel.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    match (hi as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// OpenCV's RGB→gray weights.
pub fn gray(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_follow_their_libraries() {
        let r: Vec<usize> = (-3..7)
            .map(|i| border_index(i, 4, Border::Reflect))
            .collect();
        assert_eq!(r, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        let r: Vec<usize> = (-3..7)
            .map(|i| border_index(i, 4, Border::Reflect101))
            .collect();
        assert_eq!(r, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        let r: Vec<usize> = (-2..6)
            .map(|i| border_index(i, 4, Border::Nearest))
            .collect();
        assert_eq!(r, [0, 0, 0, 1, 2, 3, 3, 3]);
    }

    #[test]
    fn hsv_round_trips() {
        for &(r, g, b) in &[
            (0.2f32, 0.5, 0.9),
            (1.0, 0.0, 0.0),
            (0.3, 0.3, 0.3),
            (0.9, 0.9, 0.1),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-6 && (g - g2).abs() < 1e-6 && (b - b2).abs() < 1e-6);
        }
    }

    #[test]
    fn zoom_keeps_corners_and_box_resize_averages() {
        let p: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let (z, oh, ow) = zoom_linear(&p, 4, 4, 1.5);
        assert_eq!((oh, ow), (6, 6));
        assert_eq!((z[0], z[35]), (0.0, 15.0));
        let b = resize_box(&p, 4, 4, 2, 2);
        assert_eq!(b, vec![2.5, 4.5, 10.5, 12.5]);
    }
}
