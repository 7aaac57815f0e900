//! The fused linear cross-entropy pass on CUDA. Per chunk of `C` rows
//! (row-major throughout; cuBLAS sees the transposes):
//!
//! 1. `z = x_c·Wᵀ` into one reused `[C, V]` buffer of the input dtype (cuBLAS);
//! 2. the CE row kernel turns `z` into row losses and, in place, `dz`;
//! 3. `db += Σ_rows dz` (kernel), `dx_c = dz·W` (cuBLAS, straight into `dx`),
//!    `dW += dzᵀ·x_c` (cuBLAS with `beta = 1`, accumulating in place, in f32
//!    or in `W`'s dtype as `accum_f32` says).
//!
//! So the memory beyond the inputs is `dx`, `dW`, one `[C, V]` chunk and the
//! row losses, as in Liger-Kernel.

use super::blas::gemm;
use super::ce::{self, CeDev};
use super::rt::{self, launch};
use crate::cross_entropy::RowLoss;
use crate::fused_linear_ce::{Flce, Grads};
use candle_core::{DType, Tensor};

type CResult<T> = candle_core::Result<T>;

/// One pass over the chunks: per-row losses, and the gradients when `grads`
/// (row `i` scaled by `row_scale[i]` when given).
pub(crate) fn pass(
    ctx: &Flce,
    grads: bool,
    row_scale: Option<&[f64]>,
) -> CResult<(Vec<RowLoss<f64>>, Option<Grads>)> {
    let dev = &rt::device_of(&ctx.x)?;
    let dt = ctx.x.dtype();
    let es = dt.size_in_bytes() as u64;
    let (bt, h) = ctx.x.dims2()?;
    let v = ctx.w.dim(0)?;
    let chunk = ctx.chunk.clamp(1, bt.max(1));
    let (hx, hw) = (rt::hold(&ctx.x)?, rt::hold(&ctx.w)?);
    let hb = ctx.b.as_ref().map(rt::hold).transpose()?;
    let dce = CeDev::new(dev, &ctx.spec, 1.0)?;
    let row_g = row_scale
        .map(|s| ce::upload(dev, &s.iter().map(|&g| g as f32).collect::<Vec<_>>()))
        .transpose()?;
    let ((lt, lp), (zt, zp)) = ce::row_buffers(dev, bt)?;
    let (zbuf, pz) = rt::new_tensor(dev, dt, (chunk, v), &|| {
        format!("fused_linear_cross_entropy logits chunk [{chunk}, {v}] {dt:?}")
    })?;
    let acc_dt = if ctx.accum_f32 && matches!(dt, DType::BF16 | DType::F16) {
        DType::F32
    } else {
        dt
    };
    let mut out = None;
    if grads {
        let (dx, pdx) = rt::new_tensor(dev, dt, (bt, h), &|| {
            format!("fused_linear_cross_entropy dx [{bt}, {h}] {dt:?}")
        })?;
        let (dw, pdw) = rt::new_tensor(dev, acc_dt, (v, h), &|| {
            format!("fused_linear_cross_entropy dW [{v}, {h}] {acc_dt:?}")
        })?;
        let cdt = rt::compute_dtype(dt);
        let db = match &hb {
            Some(_) => Some(Tensor::zeros(
                v,
                cdt,
                &candle_core::Device::Cuda(dev.clone()),
            )?),
            None => None,
        };
        out = Some((dx, pdx, dw, pdw, db));
    }
    let pdb = match &out {
        Some((_, _, _, _, Some(db))) => rt::hold(db)?.ptr,
        _ => 0,
    };
    let pbias = hb.as_ref().map_or(0, |b| b.ptr);
    for (ci, r0) in (0..bt).step_by(chunk).enumerate() {
        let n = chunk.min(bt - r0);
        let pxc = hx.ptr + (r0 * h) as u64 * es;
        // z[n, V] = x_c[n, H]·W[V, H]ᵀ  (column-major: zᵀ = W·x_cᵀ).
        gemm(
            dev, dt, dt, true, false, v, n, h, hw.ptr, h, pxc, h, 0.0, pz, v,
        )?;
        let pg = row_g
            .as_ref()
            .map_or(0, |s| rt::slice_ptr(s) + (r0 * 4) as u64);
        let grad_to = if out.is_some() { pz } else { 0 };
        dce.run(
            dev,
            dt,
            pz,
            grad_to,
            pbias,
            pg,
            lp + (r0 * 4) as u64,
            zp + (r0 * 4) as u64,
            r0,
            n,
            v,
        )?;
        let Some((_, pdx, _, pdw, _)) = &out else {
            continue;
        };
        if pdb != 0 {
            launch!(dev, format!("colsum_acc_{}", rt::sfx(dt)?), rt::cfg(v.div_ceil(256), 256);
                pz, pdb, n as i32, v as i32);
        }
        // dx_c[n, H] = dz[n, V]·W[V, H]  (column-major: dx_cᵀ = Wᵀ·dzᵀ).
        let pdxc = pdx + (r0 * h) as u64 * es;
        gemm(
            dev, dt, dt, false, false, h, n, v, hw.ptr, h, pz, v, 0.0, pdxc, h,
        )?;
        // dW[V, H] += dzᵀ·x_c  (column-major: dWᵀ += x_cᵀ·dz).
        let beta = if ci == 0 { 0.0 } else { 1.0 };
        gemm(
            dev, dt, acc_dt, false, true, h, v, n, pxc, h, pz, v, beta, *pdw, h,
        )?;
    }
    drop(zbuf);
    let to_rows = |t: &Tensor| -> CResult<Vec<f32>> { t.to_vec1::<f32>() };
    let (l, z) = (to_rows(&lt)?, to_rows(&zt)?);
    let rows = l
        .iter()
        .zip(&z)
        .map(|(&loss, &z_loss)| RowLoss {
            loss: loss as f64,
            z_loss: z_loss as f64,
        })
        .collect();
    let grads = match out {
        None => None,
        Some((dx, _, dw, _, db)) => {
            let (dx, dw) = if bt == 0 {
                (dx.zeros_like()?, dw.zeros_like()?.to_dtype(dt)?)
            } else {
                (dx, dw.to_dtype(dt)?)
            };
            Some(Grads {
                dx,
                dw,
                db: db.map(|d| d.to_dtype(dt)).transpose()?,
            })
        }
    };
    Ok((rows, grads))
}
