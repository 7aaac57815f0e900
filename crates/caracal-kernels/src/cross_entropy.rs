//! Cross-entropy over logits with Liger-Kernel's options: `ignore_index`,
//! label smoothing, z-loss, logit softcapping, class weights and the three
//! reductions.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989, §3.3; `ops/cross_entropy.py`):
//! one pass per row computes the loss *and* the gradient, which the forward
//! stashes; the backward only scales it by `grad_output`. With softcap `s`,
//! `z ← s·tanh(z/s)`; `ε = ls/V`, `λ` = `lse_square_scale`,
//! `lse = log Σ_j exp z_j`, `p_j = exp(z_j − lse)`, `w` the class weights
//! (all 1 without them) and `W = Σ_j w_j`:
//!
//! - `loss_i = (1−ls)·w_y·(lse − z_y) + ε·Σ_j w_j (lse − z_j) + λ·lse²`;
//!   without class weights this is Liger's `(1−ls)(lse−z_y) + ls·lse − εΣ_j z_j + λ·lse²`.
//! - `dz_j = [(1−ls)·w_y·(p_j − [j=y]) + ε(W·p_j − w_j)]/N + 2λ·lse·p_j/N_z`,
//!   times `1 − tanh²(z_j/s)` when softcapped; without class weights this is
//!   `[(1+2λ·lse)p_j − ε − (1−ls)[j=y]]/N`.
//! - `reduction = mean`: `N` is the number of non-ignored rows, or `Σ w_y`
//!   over them with class weights; the z-loss term is divided by the number
//!   of non-ignored rows and is not class-weighted (as in Liger). `sum`:
//!   `N = N_z = 1`. A batch with nothing to average over gives loss 0.
//!
//! Rows whose target is `ignore_index` get loss 0 and gradient 0 (their
//! logits are never read). A NaN or `+inf` logit in a non-ignored row is
//! propagated: that row's loss and gradient are NaN, as in torch; it is not
//! an error. Targets outside `[0, V)` that are not `ignore_index` are.

use crate::cpu::{self, check_float};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, DType, Device, Layout, Shape, Storage, Tensor, WithDType,
};
use caracal_core::{Error, Result};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// How per-row losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// One loss per row (`[N]`).
    None,
    /// The sum over rows (a scalar).
    Sum,
    /// The mean over non-ignored rows, or the class-weighted mean (a scalar).
    #[default]
    Mean,
}

/// Options shared by [`cross_entropy`] and the fused linear cross-entropy.
#[derive(Clone, Debug)]
pub struct CeOptions {
    /// Rows whose target equals this get loss 0 and gradient 0 (default -100).
    pub ignore_index: i64,
    /// Label smoothing `ls` in `[0, 1]`; `ε = ls/V` of the mass goes to every class.
    pub label_smoothing: f64,
    /// z-loss scale `λ`: adds `λ·lse²` per row (not class-weighted).
    pub lse_square_scale: f64,
    /// Logit softcap `s > 0`: `z ← s·tanh(z/s)` before the softmax.
    pub softcap: Option<f64>,
    /// Per-class weights, a 1-D float tensor of length `V` (not differentiated).
    pub class_weights: Option<Tensor>,
    /// How rows are combined.
    pub reduction: Reduction,
}

impl Default for CeOptions {
    fn default() -> Self {
        CeOptions {
            ignore_index: -100,
            label_smoothing: 0.0,
            lse_square_scale: 0.0,
            softcap: None,
            class_weights: None,
            reduction: Reduction::Mean,
        }
    }
}

/// The loss, and the z-loss part of it for logging.
#[derive(Clone, Debug)]
pub struct CeOutput {
    /// The loss, f32 (f64 for f64 logits): a scalar, or `[N]` for `Reduction::None`.
    pub loss: Tensor,
    /// `λ·lse²` reduced like the loss, detached; `None` when `λ = 0`.
    pub z_loss: Option<Tensor>,
}

// ---------------------------------------------------------------------------
// The row kernel, shared with the fused linear cross-entropy.
// ---------------------------------------------------------------------------

/// `exp` for the row kernels: a vectorizable Cephes-style polynomial for f32
/// (about 1 ulp on the range that matters, exactly 0 below −87.3, NaN in →
/// NaN out), `f64::exp` for f64.
pub(crate) trait KernelFloat: Real {
    fn fast_exp(self) -> Self;

    /// `Σ_j exp(z_j − max)` over `blk`, storing each term in place when `store`.
    #[inline]
    fn exp_sum(blk: &mut [Self], max: Self, store: bool) -> Self {
        let mut sum = Self::zero();
        for v in blk.iter_mut() {
            let e = (*v - max).fast_exp();
            sum += e;
            if store {
                *v = e;
            }
        }
        sum
    }

