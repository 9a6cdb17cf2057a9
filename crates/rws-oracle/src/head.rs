//! The learned head: standardized features → (optionally one tanh hidden layer) → softmax over
//! `clean` and the corruptions, and a linear severity estimate per corruption, clamped to 1–5.
//!
//! With no hidden layer it is multinomial logistic regression; `rws oracle train` fits both forms
//! and keeps the one that measures better (its report says which and why). Buffers are allocated
//! when the head is built, so [`Head::predict`] on a frame allocates nothing.

use crate::features::{Features, N_FEATURES};

/// The class every head has first: no corruption.
pub const CLEAN: &str = "clean";
/// Largest number of classes and hidden units a head may have (bounds what a file can ask for).
pub const MAX_CLASSES: usize = 64;
pub const MAX_HIDDEN: usize = 256;

/// A dense layer, `y = W x + b`, `W` row-major (`outputs × inputs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl Dense {
    /// A layer of zeros.
    pub fn zeros(inputs: usize, outputs: usize) -> Dense {
        Dense {
            inputs,
            outputs,
            w: vec![0.0; inputs * outputs],
            b: vec![0.0; outputs],
        }
    }

    /// `out = W x + b`.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        for (o, (row, b)) in out
            .iter_mut()
            .zip(self.w.chunks_exact(self.inputs).zip(&self.b))
        {
            *o = b + row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        }
    }

    fn shaped(&self) -> bool {
        self.w.len() == self.inputs * self.outputs && self.b.len() == self.outputs
    }
}

/// What the head says of one frame: the probabilities of its classes (index 0 = clean) and the
/// estimated severity of each (0 for clean).
#[derive(Clone, Copy, Debug)]
pub struct Prediction<'a> {
    pub probs: &'a [f32],
    pub severity: &'a [f32],
}

impl Prediction<'_> {
    /// The most probable class (first on ties) and its probability.
    pub fn best(&self) -> (usize, f32) {
        argmax(self.probs)
    }
}

/// The index of the largest value (the first on ties) and the value; `(0, 0.0)` for an empty
/// slice. Every "most probable class" of the crate and of rwsd goes through this one rule.
pub fn argmax(v: &[f32]) -> (usize, f32) {
    let mut best = 0;
    for (i, &p) in v.iter().enumerate() {
        if p > v[best] {
            best = i;
        }
    }
    (best, v.get(best).copied().unwrap_or(0.0))
}

/// The head's parameters and its per-frame buffers.
#[derive(Clone, Debug)]
pub struct Head {
    classes: Vec<String>,
    mean: Vec<f32>,
    scale: Vec<f32>,
    hidden: Option<Dense>,
    out: Dense,
    severity: Dense,
    z: Vec<f32>,
    h: Vec<f32>,
    probs: Vec<f32>,
    sev: Vec<f32>,
}

/// The parts a head is built from (what a file holds, what training produces).
#[derive(Clone, Debug, PartialEq)]
pub struct Parts {
    /// Class names, `clean` first.
    pub classes: Vec<String>,
    /// Standardization: `z = (f − mean) / scale`.
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    /// Optional tanh hidden layer.
    pub hidden: Option<Dense>,
    /// To class logits.
    pub out: Dense,
    /// Standardized features to the severity of each corruption (classes − 1 outputs).
    pub severity: Dense,
}

impl Head {
    /// Builds a head, checking every shape and value; the error says which part is wrong.
    pub fn new(parts: Parts) -> Result<Head, String> {
        check(&parts)?;
        let hidden_n = parts.hidden.as_ref().map_or(0, |h| h.outputs);
        let n = parts.classes.len();
        Ok(Head {
            z: vec![0.0; N_FEATURES],
            h: vec![0.0; hidden_n],
            probs: vec![0.0; n],
            sev: vec![0.0; n],
            classes: parts.classes,
            mean: parts.mean,
            scale: parts.scale,
            hidden: parts.hidden,
            out: parts.out,
            severity: parts.severity,
        })
    }

