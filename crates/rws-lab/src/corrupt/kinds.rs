//! The 19 corruptions themselves, with both constant sets. Each function follows the reference
//! code step by step (make_cifar_c.py for `cifar`, imagecorruptions 1.1.2 otherwise); comments
//! name the reference call a step reproduces.

use super::filters::{self as f, Border};
use super::{CorruptError, Corruption};
use rws_image::Image;
use rws_rng::Rng;
use std::sync::OnceLock;

/// Picks the CIFAR or the ImageNet constant for severity index `s`.
fn pick<T: Copy>(cifar: bool, c: [T; 5], i: [T; 5], s: usize) -> T {
    if cifar {
        c[s]
    } else {
        i[s]
    }
}

pub(super) fn apply(
    img: &Image,
    c: Corruption,
    s: usize,
    cifar: bool,
    rng: &mut Rng,
) -> Result<Image, CorruptError> {
    use Corruption::*;
    Ok(match c {
        GaussianNoise => {
            let sd = pick(
                cifar,
                [0.04, 0.06, 0.08, 0.09, 0.10],
                [0.08, 0.12, 0.18, 0.26, 0.38],
                s,
            );
            map(img, |v| v + (sd * rng.normal()) as f32)
        }
        ShotNoise => {
            let lam = pick(
                cifar,
                [500.0, 250.0, 100.0, 75.0, 50.0],
                [60.0, 25.0, 12.0, 5.0, 3.0],
                s,
            );
            map(img, |v| (poisson(rng, f64::from(v) * lam) / lam) as f32)
        }
        ImpulseNoise => {
            let amount = pick(
                cifar,
                [0.01, 0.02, 0.03, 0.05, 0.07],
                [0.03, 0.06, 0.09, 0.17, 0.27],
                s,
            );
            // skimage random_noise(mode='s&p'): each sample flips with p = amount, half to 1, half to 0.
            map(img, |v| {
                let flip = rng.uniform() <= amount;
                let salt = rng.uniform() <= 0.5;
                match (flip, salt) {
                    (true, true) => 1.0,
                    (true, false) => 0.0,
                    _ => v,
                }
            })
        }
        SpeckleNoise => {
            let sd = pick(
                cifar,
                [0.06, 0.1, 0.12, 0.16, 0.2],
                [0.15, 0.2, 0.35, 0.45, 0.6],
                s,
            );
            map(img, |v| v + v * (sd * rng.normal()) as f32)
        }
        GaussianBlur => {
            let sigma = pick(
                cifar,
                [0.4, 0.6, 0.7, 0.8, 1.0],
                [1.0, 2.0, 3.0, 4.0, 6.0],
                s,
            );
            blur(img, sigma)
        }
        GlassBlur => glass_blur(img, s, cifar, rng),
        DefocusBlur => {
            let (r, a) = pick(
                cifar,
                [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)],
                [(3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5)],
                s,
            );
            let (k, n) = f::disk(r, a);
            img.map_planes(|p| f::filter2d(p, img.height, img.width, &k, n, n))
        }
        MotionBlur => {
            let (r, sigma) = pick(
                cifar,
                [(6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5)],
                [(10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0)],
                s,
            );
            let angle = rng.range(-45.0, 45.0);
            img.map_planes(|p| f::motion_blur(p, img.height, img.width, r, sigma, angle))
        }
        ZoomBlur => zoom_blur(img, s, cifar),
        Snow => snow(img, s, cifar, rng),
        Frost => frost(img, s, cifar, rng)?,
        Fog => fog(img, s, cifar, rng),
        Brightness => {
            let c = pick(
                cifar,
                [0.05, 0.1, 0.15, 0.2, 0.3],
                [0.1, 0.2, 0.3, 0.4, 0.5],
                s,
            );
            hsv_map(img, |h, sat, v| (h, sat, (v + c).clamp(0.0, 1.0)))
        }
        Contrast => {
            let c = pick(
                cifar,
                [0.75, 0.5, 0.4, 0.3, 0.15],
                [0.4, 0.3, 0.2, 0.1, 0.05],
                s,
            );
            let n = (img.height * img.width) as f64;
            let means: Vec<f32> = (0..3)
                .map(|ch| (img.channel(ch).iter().map(|&v| f64::from(v)).sum::<f64>() / n) as f32)
                .collect();
            let mut out = img.clone();
            for (i, v) in out.data.iter_mut().enumerate() {
                let m = means[i % 3];
                *v = (*v - m) * c + m;
            }
            out
        }
        Saturate => {
            let (a, b) = pick(
                cifar,
                [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)],
                [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)],
                s,
            );
            hsv_map(img, |h, sat, v| (h, (sat * a + b).clamp(0.0, 1.0), v))
        }
        ElasticTransform => elastic(img, s, cifar, rng),
        Pixelate => pixelate(img, s, cifar),
        JpegCompression => {
            let q = pick(cifar, [80u8, 65, 58, 50, 40], [25, 18, 15, 10, 7], s);
            jpeg(img, q)?
        }
        Spatter => spatter(img, s, cifar, rng),
    })
}

