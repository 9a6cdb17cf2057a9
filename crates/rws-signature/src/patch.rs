//! The patch engine: `patched = clean + Σ α·dequant(signature)`, written into preallocated
//! buffers.
//!
//! Three properties matter on the device and are held here:
//! - **Exact take-off.** With no active term (every α = 0) the output is a copy of the clean
//!   tensor, bit for bit. The engine always recomputes from the clean weights and never subtracts
//!   what it added before, so no rounding residue can build up over switches.
//! - **Cost follows active signatures.** Terms with α = 0 are dropped before any work, so loading
//!   19 signatures and activating one costs the same as loading one.
//! - **It vectorizes.** Work goes row by row (one row = one output channel, the unit that shares an
//!   int8 scale), and inside a row in fixed 64-element chunks with no index arithmetic. Every int8
//!   term is fused into one pass: a chunk of the clean row is loaded once, accumulates
//!   `c·q` for each term in registers, and is stored once. On x86-64 the loops are also compiled
//!   for AVX2 and picked at run time. `rws-lab`'s `benches/patch.rs` measures it against memcpy.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::format::{Role, SignatureFile, TensorData};

/// Elements per inner chunk: 64 f32 = 256 bytes, four cache lines, enough for LLVM to unroll a
/// packed loop without a scalar tail on most rows.
const CHUNK: usize = 64;

/// One signature tensor and its coefficient.
#[derive(Clone, Copy, Debug)]
pub struct Term<'a> {
    pub data: TensorData<'a>,
    pub alpha: f32,
}

