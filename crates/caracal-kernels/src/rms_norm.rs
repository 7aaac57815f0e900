//! RMSNorm over the last dimension, `y = x·rstd·(offset + w)`.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989, §3.2; `ops/rms_norm.py`):
//! - Forward: `rstd = 1/sqrt(mean(x²) + eps)` per row, `y = x·rstd·(offset + w)`.
//! - Backward, with `m = dy⊙(w + offset)` and `N` the row length:
//!   `dx = rstd·m − (rstd³/N)·(m·x)·x` and `dw = Σ_rows dy⊙(x·rstd)`.
//!
//! Liger caches `rstd`; here the backward recomputes it in the same pass
//! that forms `m·x` (a row fits in cache, so this costs one multiply-add per
//! element and saves storing state in the op). `dw` is summed in f32 (f64 for
//! f64 inputs) into one partial per rayon block of rows, then reduced.
//!
//! All arithmetic is in f32 (f64 for f64 inputs). The casting modes only
//! change where intermediates are rounded to the input dtype, which matters
//! for bf16/f16 only (for f32 and f64 inputs the three modes coincide):
//! - [`CastingMode::Llama`]: `rstd` in f32; `x·rstd` and `offset + w` are
//!   rounded to the input dtype before the product (as Hugging Face's
//!   `LlamaRMSNorm` does). In the backward `m = dy⊙(w + offset)` is rounded
//!   to the input dtype, and `dw` sums `dy⊙round(x·rstd)`.
//! - [`CastingMode::Gemma`]: everything in f32, rounded once at the output.
//! - [`CastingMode::None`]: Liger computes in the input dtype. We emulate it
//!   as Llama plus `rstd` rounded to the input dtype; the sum of squares is
//!   still accumulated in f32 (an input-dtype running sum would only add
//!   order-dependent error).
//!
//! Products of two bf16 (or f16) values are exact in f32, so rounding the f32
//! product reproduces the input-dtype product exactly.

use crate::cpu::{
    self, check_float, dot, read, rows_per_block, rows_per_task, sum_partials, with_slice,
};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;

/// Where intermediates are rounded to the input dtype (Liger's
/// `casting_mode`); see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastingMode {
    /// `rstd` in f32, `x·rstd` cast back to the input dtype before `×w`.
    Llama,
    /// Everything in f32 (Gemma uses `offset = 1`).
    Gemma,
    /// Compute in the input dtype (emulated by rounding intermediates).
    None,
}

// ---------------------------------------------------------------------------
// Rounding to the input dtype, as a const generic so the exact path has no
// per-element branch.

const EXACT: u8 = 0;
const BF16: u8 = 1;
const F16: u8 = 2;

fn rounding_of(dt: DType) -> u8 {
    match dt {
        DType::BF16 => BF16,
        DType::F16 => F16,
        _ => EXACT,
    }
}

#[inline(always)]
fn rnd<R: Real, const Q: u8>(v: R) -> R {
    match Q {
        BF16 => R::lit(half::bf16::from_f64(v.as_f64()).to_f64()),
        F16 => R::lit(half::f16::from_f64(v.as_f64()).to_f64()),
        _ => v,
    }
}

/// The settings one application of the op runs with.
#[derive(Clone, Copy, Debug)]
struct RmsNormOp {
    eps: f64,
    offset: f64,
    mode: CastingMode,
}

impl RmsNormOp {
    /// Row `rstd`, rounded in mode `None`.
    #[inline]
    fn rstd<R: Real, const Q: u8>(&self, x: &[R]) -> R {
        let n = R::lit(x.len() as f64);
        let r = R::one() / (dot(x, x) / n + R::lit(self.eps)).sqrt();
        if self.mode == CastingMode::None {
            rnd::<R, Q>(r)
        } else {
            r
        }
    }

    /// `offset + w`, rounded to the input dtype unless in Gemma mode.
    fn w_plus_offset<R: Real, const Q: u8>(&self, w: &[R]) -> Vec<R> {
        let o = R::lit(self.offset);
        if self.mode == CastingMode::Gemma {
            w.iter().map(|&v| v + o).collect()
        } else {
            w.iter().map(|&v| rnd::<R, Q>(v + o)).collect()
        }
    }