fn map(img: &Image, mut f: impl FnMut(f32) -> f32) -> Image {
    let mut out = img.clone();
    out.data.iter_mut().for_each(|v| *v = f(*v));
    out
}

/// skimage `gaussian(x, sigma, channel_axis=-1)`: mode `nearest`, truncate 4.
fn blur(img: &Image, sigma: f64) -> Image {
    img.map_planes(|p| f::gaussian(p, img.height, img.width, sigma, sigma, Border::Nearest, 4.0))
}

fn hsv_map(img: &Image, f: impl Fn(f32, f32, f32) -> (f32, f32, f32)) -> Image {
    let mut out = img.clone();
    for px in out.data.chunks_exact_mut(3) {
        let (h, s, v) = f::rgb_to_hsv(px[0], px[1], px[2]);
        let (h, s, v) = f(h, s, v);
        let (r, g, b) = f::hsv_to_rgb(h, s, v);
        px.copy_from_slice(&[r, g, b]);
    }
    out
}

/// Poisson deviate: multiplication method below 12, Hörmann's PTRS above (numpy's choice too).
fn poisson(rng: &mut Rng, lam: f64) -> f64 {
    if lam <= 0.0 {
        return 0.0;
    }
    if lam < 12.0 {
        let limit = (-lam).exp();
        let (mut k, mut p) = (0.0, rng.uniform());
        while p > limit {
            k += 1.0;
            p *= rng.uniform();
        }
        return k;
    }
    let slam = lam.sqrt();
    let loglam = lam.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + invalpha.ln() - (a / (us * us) + b).ln()
            <= -lam + k * loglam - ln_gamma(k + 1.0)
        {
            return k;
        }
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + 7.5;
    let mut a = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn glass_blur(img: &Image, s: usize, cifar: bool, rng: &mut Rng) -> Image {
    let (sigma, d, iters) = pick(
        cifar,
        [
            (0.05, 1, 1),
            (0.25, 1, 1),
            (0.4, 1, 1),
            (0.25, 1, 2),
            (0.4, 1, 2),
        ],
        [
            (0.7, 1, 2),
            (0.9, 2, 1),
            (1.0, 2, 3),
            (1.1, 3, 2),
            (1.5, 4, 2),
        ],
        s,
    );
    // np.uint8(gaussian(x) * 255): blurred, then truncated to 8 bits.
    let mut x = blur(img, sigma);
    x.data
        .iter_mut()
        .for_each(|v| *v = (*v * 255.0).floor() / 255.0);
    let (h, w) = (img.height, img.width);
    for _ in 0..iters {
        for y in (d + 1..=h - d).rev() {
            for xx in (d + 1..=w - d).rev() {
                // np.random.randint(-d, d, size=2) gives (dx, dy) in [-d, d).
                let dx = rng.below(2 * d as u64) as isize - d as isize;
                let dy = rng.below(2 * d as u64) as isize - d as isize;
                let (y2, x2) = ((y as isize + dy) as usize, (xx as isize + dx) as usize);
                // The reference writes `x[h, w], x[h', w'] = x[h', w'], x[h, w]` on numpy views:
                // the second assignment reads the already overwritten pixel, so it is a copy of
                // (h', w') into (h, w), not a swap. Reproduced as such.
                if y2 < h && x2 < w {
                    for c in 0..3 {
                        x.data[(y * w + xx) * 3 + c] = x.data[(y2 * w + x2) * 3 + c];
                    }
                }
            }
        }
    }
    blur(&x, sigma)
}

fn zoom_blur(img: &Image, s: usize, cifar: bool) -> Image {
    // np.arange(1, stop, step): the counts below are what numpy produces for the reference stops.
    let (step, count) = pick(
        cifar,
        [(0.01, 7), (0.01, 12), (0.01, 16), (0.01, 21), (0.01, 26)],
        [(0.01, 12), (0.01, 16), (0.02, 11), (0.02, 13), (0.03, 11)],
        s,
    );
    let (h, w) = (img.height, img.width);
    let planes: Vec<Vec<f32>> = (0..3)
        .map(|ch| {
            let p = img.channel(ch);
            let mut acc: Vec<f32> = p.clone();
            for i in 0..count {
                let z = 1.0 + i as f64 * step;
                let zoomed = if cifar {
                    f::clipped_zoom_cifar(&p, h, w, z)
                } else {
                    f::clipped_zoom_imagenet(&p, h, w, z)
                };
                acc.iter_mut().zip(zoomed).for_each(|(a, v)| *a += v);
            }
            acc.iter().map(|v| v / (count + 1) as f32).collect()
        })
        .collect();
    Image::from_planes(h, w, [&planes[0], &planes[1], &planes[2]])
}

fn snow(img: &Image, s: usize, cifar: bool, rng: &mut Rng) -> Image {
    let c = pick(
        cifar,
        [
            (0.1, 0.2, 1.0, 0.6, 8, 3.0, 0.95),
            (0.1, 0.2, 1.0, 0.5, 10, 4.0, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4.0, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6.0, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12.0, 0.8),
        ],
        [
            (0.1, 0.3, 3.0, 0.5, 10, 4.0, 0.8),
            (0.2, 0.3, 2.0, 0.5, 12, 4.0, 0.7),
            (0.55, 0.3, 4.0, 0.9, 12, 8.0, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8.0, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12.0, 0.55),
        ],
        s,
    );
    let (h, w) = (img.height, img.width);
    let layer: Vec<f32> = (0..h * w)
        .map(|_| (c.0 + c.1 * rng.normal()) as f32)
        .collect();
    let layer = if cifar {
        f::clipped_zoom_cifar(&layer, h, w, c.2)
    } else {
        f::clipped_zoom_imagenet(&layer, h, w, c.2)
    };
    let layer: Vec<f32> = layer
        .iter()
        .map(|&v| {
            if v < c.3 as f32 {
                0.0
            } else {
                v.clamp(0.0, 1.0)
            }
        })
        .collect();
    // CIFAR passed the layer through an 8-bit PNG before blurring; both round after.
    let layer: Vec<f32> = if cifar {
        layer.iter().map(|v| (v * 255.0).floor() / 255.0).collect()
    } else {
        layer
    };
    let angle = rng.range(-135.0, -45.0);
    let streaks = f::motion_blur(&layer, h, w, c.4, c.5, angle);
    let streaks: Vec<f32> = streaks
        .iter()
        .map(|v| (v * 255.0).round() / 255.0)
        .collect();
    let mut out = img.clone();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let px = &mut out.data[i * 3..i * 3 + 3];
            let g = f::gray(px[0], px[1], px[2]) * 1.5 + 0.5;
            let sn = streaks[i] + streaks[(h - 1 - y) * w + (w - 1 - x)];
            for v in px.iter_mut() {
                *v = c.6 as f32 * *v + (1.0 - c.6 as f32) * v.max(g) + sn;
            }
        }
    }
    out
}