    /// `v ← a·v − b` over `blk`.
    #[inline]
    fn axpb(blk: &mut [Self], a: Self, b: Self) {
        for v in blk.iter_mut() {
            *v = a * *v - b;
        }
    }
}

impl KernelFloat for f64 {
    #[inline(always)]
    fn fast_exp(self) -> Self {
        self.exp()
    }
}

/// SSE2 (baseline on x86_64) versions of the f32 hot loops: the crate builds
/// at opt-level 1 in dev, where LLVM does not vectorize.
#[cfg(target_arch = "x86_64")]
mod sse {
    use std::arch::x86_64::*;

    /// Four lanes of [`super::KernelFloat::fast_exp`] (same constants; NaN
    /// propagates, `x < −87.3` gives 0).
    #[inline(always)]
    unsafe fn exp4(x: __m128) -> __m128 {
        // max/min return their second operand when either is NaN: keep x there.
        let xc = _mm_min_ps(_mm_set1_ps(88.0), _mm_max_ps(_mm_set1_ps(-87.0), x));
        let magic = _mm_set1_ps(12_582_912.0);
        let t = _mm_add_ps(_mm_mul_ps(xc, _mm_set1_ps(std::f32::consts::LOG2_E)), magic);
        let n = _mm_sub_ps(t, magic);
        let k = _mm_sub_epi32(_mm_castps_si128(t), _mm_set1_epi32(0x4B40_0000));
        let r = _mm_sub_ps(
            _mm_sub_ps(xc, _mm_mul_ps(n, _mm_set1_ps(0.693_359_4))),
            _mm_mul_ps(n, _mm_set1_ps(-2.121_944_4e-4)),
        );
        let mut p = _mm_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(c));
        }
        let y = _mm_add_ps(
            _mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r),
            _mm_set1_ps(1.0),
        );
        let scale = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(k, _mm_set1_epi32(127)), 23));
        let under = _mm_cmplt_ps(x, _mm_set1_ps(-87.3));
        _mm_andnot_ps(under, _mm_mul_ps(y, scale))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m128) -> f32 {
        let mut a = [0f32; 4];
        _mm_storeu_ps(a.as_mut_ptr(), v);
        (a[0] + a[1]) + (a[2] + a[3])
    }

    pub(super) fn exp_sum(blk: &mut [f32], max: f32, store: bool) -> f32 {
        let n4 = blk.len() / 4 * 4;
        // SAFETY: SSE2 is part of the x86_64 baseline; every access is within `blk`.
        let mut sum = unsafe {
            let m = _mm_set1_ps(max);
            let mut acc = _mm_setzero_ps();
            let p = blk.as_mut_ptr();
            for i in (0..n4).step_by(4) {
                let e = exp4(_mm_sub_ps(_mm_loadu_ps(p.add(i)), m));
                acc = _mm_add_ps(acc, e);
                if store {
                    _mm_storeu_ps(p.add(i), e);
                }
            }
            hsum(acc)
        };
        for v in &mut blk[n4..] {
            let e = super::KernelFloat::fast_exp(*v - max);
            sum += e;
            if store {
                *v = e;
            }
        }
        sum
    }

    pub(super) fn axpb(blk: &mut [f32], a: f32, b: f32) {
        let n4 = blk.len() / 4 * 4;
        // SAFETY: as above.
        unsafe {
            let (va, vb) = (_mm_set1_ps(a), _mm_set1_ps(b));
            let p = blk.as_mut_ptr();
            for i in (0..n4).step_by(4) {
                _mm_storeu_ps(
                    p.add(i),
                    _mm_sub_ps(_mm_mul_ps(va, _mm_loadu_ps(p.add(i))), vb),
                );
            }
        }
        for v in &mut blk[n4..] {
            *v = a * *v - b;
        }
    }
}

