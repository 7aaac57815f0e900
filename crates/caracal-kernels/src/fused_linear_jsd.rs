//! Fused linear JSD: the generalized JSD of [`crate::jsd`](mod@crate::jsd) between a
//! student's and a teacher's LM-head outputs, without ever holding the
//! `[BT, V]` logits.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989, §3.3; `ops/fused_linear_jsd.py`).
//! With student `x_s [BT, Hs]`, `W_s [V, Hs]`, teacher `x_t [BT, Ht]`,
//! `W_t [V, Ht]` and temperature `T`, rows are processed in chunks of `C`
//! (Liger's `next_pow2(ceil(BT / ceil(V/Hs)))` with a CPU floor, [`crate::chunk::cpu_chunk_rows`]):
//!
//! 1. `z_s = x_s,c·W_sᵀ`, `z_t = x_t,c·W_tᵀ` (candle matmul in the input
//!    dtype; `W` is never copied per chunk), then in f32:
//!    `X = log_softmax(z_s/T)`, `Y = log_softmax(z_t/T)`;
//! 2. the JSD row kernel ([`crate::jsd`](mod@crate::jsd)) gives the loss and
//!    `g = ∂loss/∂X` (already divided by `N`, the non-ignored rows);
//! 3. through the log-softmax and the temperature:
//!    `dz = (g − softmax(z_s/T)·Σ_j g_j) / T`;
//! 4. `dx_s,c = dz·W_s` (input dtype, as Liger) and
//!    `dW_s += dzᵀ·x_s,c` (accumulated in f32, like Liger's
//!    `accum_dtype=fp32`).
//!
//! Unlike Liger, no `[BT, V]` loss buffer is kept: each chunk's loss is
//! summed at once, so the extra memory is two `[C, V]` f32 chunks, one
//! `[V, Hs]` f32 accumulator and its per-chunk product. The gradients are
//! computed in the forward pass and only scaled in the backward pass; only
//! the student's input and weight receive them. Chunks whose rows are all
//! ignored are skipped.

use crate::cpu;
use crate::jsd::{check_beta, ignored, inv_or_zero, jsd_row, kept_rows, read_labels, scale_by};
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Device, Layout, Shape, Tensor, WithDType};
use caracal_core::{Error, Result};
use rayon::prelude::*;

/// Options of [`fused_linear_jsd`]; the defaults are Liger's
/// (`LigerFusedLinearJSD`: β = 0.5, T = 1, ignore_index = −100).
#[derive(Clone, Debug)]
pub struct FljsdOptions {
    /// Softmax temperature `T > 0`; logits are divided by it.
    pub temperature: f64,
    /// JSD weight β in `[0, 1]`: 0 is forward KL(teacher‖student), 1 reverse KL.
    pub beta: f64,
    /// Rows whose label equals this are ignored.
    pub ignore_index: i64,
    /// Optional integer labels `[BT]` that mark ignored rows.
    pub labels: Option<Tensor>,
    /// Rows per chunk; `None` uses Liger's rule.
    pub chunk_rows: Option<usize>,
}

impl Default for FljsdOptions {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            beta: 0.5,
            ignore_index: -100,
            labels: None,
            chunk_rows: None,
        }
    }
}

/// `row ← log_softmax(row·inv_t)` in place.
fn log_softmax_inplace<R: Real>(row: &mut [R], inv_t: R) {
    let mut m = R::neg_infinity();
    for z in row.iter_mut() {
        *z *= inv_t;
        m = m.max(*z);
    }
    let s: R = row.iter().map(|&z| (z - m).exp()).sum();
    let lse = m + s.ln();
    for z in row.iter_mut() {
        *z -= lse;
    }
}

/// Add a contiguous tensor's elements into `acc`.
fn add_into<R: Real>(acc: &mut [R], t: &Tensor) -> candle_core::Result<()> {
    let (s, l) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cs) = &*s else {
        candle_core::bail!("fused_linear_jsd: the CPU kernels got a tensor on another device")
    };
    let v = cpu::read::<R>(cs, l)?;
    acc.par_chunks_mut(1 << 14)
        .zip(v.par_chunks(1 << 14))
        .for_each(|(a, v)| {
            for i in 0..a.len() {
                a[i] += v[i];
            }
        });
    Ok(())
}

