//! JSD and KL divergence on CUDA: grid-stride elementwise kernels, loss
//! sums as one f64 partial per block, finished by candle on the device.

use super::rt::{self, launch};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{DType, Layout, Tensor};

type CResult<T> = candle_core::Result<T>;

const BLOCK: usize = 256;

fn partials(dev: &CudaDevice, grid: usize, op: &str) -> CResult<(Tensor, u64)> {
    rt::new_tensor(dev, DType::F64, grid, &|| {
        format!("{op} partial sums [{grid}]")
    })
}

/// JSD forward: `(loss, ∂loss/∂x)`; the loss is a scalar of `x`'s dtype.
/// `inv_n` is `1/N` over the kept rows.
#[allow(clippy::too_many_arguments)]
pub fn jsd_fwd(
    x: &CudaStorage,
    lx: &Layout,
    y: &CudaStorage,
    ly: &Layout,
    beta: f64,
    ignore_index: i64,
    labels: Option<&[i64]>,
    inv_n: f64,
) -> CResult<(Tensor, Tensor)> {
    let dev = &x.device;
    let dt = x.dtype();
    let (_, v) = lx.shape().dims2()?;
    let n = lx.shape().elem_count();
    let lab = labels.map(|l| super::ce::upload(dev, l)).transpose()?;
    let (grad, pg) = rt::new_tensor(dev, dt, lx.shape().clone(), &|| {
        format!("jsd gradient {:?} {dt:?}", lx.dims())
    })?;
    let grid = rt::elem_grid(dev, n, BLOCK)?;
    let (part, pp) = partials(dev, grid, "jsd")?;
    let plab = lab.as_ref().map_or(0, rt::slice_ptr);
    launch!(dev, format!("jsd_{}", rt::sfx(dt)?), rt::cfg(grid, BLOCK);
        rt::ptr(x, lx)?, rt::ptr(y, ly)?, pg, plab, ignore_index, pp, n as i64, v as i32,
        beta, inv_n);
    let loss = (part.sum_all()? * inv_n)?.to_dtype(dt)?;
    Ok((loss, grad))
}

/// KL forward: the pointwise losses (`pointwise`), or their sum times `scale`
/// as a scalar of `x`'s dtype.
pub fn kl_fwd(
    x: &CudaStorage,
    lx: &Layout,
    y: &CudaStorage,
    ly: &Layout,
    log_target: bool,
    pointwise: bool,
    scale: f64,
) -> CResult<Tensor> {
    let dev = &x.device;
    let dt = x.dtype();
    let n = lx.shape().elem_count();
    let grid = rt::elem_grid(dev, n, BLOCK)?;
    let (px, py) = (rt::ptr(x, lx)?, rt::ptr(y, ly)?);
    let name = format!("kl_fwd_{}", rt::sfx(dt)?);
    if pointwise {
        let (out, po) = rt::new_tensor(dev, dt, lx.shape().clone(), &|| {
            format!("kl_div output {:?} {dt:?}", lx.dims())
        })?;
        launch!(dev, name, rt::cfg(grid, BLOCK);
            px, py, po, 0u64, n as i64, log_target as i32);
        return Ok(out);
    }
    let (part, pp) = partials(dev, grid, "kl_div")?;
    launch!(dev, name, rt::cfg(grid, BLOCK);
        px, py, 0u64, pp, n as i64, log_target as i32);
    (part.sum_all()? * scale)?.to_dtype(dt)
}

/// KL backward: `dx = −weight(y)·g` with `g` elementwise (`Some`) or the
/// scalar `s`.
pub fn kl_bwd(
    x: &Tensor,
    y: &Tensor,
    g: Option<&Tensor>,
    s: f64,
    log_target: bool,
) -> CResult<Tensor> {
    let dev = &rt::device_of(x)?;
    let dt = x.dtype();
    let n = x.elem_count();
    let hy = rt::hold(y)?;
    let hg = g.map(rt::hold).transpose()?;
    let (dx, pdx) = rt::new_tensor(dev, dt, x.shape().clone(), &|| {
        format!("kl_div dx {:?} {dt:?}", x.dims())
    })?;
    let grid = rt::elem_grid(dev, n, BLOCK)?;
    let pg = hg.as_ref().map_or(0, |h| h.ptr);
    launch!(dev, format!("kl_bwd_{}", rt::sfx(dt)?), rt::cfg(grid, BLOCK);
        hy.ptr, pg, pdx, n as i64, s, log_target as i32);
    Ok(dx)
}
