//! Kullback–Leibler divergence and total variation distance with fused
//! backward passes.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989; `ops/kl_div.py`,
//! `ops/tvd.py`):
//!
//! - **KL** (PyTorch `KLDivLoss` semantics), with `x` the input
//!   log-probabilities and `y` the target: pointwise
//!   `ℓ = y(log y − x)` (0 where `y = 0`), or `ℓ = eʸ(y − x)` with
//!   `log_target`; `∂ℓ/∂x = −y` or `−eʸ`. PyTorch evaluates
//!   `xlogy(y, y) − y·x`, which is NaN for `y = 0, x = −∞`; we return 0 there
//!   (and likewise 0 for `log_target` when `eʸ = 0`). Liger instead clamps
//!   `log y` at `log 1e-10`, which differs only for `0 < y < 1e-10`.
//! - **TVD**: pointwise `ℓ = ½|p − q|`, `∂ℓ/∂p = ½·sign(p − q)`. At ties
//!   (`p = q`) we use the subgradient 0; Liger's kernel
//!   (`tl.where(p > q, 0.5, -0.5)`) gives −½ there.
//!
//! Reductions (`KlReduction`): `None` keeps the pointwise losses, `Sum` adds
//! them, `Mean` divides the sum by the element count, `Batchmean` by the
//! first dimension (PyTorch; a 0-d input is summed). For TVD, rows whose
//! label is `ignore_index` are dropped (Liger): their loss and gradient are
//! 0, `Batchmean` divides by the number of kept rows `n` and `Mean` by
//! `n·V`. An empty reduction (no elements or no kept rows) gives 0 instead of
//! Liger's/PyTorch's NaN.
//!
//! Only the first argument (`input` for KL, `p` for TVD) gets a gradient,
//! as in Liger. The gradients are elementwise in the target, so the backward
//! pass recomputes them from the saved inputs instead of stashing a second
//! input-sized buffer.

use crate::cpu::{self, check_float};
use crate::jsd::{dims2, ignored, inv_or_zero, kept_rows, read_labels};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;

/// Elements per rayon task.
const GRAIN: usize = 1 << 14;

/// How pointwise losses are reduced (PyTorch's `reduction` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KlReduction {
    /// Keep the pointwise losses (same shape as the input).
    None,
    /// Sum of all pointwise losses.
    Sum,
    /// Sum divided by the number of elements (for TVD: kept rows × V).
    Mean,
    /// Sum divided by the first dimension (for TVD: the kept rows).
    Batchmean,
}

/// TVD uses the same four reductions.
pub type TvdReduction = KlReduction;

fn scalar_shape() -> Shape {
    Shape::from(())
}

/// Read a scalar upstream gradient.
fn scalar_of(g: &Tensor) -> candle_core::Result<f64> {
    g.to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()
        .map(|v| v[0])
}

// ---------------------------------------------------------------- KL

struct KlOp {
    log_target: bool,
    reduction: KlReduction,
}

impl KlOp {
    /// The target's probability `y` or `eʸ`: minus the gradient.
    #[inline]
    fn weight<R: Real>(&self, y: R) -> R {
        if self.log_target {
            y.exp()
        } else {
            y
        }
    }

    #[inline]
    fn pointwise<R: Real>(&self, x: R, y: R) -> R {
        if self.log_target {
            let e = y.exp();
            if e == R::zero() {
                R::zero()
            } else {
                e * (y - x)
            }
        } else if y == R::zero() {
            R::zero()
        } else {
            y * (y.ln() - x)
        }
    }

    /// The factor that turns the sum into the reduced loss.
    fn scale(&self, dims: &[usize]) -> f64 {
        match self.reduction {
            KlReduction::None | KlReduction::Sum => 1.0,
            KlReduction::Mean => inv_or_zero(dims.iter().product()),
            KlReduction::Batchmean => match dims.first() {
                Some(&b) => inv_or_zero(b),
                None => 1.0,
            },
        }
    }
}