/// Loss, `dx_s` and `dW_s` (in the student dtype), chunk by chunk.
fn compute<R: Real + WithDType>(
    xs: &Tensor,
    ws: &Tensor,
    xt: &Tensor,
    wt: &Tensor,
    opts: &FljsdOptions,
    labels: Option<&[i64]>,
) -> candle_core::Result<(f64, Tensor, Tensor)> {
    let dt = xs.dtype();
    let (bt, hs) = xs.dims2()?;
    let vocab = ws.dim(0)?;
    // Detached views, so that nothing below is recorded for autograd; copies
    // happen only for strided inputs, once.
    let xs = xs.detach().contiguous()?;
    let ws = ws.detach().contiguous()?;
    let xt = xt.detach().contiguous()?;
    let wt = wt.detach().contiguous()?;
    let (ws_t, wt_t) = (ws.t()?, wt.t()?);

    let ignore = opts.ignore_index;
    let inv_n = inv_or_zero(kept_rows(labels, ignore, bt));
    let scale = R::lit(inv_n);
    let inv_t = R::lit(1.0 / opts.temperature);
    let beta = opts.beta;
    let chunk = opts
        .chunk_rows
        .unwrap_or_else(|| crate::chunk::cpu_chunk_rows(bt, hs, vocab))
        .clamp(1, bt.max(1));

    let mut loss = 0f64;
    let mut dw = vec![<R as Real>::zero(); vocab * hs];
    let mut dx_parts = Vec::with_capacity(bt.div_ceil(chunk));
    for start in (0..bt).step_by(chunk) {
        let c = chunk.min(bt - start);
        let lab = labels.map(|l| &l[start..start + c]);
        if vocab == 0 || lab.is_some_and(|l| l.iter().all(|&y| y == ignore)) {
            dx_parts.push(Tensor::zeros((c, hs), dt, &Device::Cpu)?);
            continue;
        }
        let xs_c = xs.narrow(0, start, c)?;
        let mut s: Vec<R> = cpu::tensor_read(&xs_c.matmul(&ws_t)?)?;
        let mut t: Vec<R> = cpu::tensor_read(&xt.narrow(0, start, c)?.matmul(&wt_t)?)?;
        let chunk_loss: f64 = s
            .par_chunks_mut(vocab)
            .zip(t.par_chunks_mut(vocab))
            .enumerate()
            .map_init(
                || vec![<R as Real>::zero(); vocab],
                |g, (r, (srow, trow))| {
                    if ignored(lab, ignore, r) {
                        srow.fill(<R as Real>::zero());
                        return 0.0;
                    }
                    log_softmax_inplace(srow, inv_t);
                    log_softmax_inplace(trow, inv_t);
                    let l = jsd_row(srow, trow, beta, scale, g);
                    let sum_g: R = g.iter().copied().sum();
                    for (z, &gj) in srow.iter_mut().zip(g.iter()) {
                        *z = (gj - z.exp() * sum_g) * inv_t;
                    }
                    l
                },
            )
            .sum();
        drop(t);
        loss += chunk_loss * inv_n;
        let dz = Tensor::from_vec(s, (c, vocab), &Device::Cpu)?;
        let dz_in = if dt == <R as Real>::DTYPE {
            dz.clone()
        } else {
            dz.to_dtype(dt)?
        };
        dx_parts.push(dz_in.matmul(&ws)?);
        let xs_c = if dt == <R as Real>::DTYPE {
            xs_c
        } else {
            xs_c.to_dtype(<R as Real>::DTYPE)?
        };
        add_into(&mut dw, &dz.t()?.matmul(&xs_c)?)?;
    }
    let dx = if dx_parts.is_empty() {
        Tensor::zeros((bt, hs), dt, &Device::Cpu)?
    } else {
        Tensor::cat(&dx_parts, 0)?
    };
    let dw = cpu::tensor_from(dw, (vocab, hs), ws.dtype())?;
    Ok((loss, dx, dw))
}

/// Holds the loss and the gradients computed by [`fused_linear_jsd`]; its
/// forward returns the loss, its backward scales the gradients.
struct FljsdOp {
    loss: f64,
    dx: Tensor,
    dw: Tensor,
}

impl CustomOp2 for FljsdOp {
    fn name(&self) -> &'static str {
        "fused_linear_jsd"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        _l1: &Layout,
        _s2: &candle_core::CudaStorage,
        _l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let dev = candle_core::Device::Cuda(s1.device.clone());
        let loss = Tensor::new(self.loss, &dev)?.to_dtype(s1.dtype())?;
        crate::cuda::ce::storage_of(&loss)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        _l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s1.dtype();
        crate::dispatch_real!(dt, R => Ok((cpu::write(vec![R::lit(self.loss)], dt)?, Shape::from(()))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(scale_by(&self.dx, g)?), Some(scale_by(&self.dw, g)?)))
    }
}

fn dims2(what: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        &[r, c] => Ok((r, c)),
        d => Err(Error::invalid(format!(
            "fused_linear_jsd: {what} has shape {d:?}; expected 2 dimensions"
        ))),
    }
}