/// The frost textures of ImageNet-C (Apache-2.0, see assets/frost/LICENSE-imagecorruptions).
/// The reference draws from the first five (`randint(5)`).
static FROST: [&[u8]; 5] = [
    include_bytes!("../../assets/frost/frost1.png"),
    include_bytes!("../../assets/frost/frost2.png"),
    include_bytes!("../../assets/frost/frost3.png"),
    include_bytes!("../../assets/frost/frost4.jpg"),
    include_bytes!("../../assets/frost/frost5.jpg"),
];

/// A frost texture as three planes, decoded once per process.
struct FrostTexture {
    height: usize,
    width: usize,
    planes: [Vec<f32>; 3],
}

fn frost_texture(idx: usize) -> Result<&'static FrostTexture, CorruptError> {
    static DECODED: [OnceLock<Result<FrostTexture, String>>; 5] = [const { OnceLock::new() }; 5];
    let decoded = DECODED[idx].get_or_init(|| {
        let tex =
            Image::decode(FROST[idx], format!("frost{}", idx + 1)).map_err(|e| e.to_string())?;
        Ok(FrostTexture {
            height: tex.height,
            width: tex.width,
            planes: [tex.channel(0), tex.channel(1), tex.channel(2)],
        })
    });
    decoded.as_ref().map_err(|e| CorruptError::Frost(e.clone()))
}