impl CustomOp2 for KlOp {
    fn name(&self) -> &'static str {
        "kl_div"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let none = self.reduction == KlReduction::None;
        let out =
            crate::cuda::div::kl_fwd(s1, l1, s2, l2, self.log_target, none, self.scale(l1.dims()))?;
        crate::cuda::ce::storage_of(&out)
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
            let x = cpu::read::<R>(s1, l1)?;
            let y = cpu::read::<R>(s2, l2)?;
            if self.reduction == KlReduction::None {
                let mut out = vec![R::zero(); x.len()];
                out.par_chunks_mut(GRAIN)
                    .zip(x.par_chunks(GRAIN).zip(y.par_chunks(GRAIN)))
                    .for_each(|(o, (x, y))| {
                        for i in 0..o.len() {
                            o[i] = self.pointwise(x[i], y[i]);
                        }
                    });
                return Ok((cpu::write(out, dt)?, l1.shape().clone()));
            }
            let sum: f64 = x
                .par_chunks(GRAIN)
                .zip(y.par_chunks(GRAIN))
                .map(|(x, y)| x.iter().zip(y).map(|(&x, &y)| self.pointwise(x, y).as_f64()).sum::<f64>())
                .sum();
            let loss = sum * self.scale(l1.dims());
            Ok((cpu::write(vec![R::lit(loss)], dt)?, scalar_shape()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let dx = if self.reduction == KlReduction::None {
                crate::cuda::div::kl_bwd(x, y, Some(g), 0.0, self.log_target)?
            } else {
                let s = scalar_of(g)? * self.scale(x.dims());
                crate::cuda::div::kl_bwd(x, y, None, s, self.log_target)?
            };
            return Ok((Some(dx), None));
        }
        let dt = x.dtype();
        crate::dispatch_real!(dt, R => {
            let yv = cpu::tensor_read::<R>(y)?;
            let mut dx = vec![R::zero(); yv.len()];
            if self.reduction == KlReduction::None {
                let gv = cpu::tensor_read::<R>(g)?;
                dx.par_chunks_mut(GRAIN)
                    .zip(yv.par_chunks(GRAIN).zip(gv.par_chunks(GRAIN)))
                    .for_each(|(d, (y, g))| {
                        for i in 0..d.len() {
                            d[i] = -self.weight(y[i]) * g[i];
                        }
                    });
            } else {
                let s = R::lit(scalar_of(g)? * self.scale(x.dims()));
                dx.par_chunks_mut(GRAIN).zip(yv.par_chunks(GRAIN)).for_each(|(d, y)| {
                    for i in 0..d.len() {
                        d[i] = -self.weight(y[i]) * s;
                    }
                });
            }
            Ok((Some(cpu::tensor_from(dx, x.shape(), dt)?), None))
        })
    }
}

/// Check that two divergence arguments fit together.
fn check_pair(op: &str, a_name: &str, a: &Tensor, b_name: &str, b: &Tensor) -> Result<()> {
    check_float(op, a_name, a.dtype())?;
    crate::ensure_like(op, a_name, a, b_name, b)?;
    crate::ensure_cpu(op, a)?;
    crate::ensure_cpu(op, b)
}

/// PyTorch's `kl_div(input, target, reduction, log_target)`: `input` holds
/// log-probabilities `x`, `target` probabilities `y` (log-probabilities when
/// `log_target`); any shape, both the same shape and dtype. Pointwise
/// `y(log y − x)` (0 where `y = 0`) or `eʸ(y − x)`, reduced by `reduction`.
/// Only `input` receives a gradient (`−y` or `−eʸ`, times the reduction's
/// scale).
pub fn kl_div(
    input: &Tensor,
    target: &Tensor,
    log_target: bool,
    reduction: KlReduction,
) -> Result<Tensor> {
    check_pair("kl_div", "input", input, "target", target)?;
    let (input, target) = (crate::device_layout(input)?, crate::device_layout(target)?);
    Ok(input.apply_op2(
        &target,
        KlOp {
            log_target,
            reduction,
        },
    )?)
}

/// The backward of [`kl_div`] on its own, for loops outside candle's
/// autograd: `d loss / d input` for the upstream gradient `dloss` (a scalar
/// for the reducing modes, the shape of `input` for [`KlReduction::None`]).
pub fn kl_div_backward(
    input: &Tensor,
    target: &Tensor,
    log_target: bool,
    reduction: KlReduction,
    dloss: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "kl_div_backward";
    check_pair(OP, "input", input, "target", target)?;
    if reduction == KlReduction::None {
        crate::ensure_like(OP, "dloss", dloss, "input", input)?;
    } else if dloss.elem_count() != 1 {
        return Err(Error::invalid(format!(
            "{OP}: dloss has shape {:?}; a reducing kl_div takes a scalar upstream gradient",
            dloss.dims()
        )));
    }
    let (input, target, dloss) = (
        crate::device_layout(input)?,
        crate::device_layout(target)?,
        crate::device_layout(dloss)?,
    );
    let op = KlOp {
        log_target,
        reduction,
    };
    match CustomOp2::bwd(&op, &input, &target, &dloss, &dloss)? {
        (Some(dx), _) => Ok(dx),
        _ => Err(Error::invalid("kl_div_backward: no gradient")),
    }
}