/// The generalized JSD (see [`crate::jsd::jsd`]) between
/// `log_softmax(student_x·student_wᵀ / T)` and
/// `log_softmax(teacher_x·teacher_wᵀ / T)`, averaged over non-ignored rows,
/// computed chunk by chunk without the `[BT, V]` logits. Shapes:
/// `student_x [BT, Hs]`, `student_w [V, Hs]`, `teacher_x [BT, Ht]`,
/// `teacher_w [V, Ht]`, all the same float dtype. Returns a scalar in that
/// dtype; `student_x` and `student_w` receive gradients, the teacher none.
pub fn fused_linear_jsd(
    student_x: &Tensor,
    student_w: &Tensor,
    teacher_x: &Tensor,
    teacher_w: &Tensor,
    opts: FljsdOptions,
) -> Result<Tensor> {
    const OP: &str = "fused_linear_jsd";
    cpu::check_float(OP, "student_x", student_x.dtype())?;
    let dt = student_x.dtype();
    for (name, t) in [
        ("student_w", student_w),
        ("teacher_x", teacher_x),
        ("teacher_w", teacher_w),
    ] {
        if t.dtype() != dt {
            return Err(Error::invalid(format!(
                "{OP}: {name} has dtype {:?} but student_x has {dt:?}; all four tensors must share one dtype",
                t.dtype()
            )));
        }
    }
    let (bt, hs) = dims2("student_x", student_x)?;
    let (vs, hs_w) = dims2("student_w", student_w)?;
    let (bt_t, ht) = dims2("teacher_x", teacher_x)?;
    let (vt, ht_w) = dims2("teacher_w", teacher_w)?;
    if hs_w != hs {
        return Err(Error::invalid(format!(
            "{OP}: student_x has hidden size {hs} but student_w is [{vs}, {hs_w}]; expected student_w of shape [V, {hs}]"
        )));
    }
    if ht_w != ht {
        return Err(Error::invalid(format!(
            "{OP}: teacher_x has hidden size {ht} but teacher_w is [{vt}, {ht_w}]; expected teacher_w of shape [V, {ht}]"
        )));
    }
    if bt_t != bt {
        return Err(Error::invalid(format!(
            "{OP}: student_x has {bt} rows but teacher_x has {bt_t}; both must cover the same tokens"
        )));
    }
    if vs != vt {
        return Err(Error::invalid(format!(
            "{OP}: student_w has vocabulary {vs} but teacher_w has {vt}; student and teacher must share one vocabulary"
        )));
    }
    check_beta(OP, opts.beta)?;
    if !(opts.temperature > 0.0 && opts.temperature.is_finite()) {
        return Err(Error::invalid(format!(
            "{OP}: temperature is {}; it must be a finite number greater than 0",
            opts.temperature
        )));
    }
    if opts.chunk_rows == Some(0) {
        return Err(Error::invalid(format!(
            "{OP}: chunk_rows is 0; use at least 1, or None for Liger's rule"
        )));
    }
    for t in [student_x, student_w, teacher_x, teacher_w] {
        crate::ensure_cpu(OP, t)?;
    }
    let labels = read_labels(OP, opts.labels.as_ref(), bt)?;
    #[cfg(feature = "cuda")]
    if student_x.device().is_cuda() {
        let inv_n = inv_or_zero(kept_rows(labels.as_deref(), opts.ignore_index, bt));
        let (loss, dx, dw) = crate::cuda::fljsd::compute(
            student_x,
            student_w,
            teacher_x,
            teacher_w,
            &opts,
            labels.as_deref(),
            inv_n,
        )?;
        return Ok(student_x.apply_op2(student_w, FljsdOp { loss, dx, dw })?);
    }
    let (loss, dx, dw) = crate::dispatch_real!(dt, R => {
        compute::<R>(student_x, student_w, teacher_x, teacher_w, &opts, labels.as_deref())?
    });
    Ok(student_x.apply_op2(student_w, FljsdOp { loss, dx, dw })?)
}

/// The reference composed of plain candle ops (autograd through candle): full
/// logits in the input dtype, then f32 (f64 for f64) `/T`, log-softmax via
/// max/exp/sum/log, and [`crate::jsd::reference::jsd`]. Returns the loss in
/// the input dtype.
pub mod reference {
    use super::FljsdOptions;
    use crate::jsd::reference::compute_dtype;
    use candle_core::{Result, Tensor, D};

    /// `log_softmax` along the last dimension (the max shift is detached).
    pub fn log_softmax(z: &Tensor) -> Result<Tensor> {
        let m = z.max_keepdim(D::Minus1)?.detach();
        let s = z.broadcast_sub(&m)?;
        let lse = s.exp()?.sum_keepdim(D::Minus1)?.log()?;
        s.broadcast_sub(&lse)
    }

    pub fn fused_linear_jsd(
        student_x: &Tensor,
        student_w: &Tensor,
        teacher_x: &Tensor,
        teacher_w: &Tensor,
        opts: &FljsdOptions,
    ) -> Result<Tensor> {
        let dt = student_x.dtype();
        let cdt = compute_dtype(dt);
        let inv_t = 1.0 / opts.temperature;
        let zs = (student_x.matmul(&student_w.t()?)?.to_dtype(cdt)? * inv_t)?;
        let zt = (teacher_x.matmul(&teacher_w.t()?)?.to_dtype(cdt)? * inv_t)?;
        crate::jsd::reference::jsd(
            &log_softmax(&zs)?,
            &log_softmax(&zt)?,
            opts.beta,
            opts.ignore_index,
            opts.labels.as_ref(),
        )?
        .to_dtype(dt)
    }
}
