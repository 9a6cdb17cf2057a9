//! The feature bank: blind, cheap statistics of one image that move with one kind of corruption
//! each. [`extract`] computes all of them in one fused pass over the pixels (plus a block pass
//! for local contrast) with fixed-size accumulators: no allocation, the same numbers on every
//! machine for the same image (f64 sums, a fixed visiting order).
//!
//! The image is the model's input (after resizing, before normalization), so the head sees
//! frames at the resolution it was trained at. Samples are clipped to [0, 1]; gray is Rec. 601
//! luma. Cost per pixel is about 120 arithmetic operations; each estimator, its source and why it
//! is here:
//!
//! | # | name | what | moves with | source |
//! |---|---|---|---|---|
//! | 0–1 | `mean`, `std` | gray level and spread | brightness, contrast, fog | — |
//! | 2–4 | `dark_clip`, `bright_clip`, `mid_frac` | fractions < 0.02, > 0.98, in [0.2, 0.8] | brightness, contrast, fog, saturate | — |
//! | 5 | `entropy` | 32-bin gray histogram entropy / 5 bits | noise (up), contrast (down) | — |
//! | 6–7 | `p5`, `p95` | histogram 5th and 95th percentiles | contrast, fog, brightness | — |
//! | 8 | `colourfulness` | σ and μ of rg/yb opponent channels | saturate | Hasler & Süsstrunk 2003 |
//! | 9 | `saturation` | mean (max − min) / max | saturate, fog (down) | HSV |
//! | 10 | `noise_sigma` | ln σ, Laplacian-difference mask | the noises | Immerkær 1996 |
//! | 11–12 | `noise_dark`, `noise_bright` | the same σ in dark (< 0.3) and bright (> 0.7) 3×3 neighbourhoods | shot and speckle grow with intensity, gaussian does not | — |
//! | 13 | `impulse` | samples at 0 or 1 unlike all 4 neighbours (per channel) | impulse noise | salt-and-pepper detectors (median-filter literature) |
//! | 14–15 | `flat_dx`, `flat_dy` | exactly repeated neighbour across a vertical (horizontal) edge | pixelate | — |
//! | 16 | `blockiness` | ln of mean step across 8×8 block boundaries over the step inside | JPEG | Wang, Bovik & Evans 2000 |
//! | 17 | `lap_var` | ln variance of the 4-neighbour Laplacian | the blurs (down), noise (up) | Pech-Pacheco et al. 2000 |
//! | 18 | `lap_norm` | ln Laplacian variance over gradient energy | blur independent of contrast | — |
//! | 19 | `grad_energy` | ln mean squared central gradient | blur, contrast | — |
//! | 20 | `anisotropy` | (max − min) / (max + min) over the energies at 0°, 45°, 90°, 135° | motion blur | — |
//! | 21 | `radial_share` | radial share of gradient energy about the centre | zoom blur | — |
//! | 22 | `dark_channel` | mean 3×3 minimum of the channel minimum | fog, frost, snow (up) | He, Sun & Tang 2009 |
//! | 23 | `bright_lowsat` | fraction bright (> 0.75) and unsaturated (< 0.15) | snow, frost | — |
//! | 24 | `local_contrast` | mean max − min over 4×4 blocks | fog, contrast (down) | — |
//! | 25 | `scale_ratio` | ln |Laplacian| at stride 1 over stride 2 | noise (fine energy) vs blur (coarse) | — |

use rws_image::Image;

/// How many features [`extract`] returns.
pub const N_FEATURES: usize = 26;

/// The bank's version: a head file records it and is refused by a bank that differs, since
/// weights trained on one set of statistics mean nothing on another.
pub const FEATURE_VERSION: u16 = 1;

/// One image's features, in the order of [`NAMES`].
pub type Features = [f32; N_FEATURES];

/// Feature names, as the head file's documentation and `rws oracle` reports print them.
pub const NAMES: [&str; N_FEATURES] = [
    "mean",
    "std",
    "dark_clip",
    "bright_clip",
    "mid_frac",
    "entropy",
    "p5",
    "p95",
    "colourfulness",
    "saturation",
    "noise_sigma",
    "noise_dark",
    "noise_bright",
    "impulse",
    "flat_dx",
    "flat_dy",
    "blockiness",
    "lap_var",
    "lap_norm",
    "grad_energy",
    "anisotropy",
    "radial_share",
    "dark_channel",
    "bright_lowsat",
    "local_contrast",
    "scale_ratio",
];