// ---------------------------------------------------------------- TVD

struct TvdOp {
    reduction: KlReduction,
    ignore_index: i64,
    labels: Option<Vec<i64>>,
}

impl TvdOp {
    /// The factor that turns the sum into the reduced loss.
    fn scale(&self, rows: usize, vocab: usize) -> f64 {
        let n = kept_rows(self.labels.as_deref(), self.ignore_index, rows);
        match self.reduction {
            KlReduction::None | KlReduction::Sum => 1.0,
            KlReduction::Mean => inv_or_zero(n * vocab),
            KlReduction::Batchmean => inv_or_zero(n),
        }
    }

    fn skip(&self, r: usize) -> bool {
        ignored(self.labels.as_deref(), self.ignore_index, r)
    }
}

/// `½·sign(p − q)`, 0 at ties.
#[inline]
fn half_sign<R: Real>(p: R, q: R) -> R {
    if p > q {
        R::lit(0.5)
    } else if p < q {
        R::lit(-0.5)
    } else {
        R::zero()
    }
}

impl CustomOp2 for TvdOp {
    fn name(&self) -> &'static str {
        "tvd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s1.dtype();
        let (rows, vocab) = l1.shape().dims2()?;
        crate::dispatch_real!(dt, R => {
            let p = cpu::read::<R>(s1, l1)?;
            let q = cpu::read::<R>(s2, l2)?;
            let half = R::lit(0.5);
            if self.reduction == KlReduction::None {
                let mut out = vec![R::zero(); p.len()];
                if vocab > 0 {
                    out.par_chunks_mut(vocab)
                        .zip(p.par_chunks(vocab).zip(q.par_chunks(vocab)))
                        .enumerate()
                        .with_min_len((GRAIN / vocab).max(1))
                        .for_each(|(r, (o, (p, q)))| {
                            if !self.skip(r) {
                                for i in 0..o.len() {
                                    o[i] = half * (p[i] - q[i]).abs();
                                }
                            }
                        });
                }
                return Ok((cpu::write(out, dt)?, l1.shape().clone()));
            }
            let sum: f64 = if vocab == 0 {
                0.0
            } else {
                p.par_chunks(vocab)
                    .zip(q.par_chunks(vocab))
                    .enumerate()
                    .with_min_len((GRAIN / vocab).max(1))
                    .map(|(r, (p, q))| {
                        if self.skip(r) {
                            0.0
                        } else {
                            p.iter().zip(q).map(|(&p, &q)| (half * (p - q).abs()).as_f64()).sum::<f64>()
                        }
                    })
                    .sum()
            };
            let loss = sum * self.scale(rows, vocab);
            Ok((cpu::write(vec![R::lit(loss)], dt)?, scalar_shape()))
        })
    }

    fn bwd(
        &self,
        p: &Tensor,
        q: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dt = p.dtype();
        let (rows, vocab) = p.dims2()?;
        crate::dispatch_real!(dt, R => {
            let pv = cpu::tensor_read::<R>(p)?;
            let qv = cpu::tensor_read::<R>(q)?;
            let mut dp = vec![R::zero(); pv.len()];
            if vocab > 0 {
                let per_elem = if self.reduction == KlReduction::None {
                    Some(cpu::tensor_read::<R>(g)?)
                } else {
                    None
                };
                let s = if per_elem.is_none() {
                    R::lit(scalar_of(g)? * self.scale(rows, vocab))
                } else {
                    R::one()
                };
                dp.par_chunks_mut(vocab)
                    .enumerate()
                    .with_min_len((GRAIN / vocab).max(1))
                    .for_each(|(r, d)| {
                        if self.skip(r) {
                            return;
                        }
                        let o = r * vocab;
                        for i in 0..vocab {
                            let gi = per_elem.as_ref().map_or(s, |g| g[o + i]);
                            d[i] = half_sign(pv[o + i], qv[o + i]) * gi;
                        }
                    });
            }
            Ok((Some(cpu::tensor_from(dp, p.shape(), dt)?), None))
        })
    }
}

