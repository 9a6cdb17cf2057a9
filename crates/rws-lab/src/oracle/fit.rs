//! Fitting the oracle's head on labelled feature rows: softmax classifiers (no hidden layer =
//! multinomial logistic regression, or one tanh layer) by minibatch Adam, and the per-corruption
//! severity regressions by ridge least squares. Single-threaded, fixed visiting order, seeded
//! initialization and shuffles: the same rows give the same head, bit for bit.

use rws_oracle::features::{Features, N_FEATURES};
use rws_oracle::head::{softmax, Dense};
use rws_rng::Rng;

/// How a classifier is trained.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Fit {
    /// Hidden tanh units (0: logistic regression).
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    /// L2 penalty on the weights (not the biases).
    pub l2: f32,
    pub seed: u64,
}

/// Standardization over the rows: per feature mean and standard deviation (1 where constant).
pub fn standardize(rows: &[Features]) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0f64; N_FEATURES];
    let mut var = vec![0f64; N_FEATURES];
    for r in rows {
        for (m, &x) in mean.iter_mut().zip(r) {
            *m += f64::from(x) / n;
        }
    }
    for r in rows {
        for ((v, &x), m) in var.iter_mut().zip(r).zip(&mean) {
            *v += (f64::from(x) - m).powi(2) / n;
        }
    }
    let scale = var
        .iter()
        .map(|v| {
            if v.sqrt() > 1e-6 {
                v.sqrt() as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), scale)
}

/// Rows standardized with `(mean, scale)`.
pub fn apply(rows: &[Features], mean: &[f32], scale: &[f32]) -> Vec<Features> {
    rows.iter()
        .map(|r| {
            let mut z = [0f32; N_FEATURES];
            for (i, v) in z.iter_mut().enumerate() {
                *v = (r[i] - mean[i]) / scale[i];
            }
            z
        })
        .collect()
}

/// Adam's moments for one parameter vector.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn new(n: usize) -> Moments {
        Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, p: &mut [f32], g: &[f32], lr: f32, t: i32) {
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..p.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// A layer with its gradient buffers and optimizer state.
struct Trainable {
    layer: Dense,
    gw: Vec<f32>,
    gb: Vec<f32>,
    mw: Moments,
    mb: Moments,
}

impl Trainable {
    fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Trainable {
        let mut layer = Dense::zeros(inputs, outputs);
        // Glorot uniform.
        let a = (6.0 / (inputs + outputs) as f64).sqrt();
        layer
            .w
            .iter_mut()
            .for_each(|w| *w = rng.range(-a, a) as f32);
        Trainable {
            gw: vec![0.0; layer.w.len()],
            gb: vec![0.0; outputs],
            mw: Moments::new(layer.w.len()),
            mb: Moments::new(outputs),
            layer,
        }
    }

    fn zero(&mut self) {
        self.gw.iter_mut().for_each(|g| *g = 0.0);
        self.gb.iter_mut().for_each(|g| *g = 0.0);
    }

    /// Accumulates the gradient of `delta` (∂loss/∂output) for input `x`, and returns nothing;
    /// `back` receives ∂loss/∂x when given.
    fn backward(&mut self, x: &[f32], delta: &[f32], back: Option<&mut [f32]>) {
        let n = self.layer.inputs;
        for (o, &d) in delta.iter().enumerate() {
            self.gb[o] += d;
            for (g, &xi) in self.gw[o * n..(o + 1) * n].iter_mut().zip(x) {
                *g += d * xi;
            }
        }
        if let Some(back) = back {
            for (i, b) in back.iter_mut().enumerate() {
                *b = delta
                    .iter()
                    .enumerate()
                    .map(|(o, &d)| d * self.layer.w[o * n + i])
                    .sum();
            }
        }
    }

    fn update(&mut self, scale: f32, fit: &Fit, t: i32) {
        for (g, &w) in self.gw.iter_mut().zip(&self.layer.w) {
            *g = *g * scale + fit.l2 * w;
        }
        self.gb.iter_mut().for_each(|g| *g *= scale);
        self.mw.step(&mut self.layer.w, &self.gw, fit.lr, t);
        self.mb.step(&mut self.layer.b, &self.gb, fit.lr, t);
    }
}

/// Trains a softmax classifier on standardized rows `z` with labels `y` in `0..classes` and
/// per-row loss weights. Returns (hidden layer, output layer).
pub fn classifier(
    z: &[Features],
    y: &[usize],
    weight: &[f32],
    classes: usize,
    fit: &Fit,
) -> (Option<Dense>, Dense) {
    let mut rng = Rng::new(fit.seed);
    let mut hidden = (fit.hidden > 0).then(|| Trainable::new(N_FEATURES, fit.hidden, &mut rng));
    let into_out = if fit.hidden > 0 {
        fit.hidden
    } else {
        N_FEATURES
    };
    let mut out = Trainable::new(into_out, classes, &mut rng);
    let mut order: Vec<usize> = (0..z.len()).collect();
    let (mut h, mut logits) = (vec![0f32; fit.hidden], vec![0f32; classes]);
    let mut dh = vec![0f32; fit.hidden];
    let mut t = 0;
    for _ in 0..fit.epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(fit.batch.max(1)) {
            out.zero();
            if let Some(l) = hidden.as_mut() {
                l.zero();
            }
            let mut total = 0f32;
            for &i in batch {
                let x: &[f32] = match &hidden {
                    Some(l) => {
                        l.layer.forward(&z[i], &mut h);
                        h.iter_mut().for_each(|v| *v = v.tanh());
                        &h
                    }
                    None => &z[i],
                };
                out.layer.forward(x, &mut logits);
                softmax(&mut logits);
                // ∂(−w log p_y)/∂logit = w (p − onehot).
                logits[y[i]] -= 1.0;
                logits.iter_mut().for_each(|d| *d *= weight[i]);
                total += weight[i];
                match hidden.as_mut() {
                    Some(l) => {
                        out.backward(&h, &logits, Some(&mut dh));
                        for (d, &a) in dh.iter_mut().zip(&h) {
                            *d *= 1.0 - a * a;
                        }
                        l.backward(&z[i], &dh, None);
                    }
                    None => out.backward(&z[i], &logits, None),
                }
            }
            t += 1;
            let scale = 1.0 / total.max(1e-6);
            out.update(scale, fit, t);
            if let Some(l) = hidden.as_mut() {
                l.update(scale, fit, t);
            }
        }
    }
    (hidden.map(|l| l.layer), out.layer)
}