/// Histogram bins of the gray level (32: the largest array `Default` covers, fine enough for
/// percentiles of a 32×32 input).
const BINS: usize = 32;
/// Floor inside the logarithms (variance-like features span decades; ln keeps them linear-ish).
const EPS: f64 = 1e-6;

/// A read-only view of the image: samples clipped, and the gray level and channel minimum of
/// every pixel, each computed once (the neighbourhood statistics read each pixel up to 16
/// times).
struct View<'a> {
    h: usize,
    w: usize,
    /// Clipped samples, interleaved RGB.
    d: &'a [f32],
    gray: &'a [f32],
    min: &'a [f32],
}

impl View<'_> {
    fn rgb(&self, y: usize, x: usize) -> [f32; 3] {
        let i = (y * self.w + x) * 3;
        [self.d[i], self.d[i + 1], self.d[i + 2]]
    }

    fn gray(&self, y: usize, x: usize) -> f32 {
        self.gray[y * self.w + x]
    }

    /// The smallest channel of a pixel (the dark channel's input).
    fn min_channel(&self, y: usize, x: usize) -> f32 {
        self.min[y * self.w + x]
    }

    fn channel(&self, y: usize, x: usize, c: usize) -> f32 {
        self.d[(y * self.w + x) * 3 + c]
    }
}

/// Rec. 601 luma of clipped samples.
fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// The planes [`View`] reads, kept from frame to frame: a stream of frames of one size
/// allocates them once.
#[derive(Clone, Debug, Default)]
pub struct Extractor {
    clipped: Vec<f32>,
    gray: Vec<f32>,
    min: Vec<f32>,
}

impl Extractor {
    /// The features of `image` (as [`extract`]; allocates only when the size changes).
    pub fn extract(&mut self, image: &Image) -> Features {
        let (h, w) = (image.height, image.width);
        let n = h * w;
        if image.data.len() < n * 3 || n == 0 {
            return [0.0; N_FEATURES];
        }
        self.clipped.clear();
        self.clipped
            .extend(image.data[..n * 3].iter().map(|&v| clip(v)));
        self.gray.clear();
        self.min.clear();
        for px in self.clipped.chunks_exact(3) {
            let rgb = [px[0], px[1], px[2]];
            self.gray.push(luma(rgb));
            self.min.push(rgb[0].min(rgb[1]).min(rgb[2]));
        }
        let v = View {
            h,
            w,
            d: &self.clipped,
            gray: &self.gray,
            min: &self.min,
        };
        features(&v)
    }
}