impl KernelFloat for f32 {
    #[inline(always)]
    fn fast_exp(self) -> Self {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
        const MAGIC: f32 = 12_582_912.0;
        let x = self.clamp(-87.0, 88.0);
        let t = x * LOG2E + MAGIC;
        let n = t - MAGIC;
        let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
        let r = x - n * LN2_HI - n * LN2_LO;
        let mut p = 1.987_569_1e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let y = p * r * r + r + 1.0;
        let scale = f32::from_bits(((k + 127) << 23) as u32);
        if self < -87.3 {
            0.0
        } else {
            y * scale
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn exp_sum(blk: &mut [Self], max: Self, store: bool) -> Self {
        sse::exp_sum(blk, max, store)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn axpb(blk: &mut [Self], a: Self, b: Self) {
        sse::axpb(blk, a, b)
    }
}

/// Scalars of one CE evaluation, in the kernel's compute type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowParams<R> {
    pub one_minus_ls: R,
    /// `ε = ls/V`.
    pub eps: R,
    /// z-loss scale `λ`.
    pub lambda: R,
    pub softcap: Option<R>,
    /// `W = Σ_j w_j` (`V` without class weights).
    pub weight_sum: R,
    /// `1/N` for the CE part (1 unless `reduction = mean`; 0 when `N = 0`).
    pub ce_scale: R,
    /// `1/N_z` for the z-loss part.
    pub z_scale: R,
}

/// One row's contribution to the loss (already divided by `N`), and the
/// z-loss part of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowLoss<R> {
    pub loss: R,
    pub z_loss: R,
}

impl<R: Real> Default for RowLoss<R> {
    fn default() -> Self {
        RowLoss {
            loss: R::zero(),
            z_loss: R::zero(),
        }
    }
}

/// Online-softmax statistics of one block of a row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockStat<R> {
    max: R,
    /// `Σ exp(z_j − max)`.
    sum: R,
    /// `Σ w_j`.
    wsum: R,
    /// `Σ w_j (max − z_j)`, non-negative, for the label-smoothing term.
    gap: R,
}

/// Columns per online-softmax block: a block stays in L1 between its max
/// and its exp sub-passes.
const BLOCK: usize = 256;

/// How the row kernel scales the gradient it writes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GradScale<'a, R> {
    /// Loss only: the row buffer is scratch afterwards.
    None,
    /// Every row's gradient times the same factor.
    Uniform(R),
    /// Row `i`'s gradient times `s[i]` (`reduction = none`'s `grad_output`).
    PerRow(&'a [R]),
}

/// The CE row kernel: turns one row of logits `z` (length `V`) with target
/// `y` (`None` = ignored) into its loss and, unless `grad_scale` is `None`,
/// overwrites `z` with `grad_scale·∂loss/∂z` (module docs for the formulas).
///
/// One read pass computes a blocked online softmax `(max, Σexp)` and stores
/// `exp(z_j − max_block)` in place (when there is no softcap), so the
/// gradient pass needs no second `exp`. `stats` is scratch.
pub(crate) fn ce_row<R: KernelFloat>(
    z: &mut [R],
    y: Option<usize>,
    p: &RowParams<R>,
    weights: Option<&[R]>,
    grad_scale: Option<R>,
    stats: &mut Vec<BlockStat<R>>,
) -> RowLoss<R> {
    let Some(y) = y else {
        if grad_scale.is_some() {
            z.fill(R::zero());
        }
        return RowLoss::default();
    };
    if let Some(s) = p.softcap {
        let inv = R::one() / s;
        for v in z.iter_mut() {
            *v = s * (*v * inv).tanh();
        }
    }
    let z_y = z[y];
    let store_exp = p.softcap.is_none() && grad_scale.is_some();
    let smoothing = p.eps != R::zero();

    // Pass 1: per-block max, Σexp, Σw and Σw(max − z).
    stats.clear();
    for (bi, blk) in z.chunks_mut(BLOCK).enumerate() {
        let mut max = R::neg_infinity();
        for &v in blk.iter() {
            max = if v > max { v } else { max };
        }
        // Label-smoothing sums read the logits before the exps replace them.
        let (mut wsum, mut gap) = (R::zero(), R::zero());
        if smoothing {
            match weights {
                None => {
                    wsum = R::lit(blk.len() as f64);
                    for &v in blk.iter() {
                        gap += max - v;
                    }
                }
                Some(w) => {
                    for (&v, &wj) in blk.iter().zip(&w[bi * BLOCK..]) {
                        wsum += wj;
                        gap += wj * (max - v);
                    }
                }
            }
        }
        let sum = R::exp_sum(blk, max, store_exp);
        stats.push(BlockStat {
            max,
            sum,
            wsum,
            gap,
        });
    }

    let m = stats
        .iter()
        .fold(R::neg_infinity(), |a, s| if s.max > a { s.max } else { a });
    let mut d = R::zero();
    for s in stats.iter() {
        d += s.sum * (s.max - m).fast_exp();
    }
    let lse = m + d.ln();
    let w_y = weights.map_or(R::one(), |w| w[y]);
    let mut ce = p.one_minus_ls * w_y * (lse - z_y);
    if smoothing {
        // Σ_j w_j (lse − z_j) = Σ_blocks [gap_b + wsum_b·(lse − max_b)].
        let mut s = R::zero();
        for b in stats.iter() {
            s += b.gap + b.wsum * (lse - b.max);
        }
        ce += p.eps * s;
    }
    let zl = p.lambda * lse * lse * p.z_scale;
    let out = RowLoss {
        loss: ce * p.ce_scale + zl,
        z_loss: zl,
    };
    let Some(g) = grad_scale else {
        return out;
    };

    // Pass 2: dz_j = (a·p_j − b·w_j − c·[j=y]) · (1 − tanh²).
    let a = ((p.one_minus_ls * w_y + p.eps * p.weight_sum) * p.ce_scale
        + R::lit(2.0) * p.lambda * lse * p.z_scale)
        * g;
    let b = p.eps * p.ce_scale * g;
    let c = p.one_minus_ls * w_y * p.ce_scale * g;
    let inv_d = R::one() / d;
    for (bi, blk) in z.chunks_mut(BLOCK).enumerate() {
        let wb = weights.map(|w| &w[bi * BLOCK..bi * BLOCK + blk.len()]);
        if let Some(s) = p.softcap {
            let inv_s = R::one() / s;
            for (j, v) in blk.iter_mut().enumerate() {
                let t = *v * inv_s;
                let pj = (*v - m).fast_exp() * inv_d;
                let bj = wb.map_or(b, |w| b * w[j]);
                *v = (a * pj - bj) * (R::one() - t * t);
            }
        } else {
            let f = (stats[bi].max - m).fast_exp() * inv_d;
            match wb {
                None => R::axpb(blk, a * f, b),
                Some(w) => {
                    for (v, &wj) in blk.iter_mut().zip(w) {
                        *v = a * (*v * f) - b * wj;
                    }
                }
            }
        }
    }
    // The target entry, recomputed from z_y (Liger does this in fp32 to avoid
    // cancellation in low precision).
    let p_y = (z_y - m).exp() / d;
    let deriv = match p.softcap {
        Some(s) => {
            let t = z_y / s;
            R::one() - t * t
        }
        None => R::one(),
    };
    z[y] = (a * p_y - b * w_y - c) * deriv;
    out
}

