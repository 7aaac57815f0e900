//! LayerNorm over the last dimension, `y = x̂·w + b` with
//! `x̂ = (x − mean)·rstd` and `rstd = 1/sqrt(var + eps)` (biased variance).
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989, §3.2; `ops/layer_norm.py`):
//! with `g = w⊙dy` and `N` the row length,
//! - `dx = (g − (x̂·c1 + c2))·rstd`, `c1 = mean(x̂⊙g)`, `c2 = mean(g)`;
//! - `dw = Σ_rows dy⊙x̂`, `db = Σ_rows dy`.
//!
//! Liger stores the mean and `rstd` per row; here the backward recomputes
//! them (the row is read anyway and fits in cache). All arithmetic is in f32
//! (f64 for f64 inputs), including the mean and variance, and the output is
//! rounded once to the input dtype. `dw` and `db` are summed into one f32
//! partial per rayon block of rows, then reduced.

use crate::cpu::{self, check_float};
use crate::cpu::{dot, read, rows_per_block, rows_per_task, sum, sum_partials, with_slice};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
struct LayerNormOp {
    eps: f64,
}

impl LayerNormOp {
    /// Row mean and `rstd` (two passes: the mean, then the centred squares).
    #[inline]
    fn stats<R: Real>(&self, x: &[R]) -> (R, R) {
        let n = R::lit(x.len() as f64);
        let mean = sum(x) / n;
        let mut acc = [R::zero(); 8];
        let cx = x.chunks_exact(8);
        let mut tail = R::zero();
        for v in cx.remainder() {
            let d = *v - mean;
            tail += d * d;
        }
        for c in cx {
            for j in 0..8 {
                let d = c[j] - mean;
                acc[j] += d * d;
            }
        }
        let var = (acc.iter().copied().sum::<R>() + tail) / n;
        (mean, R::one() / (var + R::lit(self.eps)).sqrt())
    }

    fn forward<R: Real>(&self, x: &[R], w: &[R], b: &[R]) -> Vec<R> {
        let n = w.len();
        let mut y = vec![R::zero(); x.len()];
        let task = rows_per_task(n) * n;
        y.par_chunks_mut(task)
            .zip(x.par_chunks(task))
            .for_each(|(yb, xb)| {
                for (yr, xr) in yb.chunks_exact_mut(n).zip(xb.chunks_exact(n)) {
                    let (mean, rstd) = self.stats(xr);
                    for i in 0..n {
                        yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
                    }
                }
            });
        y
    }

    fn backward<R: Real>(&self, x: &[R], w: &[R], dy: &[R]) -> (Vec<R>, Vec<R>, Vec<R>) {
        let n = w.len();
        let rows = x.len() / n;
        let mut dx = vec![R::zero(); x.len()];
        let block = rows_per_block(rows) * n;
        let inv_n = R::one() / R::lit(n as f64);
        let parts: Vec<(Vec<R>, Vec<R>)> = dx
            .par_chunks_mut(block)
            .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
            .map(|(dxb, (xb, dyb))| {
                let mut dw = vec![R::zero(); n];
                let mut db = vec![R::zero(); n];
                let mut xh = vec![R::zero(); n];
                let mut g = vec![R::zero(); n];
                for ((dxr, xr), dyr) in dxb
                    .chunks_exact_mut(n)
                    .zip(xb.chunks_exact(n))
                    .zip(dyb.chunks_exact(n))
                {
                    let (mean, rstd) = self.stats(xr);
                    for i in 0..n {
                        xh[i] = (xr[i] - mean) * rstd;
                        g[i] = w[i] * dyr[i];
                    }
                    let c1 = dot(&xh, &g) * inv_n;
                    let c2 = sum(&g) * inv_n;
                    for i in 0..n {
                        dxr[i] = (g[i] - (xh[i] * c1 + c2)) * rstd;
                        dw[i] += dyr[i] * xh[i];
                        db[i] += dyr[i];
                    }
                }
                (dw, db)
            })
            .collect();
        let (dws, dbs): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        (dx, sum_partials(dws, n), sum_partials(dbs, n))
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::norm::ln_fwd(s1, l1, s2, l2, s3, l3, self.eps)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s1.dtype();
        crate::dispatch_real!(dt, R => {
            let x = read::<R>(s1, l1)?;
            let w = read::<R>(s2, l2)?;
            let b = read::<R>(s3, l3)?;
            Ok((cpu::write(self.forward(&x, &w, &b), dt)?, l1.shape().clone()))
        })
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let (dx, dw, db) = crate::cuda::norm::ln_bwd(x, w, dy, self.eps)?;
            return Ok((Some(dx), Some(dw), Some(db)));
        }
        let dt = x.dtype();
        crate::dispatch_real!(dt, R => {
            let (dx, dw, db) = with_slice::<R, _>(x, |xv| {
                with_slice::<R, _>(w, |wv| with_slice::<R, _>(dy, |dyv| Ok(self.backward(xv, wv, dyv))))
            })?;
            Ok((
                Some(cpu::tensor_from(dx, x.shape(), dt)?),
                Some(cpu::tensor_from(dw, w.shape(), dt)?),
                Some(cpu::tensor_from(db, b.shape(), dt)?),
            ))
        })
    }
}

