//! Causal softmax of attention scores with a fused backward.
//!
//! Scaled dot-product attention (Vaswani et al., 2017, eq. 1) takes
//! `P = softmax(scale·S + M)` over the keys, with `M` the causal mask. Built
//! from candle ops this keeps five score-sized tensors per layer alive for
//! the backward (scaled, masked, shifted, exponentiated, normalized); this op
//! keeps its output only. With `past` cached positions, query `i` of `Tq`
//! sees keys `0..=past + i` (capped at `Tk`):
//!
//! - forward: `P_ij = exp(scale·S_ij − m_i) / Σ_{j' ≤ past+i} exp(scale·S_ij' − m_i)`
//!   for `j ≤ past + i`, else 0 (`m_i` the row's largest allowed score);
//! - backward (the softmax Jacobian, masked entries have `P = 0`):
//!   `dS_ij = scale · P_ij · (dP_ij − Σ_j' P_ij' dP_ij')`.
//!
//! Arithmetic is in f32 (f64 for f64 inputs); the output has the input's
//! dtype. CPU only: on a GPU use the reference composition.

use crate::cpu::{self, check_float, read, rows_per_task, with_slice};
use crate::cross_entropy::KernelFloat;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
struct CausalSoftmax {
    scale: f64,
    past: usize,
    /// Queries per attention row block (`Tq`): row `r` is query `r % tq`.
    tq: usize,
}

impl CausalSoftmax {
    /// Keys that query row `r` may see.
    #[inline]
    fn allowed(&self, r: usize, tk: usize) -> usize {
        (self.past + r % self.tq + 1).min(tk)
    }

    fn forward<R: KernelFloat>(&self, s: &[R], tk: usize) -> Vec<R> {
        let mut p = vec![R::zero(); s.len()];
        let scale = R::lit(self.scale);
        let task = rows_per_task(tk);
        p.par_chunks_mut(task * tk)
            .zip(s.par_chunks(task * tk))
            .enumerate()
            .for_each(|(ti, (pb, sb))| {
                for (k, (pr, sr)) in pb.chunks_exact_mut(tk).zip(sb.chunks_exact(tk)).enumerate() {
                    let n = self.allowed(ti * task + k, tk);
                    let (pr, sr) = (&mut pr[..n], &sr[..n]);
                    let mut m = R::neg_infinity();
                    for &v in sr {
                        let v = v * scale;
                        m = if v > m { v } else { m };
                    }
                    let mut z = R::zero();
                    for (o, &v) in pr.iter_mut().zip(sr) {
                        let e = (v * scale - m).fast_exp();
                        *o = e;
                        z += e;
                    }
                    let inv = R::one() / z;
                    for o in pr.iter_mut() {
                        *o *= inv;
                    }
                }
            });
        p
    }

    fn backward<R: KernelFloat>(&self, p: &[R], dp: &[R], tk: usize) -> Vec<R> {
        let mut ds = vec![R::zero(); p.len()];
        let scale = R::lit(self.scale);
        let task = rows_per_task(tk);
        ds.par_chunks_mut(task * tk)
            .zip(p.par_chunks(task * tk).zip(dp.par_chunks(task * tk)))
            .enumerate()
            .for_each(|(ti, (db, (pb, gb)))| {
                for (k, ((dr, pr), gr)) in db
                    .chunks_exact_mut(tk)
                    .zip(pb.chunks_exact(tk))
                    .zip(gb.chunks_exact(tk))
                    .enumerate()
                {
                    let n = self.allowed(ti * task + k, tk);
                    let dot = cpu::dot(&pr[..n], &gr[..n]);
                    for j in 0..n {
                        dr[j] = scale * pr[j] * (gr[j] - dot);
                    }
                }
            });
        ds
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal_softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s.dtype();
        let tk = l.dims().last().copied().unwrap_or(1);
        crate::dispatch_real!(dt, R => {
            let v = read::<R>(s, l)?;
            Ok((cpu::write(self.forward::<R>(&v, tk), dt)?, l.shape().clone()))
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dt = arg.dtype();
        let tk = arg.dims().last().copied().unwrap_or(1);
        crate::dispatch_real!(dt, R => {
            let ds = with_slice::<R, _>(res, |p| {
                with_slice::<R, _>(grad_res, |g| Ok(self.backward::<R>(p, g, tk)))
            })?;
            Ok(Some(cpu::tensor_from(ds, arg.shape(), dt)?))
        })
    }
}

/// `softmax(scale·scores + causal mask)` over the last dimension of
/// `scores` `[.., Tq, Tk]`, where query `i` sees keys `0..=past + i`, with a
/// fused backward (module docs). `Tk` is usually `past + Tq`.
pub fn causal_softmax(scores: &Tensor, scale: f64, past: usize) -> Result<Tensor> {
    const OP: &str = "causal_softmax";
    check_float(OP, "scores", scores.dtype())?;
    let d = scores.dims();
    if d.len() < 2 || d[d.len() - 1] == 0 || d[d.len() - 2] == 0 {
        return Err(Error::invalid(format!(
            "{OP}: scores have shape {d:?}; expected [.., Tq, Tk] with Tq, Tk ≥ 1"
        )));
    }
    if !scale.is_finite() {
        return Err(Error::invalid(format!(
            "{OP}: scale is {scale}; expected a finite number"
        )));
    }
    crate::ensure_cpu_only(OP, scores)?;
    let tq = d[d.len() - 2];
    Ok(scores.apply_op1(CausalSoftmax { scale, past, tq })?)
}

/// The same from plain candle ops: scale, an additive `-inf` causal mask,
/// then max-shifted exp and normalization (candle's autograd).
pub mod reference {
    use candle_core::{DType, Result, Tensor, D};

    pub fn causal_softmax(scores: &Tensor, scale: f64, past: usize) -> Result<Tensor> {
        let d = scores.dims();
        let (tq, tk) = (d[d.len() - 2], d[d.len() - 1]);
        let m: Vec<f32> = (0..tq)
            .flat_map(|i| {
                (0..tk).map(move |j| {
                    if j <= past + i {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let cdt = if scores.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let mask = Tensor::from_vec(m, (tq, tk), scores.device())?.to_dtype(cdt)?;
        let s = (scores.to_dtype(cdt)? * scale)?.broadcast_add(&mask)?;
        let max = s.max_keepdim(D::Minus1)?.detach();
        let e = s.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?
            .to_dtype(scores.dtype())
    }
}
