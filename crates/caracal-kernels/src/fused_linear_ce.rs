//! Fused linear cross-entropy: `CE(x·Wᵀ + b, y)` without ever holding the
//! `[BT, V]` logits.
//!
//! Liger-Kernel (Hsu et al., arXiv 2410.10989, §3.3;
//! `ops/fused_linear_cross_entropy.py`): the rows of `x` are processed in
//! chunks of `cpu_chunk_rows(BT, H, V)` rows: Liger's rule (transient logits ≈ `BT×H`
//! elements) with a CPU floor of 256 rows. Per chunk `c`:
//!
//! - `z_c = x_c·Wᵀ (+ b)`;
//! - the CE row kernel ([`crate::cross_entropy`](mod@crate::cross_entropy)) turns `z_c` into the
//!   per-row losses and `dz_c = ∂loss/∂z_c` in place;
//! - `dx_c = dz_c·W`, `dW += dz_cᵀ·x_c`, `db += Σ_rows dz_c`.
//!
//! Rows that cannot contribute are never projected: a row whose target is
//! `ignore_index`, and in the `Reduction::None` backward a row whose
//! `grad_output` is 0 (the prompt and pad tokens of a preference batch).
//! Kept rows are gathered into the chunks, and their `dx` scattered back.
//!
//! The forward computes every gradient and stashes it; the backward only
//! scales by `grad_output`. For `Reduction::None` the gradient depends on the
//! per-token `grad_output`, so the forward computes losses only and the
//! backward recomputes the chunks with `grad_output_i` folded into row `i` of
//! `dz` before the `dW` sum (Liger PR #1298, issue #968).
//!
//! bf16/f16 inputs compute in f32: `W` is widened to f32 once per pass
//! (candle's CPU bf16 matmul would widen it on every call), and `dW` is
//! accumulated in f32, or rounded to `W`'s dtype after every chunk when
//! `accum_f32` is false (Liger's default accumulation, kept for parity).

use crate::cpu::{self, check_float};
use crate::cross_entropy::{
    ce_rows, scale_by, CeOptions, CeOutput, CeSpec, GradScale, KernelFloat, Reduction, RowLoss,
};
use crate::real::Real;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use caracal_core::{Error, Result};
use half::{bf16, f16};
use rayon::prelude::*;
use std::sync::Arc;

/// Options of [`fused_linear_cross_entropy`]: the CE options plus chunking
/// and accumulation.
#[derive(Clone, Debug)]
pub struct FlceOptions {
    /// The cross-entropy options (ignore_index, label smoothing, z-loss,
    /// softcap, class weights, reduction).
    pub ce: CeOptions,
    /// Accumulate `dW` in f32 for bf16/f16 weights (default true; Liger's
    /// default `accum_dtype=None` accumulates in `W`'s dtype, which issues
    /// #512/#827 tie to bf16 divergence). No effect for f32/f64.
    pub accum_f32: bool,
    /// Rows of `x` per chunk; `None` uses [`crate::chunk::cpu_chunk_rows`]
    /// (Liger's rule with a CPU floor).
    pub chunk_rows: Option<usize>,
}

impl Default for FlceOptions {
    fn default() -> Self {
        FlceOptions {
            ce: CeOptions::default(),
            accum_f32: true,
            chunk_rows: None,
        }
    }
}

/// Rows of `dW` per `dz_cᵀ·x_c` product: bounds that product's transient to
/// `VOCAB_BLOCK×H` instead of `V×H`.
const VOCAB_BLOCK: usize = 4096;

/// Elements per rayon task in the accumulations.
const GRAIN: usize = 1 << 14;

/// The gradients of one pass, in the inputs' dtypes.
#[derive(Clone, Debug)]
pub(crate) struct Grads {
    pub(crate) dx: Tensor,
    pub(crate) dw: Tensor,
    pub(crate) db: Option<Tensor>,
}

/// Everything a pass needs: detached inputs and the validated CE options.
pub(crate) struct Flce {
    pub(crate) x: Tensor,
    pub(crate) w: Tensor,
    pub(crate) b: Option<Tensor>,
    pub(crate) spec: CeSpec,
    pub(crate) chunk: usize,
    pub(crate) accum_f32: bool,
}

