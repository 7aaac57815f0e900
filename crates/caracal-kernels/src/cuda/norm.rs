//! RMSNorm and LayerNorm on CUDA: one block per row forward; the backward
//! splits rows over about two blocks per SM, each keeping its columns' `dw`
//! (and `db`) sums in registers, then one column-sum kernel.

use super::rt::{self, launch};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{DType, Layout, Shape, Tensor};

type CResult<T> = candle_core::Result<T>;

/// The most columns the backward keeps per thread (`RMS_COLS` in kernels.cu).
const COLS: usize = 16;

fn rows_and_n(shape: &Shape) -> (usize, usize) {
    let n = shape.dims().last().copied().unwrap_or(1);
    (shape.elem_count() / n.max(1), n)
}

fn check_bwd_width(op: &str, n: usize) -> CResult<usize> {
    let block = rt::row_block(n, 8);
    if n > COLS * block {
        candle_core::bail!(
            "{op}: the CUDA backward handles rows of at most {} elements, got {n}",
            COLS * 1024
        );
    }
    Ok(block)
}

/// Blocks for a backward over `rows` rows with `block` threads.
fn bwd_grid(dev: &CudaDevice, rows: usize, block: usize) -> CResult<usize> {
    Ok(rows.clamp(1, rt::sm_count(dev)? * (2048 / block).max(1)))
}

/// Sum `parts` rows of `n` compute-type partials into a new `[n]` tensor of `dt`.
fn column_sum(
    dev: &CudaDevice,
    part: u64,
    parts: usize,
    n: usize,
    dt: DType,
    what: &dyn Fn() -> String,
) -> CResult<Tensor> {
    let (out, po) = rt::new_tensor(dev, dt, n, what)?;
    launch!(dev, format!("colsum_{}", rt::sfx(dt)?), rt::cfg(n.div_ceil(256), 256);
        part, po, parts as i32, n as i32);
    Ok(out)
}

/// Threads per row for the register-resident kernels (one 16-byte vector
/// each), when `n` and the addresses allow them.
fn vec_block(dt: DType, n: usize, ptrs: &[u64]) -> Option<usize> {
    let per = 16 / dt.size_in_bytes();
    let nv = n / per;
    (n.is_multiple_of(per) && nv <= 1024 && ptrs.iter().all(|p| p.is_multiple_of(16)))
        .then(|| nv.div_ceil(32).max(1) * 32)
}

/// RMSNorm forward of contiguous `x` with `w`.
pub fn rms_fwd(
    x: &CudaStorage,
    lx: &Layout,
    w: &CudaStorage,
    lw: &Layout,
    eps: f64,
    offset: f64,
    mode: i32,
) -> CResult<(CudaStorage, Shape)> {
    let dev = &x.device;
    let dt = x.dtype();
    let (rows, n) = rows_and_n(lx.shape());
    let (px, pw) = (rt::ptr(x, lx)?, rt::ptr(w, lw)?);
    let (y, py) = rt::alloc_storage(dev, dt, rows * n, &|| {
        format!("rms_norm output {:?} {dt:?}", lx.dims())
    })?;
    if let Some(block) = vec_block(dt, n, &[px, pw, py]) {
        let grid = bwd_grid(dev, rows, block)?;
        launch!(dev, format!("rms_fwd_v_{}", rt::sfx(dt)?), rt::cfg(grid, block);
            px, pw, py, rows as i32, n as i32, eps as f32, offset as f32, mode);
        return Ok((y, lx.shape().clone()));
    }
    let block = rt::row_block(n, 8);
    launch!(dev, format!("rms_fwd_{}", rt::sfx(dt)?), rt::cfg(rows, block);
        px, pw, py, rows as i32, n as i32, eps as f32, offset as f32, mode);
    Ok((y, lx.shape().clone()))
}

