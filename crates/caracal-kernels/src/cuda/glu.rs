//! SwiGLU and GeGLU on CUDA: elementwise, 16-byte vector loads when the
//! length and the addresses allow.

use super::rt::{self, launch};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::{DType, Layout, Shape, Tensor};

type CResult<T> = candle_core::Result<T>;

/// Whether `n` elements of `dt` at all of `ptrs` can go as 16-byte vectors.
fn vectorizable(dt: DType, n: usize, ptrs: &[u64]) -> bool {
    let per = 16 / dt.size_in_bytes();
    n.is_multiple_of(per) && ptrs.iter().all(|p| p.is_multiple_of(16))
}

fn grid(dev: &CudaDevice, dt: DType, n: usize, vec: bool, block: usize) -> CResult<usize> {
    let items = if vec {
        n / (16 / dt.size_in_bytes())
    } else {
        n
    };
    rt::elem_grid(dev, items, block)
}

/// Forward `c = act(a)·b`; `gate` 0 is SiLU, 1 tanh-GELU.
pub fn fwd(
    a: &CudaStorage,
    la: &Layout,
    b: &CudaStorage,
    lb: &Layout,
    gate: i32,
) -> CResult<(CudaStorage, Shape)> {
    let dev = &a.device;
    let dt = a.dtype();
    let n = la.shape().elem_count();
    let (pa, pb) = (rt::ptr(a, la)?, rt::ptr(b, lb)?);
    let (c, pc) = rt::alloc_storage(dev, dt, n, &|| format!("glu output {:?} {dt:?}", la.dims()))?;
    let vec = vectorizable(dt, n, &[pa, pb, pc]);
    let block = 256;
    let g = grid(dev, dt, n, vec, block)?;
    launch!(dev, format!("glu_fwd_{}", rt::sfx(dt)?), rt::cfg(g, block);
        pa, pb, pc, n as i64, gate, vec as i32);
    Ok((c, la.shape().clone()))
}

/// Backward: `(da, db)`.
pub fn bwd(a: &Tensor, b: &Tensor, dc: &Tensor, gate: i32) -> CResult<(Tensor, Tensor)> {
    let dev = &rt::device_of(a)?;
    let dt = a.dtype();
    let n = a.elem_count();
    let (ha, hb, hg) = (rt::hold(a)?, rt::hold(b)?, rt::hold(dc)?);
    let what = || format!("glu gradient {:?} {dt:?}", a.dims());
    let (da, pda) = rt::new_tensor(dev, dt, a.shape().clone(), &what)?;
    let (db, pdb) = rt::new_tensor(dev, dt, a.shape().clone(), &what)?;
    let vec = vectorizable(dt, n, &[ha.ptr, hb.ptr, hg.ptr, pda, pdb]);
    let block = 256;
    let g = grid(dev, dt, n, vec, block)?;
    launch!(dev, format!("glu_bwd_{}", rt::sfx(dt)?), rt::cfg(g, block);
        ha.ptr, hb.ptr, hg.ptr, pda, pdb, n as i64, gate, vec as i32);
    Ok((da, db))
}