/// Round `v` to the precision of `dt` (identity for f32/f64).
fn round_to<R: Real>(dt: DType, v: R) -> R {
    match dt {
        DType::BF16 => R::lit(bf16::from_f64(v.as_f64()).to_f64()),
        DType::F16 => R::lit(f16::from_f64(v.as_f64()).to_f64()),
        _ => v,
    }
}

/// A strided read-only matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct View<'a, R> {
    data: &'a [R],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, R> View<'a, R> {
    /// A row-major `[rows, cols]` matrix.
    fn rm(data: &'a [R], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a·b` (or `dst += a·b` with `accumulate`) for a row-major `dst`
/// `[a.rows, b.cols]`, by one call to the `gemm` crate (the kernel candle
/// itself runs on the CPU), parallel over the rayon pool.
fn matmul_into<R: Real>(
    dst: &mut [R],
    accumulate: bool,
    a: View<'_, R>,
    b: View<'_, R>,
) -> candle_core::Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() != m * n || !a.in_bounds() || !b.in_bounds() {
        candle_core::bail!("fused_linear_cross_entropy: internal shape mismatch in a matmul");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every index the product reads lies inside its view's slice
    // (checked by `in_bounds`), and `dst` is `[m, n]` row-major (row stride
    // n, column stride 1) with the length checked above. R is f32 or f64,
    // both supported by gemm. With k = 0 and `accumulate` false, gemm
    // writes zeros.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            R::one(),
            R::one(),
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

impl Flce {
    /// One pass over the row chunks. Always returns the per-row losses; with
    /// `grads`, also the gradients, row `i` scaled by `row_scale[i]` when
    /// given (else 1).
    fn pass(
        &self,
        grads: bool,
        row_scale: Option<&[f64]>,
    ) -> candle_core::Result<(Vec<RowLoss<f64>>, Option<Grads>)> {
        #[cfg(feature = "cuda")]
        if self.x.device().is_cuda() {
            return crate::cuda::flce::pass(self, grads, row_scale);
        }
        crate::dispatch_real!(self.x.dtype(), R => self.pass_in::<R>(grads, row_scale))
    }

    fn pass_in<R: KernelFloat + candle_core::WithDType>(
        &self,
        grads: bool,
        row_scale: Option<&[f64]>,
    ) -> candle_core::Result<(Vec<RowLoss<f64>>, Option<Grads>)> {
        let (bt, h) = self.x.dims2()?;
        let v = self.w.dim(0)?;
        // x and W as f32/f64 slices (bf16/f16 widened once per pass).
        let (xst, xl) = self.x.storage_and_layout();
        let (wst, wl) = self.w.storage_and_layout();
        let (Storage::Cpu(xcs), Storage::Cpu(wcs)) = (&*xst, &*wst) else {
            candle_core::bail!("the CPU kernels got a tensor on another device")
        };
        let xs = cpu::read::<R>(xcs, xl)?;
        let ws = cpu::read::<R>(wcs, wl)?;
        let bias: Option<Vec<R>> = self.b.as_ref().map(cpu::tensor_read::<R>).transpose()?;
        let (params, weights) = self.spec.params::<R>();
        let row_scale: Option<Vec<R>> = row_scale.map(|s| s.iter().map(|&g| R::lit(g)).collect());
        let round_dw = (!self.accum_f32).then_some(self.w.dtype());

        // Only rows that can contribute are projected: an ignored target
        // has loss 0 and gradient 0, and so does a row whose per-token
        // `grad_output` is 0 (prompt and pad tokens of a preference batch).
        let kept: Vec<usize> = (0..bt)
            .filter(|&i| {
                self.spec.targets[i].is_some()
                    && row_scale
                        .as_ref()
                        .is_none_or(|s| !grads || s[i] != <R as Real>::zero())
            })
            .collect();
        let chunk = self.chunk.max(1);
        let mut losses = vec![RowLoss::<f64>::default(); bt];
        let zeros = |len: usize| vec![<R as Real>::zero(); if grads { len } else { 0 }];
        let mut dx = zeros(bt * h);
        let mut dw = zeros(v * h);
        let mut db = zeros(if bias.is_some() { v } else { 0 });
        // One [chunk, V] buffer: the logits, then dz in place of them.
        let mut buf = vec![<R as Real>::zero(); chunk.min(kept.len()) * v];
        let mut xg: Vec<R> = Vec::new();

        for idx in kept.chunks(chunk) {
            let n = idx.len();
            let targets: Vec<Option<usize>> = idx.iter().map(|&i| self.spec.targets[i]).collect();
            let chunk_scale: Option<Vec<R>> = row_scale
                .as_ref()
                .map(|s| idx.iter().map(|&i| s[i]).collect());
            let scale = match (grads, &chunk_scale) {
                (false, _) => GradScale::None,
                (true, None) => GradScale::Uniform(<R as Real>::one()),
                (true, Some(s)) => GradScale::PerRow(s),
            };
            let contiguous = idx[n - 1] - idx[0] == n - 1;
            let xc: &[R] = if contiguous {
                &xs[idx[0] * h..(idx[n - 1] + 1) * h]
            } else {
                xg.clear();
                for &i in idx {
                    xg.extend_from_slice(&xs[i * h..(i + 1) * h]);
                }
                &xg
            };

            // z_c = x_c·Wᵀ (+ b), then dz_c in place.
            let z = &mut buf[..n * v];
            matmul_into(z, false, View::rm(xc, n, h), View::rm(&ws, v, h).t())?;
            if let Some(b) = &bias {
                z.par_chunks_mut(v).for_each(|row| {
                    row.iter_mut().zip(b).for_each(|(z, &bj)| *z += bj);
                });
            }
            let rows = ce_rows(
                z,
                v,
                &targets,
                &params,
                weights.as_deref(),
                None,
                None,
                scale,
            );
            for (&i, r) in idx.iter().zip(&rows) {
                losses[i] = RowLoss {
                    loss: r.loss.as_f64(),
                    z_loss: r.z_loss.as_f64(),
                };
            }
            if !grads {
                continue;
            }
            let dz: &[R] = z;

            // db += Σ_rows dz_c.
            if !db.is_empty() {
                db.par_chunks_mut(GRAIN).enumerate().for_each(|(k, acc)| {
                    let j0 = k * GRAIN;
                    for row in dz.chunks(v) {
                        for (a, &g) in acc.iter_mut().zip(&row[j0..]) {
                            *a += g;
                        }
                    }
                });
            }
            // dx_c = dz_c·W, straight into dx when the rows are contiguous.
            if contiguous {
                let dst = &mut dx[idx[0] * h..(idx[n - 1] + 1) * h];
                matmul_into(dst, false, View::rm(dz, n, v), View::rm(&ws, v, h))?;
            } else {
                let mut part = vec![<R as Real>::zero(); n * h];
                matmul_into(&mut part, false, View::rm(dz, n, v), View::rm(&ws, v, h))?;
                for (&i, row) in idx.iter().zip(part.chunks(h)) {
                    dx[i * h..(i + 1) * h].copy_from_slice(row);
                }
            }
            // dW += dz_cᵀ·x_c.
            match round_dw {
                // One GEMM that accumulates straight into dW: no V×H
                // temporary and no extra pass over dW.
                None => matmul_into(&mut dw, true, View::rm(dz, n, v).t(), View::rm(xc, n, h))?,
                // Rounding dW to W's dtype after each chunk (Liger's bf16
                // accumulation), one vocabulary block at a time.
                Some(dt) => {
                    let mut part = vec![<R as Real>::zero(); VOCAB_BLOCK.min(v) * h];
                    for v0 in (0..v).step_by(VOCAB_BLOCK) {
                        let len = VOCAB_BLOCK.min(v - v0);
                        let p = &mut part[..len * h];
                        let dzb = View {
                            data: &dz[v0..],
                            rows: len,
                            cols: n,
                            rs: 1,
                            cs: v,
                        };
                        matmul_into(p, false, dzb, View::rm(xc, n, h))?;
                        let acc = &mut dw[v0 * h..(v0 + len) * h];
                        acc.par_chunks_mut(GRAIN)
                            .zip(p.par_chunks(GRAIN))
                            .for_each(|(a, p)| {
                                a.iter_mut()
                                    .zip(p)
                                    .for_each(|(a, &p)| *a = round_to(dt, *a + p))
                            });
                    }
                }
            }
        }
        drop((xs, ws));

        let grads = if grads {
            let dx = cpu::tensor_from(dx, (bt, h), self.x.dtype())?;
            let dw = cpu::tensor_from(dw, (v, h), self.w.dtype())?;
            let db = match &self.b {
                Some(b) => Some(cpu::tensor_from(db, v, b.dtype())?),
                None => None,
            };
            Some(Grads { dx, dw, db })
        } else {
            None
        };
        Ok((losses, grads))
    }
}

/// The op: its forward returns the loss computed at the API boundary, its
/// backward the stashed gradients times `grad_output` (or, for
/// `Reduction::None`, a recomputation with `grad_output` folded in).
struct FlceOp {
    ctx: Arc<Flce>,
    loss: Tensor,
    grads: Option<Grads>,
}

impl FlceOp {
    fn fwd(&self) -> candle_core::Result<(CpuStorage, Shape)> {
        let (st, _) = self.loss.storage_and_layout();
        let Storage::Cpu(cs) = &*st else {
            candle_core::bail!("fused_linear_cross_entropy: the loss is not on the CPU")
        };
        Ok((cs.clone(), self.loss.shape().clone()))
    }

    fn grads(&self, grad_res: &Tensor) -> candle_core::Result<Grads> {
        if self.ctx.spec.reduction == Reduction::None {
            let g = grad_res
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            let (_, grads) = self.ctx.pass(true, Some(&g))?;
            return grads.ok_or_else(|| {
                candle_core::Error::Msg("fused_linear_cross_entropy: no gradients".into())
            });
        }
        let g = self.grads.as_ref().ok_or_else(|| {
            candle_core::Error::Msg(
                "fused_linear_cross_entropy: no stashed gradients (no input was tracked)".into(),
            )
        })?;
        Ok(Grads {
            dx: scale_by(&g.dx, grad_res)?,
            dw: scale_by(&g.dw, grad_res)?,
            db: g.db.as_ref().map(|db| scale_by(db, grad_res)).transpose()?,
        })
    }
}

impl CustomOp2 for FlceOp {
    fn name(&self) -> &'static str {
        "fused_linear_cross_entropy"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::ce::storage_of(&self.loss)
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd()
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.grads(grad_res)?;
        Ok((Some(g.dx), Some(g.dw)))
    }
}

impl CustomOp3 for FlceOp {
    fn name(&self) -> &'static str {
        "fused_linear_cross_entropy"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::ce::storage_of(&self.loss)
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd()
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.grads(grad_res)?;
        Ok((Some(g.dx), Some(g.dw), g.db))
    }
}

/// `cross_entropy(x·Wᵀ + b, target)` for `x` `[BT, H]`, `w` `[V, H]`,
/// optional `bias` `[V]` (all one float dtype) and integer `target` `[BT]`,
/// without materializing the `[BT, V]` logits (module docs). The loss is f32
/// (f64 for f64 inputs), a scalar or `[BT]` for `Reduction::None`.
pub fn fused_linear_cross_entropy(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    target: &Tensor,
    opts: &FlceOptions,
) -> Result<CeOutput> {
    Ok(flce_impl(x, w, bias, target, opts, false)?.0)
}

/// The gradients of [`fused_linear_cross_entropy_with_grads`].
#[derive(Clone, Debug)]
pub struct FlceGrads {
    /// `∂loss/∂x`, `[BT, H]`.
    pub dx: Tensor,
    /// `∂loss/∂W`, `[V, H]`.
    pub dw: Tensor,
    /// `∂loss/∂b`, `[V]`, when there is a bias.
    pub db: Option<Tensor>,
}

/// [`fused_linear_cross_entropy`] in functional form, for training loops
/// that do not go through candle's autograd (as Liger's
/// `LigerFusedLinearCrossEntropyFunction`): the loss and its gradients for
/// `grad_output = 1` (for `Reduction::None`, the gradients of the sum of the
/// per-row losses), all computed in the one forward pass.
pub fn fused_linear_cross_entropy_with_grads(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    target: &Tensor,
    opts: &FlceOptions,
) -> Result<(CeOutput, FlceGrads)> {
    let (out, grads) = flce_impl(x, w, bias, target, opts, true)?;
    let g = grads.ok_or_else(|| Error::invalid("fused_linear_cross_entropy: no gradients"))?;
    Ok((
        out,
        FlceGrads {
            dx: g.dx,
            dw: g.dw,
            db: g.db,
        },
    ))
}

/// The shared body: with `explicit`, the gradients are returned instead of
/// being attached to candle's autograd.
fn flce_impl(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    target: &Tensor,
    opts: &FlceOptions,
    explicit: bool,
) -> Result<(CeOutput, Option<Grads>)> {
    const OP: &str = "fused_linear_cross_entropy";
    check_float(OP, "x", x.dtype())?;
    let (bt, h, v) = match (x.dims(), w.dims()) {
        (&[bt, h], &[v, h2]) if h == h2 && v > 0 => (bt, h, v),
        (xd, wd) => {
            return Err(Error::invalid(format!(
                "{OP}: x is {xd:?} and w is {wd:?}; expected x [BT, H] and w [V, H] with the same H and V ≥ 1"
            )))
        }
    };
    if w.dtype() != x.dtype() || bias.is_some_and(|b| b.dtype() != x.dtype()) {
        return Err(Error::invalid(format!(
            "{OP}: x is {:?}, w is {:?} and bias is {:?}; all must have the same dtype",
            x.dtype(),
            w.dtype(),
            bias.map(|b| b.dtype())
        )));
    }
    if let Some(b) = bias {
        if b.dims() != [v] {
            return Err(Error::invalid(format!(
                "{OP}: bias has shape {:?}; expected [{v}]",
                b.dims()
            )));
        }
        crate::ensure_cpu(OP, b)?;
    }
    crate::ensure_cpu(OP, x)?;
    crate::ensure_cpu(OP, w)?;
    let chunk = match opts.chunk_rows {
        Some(0) => {
            return Err(Error::invalid(format!(
                "{OP}: chunk_rows is 0; expected at least 1"
            )))
        }
        Some(c) => c,
        // The GPU chunks by Liger's rule as is; the CPU has a floor.
        None if !x.device().is_cpu() => crate::chunk::liger_chunk_rows(bt, h, v),
        None => crate::chunk::cpu_chunk_rows(bt, h, v),
    };
    let spec = CeSpec::new(OP, target, bt, v, &opts.ce)?;
    let want_grads = x.track_op() || w.track_op() || bias.is_some_and(|b| b.track_op());
    let ctx = Arc::new(Flce {
        x: crate::device_layout(&x.detach())?,
        w: crate::device_layout(&w.detach())?,
        b: bias
            .map(|b| crate::device_layout(&b.detach()))
            .transpose()?,
        spec,
        chunk,
        accum_f32: opts.accum_f32,
    });
    // For Reduction::None the gradients wait for the per-token grad_output.
    let grads_now = explicit || (want_grads && ctx.spec.reduction != Reduction::None);
    let (rows, grads) = ctx.pass(grads_now, None)?;
    let (loss, z, shape) = ctx.spec.reduce(&rows);
    let cdt = if x.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let loss = cpu::tensor_from(loss, shape.clone(), cdt)?.to_device(x.device())?;
    let z_loss = (opts.ce.lse_square_scale != 0.0)
        .then(|| cpu::tensor_from(z, shape, cdt)?.to_device(x.device()))
        .transpose()?;
    if explicit {
        return Ok((CeOutput { loss, z_loss }, grads));
    }
    let op = FlceOp { ctx, loss, grads };
    let loss = match bias {
        Some(b) => x.apply_op3(w, b, op)?,
        None => x.apply_op2(w, op)?,
    };
    Ok((CeOutput { loss, z_loss }, None))
}

/// The same loss from plain candle ops: `x.matmul(Wᵀ) + b`, then
/// [`crate::cross_entropy::reference::cross_entropy`] (autograd through candle).
pub mod reference {
    use super::FlceOptions;
    use crate::cross_entropy::{reference, CeOutput};
    use candle_core::{Result, Tensor};

    /// `CE(x·Wᵀ + b, target)` with the full `[BT, V]` logits.
    pub fn fused_linear_cross_entropy(
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        target: &Tensor,
        opts: &FlceOptions,
    ) -> Result<CeOutput> {
        let mut logits = x.matmul(&w.t()?)?;
        if let Some(b) = bias {
            logits = logits.broadcast_add(b)?;
        }
        reference::cross_entropy(&logits, target, &opts.ce)
    }
}