fn frost(img: &Image, s: usize, cifar: bool, rng: &mut Rng) -> Result<Image, CorruptError> {
    let (a, b) = pick(
        cifar,
        [
            (1.0, 0.2),
            (1.0, 0.3),
            (0.9, 0.4),
            (0.85, 0.4),
            (0.75, 0.45),
        ],
        [(1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        s,
    );
    let idx = rng.below(5) as usize;
    let tex = frost_texture(idx)?;
    let (th, tw) = (tex.height, tex.width);
    let (h, w) = (img.height, img.width);
    // CIFAR: cv2.resize(fx=0.2) (bilinear); ImageNet: grow to cover the image ×1.1 (bicubic).
    let (scale, cubic) = if cifar {
        (0.2f64, false)
    } else {
        let need = (h as f64 / th as f64).max(w as f64 / tw as f64).max(1.0);
        (need * 1.1, true)
    };
    let scale = scale.max(1.1 * (h as f64 / th as f64).max(w as f64 / tw as f64));
    let (nh, nw) = if cifar {
        (
            (th as f64 * scale).round() as usize,
            (tw as f64 * scale).round() as usize,
        )
    } else {
        (
            (th as f64 * scale).ceil() as usize,
            (tw as f64 * scale).ceil() as usize,
        )
    };
    let y0 = rng.below((nh - h).max(1) as u64) as usize;
    let x0 = rng.below((nw - w).max(1) as u64) as usize;
    // Only the h×w crop of the resized texture is used: resize just that window (a 32×32 image
    // would otherwise resize a whole texture of a million pixels per call).
    let planes: Vec<Vec<f32>> = tex
        .planes
        .iter()
        .map(|p| {
            rws_image::resize::resize_cv_window(p, (th, tw), (nh, nw), cubic, (y0, x0), (h, w))
        })
        .collect();
    let mut out = img.clone();
    for (c, plane) in planes.iter().enumerate() {
        for (i, t) in plane.iter().enumerate() {
            out.data[i * 3 + c] = a as f32 * img.data[i * 3 + c] + b as f32 * t.clamp(0.0, 1.0);
        }
    }
    Ok(out)
}

/// Diamond-square heightmap in [0, 1], as the reference's `plasma_fractal` (np.roll wrap-around).
fn plasma_fractal(n: usize, decay: f64, rng: &mut Rng) -> Vec<f64> {
    let mut m = vec![0f64; n * n];
    let mut step = n;
    let mut wibble = 100.0f64;
    while step >= 2 {
        let k = n / step;
        let half = step / 2;
        let at = |m: &Vec<f64>, i: usize, j: usize, off_i: usize, off_j: usize| {
            m[((i % k) * step + off_i) * n + (j % k) * step + off_j]
        };
        // fillsquares: centre = mean of the four corners (+ wibble).
        let mut centres = vec![0f64; k * k];
        for i in 0..k {
            for j in 0..k {
                let sum = at(&m, i, j, 0, 0)
                    + at(&m, i + 1, j, 0, 0)
                    + at(&m, i, j + 1, 0, 0)
                    + at(&m, i + 1, j + 1, 0, 0);
                centres[i * k + j] = sum / 4.0 + wibble * rng.range(-wibble, wibble);
            }
        }
        for i in 0..k {
            for j in 0..k {
                m[(i * step + half) * n + j * step + half] = centres[i * k + j];
            }
        }
        // filldiamonds: edge midpoints from the two adjacent centres and two corners.
        let dr = |i: usize, j: usize| m[((i % k) * step + half) * n + (j % k) * step + half];
        let ul = |i: usize, j: usize| m[((i % k) * step) * n + (j % k) * step];
        let mut top = vec![0f64; k * k];
        let mut left = vec![0f64; k * k];
        for i in 0..k {
            for j in 0..k {
                let ltsum = dr(i, j) + dr(i + k - 1, j) + ul(i, j) + ul(i, j + 1);
                top[i * k + j] = ltsum / 4.0 + wibble * rng.range(-wibble, wibble);
            }
        }
        for i in 0..k {
            for j in 0..k {
                let ttsum = dr(i, j) + dr(i, j + k - 1) + ul(i, j) + ul(i + 1, j);
                left[i * k + j] = ttsum / 4.0 + wibble * rng.range(-wibble, wibble);
            }
        }
        for i in 0..k {
            for j in 0..k {
                m[(i * step) * n + j * step + half] = top[i * k + j];
                m[(i * step + half) * n + j * step] = left[i * k + j];
            }
        }
        step /= 2;
        wibble /= decay;
    }
    let min = m.iter().copied().fold(f64::INFINITY, f64::min);
    m.iter_mut().for_each(|v| *v -= min);
    let max = m.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    m.iter().map(|v| v / max).collect()
}

fn fog(img: &Image, s: usize, cifar: bool, rng: &mut Rng) -> Image {
    let (a, decay) = pick(
        cifar,
        [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)],
        [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
        s,
    );
    let (h, w) = (img.height, img.width);
    let n = h.max(w).next_power_of_two();
    let plasma = plasma_fractal(n, decay, rng);
    let max_val = img.data.iter().copied().fold(0f32, f32::max);
    let mut out = img.clone();
    for y in 0..h {
        for x in 0..w {
            let p = (a * plasma[y * n + x]) as f32;
            for c in 0..3 {
                let v = &mut out.data[(y * w + x) * 3 + c];
                *v = (*v + p) * max_val / (max_val + a as f32);
            }
        }
    }
    out
}

/// Bilinear sample of a plane at (fy, fx) with scipy's `reflect` border.
fn sample_reflect(p: &[f32], h: usize, w: usize, fy: f64, fx: f64, mode: Border) -> f32 {
    let (y0, x0) = (fy.floor(), fx.floor());
    let (ty, tx) = (fy - y0, fx - x0);
    let idx = |y: f64, x: f64| {
        let yi = f::border_index(y as isize, h, mode);
        let xi = f::border_index(x as isize, w, mode);
        f64::from(p[yi * w + xi])
    };
    let top = idx(y0, x0) * (1.0 - tx) + idx(y0, x0 + 1.0) * tx;
    let bot = idx(y0 + 1.0, x0) * (1.0 - tx) + idx(y0 + 1.0, x0 + 1.0) * tx;
    (top * (1.0 - ty) + bot * ty) as f32
}

fn elastic(img: &Image, s: usize, cifar: bool, rng: &mut Rng) -> Image {
    let (h, w) = (img.height, img.width);
    let mut src = img.clone();
    let (alpha, sigma_y, sigma_x, amp);
    if cifar {
        // (alpha, sigma, affine) as fractions of the image size (make_cifar_c uses IMSIZE = 32).
        let size = h.min(w) as f64;
        let (a, sg, af) = [
            (0.0, 0.0, 0.08),
            (0.05, 0.2, 0.07),
            (0.08, 0.06, 0.06),
            (0.1, 0.04, 0.05),
            (0.1, 0.03, 0.03),
        ][s];
        src = random_affine(img, af * size, rng);
        (alpha, sigma_y, sigma_x, amp) = (a * size, sg * size, sg * size, 1.0);
    } else {
        alpha = [
            250.0 * 0.05,
            250.0 * 0.065,
            250.0 * 0.085,
            250.0 * 0.1,
            250.0 * 0.12,
        ][s];
        (sigma_y, sigma_x, amp) = (h as f64 * 0.01, w as f64 * 0.01, h as f64 * 0.005);
    }
    let mut field = || -> Vec<f32> {
        let u: Vec<f32> = (0..h * w).map(|_| rng.range(-amp, amp) as f32).collect();
        if sigma_y <= 0.0 {
            return vec![0.0; h * w];
        }
        f::gaussian(&u, h, w, sigma_y, sigma_x, Border::Reflect, 3.0)
            .iter()
            .map(|v| (f64::from(*v) * alpha) as f32)
            .collect()
    };
    let dx = field();
    let dy = field();
    let planes: Vec<Vec<f32>> = (0..3)
        .map(|c| {
            let p = src.channel(c);
            (0..h * w)
                .map(|i| {
                    let (y, x) = ((i / w) as f64, (i % w) as f64);
                    sample_reflect(
                        &p,
                        h,
                        w,
                        y + f64::from(dy[i]),
                        x + f64::from(dx[i]),
                        Border::Reflect,
                    )
                })
                .collect()
        })
        .collect();
    Image::from_planes(h, w, [&planes[0], &planes[1], &planes[2]])
}

/// make_cifar_c's random affine: three anchor points jittered by up to `jitter` pixels,
/// `cv2.warpAffine` (bilinear, BORDER_REFLECT_101).
fn random_affine(img: &Image, jitter: f64, rng: &mut Rng) -> Image {
    let (h, w) = (img.height, img.width);
    let (cy, cx) = ((h / 2) as f64, (w / 2) as f64);
    let sq = (h.min(w) / 3) as f64;
    // The reference builds the points as (row, col) and OpenCV reads them as (x, y); kept as is.
    let p1 = [[cy + sq, cx + sq], [cy + sq, cx - sq], [cy - sq, cx - sq]];
    let mut p2 = p1;
    for p in &mut p2 {
        for v in p.iter_mut() {
            *v += rng.range(-jitter, jitter);
        }
    }
    // Solve dst = M·[x y 1] for the 2×3 M, then sample src at M⁻¹·dst.
    let m = affine_from_points(&p1, &p2);
    let inv = invert_affine(&m);
    let planes: Vec<Vec<f32>> = (0..3)
        .map(|c| {
            let p = img.channel(c);
            (0..h * w)
                .map(|i| {
                    let (x, y) = ((i % w) as f64, (i / w) as f64);
                    let sx = inv[0] * x + inv[1] * y + inv[2];
                    let sy = inv[3] * x + inv[4] * y + inv[5];
                    sample_reflect(&p, h, w, sy, sx, Border::Reflect101)
                })
                .collect()
        })
        .collect();
    Image::from_planes(h, w, [&planes[0], &planes[1], &planes[2]])
}

fn affine_from_points(src: &[[f64; 2]; 3], dst: &[[f64; 2]; 3]) -> [f64; 6] {
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let a = [
        [src[0][0], src[0][1], 1.0],
        [src[1][0], src[1][1], 1.0],
        [src[2][0], src[2][1], 1.0],
    ];
    let d = det3(a);
    if d.abs() < 1e-12 {
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    }
    let mut m = [0f64; 6];
    for row in 0..2 {
        let rhs = [dst[0][row], dst[1][row], dst[2][row]];
        for col in 0..3 {
            let mut b = a;
            for r in 0..3 {
                b[r][col] = rhs[r];
            }
            m[row * 3 + col] = det3(b) / d;
        }
    }
    m
}

fn invert_affine(m: &[f64; 6]) -> [f64; 6] {
    let det = m[0] * m[4] - m[1] * m[3];
    if det.abs() < 1e-12 {
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    }
    let (a, b, c, d) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    [a, b, -(a * m[2] + b * m[5]), c, d, -(c * m[2] + d * m[5])]
}

/// 8-bit rounding between PIL resizes (PIL works on uint8 images).
fn round8(p: Vec<f32>) -> Vec<f32> {
    p.into_iter()
        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) / 255.0)
        .collect()
}