    fn forward<R: Real, const Q: u8>(&self, x: &[R], w: &[R]) -> Vec<R> {
        let n = w.len();
        let wo = self.w_plus_offset::<R, Q>(w);
        let mut y = vec![R::zero(); x.len()];
        let task = rows_per_task(n) * n;
        let gemma = self.mode == CastingMode::Gemma;
        y.par_chunks_mut(task)
            .zip(x.par_chunks(task))
            .for_each(|(yb, xb)| {
                for (yr, xr) in yb.chunks_exact_mut(n).zip(xb.chunks_exact(n)) {
                    let rstd = self.rstd::<R, Q>(xr);
                    if gemma || Q == EXACT {
                        for ((o, &xv), &wv) in yr.iter_mut().zip(xr).zip(&wo) {
                            *o = xv * rstd * wv;
                        }
                    } else {
                        for ((o, &xv), &wv) in yr.iter_mut().zip(xr).zip(&wo) {
                            *o = rnd::<R, Q>(xv * rstd) * wv;
                        }
                    }
                }
            });
        y
    }

    fn backward<R: Real, const Q: u8>(&self, x: &[R], w: &[R], dy: &[R]) -> (Vec<R>, Vec<R>) {
        let n = w.len();
        let rows = x.len() / n;
        let wo = self.w_plus_offset::<R, Q>(w);
        let round = self.mode != CastingMode::Gemma && Q != EXACT;
        let mut dx = vec![R::zero(); x.len()];
        let block = rows_per_block(rows) * n;
        let inv_n = R::one() / R::lit(n as f64);
        let parts: Vec<Vec<R>> = dx
            .par_chunks_mut(block)
            .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
            .map(|(dxb, (xb, dyb))| {
                let mut dw = vec![R::zero(); n];
                let mut m = vec![R::zero(); n];
                for ((dxr, xr), dyr) in dxb
                    .chunks_exact_mut(n)
                    .zip(xb.chunks_exact(n))
                    .zip(dyb.chunks_exact(n))
                {
                    let rstd = self.rstd::<R, Q>(xr);
                    if round {
                        for ((mv, &g), &wv) in m.iter_mut().zip(dyr).zip(&wo) {
                            *mv = rnd::<R, Q>(g * wv);
                        }
                    } else {
                        for ((mv, &g), &wv) in m.iter_mut().zip(dyr).zip(&wo) {
                            *mv = g * wv;
                        }
                    }
                    let c = rstd * rstd * rstd * inv_n * dot(&m, xr);
                    if round {
                        for i in 0..n {
                            dxr[i] = rstd * m[i] - c * xr[i];
                            dw[i] += dyr[i] * rnd::<R, Q>(xr[i] * rstd);
                        }
                    } else {
                        for i in 0..n {
                            dxr[i] = rstd * m[i] - c * xr[i];
                            dw[i] += dyr[i] * (xr[i] * rstd);
                        }
                    }
                }
                dw
            })
            .collect();
        (dx, sum_partials(parts, n))
    }
}

/// Call `$body` with the const `$Q` bound to the rounding of dtype `$dt`.
macro_rules! with_rounding {
    ($dt:expr, $Q:ident => $body:expr) => {
        match rounding_of($dt) {
            BF16 => {
                const $Q: u8 = BF16;
                $body
            }
            F16 => {
                const $Q: u8 = F16;
                $body
            }
            _ => {
                const $Q: u8 = EXACT;
                $body
            }
        }
    };
}