/// Run [`ce_row`] over the rows of `buf` (`targets.len()` rows of `v`) in
/// parallel. When `src` is given each row is first copied from it (plus
/// `bias`, if any); otherwise `buf` already holds the logits. Returns each
/// row's loss; `buf` then holds the scaled gradient unless `scale` is
/// [`GradScale::None`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn ce_rows<R: KernelFloat>(
    buf: &mut [R],
    v: usize,
    targets: &[Option<usize>],
    params: &RowParams<R>,
    weights: Option<&[R]>,
    src: Option<&[R]>,
    bias: Option<&[R]>,
    scale: GradScale<'_, R>,
) -> Vec<RowLoss<R>> {
    let mut out = vec![RowLoss::default(); targets.len()];
    if v == 0 || targets.is_empty() {
        return out;
    }
    let min_rows = (1usize << 14).div_ceil(v).max(1);
    buf.par_chunks_mut(v)
        .zip(out.par_iter_mut())
        .enumerate()
        .with_min_len(min_rows)
        .for_each_init(Vec::new, |stats, (i, (row, o))| {
            let y = targets[i];
            if let (Some(src), Some(_)) = (src, y) {
                let s = &src[i * v..(i + 1) * v];
                match bias {
                    Some(b) => {
                        for ((z, &x), &bj) in row.iter_mut().zip(s).zip(b) {
                            *z = x + bj;
                        }
                    }
                    None => row.copy_from_slice(s),
                }
            }
            let g = match scale {
                GradScale::None => None,
                GradScale::Uniform(g) => Some(g),
                GradScale::PerRow(s) => Some(s[i]),
            };
            *o = ce_row(row, y, params, weights, g, stats);
        });
    out
}

// ---------------------------------------------------------------------------
// Validated options, shared with the fused linear cross-entropy.
// ---------------------------------------------------------------------------

/// [`CeOptions`] checked against a batch: targets resolved, class weights
/// read, and the mean's denominators computed.
#[derive(Clone, Debug)]
pub(crate) struct CeSpec {
    /// Per row: the target class, or `None` for `ignore_index`.
    pub targets: Vec<Option<usize>>,
    pub weights: Option<Vec<f64>>,
    pub label_smoothing: f64,
    pub lambda: f64,
    pub softcap: Option<f64>,
    pub reduction: Reduction,
    pub vocab: usize,
    ce_scale: f64,
    z_scale: f64,
}

