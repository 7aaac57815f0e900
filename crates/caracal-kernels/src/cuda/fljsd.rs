//! The fused linear JSD on CUDA: per chunk, both logit blocks by candle's
//! cuBLAS matmul, widened to the compute dtype; one kernel per row does both
//! log-softmaxes, the JSD row and the gradient through the student's
//! log-softmax (`dz`); then `dx_c = dz·W_s` and `dW_s += dzᵀ·x_s,c` (f32).

use super::rt::{self, launch};
use crate::fused_linear_jsd::FljsdOptions;
use candle_core::{DType, Tensor};

type CResult<T> = candle_core::Result<T>;

/// `(loss, dx_s, dW_s)` for student `xs [BT, Hs]`, `ws [V, Hs]` and teacher
/// `xt [BT, Ht]`, `wt [V, Ht]` on one CUDA device.
pub(crate) fn compute(
    xs: &Tensor,
    ws: &Tensor,
    xt: &Tensor,
    wt: &Tensor,
    opts: &FljsdOptions,
    labels: Option<&[i64]>,
    inv_n: f64,
) -> CResult<(f64, Tensor, Tensor)> {
    let dev = &rt::device_of(xs)?;
    let dt = xs.dtype();
    let cdt = rt::compute_dtype(dt);
    let (bt, hs) = xs.dims2()?;
    let v = ws.dim(0)?;
    let (xs, ws) = (xs.detach().contiguous()?, ws.detach().contiguous()?);
    let (xt, wt) = (xt.detach().contiguous()?, wt.detach().contiguous()?);
    let (ws_t, wt_t) = (ws.t()?, wt.t()?);
    let chunk = opts
        .chunk_rows
        .unwrap_or_else(|| crate::chunk::liger_chunk_rows(bt, hs, v))
        .clamp(1, bt.max(1));
    let lab = labels.map(|l| super::ce::upload(dev, l)).transpose()?;
    let plab = lab.as_ref().map_or(0, rt::slice_ptr);
    let (rows_loss, pl) = rt::new_tensor(dev, DType::F64, bt.max(1), &|| {
        format!("fused_linear_jsd row losses [{bt}]")
    })?;
    let mut dw = Tensor::zeros((v, hs), cdt, xs.device())?;
    let mut dx_parts = Vec::with_capacity(bt.div_ceil(chunk));
    let name = format!("fljsd_rows_{}", rt::sfx(cdt)?);
    for start in (0..bt).step_by(chunk) {
        let c = chunk.min(bt - start);
        let xs_c = xs.narrow(0, start, c)?;
        let s = xs_c.matmul(&ws_t)?.to_dtype(cdt)?.contiguous()?;
        let t = xt
            .narrow(0, start, c)?
            .matmul(&wt_t)?
            .to_dtype(cdt)?
            .contiguous()?;
        let (hs_, ht_) = (rt::hold(&s)?, rt::hold(&t)?);
        let block = rt::row_block(v, 32);
        let pl_c = pl + (start * 8) as u64;
        let plab_c = if plab == 0 {
            0
        } else {
            plab + (start * 8) as u64
        };
        launch!(dev, name, rt::cfg(c, block);
            hs_.ptr, ht_.ptr, plab_c, opts.ignore_index, pl_c, c as i32, v as i32,
            1.0 / opts.temperature, opts.beta, inv_n);
        drop((hs_, ht_, t));
        // `s` now holds dz.
        dx_parts.push(s.to_dtype(dt)?.matmul(&ws)?);
        dw = (dw + s.t()?.matmul(&xs_c.to_dtype(cdt)?)?)?;
    }
    let loss = if bt == 0 {
        0.0
    } else {
        rows_loss.sum_all()?.to_scalar::<f64>()? * inv_n
    };
    let dx = if dx_parts.is_empty() {
        Tensor::zeros((bt, hs), dt, xs.device())?
    } else {
        Tensor::cat(&dx_parts, 0)?
    };
    Ok((loss, dx, dw.to_dtype(dt)?))
}