fn pixelate(img: &Image, s: usize, cifar: bool) -> Image {
    let c = pick(
        cifar,
        [0.95, 0.9, 0.85, 0.75, 0.65],
        [0.6, 0.5, 0.4, 0.3, 0.25],
        s,
    );
    let (h, w) = (img.height, img.width);
    let (sh, sw) = (
        ((h as f64 * c) as usize).max(1),
        ((w as f64 * c) as usize).max(1),
    );
    img.map_planes(|p| {
        let small = round8(f::resize_box(p, h, w, sh, sw));
        round8(if cifar {
            f::resize_box(&small, sh, sw, h, w)
        } else {
            f::resize_nearest(&small, sh, sw, h, w)
        })
    })
}

fn jpeg(img: &Image, quality: u8) -> Result<Image, CorruptError> {
    // PIL's `save(..., 'JPEG', quality=q)`: libjpeg quality scaling, 4:2:0 chroma subsampling.
    let mut buf = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut buf, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    let pixels = img.to_u8();
    let (w, h) = (
        u16::try_from(img.width)
            .map_err(|_| CorruptError::Jpeg("image wider than 65535".into()))?,
        u16::try_from(img.height)
            .map_err(|_| CorruptError::Jpeg("image taller than 65535".into()))?,
    );
    enc.encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| CorruptError::Jpeg(e.to_string()))?;
    Image::decode(&buf, "jpeg_compression").map_err(|e| CorruptError::Jpeg(e.to_string()))
}

