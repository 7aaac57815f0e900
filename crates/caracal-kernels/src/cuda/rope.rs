//! RoPE on CUDA: one thread per rotated pair; the backward is the same
//! kernel with the transpose rotation. `cos`/`sin` travel in the compute
//! dtype (the wrapper converts them), as the CPU kernel reads them.

use super::rt::{self, launch};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{DType, Layout, Shape, Tensor};

type CResult<T> = candle_core::Result<T>;

#[allow(clippy::too_many_arguments)]
fn run(
    dev: &CudaDevice,
    dt: DType,
    px: u64,
    pc: u64,
    ps: u64,
    py: u64,
    xd: &[usize],
    cd: &[usize],
    inv: bool,
) -> CResult<()> {
    let (h, t, d) = (xd[1], xd[2], xd[3]);
    let batched = cd.len() == 3 && cd[0] > 1;
    let pairs = xd.iter().product::<usize>() / 2;
    let block = 256;
    let grid = rt::elem_grid(dev, pairs, block)?;
    launch!(dev, format!("rope_{}", rt::sfx(dt)?), rt::cfg(grid, block);
        px, pc, ps, py, pairs as i64, h as i32, t as i32, d as i32, batched as i32, inv as i32);
    Ok(())
}

/// Forward: rotate contiguous `x` `[B, H, T, D]`.
pub fn fwd(
    x: &CudaStorage,
    lx: &Layout,
    cos: &CudaStorage,
    lc: &Layout,
    sin: &CudaStorage,
    ls: &Layout,
) -> CResult<(CudaStorage, Shape)> {
    let dev = &x.device;
    let dt = x.dtype();
    if cos.dtype() != rt::compute_dtype(dt) || sin.dtype() != cos.dtype() {
        candle_core::bail!("rope: cos/sin must be in the compute dtype on CUDA");
    }
    let (y, py) = rt::alloc_storage(dev, dt, lx.shape().elem_count(), &|| {
        format!("rope output {:?} {dt:?}", lx.dims())
    })?;
    run(
        dev,
        dt,
        rt::ptr(x, lx)?,
        rt::ptr(cos, lc)?,
        rt::ptr(sin, ls)?,
        py,
        lx.dims(),
        lc.dims(),
        false,
    )?;
    Ok((y, lx.shape().clone()))
}

/// Backward: `dx` from `dy` by the transpose rotation.
pub fn bwd(x: &Tensor, cos: &Tensor, sin: &Tensor, dy: &Tensor) -> CResult<Tensor> {
    let dev = &rt::device_of(x)?;
    let dt = x.dtype();
    let (hg, hc, hs) = (rt::hold(dy)?, rt::hold(cos)?, rt::hold(sin)?);
    let (dx, pdx) = rt::new_tensor(dev, dt, x.shape().clone(), &|| {
        format!("rope dx {:?} {dt:?}", x.dims())
    })?;
    run(
        dev,
        dt,
        hg.ptr,
        hc.ptr,
        hs.ptr,
        pdx,
        x.dims(),
        cos.dims(),
        true,
    )?;
    Ok(dx)
}
