//! Generalized Jensen–Shannon divergence between a student and a teacher
//! distribution, given as log-probabilities.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989; `ops/jsd.py`), with
//! `X = log Q` (student), `Y = log P` (teacher), `M = βP + (1−β)Q` and `N`
//! the number of rows whose label is not `ignore_index` (all rows without
//! labels):
//!
//! - `β ∈ (0,1)`: `loss = Σ [βP·Y + (1−β)Q·X − M·log M] / N`
//!   `= Σ [βP(Y − log M) + (1−β)Q(X − log M)] / N`,
//!   `dX = (1−β)Q(X − log M) / N` (the second form is what we evaluate: it
//!   avoids cancelling the large `P·Y` and `M·log M` terms);
//! - `β = 0`: forward KL, `loss = Σ P(Y − X) / N`, `dX = −P / N`;
//! - `β = 1`: reverse KL, `loss = Σ Q(X − Y) / N`, `dX = Q(X − Y + 1) / N`.
//!
//! The gradient treats `X` as a free input (it is not projected onto the
//! simplex), exactly as Liger and autograd through the formula do. Terms
//! `0·log 0` and `0·(−∞)` count as 0, so probabilities that are (or underflow
//! to) zero give no NaN at either end of β. As in Liger, the gradient is
//! computed in the forward pass and stashed; the backward pass only scales it
//! by the incoming gradient. Only `log_q` gets a gradient.

use crate::cpu::{self, check_float};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Elements per rayon task (rows are grouped until they reach this size).
const GRAIN: usize = 1 << 14;

/// `a·l`, with `0·l = 0` even for `l = ±∞` or NaN: a zero probability
/// contributes nothing.
#[inline]
fn xmul<R: Real>(a: R, l: R) -> R {
    if a == R::zero() {
        R::zero()
    } else {
        a * l
    }
}

/// One row of the generalized JSD (see the module docs): returns the row's
/// unscaled loss `Σ_j ℓ_j` (accumulated in f64) and writes `scale·dX` into
/// `dx`. `x` holds the student's log-probabilities, `y` the teacher's.
///
/// Shared with [`crate::fused_linear_jsd`], which calls it on each row of a
/// chunk of logits after its log-softmax.
pub(crate) fn jsd_row<R: Real>(x: &[R], y: &[R], beta: f64, scale: R, dx: &mut [R]) -> f64 {
    debug_assert!(x.len() == y.len() && x.len() == dx.len());
    let mut acc = 0f64;
    if beta == 0.0 {
        // Forward KL(P‖Q).
        for ((&x, &y), d) in x.iter().zip(y).zip(dx.iter_mut()) {
            let p = y.exp();
            acc += xmul(p, y - x).as_f64();
            *d = -p * scale;
        }
    } else if beta == 1.0 {
        // Reverse KL(Q‖P).
        for ((&x, &y), d) in x.iter().zip(y).zip(dx.iter_mut()) {
            let q = x.exp();
            let l = xmul(q, x - y);
            acc += l.as_f64();
            *d = (l + q) * scale;
        }
    } else {
        let b = R::lit(beta);
        let ob = R::lit(1.0 - beta);
        for ((&x, &y), d) in x.iter().zip(y).zip(dx.iter_mut()) {
            let bp = b * y.exp();
            let oq = ob * x.exp();
            let lm = (bp + oq).ln();
            let gq = xmul(oq, x - lm);
            acc += (xmul(bp, y - lm) + gq).as_f64();
            *d = gq * scale;
        }
    }
    acc
}

/// Whether row `r` is skipped.
#[inline]
pub(crate) fn ignored(labels: Option<&[i64]>, ignore_index: i64, r: usize) -> bool {
    labels.is_some_and(|l| l[r] == ignore_index)
}

/// The number of rows that count (`N` in the module docs).
pub(crate) fn kept_rows(labels: Option<&[i64]>, ignore_index: i64, rows: usize) -> usize {
    match labels {
        Some(l) => l.iter().filter(|&&y| y != ignore_index).count(),
        None => rows,
    }
}

/// `1/n`, or 0 when no row counts (so that an all-ignored batch gives a zero
/// loss and zero gradients instead of NaN).
pub(crate) fn inv_or_zero(n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        1.0 / n as f64
    }
}

/// Error unless `beta` is a number in `[0, 1]`.
pub(crate) fn check_beta(op: &str, beta: f64) -> Result<()> {
    if (0.0..=1.0).contains(&beta) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{op}: beta is {beta}; it must lie in [0, 1] (0 is forward KL, 1 is reverse KL)"
        )))
    }
}