/// Total variation distance `½|p − q|` between rows of `p` and `q` (both
/// `[N, V]`, same dtype), reduced by `reduction` (Liger's default is
/// `Batchmean`). Only `p` receives a gradient, `±½` times the reduction's
/// scale (0 where `p = q`).
pub fn tvd(p: &Tensor, q: &Tensor, reduction: TvdReduction) -> Result<Tensor> {
    tvd_impl(p, q, reduction, -100, None)
}

/// [`tvd`] that drops the rows whose label (`labels`, integer `[N]`) equals
/// `ignore_index`: they get 0 loss and 0 gradient and do not count in the
/// `Mean`/`Batchmean` denominators (Liger's `shift_labels`).
pub fn tvd_with_labels(
    p: &Tensor,
    q: &Tensor,
    reduction: TvdReduction,
    ignore_index: i64,
    labels: &Tensor,
) -> Result<Tensor> {
    tvd_impl(p, q, reduction, ignore_index, Some(labels))
}

fn tvd_impl(
    p: &Tensor,
    q: &Tensor,
    reduction: TvdReduction,
    ignore_index: i64,
    labels: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "tvd";
    check_pair(OP, "p", p, "q", q)?;
    crate::ensure_cpu_only(OP, p)?;
    let (rows, _) = dims2(OP, "p", p)?;
    let labels = read_labels(OP, labels, rows)?;
    Ok(p.apply_op2(
        q,
        TvdOp {
            reduction,
            ignore_index,
            labels,
        },
    )?)
}

/// References composed of plain candle ops (autograd through candle),
/// computed in f32 (f64 for f64) and returned in the input dtype.
pub mod reference {
    use super::KlReduction;
    use crate::jsd::reference::compute_dtype;
    use candle_core::{DType, Device, Result, Tensor};

    fn reduce(
        pointwise: Tensor,
        reduction: KlReduction,
        mean_count: usize,
        batch: usize,
    ) -> Result<Tensor> {
        match reduction {
            KlReduction::None => Ok(pointwise),
            KlReduction::Sum => pointwise.sum_all(),
            KlReduction::Mean => pointwise.sum_all()? * (1.0 / mean_count.max(1) as f64),
            KlReduction::Batchmean => pointwise.sum_all()? * (1.0 / batch.max(1) as f64),
        }
    }

    /// `KLDivLoss`: `y·(log y − x)` with `log y` replaced by 0 where `y = 0`
    /// (so those terms are `0·(0 − x) = 0`), or `eʸ(y − x)`.
    pub fn kl_div(
        input: &Tensor,
        target: &Tensor,
        log_target: bool,
        reduction: KlReduction,
    ) -> Result<Tensor> {
        let dt = input.dtype();
        let cdt = compute_dtype(dt);
        let x = input.to_dtype(cdt)?;
        let y = target.to_dtype(cdt)?;
        let pointwise = if log_target {
            (y.exp()? * (&y - &x)?)?
        } else {
            let pos = y.gt(&y.zeros_like()?)?;
            let safe = pos.where_cond(&y, &y.ones_like()?)?;
            (&y * (safe.log()? - &x)?)?
        };
        let batch = if x.rank() == 0 { 1 } else { x.dim(0)? };
        reduce(pointwise, reduction, x.elem_count(), batch)?.to_dtype(dt)
    }

    /// `½|p − q|` with rows at `ignore_index` masked out.
    pub fn tvd(
        p: &Tensor,
        q: &Tensor,
        reduction: KlReduction,
        ignore_index: i64,
        labels: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dt = p.dtype();
        let cdt = compute_dtype(dt);
        let (rows, vocab) = p.dims2()?;
        let mut pointwise = ((p.to_dtype(cdt)? - q.to_dtype(cdt)?)?.abs()? * 0.5)?;
        let mut n = rows;
        if let Some(l) = labels {
            let l = l.to_dtype(DType::I64)?.to_vec1::<i64>()?;
            let mask: Vec<f64> = l
                .iter()
                .map(|&v| if v == ignore_index { 0.0 } else { 1.0 })
                .collect();
            n = mask.iter().filter(|&&m| m > 0.0).count();
            let mask = Tensor::from_vec(mask, (rows, 1), &Device::Cpu)?.to_dtype(cdt)?;
            pointwise = pointwise.broadcast_mul(&mask)?;
        }
        reduce(pointwise, reduction, n * vocab, n)?.to_dtype(dt)
    }
}