fn inv_or_zero(d: f64) -> f64 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

impl CeSpec {
    /// Check `opts` and the `[n]` integer `target` against `V = vocab`.
    pub(crate) fn new(
        op: &str,
        target: &Tensor,
        n: usize,
        vocab: usize,
        opts: &CeOptions,
    ) -> Result<Self> {
        if target.dims() != [n] {
            return Err(Error::invalid(format!(
                "{op}: target has shape {:?} but the batch has {n} rows; expected shape [{n}]",
                target.dims()
            )));
        }
        if target.dtype().is_float() {
            return Err(Error::invalid(format!(
                "{op}: target has dtype {:?}; expected an integer dtype (i64, u32, i32 or u8)",
                target.dtype()
            )));
        }
        let target = &target.to_device(&Device::Cpu)?;
        let ls = opts.label_smoothing;
        if !(0.0..=1.0).contains(&ls) {
            return Err(Error::invalid(format!(
                "{op}: label_smoothing is {ls}; expected a value in [0, 1]"
            )));
        }
        if !opts.lse_square_scale.is_finite() {
            return Err(Error::invalid(format!(
                "{op}: lse_square_scale is {}; expected a finite value",
                opts.lse_square_scale
            )));
        }
        if let Some(s) = opts.softcap {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid(format!(
                    "{op}: softcap is {s}; expected a finite value > 0"
                )));
            }
        }
        let weights = match &opts.class_weights {
            None => None,
            Some(w) => {
                if !w.dtype().is_float() || w.dims() != [vocab] {
                    return Err(Error::invalid(format!(
                        "{op}: class_weights is {:?} {:?}; expected a 1-D float tensor of length V = {vocab}",
                        w.dims(),
                        w.dtype()
                    )));
                }
                let w = w.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                if let Some(bad) = w.iter().find(|x| !x.is_finite()) {
                    return Err(Error::invalid(format!(
                        "{op}: class_weights contains {bad}; expected finite values"
                    )));
                }
                Some(w)
            }
        };
        let raw = cpu::tensor_read_index(target)?;
        let mut targets = Vec::with_capacity(n);
        for (i, &t) in raw.iter().enumerate() {
            if t == opts.ignore_index {
                targets.push(None);
            } else if t >= 0 && (t as u64) < vocab as u64 {
                targets.push(Some(t as usize));
            } else {
                return Err(Error::invalid(format!(
                    "{op}: target {t} at row {i} is outside [0, {vocab}) and is not ignore_index ({})",
                    opts.ignore_index
                )));
            }
        }
        let n_valid = targets.iter().flatten().count() as f64;
        let (ce_scale, z_scale) = match opts.reduction {
            Reduction::Mean => {
                let ce_den = match &weights {
                    Some(w) => targets.iter().flatten().map(|&y| w[y]).sum(),
                    None => n_valid,
                };
                (inv_or_zero(ce_den), inv_or_zero(n_valid))
            }
            Reduction::Sum | Reduction::None => (1.0, 1.0),
        };
        Ok(CeSpec {
            targets,
            weights,
            label_smoothing: ls,
            lambda: opts.lse_square_scale,
            softcap: opts.softcap,
            reduction: opts.reduction,
            vocab,
            ce_scale,
            z_scale,
        })
    }

    /// The row kernel's scalars and class weights in compute type `R`.
    pub(crate) fn params<R: Real>(&self) -> (RowParams<R>, Option<Vec<R>>) {
        let w: Option<Vec<R>> = self
            .weights
            .as_ref()
            .map(|w| w.iter().map(|&x| R::lit(x)).collect());
        let weight_sum = self
            .weights
            .as_ref()
            .map_or(self.vocab as f64, |w| w.iter().sum());
        let p = RowParams {
            one_minus_ls: R::lit(1.0 - self.label_smoothing),
            eps: R::lit(self.label_smoothing / self.vocab.max(1) as f64),
            lambda: R::lit(self.lambda),
            softcap: self.softcap.map(R::lit),
            weight_sum: R::lit(weight_sum),
            ce_scale: R::lit(self.ce_scale),
            z_scale: R::lit(self.z_scale),
        };
        (p, w)
    }

    /// Reduce per-row losses to `(loss, z_loss, shape)` (sums in f64).
    pub(crate) fn reduce<R: Real>(&self, rows: &[RowLoss<R>]) -> (Vec<f64>, Vec<f64>, Shape) {
        match self.reduction {
            Reduction::None => (
                rows.iter().map(|r| r.loss.as_f64()).collect(),
                rows.iter().map(|r| r.z_loss.as_f64()).collect(),
                Shape::from(rows.len()),
            ),
            Reduction::Sum | Reduction::Mean => (
                vec![rows.iter().map(|r| r.loss.as_f64()).sum()],
                vec![rows.iter().map(|r| r.z_loss.as_f64()).sum()],
                Shape::from(()),
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Scaling stashed gradients by grad_output.
// ---------------------------------------------------------------------------

/// Elements per rayon task when scaling.
const GRAIN: usize = 1 << 14;

fn scale_vec<T: WithDType>(v: &[T], s: &[f64]) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); v.len()];
    if s.len() <= 1 {
        let g = s.first().copied().unwrap_or(1.0);
        out.par_chunks_mut(GRAIN)
            .zip(v.par_chunks(GRAIN))
            .for_each(|(o, x)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = T::from_f64(x.to_f64() * g);
                }
            });
    } else {
        let row = (v.len() / s.len()).max(1);
        out.par_chunks_mut(row)
            .zip(v.par_chunks(row))
            .zip(s.par_iter())
            .for_each(|((o, x), &g)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = T::from_f64(x.to_f64() * g);
                }
            });
    }
    out
}

