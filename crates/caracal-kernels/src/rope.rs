//! Rotary position embedding (RoPE), Hugging Face's rotate-half form.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989, §3.2; `ops/rope.py`): for a
//! head vector `x = [x1, x2]` (halves of `D/2`) and the rows `c = [c1, c2]`,
//! `s = [s1, s2]` of `cos`/`sin` at its position,
//! - forward: `y = x⊙c + rotate_half(x)⊙s = [x1⊙c1 − x2⊙s1, x2⊙c2 + x1⊙s2]`;
//! - backward (the transpose, i.e. the same rotation with `−sin`):
//!   `dx = [dy1⊙c1 + dy2⊙s2, dy2⊙c2 − dy1⊙s1]`.
//!
//! Hugging Face duplicates the halves (`c1 = c2`, `s1 = s2`), where this is
//! exactly Liger's backward; the form above is the exact gradient for any
//! `cos`/`sin`. `q` and `k` go through one op each (a custom op has one
//! output); `cos` and `sin` are op inputs without gradients. Arithmetic is in
//! f32 (f64 for f64 inputs), the output is rounded once to the input dtype.

use crate::cpu::{self, check_float};
use crate::cpu::{read, rows_per_task, with_slice};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;

/// Sizes of one application: `x` is `[b, h, t, d]`; `cos`/`sin` are `[t, d]`
/// (`batched == false`, or a leading batch of 1) or `[b, t, d]`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    h: usize,
    t: usize,
    d: usize,
    batched: bool,
}

impl Dims {
    fn of(x: &[usize], cos: &[usize]) -> Self {
        Dims {
            h: x[1],
            t: x[2],
            d: x[3],
            batched: cos.len() == 3 && cos[0] > 1,
        }
    }
}

/// Rotate every row of `x` (`INV`: the transpose, for the backward).
fn rotate<R: Real, const INV: bool>(x: &[R], cos: &[R], sin: &[R], dm: Dims) -> Vec<R> {
    let Dims { h, t, d, batched } = dm;
    let half = d / 2;
    let mut y = vec![R::zero(); x.len()];
    let task = rows_per_task(d) * d;
    y.par_chunks_mut(task)
        .zip(x.par_chunks(task))
        .enumerate()
        .for_each(|(ti, (yb, xb))| {
            let row0 = ti * (task / d);
            for (k, (yr, xr)) in yb.chunks_exact_mut(d).zip(xb.chunks_exact(d)).enumerate() {
                let r = row0 + k;
                let (bh, tt) = (r / t, r % t);
                let crow = if batched { (bh / h) * t + tt } else { tt } * d;
                let (c1, c2) = cos[crow..crow + d].split_at(half);
                let (s1, s2) = sin[crow..crow + d].split_at(half);
                let (x1, x2) = xr.split_at(half);
                let (y1, y2) = yr.split_at_mut(half);
                if INV {
                    for i in 0..half {
                        y1[i] = x1[i] * c1[i] + x2[i] * s2[i];
                        y2[i] = x2[i] * c2[i] - x1[i] * s1[i];
                    }
                } else {
                    for i in 0..half {
                        y1[i] = x1[i] * c1[i] - x2[i] * s1[i];
                        y2[i] = x2[i] * c2[i] + x1[i] * s2[i];
                    }
                }
            }
        });
    y
}

struct RopeOp;

impl CustomOp3 for RopeOp {
    fn name(&self) -> &'static str {
        "rope"
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
        crate::cuda::rope::fwd(s1, l1, s2, l2, s3, l3)
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
        let dm = Dims::of(l1.dims(), l2.dims());
        crate::dispatch_real!(dt, R => {
            let x = read::<R>(s1, l1)?;
            let cos = read::<R>(s2, l2)?;
            let sin = read::<R>(s3, l3)?;
            Ok((cpu::write(rotate::<R, false>(&x, &cos, &sin, dm), dt)?, l1.shape().clone()))
        })
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            return Ok((Some(crate::cuda::rope::bwd(x, cos, sin, dy)?), None, None));
        }
        let dt = x.dtype();
        let dm = Dims::of(x.dims(), cos.dims());
        crate::dispatch_real!(dt, R => {
            let dx = with_slice::<R, _>(dy, |g| {
                with_slice::<R, _>(cos, |c| with_slice::<R, _>(sin, |s| Ok(rotate::<R, true>(g, c, s, dm))))
            })?;
            Ok((Some(cpu::tensor_from(dx, x.shape(), dt)?), None, None))
        })
    }
}