/// Ridge regression `y ≈ w·z + b` (bias not penalized); returns (w, b). Solved from the normal
/// equations by Cholesky in f64.
pub fn ridge(z: &[Features], y: &[f32], lambda: f64) -> (Vec<f32>, f32) {
    let d = N_FEATURES + 1;
    let mut a = vec![0f64; d * d];
    let mut rhs = vec![0f64; d];
    let mut row = [0f64; N_FEATURES + 1];
    for (x, &t) in z.iter().zip(y) {
        for (r, &v) in row.iter_mut().zip(x) {
            *r = f64::from(v);
        }
        row[N_FEATURES] = 1.0;
        for i in 0..d {
            rhs[i] += row[i] * f64::from(t);
            for j in 0..d {
                a[i * d + j] += row[i] * row[j];
            }
        }
    }
    for i in 0..N_FEATURES {
        a[i * d + i] += lambda;
    }
    // A tiny ridge on the bias too keeps the matrix positive definite with no rows.
    a[d * d - 1] += 1e-9;
    let sol = cholesky_solve(&mut a, &mut rhs, d);
    (
        sol[..N_FEATURES].iter().map(|&v| v as f32).collect(),
        sol[N_FEATURES] as f32,
    )
}

/// Solves `A x = b` for symmetric positive definite `A` (overwritten).
fn cholesky_solve(a: &mut [f64], b: &mut [f64], d: usize) -> Vec<f64> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        let l = s.max(1e-12).sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    for i in 0..d {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * d + k] * b[k];
        }
        b[i] = s / a[i * d + i];
    }
    for i in (0..d).rev() {
        let mut s = b[i];
        for k in i + 1..d {
            s -= a[k * d + i] * b[k];
        }
        b[i] = s / a[i * d + i];
    }
    b.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_map() {
        let mut rng = Rng::new(3);
        let rows: Vec<Features> = (0..200)
            .map(|_| std::array::from_fn(|_| rng.normal() as f32))
            .collect();
        let y: Vec<f32> = rows.iter().map(|r| 2.0 * r[0] - r[5] + 3.0).collect();
        let (w, b) = ridge(&rows, &y, 1e-6);
        assert!(
            (w[0] - 2.0).abs() < 1e-3 && (w[5] + 1.0).abs() < 1e-3,
            "{w:?}"
        );
        assert!((b - 3.0).abs() < 1e-3 && w[1].abs() < 1e-3);
    }

    #[test]
    fn logistic_and_mlp_separate_two_blobs_deterministically() {
        let mut rng = Rng::new(5);
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..300 {
            let c = i % 2;
            rows.push(std::array::from_fn(|k| {
                rng.normal() as f32 * 0.5 + if k == 2 { c as f32 * 2.0 } else { 0.0 }
            }));
            y.push(c);
        }
        let w = vec![1.0; rows.len()];
        for hidden in [0, 8] {
            let fit = Fit {
                hidden,
                epochs: 20,
                batch: 32,
                lr: 0.05,
                l2: 1e-4,
                seed: 1,
            };
            let (h, out) = classifier(&rows, &y, &w, 2, &fit);
            assert_eq!((h.clone(), out.clone()), classifier(&rows, &y, &w, 2, &fit));
            let mut right = 0;
            let (mut hb, mut logits) = (vec![0.0; hidden], vec![0.0; 2]);
            for (r, &c) in rows.iter().zip(&y) {
                let x: &[f32] = match &h {
                    Some(l) => {
                        l.forward(r, &mut hb);
                        hb.iter_mut().for_each(|v| *v = v.tanh());
                        &hb
                    }
                    None => r,
                };
                out.forward(x, &mut logits);
                right += usize::from((logits[1] > logits[0]) == (c == 1));
            }
            assert!(right > 270, "hidden {hidden}: {right}/300");
        }
    }
}