/// `t` (a stashed gradient) times `grad_output`: a scalar scales every
/// element, a vector of `n` scales the `n` rows of `t`. Returns `t` itself
/// when the scale is exactly 1 (the usual `loss.backward()`).
pub(crate) fn scale_by(t: &Tensor, grad_output: &Tensor) -> candle_core::Result<Tensor> {
    let g = grad_output
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    if g.len() == 1 && g[0] == 1.0 {
        return Ok(t.clone());
    }
    if g.len() > 1 && t.dims().first() != Some(&g.len()) {
        candle_core::bail!(
            "grad_output has {} elements but the gradient has shape {:?}",
            g.len(),
            t.dims()
        );
    }
    if !t.device().is_cpu() {
        // On a GPU the scaling is one candle kernel.
        return if g.len() <= 1 {
            t.affine(g.first().copied().unwrap_or(1.0), 0.0)
        } else {
            let mut shape = vec![1usize; t.rank().max(1)];
            shape[0] = g.len();
            t.broadcast_mul(&grad_output.to_dtype(t.dtype())?.reshape(shape)?)
        };
    }
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    let Storage::Cpu(cs) = &*st else {
        candle_core::bail!("the CPU kernels got a tensor on another device")
    };
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("expected a contiguous gradient".into()))?;
    let shape = t.shape().clone();
    let dev = &Device::Cpu;
    match cs {
        CpuStorage::F32(v) => Tensor::from_vec(scale_vec(&v[a..b], &g), shape, dev),
        CpuStorage::F64(v) => Tensor::from_vec(scale_vec(&v[a..b], &g), shape, dev),
        CpuStorage::BF16(v) => Tensor::from_vec(scale_vec(&v[a..b], &g), shape, dev),
        CpuStorage::F16(v) => Tensor::from_vec(scale_vec(&v[a..b], &g), shape, dev),
        other => candle_core::bail!("cannot scale a gradient of dtype {:?}", other.dtype()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The op.
// ---------------------------------------------------------------------------

struct CeOp {
    spec: CeSpec,
    /// Whether the logits need a gradient (otherwise only the loss is computed).
    want_grad: bool,
    /// On CUDA, write the gradient over the logits (Liger's in-place trick);
    /// the caller then stashes the logits tensor itself as the gradient.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    in_place: bool,
    /// `∂loss/∂logits` for `grad_output = 1`, in the logits' dtype.
    grad: Arc<Mutex<Option<Tensor>>>,
    /// The z-loss, read by [`cross_entropy`] after the forward.
    z_loss: Arc<Mutex<Option<Tensor>>>,
}

impl CustomOp1 for CeOp {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda::{ce, rt};
        let dev = &s.device;
        let dt = s.dtype();
        let (n, v) = l.shape().dims2()?;
        let dce = ce::CeDev::new(dev, &self.spec, 1.0)?;
        let z = rt::ptr(s, l)?;
        let ((lt, lp), (zt, zp)) = ce::row_buffers(dev, n)?;
        let mut grad = None;
        let gp = if !self.want_grad {
            0
        } else if self.in_place {
            z
        } else {
            let (g, p) = rt::new_tensor(dev, dt, (n, v), &|| {
                format!("cross_entropy gradient [{n}, {v}] {dt:?}")
            })?;
            grad = Some(g);
            p
        };
        dce.run(dev, dt, z, gp, 0, 0, lp, zp, 0, n, v)?;
        if let Some(g) = grad {
            *lock(&self.grad) = Some(g);
        }
        let none = self.spec.reduction == Reduction::None;
        let out_dt = if dt == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        *lock(&self.z_loss) = Some(ce::reduce(&zt, none, out_dt)?);
        ce::storage_of(&ce::reduce(&lt, none, out_dt)?)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s.dtype();
        let (n, v) = l.shape().dims2()?;
        crate::dispatch_real!(dt, R => {
            let (params, weights) = self.spec.params::<R>();
            let scale = if self.want_grad { GradScale::Uniform(R::one()) } else { GradScale::None };
            let logits = cpu::read::<R>(s, l)?;
            let (mut buf, src) = match logits {
                Cow::Borrowed(src) => (vec![R::zero(); n * v], Some(src)),
                Cow::Owned(buf) => (buf, None),
            };
            let rows = ce_rows(&mut buf, v, &self.spec.targets, &params, weights.as_deref(), src, None, scale);
            if self.want_grad {
                *lock(&self.grad) = Some(cpu::tensor_from(buf, (n, v), dt)?);
            }
            let (loss, z, shape) = self.spec.reduce(&rows);
            *lock(&self.z_loss) = Some(cpu::tensor_from(z, shape.clone(), <R as Real>::DTYPE)?);
            Ok((cpu::write(loss, <R as Real>::DTYPE)?, shape))
        })
    }

    fn bwd(
        &self,
        _logits: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = lock(&self.grad).clone().ok_or_else(|| {
            candle_core::Error::Msg(
                "cross_entropy: no stashed gradient (logits were not tracked)".into(),
            )
        })?;
        Ok(Some(scale_by(&grad, grad_res)?))
    }
}

/// Cross-entropy of `logits` `[N, V]` (f32, bf16, f16 or f64) against
/// integer `target` `[N]`, with Liger-Kernel's options (module docs for the
/// equations). The gradient is computed in the forward pass and the
/// backward only scales it by `grad_output`.
///
/// The loss is f32 (f64 for f64 logits), a scalar or `[N]` for
/// `Reduction::None`; the logits' gradient has the logits' dtype.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, opts: &CeOptions) -> Result<CeOutput> {
    Ok(ce_impl(logits, target, opts, false, false)?.0)
}