/// Why a patch could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error("tensor '{name}': clean has {clean} elements, output {out}, signature {sig}")]
    Length {
        name: String,
        clean: usize,
        out: usize,
        sig: usize,
    },
    #[error("tensor '{name}': signatures disagree on the number of int8 scale groups")]
    Groups { name: String },
    #[error("α = {alpha} for term {index} is not finite")]
    Alpha { index: usize, alpha: f32 },
    #[error("{what}: expected {expected} entries, got {got}")]
    Count {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Writes `clean + Σ term.alpha · dequant(term.data)` into `out`.
///
/// Terms with α = 0 are skipped; with none left, `out` becomes an exact copy of `clean`.
/// For [`Role::BnVar`] tensors the result is clamped to the smallest positive normal f32 so a
/// negative α cannot make a running variance negative (only when some term is active, so take-off
/// stays exact).
///
/// All int8 terms are applied in one fused pass (each output chunk is loaded once, accumulates
/// every term in registers and is stored once); f16 and f32 terms follow, added over the same
/// L1-resident row.
pub fn patch_into(
    name: &str,
    role: Role,
    clean: &[f32],
    terms: &[Term<'_>],
    out: &mut [f32],
) -> Result<(), PatchError> {
    let active: Vec<Term<'_>> = terms.iter().copied().filter(|t| t.alpha != 0.0).collect();
    check_lengths(name, clean, &active, out)?;
    if active.is_empty() {
        out.copy_from_slice(clean);
        return Ok(());
    }
    let row_len = row_len(name, clean.len(), &active)?;
    let mut row_terms: Vec<(&[i8], f32)> = Vec::with_capacity(active.len());
    for (r, start) in (0..clean.len()).step_by(row_len).enumerate() {
        let span = start..(start + row_len).min(clean.len());
        row_terms.clear();
        for t in &active {
            if let TensorData::I8 { q, scales } = t.data {
                row_terms.push((&q[span.clone()], t.alpha * scales[r]));
            }
        }
        let out_row = &mut out[span.clone()];
        kernels::fused_i8(out_row, &clean[span.clone()], &row_terms);
        for t in &active {
            match t.data {
                TensorData::F32(v) => kernels::add_f32(out_row, &v[span.clone()], t.alpha),
                TensorData::F16(v) => add_f16(out_row, &v[span.clone()], t.alpha),
                TensorData::I8 { .. } => {}
            }
        }
    }
    if role == Role::BnVar {
        for v in out.iter_mut() {
            *v = v.max(f32::MIN_POSITIVE);
        }
    }
    Ok(())
}

fn check_lengths(
    name: &str,
    clean: &[f32],
    terms: &[Term<'_>],
    out: &[f32],
) -> Result<(), PatchError> {
    let bad = terms.iter().find(|t| t.data.len() != clean.len());
    if out.len() != clean.len() || bad.is_some() {
        return Err(PatchError::Length {
            name: name.to_string(),
            clean: clean.len(),
            out: out.len(),
            sig: bad.map_or(clean.len(), |t| t.data.len()),
        });
    }
    if let Some((index, t)) = terms.iter().enumerate().find(|(_, t)| !t.alpha.is_finite()) {
        return Err(PatchError::Alpha {
            index,
            alpha: t.alpha,
        });
    }
    Ok(())
}

/// Elements per row. Rows are the int8 scale groups (one per output channel), which all int8
/// terms of one tensor share. Float-only patches use blocks of [`FLOAT_BLOCK`] elements so the
/// passes over a block stay in L1.
fn row_len(name: &str, len: usize, terms: &[Term<'_>]) -> Result<usize, PatchError> {
    let mut groups = None;
    for t in terms {
        if let TensorData::I8 { q, scales } = t.data {
            let n = scales.len();
            if n == 0 || q.len() % n != 0 || groups.is_some_and(|g| g != n) {
                return Err(PatchError::Groups {
                    name: name.to_string(),
                });
            }
            groups = Some(n);
        }
    }
    Ok(match groups {
        Some(g) => (len / g).max(1),
        None => FLOAT_BLOCK.min(len).max(1),
    })
}

/// Block length for float-only patches: 16 KiB of f32.
const FLOAT_BLOCK: usize = 4096;

/// f16 goes through a 64-element f32 scratch: `half` converts slices with F16C/NEON when the CPU
/// has them, then the add is the f32 kernel's.
fn add_f16(out: &mut [f32], v: &[f16], c: f32) {
    let mut scratch = [0f32; CHUNK];
    for (o, s) in out.chunks_mut(CHUNK).zip(v.chunks(CHUNK)) {
        let buf = &mut scratch[..s.len()];
        s.convert_to_f32_slice(buf);
        kernels::add_f32(o, buf, c);
    }
}

/// The inner loops, written once as plain chunked Rust over a multiply-add `M`, and compiled
/// for the CPU at hand:
/// - x86-64 with AVX2 and FMA (picked at run time): 8-lane int8→f32 widening and fused
///   multiply-add. The baseline (SSE2) has neither, which makes the int8 kernel compute-bound.
/// - aarch64: NEON and FMA are in the baseline.
/// - elsewhere (SSE2-only x86, armv7 without VFPv4): separate multiply and add, because a fused
///   multiply-add there is a slow library call.
///
/// So patched weights can differ in the last bit between CPU families (one rounding instead of
/// two per term); tests compare against an f64 reference. Take-off (all α = 0) is a copy and is
/// exact everywhere.
mod kernels {
    use super::CHUNK;

    /// How `a + c·x` is computed.
    trait MulAdd {
        fn mul_add(x: f32, c: f32, a: f32) -> f32;
    }

    /// Two roundings: portable and fast everywhere.
    struct Separate;
    impl MulAdd for Separate {
        #[inline(always)]
        fn mul_add(x: f32, c: f32, a: f32) -> f32 {
            a + c * x
        }
    }

    /// One rounding; only used where the CPU has an FMA instruction.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    struct Fused;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    impl MulAdd for Fused {
        #[inline(always)]
        fn mul_add(x: f32, c: f32, a: f32) -> f32 {
            x.mul_add(c, a)
        }
    }

    /// `out = clean + Σ c·q` over one row. Each 64-element chunk of the row lives in eight
    /// vector registers while every term is added to it, then is stored once.
    #[inline(always)]
    fn fused_i8_body<M: MulAdd>(out: &mut [f32], clean: &[f32], terms: &[(&[i8], f32)]) {
        let mut o = out.chunks_exact_mut(CHUNK);
        let mut w = clean.chunks_exact(CHUNK);
        let mut base = 0;
        for (o, w) in (&mut o).zip(&mut w) {
            let mut acc = [0f32; CHUNK];
            acc.copy_from_slice(w);
            for &(q, c) in terms {
                for (a, &s) in acc.iter_mut().zip(&q[base..base + CHUNK]) {
                    *a = M::mul_add(f32::from(s), c, *a);
                }
            }
            o.copy_from_slice(&acc);
            base += CHUNK;
        }
        for (j, (o, &w)) in o.into_remainder().iter_mut().zip(w.remainder()).enumerate() {
            let mut a = w;
            for &(q, c) in terms {
                a = M::mul_add(f32::from(q[base + j]), c, a);
            }
            *o = a;
        }
    }

    /// `out += c·v`.
    #[inline(always)]
    fn add_f32_body<M: MulAdd>(out: &mut [f32], v: &[f32], c: f32) {
        let mut o = out.chunks_exact_mut(CHUNK);
        let mut s = v.chunks_exact(CHUNK);
        for (o, s) in (&mut o).zip(&mut s) {
            for (o, &s) in o.iter_mut().zip(s) {
                *o = M::mul_add(s, c, *o);
            }
        }
        for (o, &s) in o.into_remainder().iter_mut().zip(s.remainder()) {
            *o = M::mul_add(s, c, *o);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn has_avx2_fma() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn fused_i8_avx2(out: &mut [f32], clean: &[f32], terms: &[(&[i8], f32)]) {
        fused_i8_body::<Fused>(out, clean, terms)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn add_f32_avx2(out: &mut [f32], v: &[f32], c: f32) {
        add_f32_body::<Fused>(out, v, c)
    }

    pub fn fused_i8(out: &mut [f32], clean: &[f32], terms: &[(&[i8], f32)]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support were detected on this CPU just above.
            return unsafe { fused_i8_avx2(out, clean, terms) };
        }
        #[cfg(target_arch = "aarch64")]
        return fused_i8_body::<Fused>(out, clean, terms);
        #[allow(unreachable_code)]
        fused_i8_body::<Separate>(out, clean, terms)
    }

    pub fn add_f32(out: &mut [f32], v: &[f32], c: f32) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: AVX2 and FMA support were detected on this CPU just above.
            return unsafe { add_f32_avx2(out, v, c) };
        }
        #[cfg(target_arch = "aarch64")]
        return add_f32_body::<Fused>(out, v, c);
        #[allow(unreachable_code)]
        add_f32_body::<Separate>(out, v, c)
    }

    /// The portable two-rounding kernels, for comparing against the dispatched ones.
    #[cfg(test)]
    pub fn fused_i8_portable(out: &mut [f32], clean: &[f32], terms: &[(&[i8], f32)]) {
        fused_i8_body::<Separate>(out, clean, terms)
    }

    #[cfg(test)]
    pub fn add_f32_portable(out: &mut [f32], v: &[f32], c: f32) {
        add_f32_body::<Separate>(out, v, c)
    }
}

/// The tensors a set of signatures patches, bound once so each patch is a few table lookups.
///
/// `Patcher::new` takes the signatures in a fixed order; coefficient vectors given to
/// [`Patcher::patch`] are indexed in that order. Targets are the union of the tensors the
/// signatures name, in the order first seen.
#[derive(Debug)]
pub struct Patcher<'s> {
    sigs: Vec<&'s SignatureFile>,
    targets: Vec<Target>,
}

/// One patched tensor and, per signature, the index of its entry (if that signature has one).
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub role: Role,
    pub shape: Vec<usize>,
    sources: Vec<Option<usize>>,
}

impl<'s> Patcher<'s> {
    /// Binds `sigs`. Signatures must agree on the shape of every tensor they share; check each
    /// against the model first (`rws_runtime::compat::bind` does both).
    pub fn new(sigs: &[&'s SignatureFile]) -> Result<Self, crate::fit::Mismatches> {
        let mut targets: Vec<Target> = Vec::new();
        let mut problems = Vec::new();
        for (s, sig) in sigs.iter().enumerate() {
            for (i, t) in sig.tensors().iter().enumerate() {
                match targets.iter_mut().find(|x| x.name == t.name) {
                    Some(x) if x.shape != t.shape => problems.push(crate::fit::Mismatch::Shape {
                        name: t.name.clone(),
                        expected: x.shape.clone(),
                        found: t.shape.clone(),
                    }),
                    Some(x) => x.sources[s] = Some(i),
                    None => {
                        let mut sources = vec![None; sigs.len()];
                        sources[s] = Some(i);
                        targets.push(Target {
                            name: t.name.clone(),
                            role: t.role,
                            shape: t.shape.clone(),
                            sources,
                        });
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(crate::fit::Mismatches(problems));
        }
        Ok(Patcher {
            sigs: sigs.to_vec(),
            targets,
        })
    }

    /// The tensors this patcher writes, in output order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Patches every target: `out[k] = clean[k] + Σ_s alphas[s] · sig_s[k]`.
    ///
    /// `clean` and `out` follow [`Self::targets`]; `alphas` follows the signature order given to
    /// [`Patcher::new`]. Only signatures with α ≠ 0 are touched.
    pub fn patch(
        &self,
        clean: &[&[f32]],
        alphas: &[f32],
        out: &mut [Vec<f32>],
    ) -> Result<(), PatchError> {
        let count = |what, expected, got| PatchError::Count {
            what,
            expected,
            got,
        };
        if alphas.len() != self.sigs.len() {
            return Err(count("coefficients", self.sigs.len(), alphas.len()));
        }
        if clean.len() != self.targets.len() || out.len() != self.targets.len() {
            return Err(count(
                "tensors",
                self.targets.len(),
                clean.len().min(out.len()),
            ));
        }
        if let Some((index, &alpha)) = alphas.iter().enumerate().find(|(_, a)| !a.is_finite()) {
            return Err(PatchError::Alpha { index, alpha });
        }
        let active: Vec<usize> = (0..alphas.len()).filter(|&s| alphas[s] != 0.0).collect();
        let mut terms = Vec::with_capacity(active.len());
        for ((target, clean), out) in self.targets.iter().zip(clean).zip(out.iter_mut()) {
            terms.clear();
            terms.extend(active.iter().filter_map(|&s| {
                target.sources[s].map(|i| Term {
                    data: self.sigs[s].data(i),
                    alpha: alphas[s],
                })
            }));
            patch_into(&target.name, target.role, clean, &terms, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched kernels (FMA where the CPU has it) and the portable ones agree to within
    /// one rounding per term, so a patched model barely depends on which CPU computed it.
    #[test]
    fn dispatched_kernels_match_portable_ones() {
        let mut rng = rws_rng::Rng::new(3);
        let n = 1000; // not a multiple of CHUNK: exercises the tail
        let clean: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        let q: Vec<Vec<i8>> = (0..3)
            .map(|_| {
                (0..n)
                    .map(|_| (rng.below(255) as i32 - 127) as i8)
                    .collect()
            })
            .collect();
        let coefs = [0.013f32, -0.007, 0.021];
        let terms: Vec<(&[i8], f32)> = q.iter().map(Vec::as_slice).zip(coefs).collect();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        kernels::fused_i8(&mut a, &clean, &terms);
        kernels::fused_i8_portable(&mut b, &clean, &terms);
        kernels::add_f32(&mut a, &clean, 0.3);
        kernels::add_f32_portable(&mut b, &clean, 0.3);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let bound = 4.0 * f32::EPSILON * (clean[i].abs() * 1.3 + 3.0 * 127.0 * 0.021);
            assert!((x - y).abs() <= bound, "element {i}: {x} vs {y}");
        }
    }
}
