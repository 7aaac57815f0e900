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
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor,
};
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

/// `acc[V, H] += dzᵀ·x` for `dz` `[n, V]` and `x` `[n, H]`, all row-major,
/// by one call to the `gemm` crate (the kernel candle itself runs on the
/// CPU) with `read_dst`, so the product is added in place.
fn accumulate_at_b<R: Real>(
    acc: &mut [R],
    dz: &[R],
    x: &[R],
    n: usize,
    v: usize,
    h: usize,
) -> candle_core::Result<()> {
    if acc.len() != v * h || dz.len() != n * v || x.len() != n * h {
        candle_core::bail!("fused_linear_cross_entropy: internal shape mismatch in the dW update");
    }
    if n == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three slices have the lengths checked above; `acc` is
    // [v, h] row-major (row stride h, column stride 1); dzᵀ is [v, n] read
    // from dz [n, v] (row stride 1, column stride v); x is [n, h] row-major.
    // R is f32 or f64, both supported by gemm.
    unsafe {
        gemm::gemm(
            v,
            h,
            n,
            acc.as_mut_ptr(),
            1,
            h as isize,
            true,
            dz.as_ptr(),
            v as isize,
            1,
            x.as_ptr(),
            1,
            h as isize,
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

/// The CPU slice of a contiguous tensor of scalar `R`.
fn with_slice<R: Real, T>(t: &Tensor, f: impl FnOnce(&[R]) -> T) -> candle_core::Result<T> {
    let (st, l) = t.storage_and_layout();
    let Storage::Cpu(cs) = &*st else {
        candle_core::bail!("the CPU kernels got a tensor on another device")
    };
    let v = cpu::read::<R>(cs, l)?;
    Ok(f(&v))
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
        let cdt = <R as Real>::DTYPE;
        let (bt, h) = self.x.dims2()?;
        let v = self.w.dim(0)?;
        let w = self.w.to_dtype(cdt)?; // a no-op for f32/f64
        let wt = w.t()?;
        let bias: Option<Vec<R>> = self.b.as_ref().map(cpu::tensor_read::<R>).transpose()?;
        let (params, weights) = self.spec.params::<R>();
        let row_scale: Option<Vec<R>> = row_scale.map(|s| s.iter().map(|&g| R::lit(g)).collect());
        let round_dw = (!self.accum_f32).then_some(self.w.dtype());

        let mut losses = Vec::with_capacity(bt);
        let mut dx_parts = Vec::new();
        let mut dw = if grads {
            vec![<R as Real>::zero(); v * h]
        } else {
            Vec::new()
        };
        let mut db = if grads && bias.is_some() {
            vec![<R as Real>::zero(); v]
        } else {
            Vec::new()
        };

        for r0 in (0..bt).step_by(self.chunk.max(1)) {
            let n = self.chunk.min(bt - r0);
            let targets = &self.spec.targets[r0..r0 + n];
            let scale = match (grads, &row_scale) {
                (false, _) => GradScale::None,
                (true, None) => GradScale::Uniform(<R as Real>::one()),
                (true, Some(s)) => GradScale::PerRow(&s[r0..r0 + n]),
            };

            // z_c = x_c·Wᵀ (+ b), then dz_c in place of a copy of it.
            let xc = self.x.narrow(0, r0, n)?.to_dtype(cdt)?;
            let logits = xc.matmul(&wt)?;
            let mut dz = vec![<R as Real>::zero(); n * v];
            let rows = with_slice::<R, _>(&logits, |z| {
                ce_rows(
                    &mut dz,
                    v,
                    targets,
                    &params,
                    weights.as_deref(),
                    Some(z),
                    bias.as_deref(),
                    scale,
                )
            })?;
            drop(logits);
            losses.extend(rows.iter().map(|r| RowLoss {
                loss: r.loss.as_f64(),
                z_loss: r.z_loss.as_f64(),
            }));
            if !grads {
                continue;
            }

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
            let dz_t = Tensor::from_vec(dz, (n, v), &Device::Cpu)?;
            // dx_c = dz_c·W.
            dx_parts.push(dz_t.matmul(&w)?);
            // dW += dz_cᵀ·x_c.
            if round_dw.is_none() {
                // One GEMM that accumulates straight into dW: no V×H
                // temporary and no extra pass over dW.
                with_slice::<R, _>(&dz_t, |dzs| {
                    with_slice::<R, _>(&xc, |xs| accumulate_at_b(&mut dw, dzs, xs, n, v, h))
                })???;
            } else {
                // Rounding dW to W's dtype after each chunk (Liger's bf16
                // accumulation), one vocabulary block at a time.
                for v0 in (0..v).step_by(VOCAB_BLOCK) {
                    let len = VOCAB_BLOCK.min(v - v0);
                    let part = dz_t.narrow(1, v0, len)?.t()?.matmul(&xc)?; // [len, H]
                    let acc = &mut dw[v0 * h..(v0 + len) * h];
                    with_slice::<R, _>(&part, |p| {
                        acc.par_chunks_mut(GRAIN)
                            .zip(p.par_chunks(GRAIN))
                            .for_each(|(a, p)| {
                                let dt = round_dw.unwrap_or(DType::F32);
                                a.iter_mut()
                                    .zip(p)
                                    .for_each(|(a, &p)| *a = round_to(dt, *a + p))
                            })
                    })?;
                }
            }
        }

        let grads = if grads {
            let dx = if dx_parts.is_empty() {
                Tensor::zeros((bt, h), self.x.dtype(), &Device::Cpu)?
            } else {
                Tensor::cat(&dx_parts, 0)?.to_dtype(self.x.dtype())?
            };
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