/// A sample clipped to [0, 1]; NaN (a broken frame, not a camera value) reads as 0.
fn clip(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

/// Per-pixel sums (every pixel).
#[derive(Default)]
struct PixelSums {
    n: f64,
    sum: f64,
    sum2: f64,
    hist: [u32; BINS],
    dark: f64,
    bright: f64,
    mid: f64,
    rg: f64,
    rg2: f64,
    yb: f64,
    yb2: f64,
    sat: f64,
    bright_lowsat: f64,
    // Forward differences: block boundaries (x % 8 == 7) against the inside.
    edge_step: f64,
    edge_n: f64,
    inner_step: f64,
    inner_n: f64,
    flat_dx: f64,
    flat_dx_n: f64,
    flat_dy: f64,
    flat_dy_n: f64,
}

/// Neighbourhood sums (pixels with a full 3×3 neighbourhood).
#[derive(Default)]
struct LocalSums {
    n: f64,
    immerkaer: f64,
    dark_abs: f64,
    dark_n: f64,
    bright_abs: f64,
    bright_n: f64,
    lap: f64,
    lap2: f64,
    lap_abs: f64,
    lap_wide_abs: f64,
    wide_n: f64,
    e: [f64; 4],
    radial: f64,
    tangential: f64,
    dark_channel: f64,
    impulse: f64,
}

/// The features of `image` (any size; an image smaller than 3×3 gets zeros for the
/// neighbourhood statistics). Allocates its working planes; a frame loop keeps an
/// [`Extractor`] instead.
pub fn extract(image: &Image) -> Features {
    Extractor::default().extract(image)
}

fn features(v: &View) -> Features {
    let mut p = PixelSums::default();
    let mut l = LocalSums::default();
    for y in 0..v.h {
        for x in 0..v.w {
            pixel(v, y, x, &mut p);
            if y >= 1 && x >= 1 && y + 1 < v.h && x + 1 < v.w {
                local(v, y, x, &mut l);
            }
        }
    }
    finish(&p, &l, local_contrast(v))
}

fn pixel(v: &View, y: usize, x: usize, p: &mut PixelSums) {
    let [r, g, b] = v.rgb(y, x);
    let gray = v.gray(y, x);
    let gd = f64::from(gray);
    p.n += 1.0;
    p.sum += gd;
    p.sum2 += gd * gd;
    p.hist[((gray * BINS as f32) as usize).min(BINS - 1)] += 1;
    p.dark += f64::from(u8::from(gray < 0.02));
    p.bright += f64::from(u8::from(gray > 0.98));
    p.mid += f64::from(u8::from((0.2..=0.8).contains(&gray)));
    let (rg, yb) = (f64::from(r - g), f64::from(0.5 * (r + g) - b));
    p.rg += rg;
    p.rg2 += rg * rg;
    p.yb += yb;
    p.yb2 += yb * yb;
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let sat = if max > 1e-6 { (max - min) / max } else { 0.0 };
    p.sat += f64::from(sat);
    p.bright_lowsat += f64::from(u8::from(gray > 0.75 && sat < 0.15));
    if x + 1 < v.w {
        let step = f64::from((v.gray(y, x + 1) - gray).abs());
        if x % 8 == 7 {
            p.edge_step += step;
            p.edge_n += 1.0;
        } else {
            p.inner_step += step;
            p.inner_n += 1.0;
        }
        if y + 1 < v.h && (v.gray(y + 1, x) - gray).abs() > 0.02 {
            p.flat_dx_n += 1.0;
            p.flat_dx += f64::from(u8::from(step < 1.0 / 1024.0));
        }
    }
    if y + 1 < v.h {
        let step = f64::from((v.gray(y + 1, x) - gray).abs());
        if y % 8 == 7 {
            p.edge_step += step;
            p.edge_n += 1.0;
        } else {
            p.inner_step += step;
            p.inner_n += 1.0;
        }
        if x + 1 < v.w && (v.gray(y, x + 1) - gray).abs() > 0.02 {
            p.flat_dy_n += 1.0;
            p.flat_dy += f64::from(u8::from(step < 1.0 / 1024.0));
        }
    }
}

fn local(v: &View, y: usize, x: usize, l: &mut LocalSums) {
    // n[3 * dy + dx] for the 3×3 neighbourhood, row-major.
    let mut n = [0f32; 9];
    let mut dark = f32::INFINITY;
    for (k, slot) in n.iter_mut().enumerate() {
        let (yy, xx) = (y + k / 3 - 1, x + k % 3 - 1);
        *slot = v.gray(yy, xx);
        dark = dark.min(v.min_channel(yy, xx));
    }
    l.n += 1.0;
    let mask =
        n[0] - 2.0 * n[1] + n[2] - 2.0 * n[3] + 4.0 * n[4] - 2.0 * n[5] + n[6] - 2.0 * n[7] + n[8];
    let mask = f64::from(mask.abs());
    l.immerkaer += mask;
    let m = n.iter().sum::<f32>() / 9.0;
    if m < 0.3 {
        l.dark_abs += mask;
        l.dark_n += 1.0;
    } else if m > 0.7 {
        l.bright_abs += mask;
        l.bright_n += 1.0;
    }
    let lap = f64::from(n[1] + n[3] + n[5] + n[7] - 4.0 * n[4]);
    l.lap += lap;
    l.lap2 += lap * lap;
    l.lap_abs += lap.abs();
    if y >= 2 && x >= 2 && y + 2 < v.h && x + 2 < v.w {
        let wide =
            v.gray(y - 2, x) + v.gray(y + 2, x) + v.gray(y, x - 2) + v.gray(y, x + 2) - 4.0 * n[4];
        l.lap_wide_abs += f64::from(wide.abs());
        l.wide_n += 1.0;
    }
    let (dx, dy) = (f64::from(n[5] - n[3]), f64::from(n[7] - n[1]));
    let (d45, d135) = (f64::from(n[2] - n[6]), f64::from(n[8] - n[0]));
    l.e[0] += dx * dx;
    l.e[1] += d45 * d45;
    l.e[2] += dy * dy;
    l.e[3] += d135 * d135;
    let (rx, ry) = (
        x as f64 - (v.w - 1) as f64 / 2.0,
        y as f64 - (v.h - 1) as f64 / 2.0,
    );
    let r = (rx * rx + ry * ry).sqrt();
    if r > 1.0 {
        let radial = (dx * rx + dy * ry) / r;
        let tangential = (dy * rx - dx * ry) / r;
        l.radial += radial * radial;
        l.tangential += tangential * tangential;
    }
    l.dark_channel += f64::from(dark);
    for c in 0..3 {
        l.impulse += f64::from(u8::from(is_impulse(v, y, x, c)));
    }
}

/// A sample at 0 or 1 that differs from each of its 4 neighbours (same channel) by > 0.4.
fn is_impulse(v: &View, y: usize, x: usize, c: usize) -> bool {
    let s = v.channel(y, x, c);
    if s > 0.02 && s < 0.98 {
        return false;
    }
    [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)]
        .iter()
        .all(|&(yy, xx)| (v.channel(yy, xx, c) - s).abs() > 0.4)
}