/// RMSNorm backward: `(dx, dw)`.
pub fn rms_bwd(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    eps: f64,
    offset: f64,
    mode: i32,
) -> CResult<(Tensor, Tensor)> {
    let dev = &rt::device_of(x)?;
    let dt = x.dtype();
    let (rows, n) = rows_and_n(x.shape());
    let (hx, hw, hg) = (rt::hold(x)?, rt::hold(w)?, rt::hold(dy)?);
    let shape = || format!("{:?} {dt:?}", x.dims());
    let (dx, pdx) = rt::new_tensor(dev, dt, x.shape().clone(), &|| {
        format!("rms_norm dx {}", shape())
    })?;
    let vec = vec_block(dt, n, &[hx.ptr, hw.ptr, hg.ptr, pdx]);
    let block = match vec {
        Some(b) => b,
        None => check_bwd_width("rms_norm", n)?,
    };
    let grid = bwd_grid(dev, rows, block)?;
    let name = if vec.is_some() {
        "rms_bwd_v"
    } else {
        "rms_bwd"
    };
    let (part, pp) = rt::new_tensor(dev, rt::compute_dtype(dt), (grid, n), &|| {
        format!("rms_norm dw partial sums [{grid}, {n}]")
    })?;
    launch!(dev, format!("{name}_{}", rt::sfx(dt)?), rt::cfg(grid, block);
        hx.ptr, hw.ptr, hg.ptr, pdx, pp, rows as i32, n as i32, eps as f32, offset as f32, mode);
    let dw = column_sum(dev, pp, grid, n, dt, &|| format!("rms_norm dw [{n}]"))?;
    drop(part);
    Ok((dx, dw))
}

/// LayerNorm forward of contiguous `x` with `w` and `b`.
#[allow(clippy::too_many_arguments)]
pub fn ln_fwd(
    x: &CudaStorage,
    lx: &Layout,
    w: &CudaStorage,
    lw: &Layout,
    b: &CudaStorage,
    lb: &Layout,
    eps: f64,
) -> CResult<(CudaStorage, Shape)> {
    let dev = &x.device;
    let dt = x.dtype();
    let (rows, n) = rows_and_n(lx.shape());
    let (px, pw, pb) = (rt::ptr(x, lx)?, rt::ptr(w, lw)?, rt::ptr(b, lb)?);
    let (y, py) = rt::alloc_storage(dev, dt, rows * n, &|| {
        format!("layer_norm output {:?} {dt:?}", lx.dims())
    })?;
    let block = rt::row_block(n, 8);
    launch!(dev, format!("ln_fwd_{}", rt::sfx(dt)?), rt::cfg(rows, block);
        px, pw, pb, py, rows as i32, n as i32, eps as f32);
    Ok((y, lx.shape().clone()))
}

/// LayerNorm backward: `(dx, dw, db)`.
pub fn ln_bwd(x: &Tensor, w: &Tensor, dy: &Tensor, eps: f64) -> CResult<(Tensor, Tensor, Tensor)> {
    let dev = &rt::device_of(x)?;
    let dt = x.dtype();
    let (rows, n) = rows_and_n(x.shape());
    let block = check_bwd_width("layer_norm", n)?;
    let grid = bwd_grid(dev, rows, block)?;
    let (hx, hw, hg) = (rt::hold(x)?, rt::hold(w)?, rt::hold(dy)?);
    let (dx, pdx) = rt::new_tensor(dev, dt, x.shape().clone(), &|| {
        format!("layer_norm dx {:?} {dt:?}", x.dims())
    })?;
    let cdt = rt::compute_dtype(dt);
    let what = || format!("layer_norm dw/db partial sums [{grid}, {n}]");
    let (pw_t, ppw) = rt::new_tensor(dev, cdt, (grid, n), &what)?;
    let (pb_t, ppb) = rt::new_tensor(dev, cdt, (grid, n), &what)?;
    launch!(dev, format!("ln_bwd_{}", rt::sfx(dt)?), rt::cfg(grid, block);
        hx.ptr, hw.ptr, hg.ptr, pdx, ppw, ppb, rows as i32, n as i32, eps as f32);
    let dw = column_sum(dev, ppw, grid, n, dt, &|| format!("layer_norm dw [{n}]"))?;
    let db = column_sum(dev, ppb, grid, n, dt, &|| format!("layer_norm db [{n}]"))?;
    drop((pw_t, pb_t));
    Ok((dx, dw, db))
}