impl RmsNormOp {
    /// The casting mode as kernels.cu numbers it.
    #[cfg(feature = "cuda")]
    fn mode_code(&self) -> i32 {
        match self.mode {
            CastingMode::Llama => 0,
            CastingMode::Gemma => 1,
            CastingMode::None => 2,
        }
    }
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "rms_norm"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::norm::rms_fwd(s1, l1, s2, l2, self.eps, self.offset, self.mode_code())
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s1.dtype();
        crate::dispatch_real!(dt, R => {
            let x = read::<R>(s1, l1)?;
            let w = read::<R>(s2, l2)?;
            let y = with_rounding!(dt, Q => self.forward::<R, Q>(&x, &w));
            Ok((cpu::write(y, dt)?, l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let (dx, dw) =
                crate::cuda::norm::rms_bwd(x, w, dy, self.eps, self.offset, self.mode_code())?;
            return Ok((Some(dx), Some(dw)));
        }
        let dt = x.dtype();
        crate::dispatch_real!(dt, R => {
            let (dx, dw) = with_slice::<R, _>(x, |xv| {
                with_slice::<R, _>(w, |wv| {
                    with_slice::<R, _>(dy, |dyv| {
                        Ok(with_rounding!(dt, Q => self.backward::<R, Q>(xv, wv, dyv)))
                    })
                })
            })?;
            Ok((
                Some(cpu::tensor_from(dx, x.shape(), dt)?),
                Some(cpu::tensor_from(dw, w.shape(), w.dtype())?),
            ))
        })
    }
}

/// RMSNorm of `x` over its last dimension `N`, scaled by `offset + w` with
/// `w` of shape `[N]` and the same dtype as `x`, with a fused backward for
/// `x` and `w`. Llama uses `offset = 0` and [`CastingMode::Llama`]; Gemma
/// uses `offset = 1` and [`CastingMode::Gemma`].
pub fn rms_norm(
    x: &Tensor,
    w: &Tensor,
    eps: f64,
    offset: f64,
    mode: CastingMode,
) -> Result<Tensor> {
    const OP: &str = "rms_norm";
    check_float(OP, "x", x.dtype())?;
    let n = match x.dims().last() {
        Some(&n) if n > 0 => n,
        _ => {
            return Err(Error::invalid(format!(
                "{OP}: x has shape {:?}; expected at least one dimension with a non-empty last dimension",
                x.dims()
            )))
        }
    };
    if w.dims() != [n] || w.dtype() != x.dtype() {
        return Err(Error::invalid(format!(
            "{OP}: w is {:?} {:?} but x is {:?} {:?}; w must have shape [{n}] (the last dimension of x) and the same dtype",
            w.dims(),
            w.dtype(),
            x.dims(),
            x.dtype()
        )));
    }
    if !(eps.is_finite() && eps >= 0.0 && offset.is_finite()) {
        return Err(Error::invalid(format!(
            "{OP}: eps is {eps} and offset is {offset}; eps must be finite and non-negative and offset finite"
        )));
    }
    crate::ensure_cpu(OP, x)?;
    crate::ensure_cpu(OP, w)?;
    let (x, w) = (crate::device_layout(x)?, crate::device_layout(w)?);
    Ok(x.apply_op2(&w, RmsNormOp { eps, offset, mode })?)
}

/// The fused backward of [`rms_norm`] on its own, for loops outside
/// candle's autograd: `(dx, dw)` for the upstream gradient `dy` (same shape
/// and dtype as `x`).
pub fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    eps: f64,
    offset: f64,
    mode: CastingMode,
) -> Result<(Tensor, Tensor)> {
    crate::ensure_like("rms_norm_backward", "dy", dy, "x", x)?;
    let (x, w, dy) = (
        crate::device_layout(x)?,
        crate::device_layout(w)?,
        crate::device_layout(dy)?,
    );
    let op = RmsNormOp { eps, offset, mode };
    match CustomOp2::bwd(&op, &x, &w, &dy, &dy)? {
        (Some(dx), Some(dw)) => Ok((dx, dw)),
        _ => Err(Error::invalid("rms_norm_backward: no gradient")),
    }
}

/// RMSNorm composed of plain candle ops (autograd through candle). It
/// computes in f32 (f64 for f64 inputs) and rounds to the input dtype at the
/// same points as the fused op (a cast to the input dtype and back), so the
/// gradients are rounded at those points too.
pub mod reference {
    use super::CastingMode;
    use candle_core::{DType, Result, Tensor, D};

    pub fn rms_norm(
        x: &Tensor,
        w: &Tensor,
        eps: f64,
        offset: f64,
        mode: CastingMode,
    ) -> Result<Tensor> {
        let dt = x.dtype();
        let cdt = if dt == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let round = |t: Tensor| -> Result<Tensor> { t.to_dtype(dt)?.to_dtype(cdt) };
        let xf = x.to_dtype(cdt)?;
        let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let mut rstd = (ms + eps)?.sqrt()?.recip()?;
        if mode == CastingMode::None {
            rstd = round(rstd)?;
        }
        let mut xn = xf.broadcast_mul(&rstd)?;
        let mut wo = (w.to_dtype(cdt)? + offset)?;
        if mode != CastingMode::Gemma {
            xn = round(xn)?;
            wo = round(wo)?;
        }
        xn.broadcast_mul(&wo)?.to_dtype(dt)
    }
}
