//! Cross-entropy rows on CUDA: one block per row, an online softmax in one
//! read pass, then the gradient pass (which may overwrite the logits, as
//! Liger does). Shared with the fused linear cross-entropy.

use super::rt::{self, launch};
use crate::cross_entropy::CeSpec;
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{DType, Shape, Storage, Tensor};

type CResult<T> = candle_core::Result<T>;

/// `CeParams` in kernels.cu (field order and types must match).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CeParams {
    one_minus_ls: f32,
    eps: f32,
    lambda: f32,
    softcap: f32,
    weight_sum: f32,
    ce_scale: f32,
    z_scale: f32,
    g: f32,
    has_softcap: i32,
}

// SAFETY: a plain `#[repr(C)]` struct of 4-byte scalars, as the kernel declares it.
unsafe impl DeviceRepr for CeParams {}

/// The targets, class weights and scalars of one CE evaluation, on the device.
pub struct CeDev {
    pub targets: CudaSlice<i32>,
    pub weights: Option<CudaSlice<f32>>,
    pub params: CeParams,
    /// Whether the vectorized kernel applies (no weights, smoothing or softcap).
    plain: bool,
}

impl CeDev {
    /// Upload `spec` to `dev`; `g` is the uniform gradient scale.
    pub fn new(dev: &CudaDevice, spec: &CeSpec, g: f64) -> CResult<Self> {
        let t: Vec<i32> = spec
            .targets
            .iter()
            .map(|y| y.map_or(-1, |y| y as i32))
            .collect();
        let targets = dev.clone_htod(&t)?;
        let (p, w) = spec.params::<f32>();
        let weights = match w {
            Some(w) => Some(dev.clone_htod(&w)?),
            None => None,
        };
        let plain = weights.is_none() && p.softcap.is_none() && p.eps == 0.0;
        Ok(CeDev {
            targets,
            weights,
            params: CeParams {
                one_minus_ls: p.one_minus_ls,
                eps: p.eps,
                lambda: p.lambda,
                softcap: p.softcap.unwrap_or(1.0),
                weight_sum: p.weight_sum,
                ce_scale: p.ce_scale,
                z_scale: p.z_scale,
                g: g as f32,
                has_softcap: p.softcap.is_some() as i32,
            },
            plain,
        })
    }

    /// Run the row kernel over `rows` rows of `v` logits at `z` (dtype `dt`),
    /// targets from row `row0`. Writes the gradient to `grad` (may equal `z`)
    /// unless it is 0, and the row losses to `loss`/`zloss` (f32 addresses of
    /// `rows` elements). `bias` (0 for none) is added to every row;
    /// `row_g` (0 for none) scales row `r` by `row_g[r]`.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        dev: &CudaDevice,
        dt: DType,
        z: u64,
        grad: u64,
        bias: u64,
        row_g: u64,
        loss: u64,
        zloss: u64,
        row0: usize,
        rows: usize,
        v: usize,
    ) -> CResult<()> {
        if rows == 0 {
            return Ok(());
        }
        let tgt = rt::slice_ptr(&self.targets) + (row0 * 4) as u64;
        let per = 16 / dt.size_in_bytes();
        let aligned = (v * dt.size_in_bytes()).is_multiple_of(16)
            && z.is_multiple_of(16)
            && grad.is_multiple_of(16);
        let block = rt::row_block(v, 32);
        let grid = rows.min(rt::sm_count(dev)? * 64);
        let c = rt::cfg(grid, block);
        let p = self.params;
        if self.plain && bias == 0 && aligned && v.is_multiple_of(per) {
            launch!(dev, format!("ce_rows_vec_{}", rt::sfx(dt)?), c;
                z, grad, tgt, row_g, loss, zloss, rows as i32, v as i32, p);
        } else {
            let w = self.weights.as_ref().map_or(0, rt::slice_ptr);
            launch!(dev, format!("ce_rows_{}", rt::sfx(dt)?), c;
                z, grad, tgt, bias, w, row_g, loss, zloss, rows as i32, v as i32, p);
        }
        Ok(())
    }
}

/// Per-row f32 loss buffers of `n` rows: `(loss, zloss)` tensors and addresses.
pub fn row_buffers(dev: &CudaDevice, n: usize) -> CResult<((Tensor, u64), (Tensor, u64))> {
    let what = || format!("cross-entropy row losses [{n}]");
    Ok((
        rt::new_tensor(dev, DType::F32, n, &what)?,
        rt::new_tensor(dev, DType::F32, n, &what)?,
    ))
}

/// Reduce per-row losses (already divided by `N`) as `reduction` asks, in
/// `out_dt`: `[n]` for none, else a scalar sum.
pub fn reduce(rows: &Tensor, none: bool, out_dt: DType) -> CResult<Tensor> {
    let t = if none { rows.clone() } else { rows.sum_all()? };
    t.to_dtype(out_dt)
}

/// The CUDA storage behind `t` (a copy of the handle, not of the data when
/// `t` is contiguous from offset 0).
pub fn storage_of(t: &Tensor) -> CResult<(CudaStorage, Shape)> {
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    match &*st {
        Storage::Cuda(cs) => Ok((cs.try_clone(l)?, t.shape().clone())),
        _ => candle_core::bail!("expected a CUDA tensor"),
    }
}

/// Upload helper used by the ops: `Vec<T>` to the device.
pub fn upload<T: DeviceRepr + 'static>(dev: &CudaDevice, v: &[T]) -> CResult<CudaSlice<T>> {
    dev.cuda_stream().clone_htod(v).w()
}