    /// The class names, `clean` first.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The parameters (for writing the head to a file).
    pub fn parts(&self) -> Parts {
        Parts {
            classes: self.classes.clone(),
            mean: self.mean.clone(),
            scale: self.scale.clone(),
            hidden: self.hidden.clone(),
            out: self.out.clone(),
            severity: self.severity.clone(),
        }
    }

    /// Hidden units (0: logistic regression).
    pub fn hidden_units(&self) -> usize {
        self.h.len()
    }

    /// Classifies one frame's features.
    pub fn predict(&mut self, f: &Features) -> Prediction<'_> {
        for ((z, &x), (m, s)) in self
            .z
            .iter_mut()
            .zip(f)
            .zip(self.mean.iter().zip(&self.scale))
        {
            // A non-finite feature (it cannot come from `extract`, but the head is public)
            // reads as the training mean rather than poisoning every output.
            *z = if x.is_finite() { (x - m) / s } else { 0.0 };
        }
        match &self.hidden {
            Some(hidden) => {
                hidden.forward(&self.z, &mut self.h);
                self.h.iter_mut().for_each(|v| *v = tanh(*v));
                self.out.forward(&self.h, &mut self.probs);
            }
            None => self.out.forward(&self.z, &mut self.probs),
        }
        softmax(&mut self.probs);
        self.sev[0] = 0.0;
        self.severity.forward(&self.z, &mut self.sev[1..]);
        self.sev[1..]
            .iter_mut()
            .for_each(|s| *s = s.clamp(1.0, 5.0));
        Prediction {
            probs: &self.probs,
            severity: &self.sev,
        }
    }
}

/// In-place softmax (max subtracted first, so large logits do not overflow).
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = exp(f64::from(*x - max)) as f32;
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

/// `e^x`, computed here rather than by the platform's libm: a frame's outputs (and so a
/// camera-only α trace) are then the same bits on x86-64, aarch64 and armv7, whose `expf` and
/// `tanhf` may differ in the last place. Range reduction by ln 2 (split in two parts), a degree-13
/// Taylor polynomial on |r| <= ln 2 / 2 (error below 1e-15), scaled by 2^k.
pub fn exp(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=13 {
        term *= r / f64::from(i);
        sum += term;
    }
    // 2^k in two steps, so that k down to -1074 (subnormal results) stays representable.
    let k = k as i32;
    let half = k / 2;
    sum * pow2(half) * pow2(k - half)
}

/// 2^k for k in -1022..=1023.
fn pow2(k: i32) -> f64 {
    f64::from_bits(((1023 + k.clamp(-1022, 1023)) as u64) << 52)
}

/// `tanh`, through [`exp`] (so it is the same on every platform).
pub fn tanh(x: f32) -> f32 {
    let a = f64::from(x).abs();
    let t = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    (t as f32).copysign(x)
}