/// LayerNorm of `x` over its last dimension `N`, with weight `w` and bias
/// `b` of shape `[N]` and the dtype of `x`, and a fused backward for all
/// three.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    check("layer_norm", x, &[("w", w), ("b", b)], eps)?;
    let (x, w, b) = (
        crate::device_layout(x)?,
        crate::device_layout(w)?,
        crate::device_layout(b)?,
    );
    Ok(x.apply_op3(&w, &b, LayerNormOp { eps })?)
}

/// The checks shared by the forward and the functional backward: a float
/// `x` with a non-empty last dimension `N`, parameters of shape `[N]` and
/// the dtype of `x`, a finite `eps ≥ 0`, all on a supported device.
fn check(op: &str, x: &Tensor, params: &[(&str, &Tensor)], eps: f64) -> Result<()> {
    check_float(op, "x", x.dtype())?;
    let n = match x.dims().last() {
        Some(&n) if n > 0 => n,
        _ => {
            return Err(Error::invalid(format!(
                "{op}: x has shape {:?}; expected at least one dimension with a non-empty last dimension",
                x.dims()
            )))
        }
    };
    for (name, t) in params {
        if t.dims() != [n] || t.dtype() != x.dtype() {
            return Err(Error::invalid(format!(
                "{op}: {name} is {:?} {:?} but x is {:?} {:?}; {name} must have shape [{n}] (the last dimension of x) and the same dtype",
                t.dims(),
                t.dtype(),
                x.dims(),
                x.dtype()
            )));
        }
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid(format!(
            "{op}: eps is {eps}; it must be finite and non-negative"
        )));
    }
    crate::ensure_cpu(op, x)?;
    for (_, t) in params {
        crate::ensure_cpu(op, t)?;
    }
    Ok(())
}

/// The fused backward of [`layer_norm`] on its own, for loops outside
/// candle's autograd: `(dx, dw, db)` for the upstream gradient `dy` (same
/// shape and dtype as `x`).
pub fn layer_norm_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    check("layer_norm_backward", x, &[("w", w)], eps)?;
    crate::ensure_like("layer_norm_backward", "dy", dy, "x", x)?;
    let (x, w, dy) = (
        crate::device_layout(x)?,
        crate::device_layout(w)?,
        crate::device_layout(dy)?,
    );
    // `db` has the shape and dtype of `b`, which are those of `w`.
    match CustomOp3::bwd(&LayerNormOp { eps }, &x, &w, &w, &dy, &dy)? {
        (Some(dx), Some(dw), Some(db)) => Ok((dx, dw, db)),
        _ => Err(Error::invalid("layer_norm_backward: no gradient")),
    }
}

/// LayerNorm composed of plain candle ops (autograd through candle),
/// computed in f32 (f64 for f64 inputs) and cast back to the input dtype.
pub mod reference {
    use candle_core::{DType, Result, Tensor, D};

    pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
        let dt = x.dtype();
        let cdt = if dt == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let xf = x.to_dtype(cdt)?;
        let mean = xf.mean_keepdim(D::Minus1)?;
        let xc = xf.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + eps)?.sqrt()?.recip()?;
        let xh = xc.broadcast_mul(&rstd)?;
        xh.broadcast_mul(&w.to_dtype(cdt)?)?
            .broadcast_add(&b.to_dtype(cdt)?)?
            .to_dtype(dt)
    }
}