fn spatter(img: &Image, s: usize, cifar: bool, rng: &mut Rng) -> Image {
    let c = pick(
        cifar,
        [
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1.0, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ],
        [
            (0.65, 0.3, 4.0, 0.69, 0.6, 0),
            (0.65, 0.3, 3.0, 0.68, 0.6, 0),
            (0.65, 0.3, 2.0, 0.68, 0.5, 0),
            (0.65, 0.3, 1.0, 0.65, 1.5, 1),
            (0.67, 0.4, 1.0, 0.65, 1.5, 1),
        ],
        s,
    );
    let (h, w) = (img.height, img.width);
    let noise: Vec<f32> = (0..h * w)
        .map(|_| (c.0 + c.1 * rng.normal()) as f32)
        .collect();
    let mut liquid = f::gaussian(&noise, h, w, c.2, c.2, Border::Nearest, 4.0);
    liquid.iter_mut().for_each(|v| {
        if *v < c.3 as f32 {
            *v = 0.0
        }
    });
    let mut out = img.clone();
    if c.5 == 0 {
        // Water: edges of the liquid mask, turned into a shaded rim and added in pale turquoise.
        let l8: Vec<u8> = liquid
            .iter()
            .map(|v| (v * 255.0).clamp(0.0, 255.0) as u8)
            .collect();
        let shade = spatter_shade(&l8, h, w);
        let m: Vec<f32> = liquid.iter().zip(&shade).map(|(l, d)| l * d).collect();
        let max = m
            .iter()
            .copied()
            .fold(0f32, f32::max)
            .max(f32::MIN_POSITIVE);
        let color = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
        for (i, px) in out.data.chunks_exact_mut(3).enumerate() {
            let mi = m[i] / max * c.4 as f32;
            for (v, col) in px.iter_mut().zip(color) {
                *v += mi * col;
            }
        }
    } else {
        // Mud: a blurred mask of the liquid, painted brown over the image.
        let mask: Vec<f32> = liquid
            .iter()
            .map(|&v| if v > c.3 as f32 { 1.0 } else { 0.0 })
            .collect();
        let mut m = f::gaussian(&mask, h, w, c.4, c.4, Border::Nearest, 4.0);
        m.iter_mut().for_each(|v| {
            if *v < 0.8 {
                *v = 0.0
            }
        });
        let color = [63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0];
        for (i, px) in out.data.chunks_exact_mut(3).enumerate() {
            for (v, col) in px.iter_mut().zip(color) {
                *v = *v * (1.0 - m[i]) + col * m[i];
            }
        }
    }
    out
}