/// Mean (max − min) gray over the whole 4×4 blocks.
fn local_contrast(v: &View) -> f64 {
    let (mut sum, mut n) = (0.0, 0.0);
    for by in 0..v.h / 4 {
        for bx in 0..v.w / 4 {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for k in 0..16 {
                let g = v.gray(by * 4 + k / 4, bx * 4 + k % 4);
                lo = lo.min(g);
                hi = hi.max(g);
            }
            sum += f64::from(hi - lo);
            n += 1.0;
        }
    }
    ratio(sum, n)
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The histogram level below which `q` of the pixels lie (bin centre).
fn percentile(hist: &[u32; BINS], n: f64, q: f64) -> f64 {
    let mut seen = 0.0;
    for (i, &c) in hist.iter().enumerate() {
        seen += f64::from(c);
        if seen >= q * n {
            return (i as f64 + 0.5) / BINS as f64;
        }
    }
    1.0
}

fn entropy(hist: &[u32; BINS], n: f64) -> f64 {
    let mut h = 0.0;
    for &c in hist {
        if c > 0 {
            let p = f64::from(c) / n;
            h -= p * p.log2();
        }
    }
    h / (BINS as f64).log2()
}

fn finish(p: &PixelSums, l: &LocalSums, contrast: f64) -> Features {
    let mean = ratio(p.sum, p.n);
    let var = (ratio(p.sum2, p.n) - mean * mean).max(0.0);
    // Immerkær: σ = sqrt(π/2) · Σ|I * M| / (6 (W−2)(H−2)).
    let sigma = |abs: f64, n: f64| std::f64::consts::FRAC_PI_2.sqrt() * ratio(abs, 6.0 * n);
    let (rg_m, yb_m) = (ratio(p.rg, p.n), ratio(p.yb, p.n));
    let rg_v = (ratio(p.rg2, p.n) - rg_m * rg_m).max(0.0);
    let yb_v = (ratio(p.yb2, p.n) - yb_m * yb_m).max(0.0);
    let colourfulness = (rg_v + yb_v).sqrt() + 0.3 * (rg_m * rg_m + yb_m * yb_m).sqrt();
    let lap_mean = ratio(l.lap, l.n);
    let lap_var = (ratio(l.lap2, l.n) - lap_mean * lap_mean).max(0.0);
    let grad = ratio(l.e[0] + l.e[2], l.n);
    let (emax, emin) =
        l.e.iter()
            .fold((0f64, f64::INFINITY), |(a, b), &e| (a.max(e), b.min(e)));
    let f = [
        mean,
        var.sqrt(),
        ratio(p.dark, p.n),
        ratio(p.bright, p.n),
        ratio(p.mid, p.n),
        entropy(&p.hist, p.n),
        percentile(&p.hist, p.n, 0.05),
        percentile(&p.hist, p.n, 0.95),
        colourfulness,
        ratio(p.sat, p.n),
        (sigma(l.immerkaer, l.n) + EPS).ln(),
        (sigma(l.dark_abs, l.dark_n) + EPS).ln(),
        (sigma(l.bright_abs, l.bright_n) + EPS).ln(),
        ratio(l.impulse, 3.0 * l.n),
        ratio(p.flat_dx, p.flat_dx_n),
        ratio(p.flat_dy, p.flat_dy_n),
        ((ratio(p.edge_step, p.edge_n) + 1e-4) / (ratio(p.inner_step, p.inner_n) + 1e-4)).ln(),
        (lap_var + EPS).ln(),
        ((lap_var + EPS) / (grad + EPS)).ln(),
        (grad + EPS).ln(),
        ratio(emax - emin, emax + emin),
        ratio(l.radial, l.radial + l.tangential),
        ratio(l.dark_channel, l.n),
        ratio(p.bright_lowsat, p.n),
        contrast,
        ((ratio(l.lap_abs, l.n) + 1e-4) / (ratio(l.lap_wide_abs, l.wide_n) + 1e-4)).ln(),
    ];
    f.map(|x| x as f32)
}

#[cfg(test)]
mod tests;