/// Read optional per-row labels at the API boundary: an integer tensor of
/// shape `[rows]` on the CPU.
pub(crate) fn read_labels(
    op: &str,
    labels: Option<&Tensor>,
    rows: usize,
) -> Result<Option<Vec<i64>>> {
    let Some(l) = labels else { return Ok(None) };
    if l.dims() != [rows] {
        return Err(Error::invalid(format!(
            "{op}: labels have shape {:?}, but the input has {rows} rows; expected labels of shape [{rows}]",
            l.dims()
        )));
    }
    let l = &l.to_device(&candle_core::Device::Cpu)?;
    cpu::tensor_read_index(l).map(Some).map_err(|_| {
        Error::invalid(format!(
            "{op}: labels have dtype {:?}; expected an integer dtype (i64, u32, i32 or u8)",
            l.dtype()
        ))
    })
}

/// Error unless `t` is 2-dimensional; returns `(rows, cols)`.
pub(crate) fn dims2(op: &str, what: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        &[r, c] => Ok((r, c)),
        d => Err(Error::invalid(format!(
            "{op}: {what} has shape {d:?}; expected 2 dimensions [rows, vocab]"
        ))),
    }
}

/// Loss and `dX` for all rows; rows run in parallel.
fn forward<R: Real>(
    x: &[R],
    y: &[R],
    vocab: usize,
    beta: f64,
    labels: Option<&[i64]>,
    ignore_index: i64,
) -> (f64, Vec<R>) {
    let mut dx = vec![R::zero(); x.len()];
    if vocab == 0 {
        return (0.0, dx);
    }
    let rows = x.len() / vocab;
    let inv_n = inv_or_zero(kept_rows(labels, ignore_index, rows));
    let scale = R::lit(inv_n);
    let total: f64 = dx
        .par_chunks_mut(vocab)
        .zip(x.par_chunks(vocab).zip(y.par_chunks(vocab)))
        .enumerate()
        .with_min_len((GRAIN / vocab).max(1))
        .map(|(r, (dx, (x, y)))| {
            if ignored(labels, ignore_index, r) {
                0.0
            } else {
                jsd_row(x, y, beta, scale, dx)
            }
        })
        .sum();
    (total * inv_n, dx)
}

struct JsdOp {
    beta: f64,
    ignore_index: i64,
    labels: Option<Vec<i64>>,
    /// `dX` from the forward pass, in the input dtype.
    grad: Arc<Mutex<Option<Tensor>>>,
}

impl CustomOp2 for JsdOp {
    fn name(&self) -> &'static str {
        "jsd"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (rows, _) = l1.shape().dims2()?;
        let labels = self.labels.as_deref();
        let inv_n = inv_or_zero(kept_rows(labels, self.ignore_index, rows));
        let (loss, grad) =
            crate::cuda::div::jsd_fwd(s1, l1, s2, l2, self.beta, self.ignore_index, labels, inv_n)?;
        *self
            .grad
            .lock()
            .map_err(|_| candle_core::Error::Msg("jsd: gradient lock poisoned".into()))? =
            Some(grad);
        crate::cuda::ce::storage_of(&loss)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s1.dtype();
        let (_, vocab) = l1.shape().dims2()?;
        crate::dispatch_real!(dt, R => {
            let x = cpu::read::<R>(s1, l1)?;
            let y = cpu::read::<R>(s2, l2)?;
            let (loss, dx) = forward(&x, &y, vocab, self.beta, self.labels.as_deref(), self.ignore_index);
            let grad = cpu::tensor_from(dx, l1.shape().clone(), dt)?;
            *self.grad.lock().map_err(|_| candle_core::Error::Msg("jsd: gradient lock poisoned".into()))? = Some(grad);
            Ok((cpu::write(vec![R::lit(loss)], dt)?, Shape::from(())))
        })
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = self
            .grad
            .lock()
            .map_err(|_| candle_core::Error::Msg("jsd: gradient lock poisoned".into()))?
            .clone();
        let Some(grad) = grad else {
            candle_core::bail!("jsd: backward called before forward")
        };
        Ok((Some(scale_by(&grad, grad_res)?), None))
    }
}

/// Stashed gradients are scaled by the upstream gradient as in the CE op.
pub(crate) use crate::cross_entropy::scale_by;