fn check(p: &Parts) -> Result<(), String> {
    let n = p.classes.len();
    if !(2..=MAX_CLASSES).contains(&n) {
        return Err(format!("{n} classes (expected 2 to {MAX_CLASSES})"));
    }
    if p.classes[0] != CLEAN {
        return Err(format!("class 0 is {:?}, expected {CLEAN:?}", p.classes[0]));
    }
    if let Some((i, c)) = p
        .classes
        .iter()
        .enumerate()
        .find(|(i, c)| p.classes[..*i].contains(c))
    {
        return Err(format!("class {i} ({c:?}) listed twice"));
    }
    if p.mean.len() != N_FEATURES || p.scale.len() != N_FEATURES {
        return Err(format!("standardization is not {N_FEATURES} features long"));
    }
    if p.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err("a standardization scale is not a positive finite number".into());
    }
    let into_out = match &p.hidden {
        Some(h) => {
            if h.inputs != N_FEATURES || !(1..=MAX_HIDDEN).contains(&h.outputs) || !h.shaped() {
                return Err(format!(
                    "hidden layer is {}→{} (expected {N_FEATURES}→1…{MAX_HIDDEN})",
                    h.inputs, h.outputs
                ));
            }
            h.outputs
        }
        None => N_FEATURES,
    };
    if p.out.inputs != into_out || p.out.outputs != n || !p.out.shaped() {
        return Err(format!(
            "output layer is {}→{} (expected {into_out}→{n})",
            p.out.inputs, p.out.outputs
        ));
    }
    if p.severity.inputs != N_FEATURES || p.severity.outputs != n - 1 || !p.severity.shaped() {
        return Err(format!(
            "severity layer is {}→{} (expected {N_FEATURES}→{})",
            p.severity.inputs,
            p.severity.outputs,
            n - 1
        ));
    }
    let all = p
        .mean
        .iter()
        .chain(p.hidden.iter().flat_map(|h| h.w.iter().chain(&h.b)))
        .chain(p.out.w.iter().chain(&p.out.b))
        .chain(p.severity.w.iter().chain(&p.severity.b));
    if let Some(bad) = all.into_iter().find(|v| !(v.is_finite() && v.abs() <= 1e6)) {
        return Err(format!("parameter {bad} is not finite or beyond ±1e6"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn portable_exp_and_tanh_match_the_platform_closely() {
        for i in -700..=700 {
            let x = f64::from(i) * 0.37;
            let (ours, libm) = (exp(x), x.exp());
            assert!(
                ((ours - libm) / libm).abs() < 1e-14,
                "exp({x}): {ours} vs {libm}"
            );
        }
        for i in -400..=400 {
            let x = i as f32 * 0.02;
            assert!(
                (tanh(x) - x.tanh()).abs() <= 2.0 * f32::EPSILON,
                "tanh({x})"
            );
        }
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    /// A logistic head over 3 classes whose class 2 wins when feature 0 is large.
    pub(crate) fn tiny() -> Parts {
        let mut out = Dense::zeros(N_FEATURES, 3);
        out.w[2 * N_FEATURES] = 4.0;
        out.b = vec![1.0, 0.0, -1.0];
        let mut severity = Dense::zeros(N_FEATURES, 2);
        severity.b = vec![3.0, 9.0];
        Parts {
            classes: vec!["clean".into(), "fog".into(), "snow".into()],
            mean: vec![0.5; N_FEATURES],
            scale: vec![0.25; N_FEATURES],
            hidden: None,
            out,
            severity,
        }
    }

    #[test]
    fn predicts_probabilities_and_clamped_severities() {
        let mut head = Head::new(tiny()).expect("valid head");
        let mut f = [0.5f32; N_FEATURES];
        let p = head.predict(&f);
        assert_eq!(p.best().0, 0);
        assert!((p.probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(p.severity, &[0.0, 3.0, 5.0]);
        f[0] = 1.5;
        assert_eq!(head.predict(&f).best().0, 2);
        f[0] = f32::NAN;
        assert_eq!(head.predict(&f).best().0, 0);
    }

    #[test]
    fn refuses_bad_shapes_and_values() {
        let mut p = tiny();
        p.classes[0] = "fog".into();
        assert!(Head::new(p).unwrap_err().contains("class 0"));
        let mut p = tiny();
        p.classes[2] = "fog".into();
        assert!(Head::new(p).unwrap_err().contains("twice"));
        let mut p = tiny();
        p.scale[3] = 0.0;
        assert!(Head::new(p).unwrap_err().contains("scale"));
        let mut p = tiny();
        p.out.w.pop();
        assert!(Head::new(p).unwrap_err().contains("output layer"));
        let mut p = tiny();
        p.severity.b[1] = f32::INFINITY;
        assert!(Head::new(p).unwrap_err().contains("not finite"));
    }
}