/// [`cross_entropy`] (or, with `in_place`, [`cross_entropy_in_place`]) in
/// functional form, for loops outside candle's autograd: the loss and
/// `∂loss/∂logits` for `grad_output = 1` (for `Reduction::None`, the
/// gradient of the sum of the per-row losses), from the one forward pass.
pub fn cross_entropy_with_grad(
    logits: &Tensor,
    target: &Tensor,
    opts: &CeOptions,
    in_place: bool,
) -> Result<(CeOutput, Tensor)> {
    let (out, grad) = ce_impl(logits, target, opts, in_place, true)?;
    let g = grad.ok_or_else(|| Error::invalid("cross_entropy: no gradient"))?;
    Ok((out, g))
}

/// [`cross_entropy`] that, on a CUDA device, writes the gradient over the
/// logits' own storage (Liger-Kernel's in-place trick), so that the peak
/// memory of forward+backward is the logits alone. The logits' values are
/// gone after the call: use it when nothing else reads them (the usual
/// `loss.backward()` right after a forward). On the CPU it is
/// [`cross_entropy`].
pub fn cross_entropy_in_place(
    logits: &Tensor,
    target: &Tensor,
    opts: &CeOptions,
) -> Result<CeOutput> {
    Ok(ce_impl(logits, target, opts, true, false)?.0)
}

/// The shared body; with `explicit`, the gradient is always computed and
/// returned rather than left to candle's autograd.
fn ce_impl(
    logits: &Tensor,
    target: &Tensor,
    opts: &CeOptions,
    in_place: bool,
    explicit: bool,
) -> Result<(CeOutput, Option<Tensor>)> {
    const OP: &str = "cross_entropy";
    check_float(OP, "logits", logits.dtype())?;
    let (n, v) = match *logits.dims() {
        [n, v] if v > 0 => (n, v),
        _ => {
            return Err(Error::invalid(format!(
                "{OP}: logits have shape {:?}; expected [N, V] with V ≥ 1",
                logits.dims()
            )))
        }
    };
    crate::ensure_cpu(OP, logits)?;
    let logits = &crate::device_layout(logits)?;
    let spec = CeSpec::new(OP, target, n, v, opts)?;
    let z_slot = Arc::new(Mutex::new(None));
    let grad_slot = Arc::new(Mutex::new(None));
    let in_place = in_place && !logits.device().is_cpu();
    let want_grad = explicit || logits.track_op();
    let op = CeOp {
        spec,
        want_grad,
        in_place,
        grad: grad_slot.clone(),
        z_loss: z_slot.clone(),
    };
    let loss = logits.apply_op1(op)?;
    if in_place && want_grad {
        // The logits' storage now holds the gradient.
        *lock(&grad_slot) = Some(logits.detach());
    }
    let z_loss = lock(&z_slot).take();
    let grad = if explicit {
        lock(&grad_slot).clone()
    } else {
        None
    };
    Ok((
        CeOutput {
            loss,
            z_loss: if opts.lse_square_scale != 0.0 {
                z_loss
            } else {
                None
            },
        },
        grad,
    ))
}