/// Generalized JSD between student log-probabilities `log_q` (`X`, shape
/// `[N, V]`) and teacher log-probabilities `log_p` (`Y`, same shape and
/// dtype), averaged over the rows whose label differs from `ignore_index`
/// (all rows when `labels` is `None`). Returns a scalar in the input dtype;
/// only `log_q` receives a gradient. `beta = 0` is forward KL(P‖Q),
/// `beta = 1` reverse KL(Q‖P). When every row is ignored the loss and the
/// gradient are 0.
pub fn jsd(
    log_q: &Tensor,
    log_p: &Tensor,
    beta: f64,
    ignore_index: i64,
    labels: Option<&Tensor>,
) -> Result<Tensor> {
    Ok(jsd_op(log_q, log_p, beta, ignore_index, labels)?.0)
}

/// The checked op and the slot where its forward leaves the gradient.
fn jsd_op(
    log_q: &Tensor,
    log_p: &Tensor,
    beta: f64,
    ignore_index: i64,
    labels: Option<&Tensor>,
) -> Result<(Tensor, Arc<Mutex<Option<Tensor>>>)> {
    const OP: &str = "jsd";
    check_float(OP, "log_q", log_q.dtype())?;
    let (rows, _) = dims2(OP, "log_q", log_q)?;
    crate::ensure_like(OP, "log_q", log_q, "log_p", log_p)?;
    check_beta(OP, beta)?;
    crate::ensure_cpu(OP, log_q)?;
    crate::ensure_cpu(OP, log_p)?;
    let labels = read_labels(OP, labels, rows)?;
    let (log_q, log_p) = (crate::device_layout(log_q)?, crate::device_layout(log_p)?);
    let grad = Arc::new(Mutex::new(None));
    let loss = log_q.apply_op2(
        &log_p,
        JsdOp {
            beta,
            ignore_index,
            labels,
            grad: grad.clone(),
        },
    )?;
    Ok((loss, grad))
}

/// [`jsd`] with its gradient returned rather than left to candle's
/// autograd: `(loss, d loss / d log_q)`, for loops outside autograd (the
/// gradient is computed in the forward pass anyway).
pub fn jsd_with_grad(
    log_q: &Tensor,
    log_p: &Tensor,
    beta: f64,
    ignore_index: i64,
    labels: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (loss, grad) = jsd_op(log_q, log_p, beta, ignore_index, labels)?;
    let grad = grad
        .lock()
        .map_err(|_| Error::invalid("jsd: gradient lock poisoned"))?
        .take()
        .ok_or_else(|| Error::invalid("jsd: the forward left no gradient"))?;
    Ok((loss.detach(), grad))
}

/// References composed of plain candle ops (autograd through candle).
pub mod reference {
    use candle_core::{DType, Device, Result, Tensor, D};

    /// The dtype references compute in: f64 for f64, f32 otherwise (as
    /// Liger's torch references upcast).
    pub(crate) fn compute_dtype(dt: DType) -> DType {
        if dt == DType::F64 {
            DType::F64
        } else {
            DType::F32
        }
    }

    /// Liger's formula as written, `Σ[βP·Y + (1−β)Q·X − M·log M]/N` (and the
    /// two KL ends), row-masked by the labels, computed in f32 (f64 for f64)
    /// and returned in the input dtype.
    pub fn jsd(
        log_q: &Tensor,
        log_p: &Tensor,
        beta: f64,
        ignore_index: i64,
        labels: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dt = log_q.dtype();
        let cdt = compute_dtype(dt);
        let x = log_q.to_dtype(cdt)?;
        let y = log_p.to_dtype(cdt)?;
        let q = x.exp()?;
        let p = y.exp()?;
        let pointwise = if beta == 0.0 {
            (&p * (&y - &x)?)?
        } else if beta == 1.0 {
            (&q * (&x - &y)?)?
        } else {
            let bp = (&p * beta)?;
            let oq = (&q * (1.0 - beta))?;
            let m = (&bp + &oq)?;
            (((&bp * &y)? + (&oq * &x)?)? - (&m * m.log()?)?)?
        };
        let per_row = pointwise.sum(D::Minus1)?;
        let rows = per_row.dim(0)?;
        let (per_row, n) = match labels {
            None => (per_row, rows),
            Some(l) => {
                let l = l.to_dtype(DType::I64)?.to_vec1::<i64>()?;
                let mask: Vec<f64> = l
                    .iter()
                    .map(|&v| if v == ignore_index { 0.0 } else { 1.0 })
                    .collect();
                let n = mask.iter().filter(|&&m| m > 0.0).count();
                let mask = Tensor::from_vec(mask, rows, &Device::Cpu)?.to_dtype(cdt)?;
                ((per_row * mask)?, n)
            }
        };
        (per_row.sum_all()? * (1.0 / n.max(1) as f64))?.to_dtype(dt)
    }
}