fn check_rope(q: &Tensor, k: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<()> {
    const OP: &str = "rope";
    check_float(OP, "q", q.dtype())?;
    check_float(OP, "cos", cos.dtype())?;
    check_float(OP, "sin", sin.dtype())?;
    let (qd, kd) = (q.dims(), k.dims());
    if qd.len() != 4 || kd.len() != 4 {
        return Err(Error::invalid(format!(
            "{OP}: q is {qd:?} and k is {kd:?}; both must be [batch, heads, seq, head_dim]"
        )));
    }
    if qd[0] != kd[0] || qd[2] != kd[2] || qd[3] != kd[3] || q.dtype() != k.dtype() {
        return Err(Error::invalid(format!(
            "{OP}: q is {qd:?} {:?} but k is {kd:?} {:?}; they must share batch, seq, head_dim and dtype",
            q.dtype(),
            k.dtype()
        )));
    }
    let (b, t, d) = (qd[0], qd[2], qd[3]);
    if d == 0 || d % 2 != 0 {
        return Err(Error::invalid(format!(
            "{OP}: the head dim is {d}; rotate-half RoPE needs an even, non-zero head dim"
        )));
    }
    let cd = cos.dims();
    let fits = match cd {
        [ct, cdd] => *ct == t && *cdd == d,
        [cb, ct, cdd] => (*cb == b || *cb == 1) && *ct == t && *cdd == d,
        _ => false,
    };
    if !fits || sin.dims() != cd {
        return Err(Error::invalid(format!(
            "{OP}: cos is {cd:?} and sin is {:?}; both must be [{t}, {d}] or [{b}, {t}, {d}] ([seq, head_dim] or [batch, seq, head_dim])",
            sin.dims()
        )));
    }
    for x in [q, k, cos, sin] {
        crate::ensure_cpu(OP, x)?;
    }
    Ok(())
}

/// On a GPU, `cos`/`sin` go contiguous and in the compute dtype (the CPU
/// kernel reads them at that precision too).
fn device_tables(dt: candle_core::DType, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor)> {
    if cos.device().is_cpu() {
        return Ok((cos.clone(), sin.clone()));
    }
    let cdt = if dt == candle_core::DType::F64 {
        candle_core::DType::F64
    } else {
        candle_core::DType::F32
    };
    Ok((
        cos.detach().to_dtype(cdt)?.contiguous()?,
        sin.detach().to_dtype(cdt)?.contiguous()?,
    ))
}

/// The fused backward of [`rope`] on its own, for loops outside candle's
/// autograd: the gradients of `q` and `k` from the upstream gradients `dq`
/// and `dk` (shaped like `q` and `k`).
pub fn rope_backward(
    dq: &Tensor,
    dk: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<(Tensor, Tensor)> {
    check_rope(dq, dk, cos, sin)?;
    let (cos, sin) = device_tables(dq.dtype(), cos, sin)?;
    let (dq, dk) = (crate::device_layout(dq)?, crate::device_layout(dk)?);
    let grad = |g: &Tensor| -> Result<Tensor> {
        match CustomOp3::bwd(&RopeOp, g, &cos, &sin, g, g)? {
            (Some(d), _, _) => Ok(d),
            _ => Err(Error::invalid("rope_backward: no gradient")),
        }
    };
    Ok((grad(&dq)?, grad(&dk)?))
}

/// Hugging Face's rotate-half RoPE applied to `q` `[B, Hq, T, D]` and `k`
/// `[B, Hk, T, D]` (`Hq` and `Hk` may differ, as in GQA; `D` even) with
/// `cos`/`sin` of shape `[T, D]` or `[B, T, D]` (a leading 1 broadcasts),
/// each with a fused backward for `q` and `k` (`cos`/`sin` get no gradient).
/// `q` and `k` share a dtype; `cos`/`sin` may have any float dtype.
pub fn rope(q: &Tensor, k: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor)> {
    check_rope(q, k, cos, sin)?;
    if q.device().is_cpu() {
        return Ok((
            q.apply_op3(cos, sin, RopeOp)?,
            k.apply_op3(cos, sin, RopeOp)?,
        ));
    }
    let (cos, sin) = device_tables(q.dtype(), cos, sin)?;
    let (q, k) = (crate::device_layout(q)?, crate::device_layout(k)?);
    Ok((
        q.apply_op3(&cos, &sin, RopeOp)?,
        k.apply_op3(&cos, &sin, RopeOp)?,
    ))
}

/// RoPE composed of plain candle ops (autograd through candle), in f32 (f64
/// for f64 inputs) and cast back to the input dtype.
pub mod reference {
    use candle_core::{DType, Result, Tensor, D};

    fn rotate_half(x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
    }

    fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let cdt = if dt == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let xf = x.to_dtype(cdt)?;
        // [T, D] -> [1, 1, T, D]; [B, T, D] -> [B, 1, T, D].
        let shape = |c: &Tensor| -> Result<Tensor> {
            let c = c.to_dtype(cdt)?;
            if c.rank() == 2 {
                c.unsqueeze(0)?.unsqueeze(0)
            } else {
                c.unsqueeze(1)
            }
        };
        let y = xf.broadcast_mul(&shape(cos)?)? + rotate_half(&xf)?.broadcast_mul(&shape(sin)?)?;
        y?.to_dtype(dt)
    }

    /// `(q·cos + rotate_half(q)·sin, k·cos + rotate_half(k)·sin)`.
    pub fn rope(q: &Tensor, k: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((apply(q, cos, sin)?, apply(k, cos, sin)?))
    }
}