/// The water-spatter rim: Canny edges → distance (truncated at 20) → 3×3 blur → histogram
/// equalization → emboss kernel → 3×3 blur, all in 8 bits as OpenCV does.
fn spatter_shade(l8: &[u8], h: usize, w: usize) -> Vec<f32> {
    let edges = canny(l8, h, w, 50.0, 150.0);
    let dist = distance_to_edges(&edges, h, w, 20);
    let box3 = [1.0 / 9.0; 9];
    let d = f::filter2d(&dist, h, w, &box3, 3, 3);
    let d8: Vec<u8> = d.iter().map(|v| v.clamp(0.0, 255.0) as u8).collect();
    let eq = equalize_hist(&d8);
    let eqf: Vec<f32> = eq.iter().map(|&v| f32::from(v)).collect();
    let ker = [-2.0, -1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0];
    let emb: Vec<f32> = f::filter2d(&eqf, h, w, &ker, 3, 3)
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0))
        .collect();
    f::filter2d(&emb, h, w, &box3, 3, 3)
}

/// OpenCV-style Canny (3×3 Sobel, L1 magnitude, 4-direction non-maximum suppression,
/// hysteresis). Returns 255 on edges, 0 elsewhere.
fn canny(p: &[u8], h: usize, w: usize, low: f32, high: f32) -> Vec<bool> {
    let at = |y: isize, x: isize| {
        let y = y.clamp(0, h as isize - 1) as usize;
        let x = x.clamp(0, w as isize - 1) as usize;
        f32::from(p[y * w + x])
    };
    let mut gx = vec![0f32; h * w];
    let mut gy = vec![0f32; h * w];
    let mut mag = vec![0f32; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            gx[i] = at(y - 1, x + 1) + 2.0 * at(y, x + 1) + at(y + 1, x + 1)
                - at(y - 1, x - 1)
                - 2.0 * at(y, x - 1)
                - at(y + 1, x - 1);
            gy[i] = at(y + 1, x - 1) + 2.0 * at(y + 1, x) + at(y + 1, x + 1)
                - at(y - 1, x - 1)
                - 2.0 * at(y - 1, x)
                - at(y - 1, x + 1);
            mag[i] = gx[i].abs() + gy[i].abs();
        }
    }
    let m = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0.0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    let mut strong = vec![false; h * w];
    let mut weak = vec![false; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            let v = mag[i];
            if v <= low {
                continue;
            }
            let (ax, ay) = (gx[i].abs(), gy[i].abs());
            // tan(22.5°) ≈ 0.4142, tan(67.5°) ≈ 2.4142
            let (n1, n2) = if ay <= ax * 0.4142 {
                (m(y, x - 1), m(y, x + 1))
            } else if ay >= ax * 2.4142 {
                (m(y - 1, x), m(y + 1, x))
            } else if (gx[i] > 0.0) == (gy[i] > 0.0) {
                (m(y - 1, x - 1), m(y + 1, x + 1))
            } else {
                (m(y - 1, x + 1), m(y + 1, x - 1))
            };
            if v > n1 && v >= n2 {
                if v > high {
                    strong[i] = true;
                } else {
                    weak[i] = true;
                }
            }
        }
    }
    let mut stack: Vec<usize> = (0..h * w).filter(|&i| strong[i]).collect();
    while let Some(i) = stack.pop() {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (ny, nx) = (y + dy, x + dx);
                if ny >= 0 && nx >= 0 && ny < h as isize && nx < w as isize {
                    let j = ny as usize * w + nx as usize;
                    if weak[j] && !strong[j] {
                        strong[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
    }
    strong
}

/// Euclidean distance to the nearest edge pixel, truncated at `cap` (cv2.distanceTransform on
/// `255 - edges`, then THRESH_TRUNC).
fn distance_to_edges(edges: &[bool], h: usize, w: usize, cap: usize) -> Vec<f32> {
    let r = cap as isize;
    (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as isize, (i % w) as isize);
            let mut best = (cap * cap) as isize;
            for dy in -r..=r {
                for dx in -r..=r {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny >= 0
                        && nx >= 0
                        && ny < h as isize
                        && nx < w as isize
                        && edges[ny as usize * w + nx as usize]
                    {
                        best = best.min(dy * dy + dx * dx);
                    }
                }
            }
            ((best as f32).sqrt()).min(cap as f32)
        })
        .collect()
}

/// cv2.equalizeHist.
fn equalize_hist(p: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    p.iter().for_each(|&v| hist[v as usize] += 1);
    let total = p.len();
    let Some(i0) = hist.iter().position(|&c| c > 0) else {
        return p.to_vec();
    };
    if hist[i0] == total {
        return vec![i0 as u8; total];
    }
    let scale = 255.0 / (total - hist[i0]) as f64;
    let mut lut = [0u8; 256];
    let mut sum = 0usize;
    for i in i0 + 1..256 {
        sum += hist[i];
        lut[i] = (sum as f64 * scale).round().clamp(0.0, 255.0) as u8;
    }
    p.iter().map(|&v| lut[v as usize]).collect()
}