/// The same loss composed of plain candle ops, differentiated by candle's
/// autograd: softcap via `tanh`, log-softmax via max/exp/sum/log, `gather`,
/// masks, label smoothing, z-loss, class weights and the reductions.
/// Computes in the logits' dtype.
pub mod reference {
    use super::{CeOptions, CeOutput, Reduction};
    use candle_core::{DType, Result, Tensor};

    /// Cross-entropy of `logits` `[N, V]` against `target` `[N]`.
    pub fn cross_entropy(logits: &Tensor, target: &Tensor, opts: &CeOptions) -> Result<CeOutput> {
        let (n, v) = logits.dims2()?;
        let dt = logits.dtype();
        let dev = logits.device();
        let z = match opts.softcap {
            Some(s) => ((logits / s)?.tanh()? * s)?,
            None => logits.clone(),
        };
        // lse = m + log Σ exp(z − m); the max is a constant shift.
        let m = z.max_keepdim(1)?.detach();
        let zm = z.broadcast_sub(&m)?;
        let log_sum = zm.exp()?.sum_keepdim(1)?.log()?;
        let logp = zm.broadcast_sub(&log_sum)?; // [N, V]
        let lse = (m + log_sum)?.squeeze(1)?; // [N]

        let raw = target.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        let valid: Vec<bool> = raw.iter().map(|&t| t != opts.ignore_index).collect();
        let safe: Vec<u32> = raw
            .iter()
            .zip(&valid)
            .map(|(&t, &ok)| if ok { t as u32 } else { 0 })
            .collect();
        let mask_v: Vec<f64> = valid.iter().map(|&ok| if ok { 1.0 } else { 0.0 }).collect();
        let mask = Tensor::new(mask_v.as_slice(), dev)?.to_dtype(dt)?;
        let idx = Tensor::new(safe.as_slice(), dev)?;
        let logp_y = logp.gather(&idx.unsqueeze(1)?, 1)?.squeeze(1)?;

        let weights = match &opts.class_weights {
            Some(w) => Some(w.to_dtype(dt)?),
            None => None,
        };
        let w_y = match &weights {
            Some(w) => w.index_select(&idx, 0)?,
            None => Tensor::ones(n, dt, dev)?,
        };
        let ls = opts.label_smoothing;
        let mut ce = (logp_y.neg()? * &w_y)?.affine(1.0 - ls, 0.0)?;
        if ls > 0.0 {
            // ε Σ_j w_j (lse − z_j) = −ε Σ_j w_j log p_j.
            let wl = match &weights {
                Some(w) => logp.broadcast_mul(&w.unsqueeze(0)?)?,
                None => logp.clone(),
            };
            ce = (ce + wl.sum(1)?.affine(-ls / v as f64, 0.0)?)?;
        }
        let ce = (ce * &mask)?;
        let zl = (lse.sqr()? * opts.lse_square_scale)?.mul(&mask)?;

        let n_valid: f64 = mask_v.iter().sum();
        let w_valid: f64 = match &opts.class_weights {
            Some(w) => {
                let w = w.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                safe.iter()
                    .zip(&valid)
                    .filter(|(_, &ok)| ok)
                    .map(|(&y, _)| w[y as usize])
                    .sum()
            }
            None => n_valid,
        };
        let inv = |d: f64| if d == 0.0 { 0.0 } else { 1.0 / d };
        let (loss, z_loss) = match opts.reduction {
            Reduction::None => ((&ce + &zl)?, zl),
            Reduction::Sum => ((ce.sum_all()? + zl.sum_all()?)?, zl.sum_all()?),
            Reduction::Mean => {
                let zl = (zl.sum_all()? * inv(n_valid))?;
                (((ce.sum_all()? * inv(w_valid))? + &zl)?, zl)
            }
        };
        Ok(CeOutput {
            loss,
            z_loss: if opts.lse_square_scale != 0.0 {
                Some(z_loss.detach())
            } else {
                None
            },
        })
    }
}
