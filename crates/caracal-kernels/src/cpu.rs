//! Moving data between candle storage and the plain slices that the CPU
//! kernels work on: any float dtype, contiguous or strided, in; the input's
//! dtype out.

use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;
use std::borrow::Cow;

/// Whether a dtype is one the kernels accept as a float input.
pub fn is_float(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
}

/// Error unless `dt` is a float dtype the kernels accept.
pub fn check_float(op: &str, what: &str, dt: DType) -> candle_core::Result<()> {
    if is_float(dt) {
        Ok(())
    } else {
        candle_core::bail!("{op}: {what} has dtype {dt:?}; expected f32, bf16, f16 or f64")
    }
}

/// Gather the elements of a strided layout in row-major order, row by row
/// in parallel (about 5× faster than a per-element offset table for the
/// transposed `[B, T, H, D] → [B, H, T, D]` layout that attention produces).
fn gather<S: Copy + Sync, T: Copy + Default + Send>(
    src: &[S],
    layout: &Layout,
    f: impl Fn(S) -> T + Sync,
) -> Vec<T> {
    if let Some((a, b)) = layout.contiguous_offsets() {
        return src[a..b].iter().map(|&v| f(v)).collect();
    }
    let (dims, stride) = (layout.dims(), layout.stride());
    let start = layout.start_offset();
    let Some((&n, lead)) = dims.split_last() else {
        return vec![f(src[start])];
    };
    let sn = stride[dims.len() - 1];
    let mut out = vec![T::default(); layout.shape().elem_count()];
    if out.is_empty() {
        return out;
    }
    let rows = rows_per_task(n);
    out.par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(ti, ob)| {
            for (k, orow) in ob.chunks_exact_mut(n).enumerate() {
                // Offset of row `ti·rows + k` from its multi-index over `lead`.
                let (mut r, mut off) = (ti * rows + k, start);
                for d in (0..lead.len()).rev() {
                    off += (r % lead[d]) * stride[d];
                    r /= lead[d];
                }
                if sn == 1 {
                    for (o, &v) in orow.iter_mut().zip(&src[off..off + n]) {
                        *o = f(v);
                    }
                } else {
                    for (j, o) in orow.iter_mut().enumerate() {
                        *o = f(src[off + j * sn]);
                    }
                }
            }
        });
    out
}

/// The elements of `s` under `layout`, in row-major order, as `R`. Borrows
/// when the storage already holds `R` contiguously.
pub fn read<'a, R: Real>(s: &'a CpuStorage, layout: &Layout) -> candle_core::Result<Cow<'a, [R]>> {
    if let (Some(v), Some((a, b))) = (R::slice_of(s), layout.contiguous_offsets()) {
        return Ok(Cow::Borrowed(&v[a..b]));
    }
    Ok(Cow::Owned(match s {
        CpuStorage::F32(v) => gather(v, layout, |x| R::lit(x as f64)),
        CpuStorage::F64(v) => gather(v, layout, R::lit),
        CpuStorage::BF16(v) => gather(v, layout, |x: bf16| R::lit(x.to_f64())),
        CpuStorage::F16(v) => gather(v, layout, |x: f16| R::lit(x.to_f64())),
        other => candle_core::bail!("expected a float tensor, got dtype {:?}", other.dtype()),
    }))
}

/// Integer targets (u8/u32/i64/i32) as `i64`, in row-major order.
pub fn read_index(s: &CpuStorage, layout: &Layout) -> candle_core::Result<Vec<i64>> {
    Ok(match s {
        CpuStorage::I64(v) => gather(v, layout, |x| x),
        CpuStorage::U32(v) => gather(v, layout, |x| x as i64),
        CpuStorage::I32(v) => gather(v, layout, |x| x as i64),
        CpuStorage::U8(v) => gather(v, layout, |x| x as i64),
        other => candle_core::bail!(
            "targets have dtype {:?}; expected an integer dtype (i64, u32, i32 or u8)",
            other.dtype()
        ),
    })
}

/// Convert kernel output back to storage of dtype `dt`.
pub fn write<R: Real>(v: Vec<R>, dt: DType) -> candle_core::Result<CpuStorage> {
    if dt == R::DTYPE {
        return Ok(R::into_storage(v));
    }
    Ok(match dt {
        DType::F32 => CpuStorage::F32(v.into_iter().map(|x| x.as_f64() as f32).collect()),
        DType::F64 => CpuStorage::F64(v.into_iter().map(|x| x.as_f64()).collect()),
        DType::BF16 => {
            CpuStorage::BF16(v.into_iter().map(|x| bf16::from_f64(x.as_f64())).collect())
        }
        DType::F16 => CpuStorage::F16(v.into_iter().map(|x| f16::from_f64(x.as_f64())).collect()),
        other => candle_core::bail!("cannot write kernel output as {other:?}"),
    })
}

/// The elements of a CPU tensor as `R` (used in backward passes, where the
/// inputs arrive as tensors rather than storage).
pub fn tensor_read<R: Real>(t: &Tensor) -> candle_core::Result<Vec<R>> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        candle_core::Storage::Cpu(cs) => Ok(read::<R>(cs, l)?.into_owned()),
        _ => candle_core::bail!("the CPU kernels got a tensor on another device"),
    }
}

/// Integer targets of a CPU tensor as `i64`.
pub fn tensor_read_index(t: &Tensor) -> candle_core::Result<Vec<i64>> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        candle_core::Storage::Cpu(cs) => read_index(cs, l),
        _ => candle_core::bail!("the CPU kernels got a tensor on another device"),
    }
}

/// A CPU tensor of dtype `dt` from kernel output.
pub fn tensor_from<R: Real + candle_core::WithDType>(
    v: Vec<R>,
    shape: impl Into<Shape>,
    dt: DType,
) -> candle_core::Result<Tensor> {
    let t = Tensor::from_vec(v, shape, &Device::Cpu)?;
    if dt == <R as Real>::DTYPE {
        Ok(t)
    } else {
        t.to_dtype(dt)
    }
}

// Row helpers shared by the kernels.

/// Elements per rayon task (rows are grouped until a task holds about this
/// many elements).
pub(crate) const GRAIN: usize = 1 << 14;

/// Rows per rayon task for rows of length `n`: at least 1.
pub(crate) fn rows_per_task(n: usize) -> usize {
    (GRAIN / n.max(1)).max(1)
}

/// Rows per block for reductions over rows (`dw`, `db`): a few blocks per
/// thread, so each thread keeps one partial sum per block it runs.
pub(crate) fn rows_per_block(rows: usize) -> usize {
    let blocks = (4 * rayon::current_num_threads()).max(1);
    rows.div_ceil(blocks).max(1)
}

/// Sum the per-block partials of a row reduction.
pub(crate) fn sum_partials<R: Real>(parts: Vec<Vec<R>>, n: usize) -> Vec<R> {
    let mut out = vec![R::zero(); n];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Run `f` on the elements of a CPU tensor as `R`, in row-major order,
/// borrowing the storage when it already holds `R` contiguously (no copy on
/// the f32 hot path, unlike `cpu::tensor_read`).
pub(crate) fn with_slice<R: Real, T>(
    t: &Tensor,
    f: impl FnOnce(&[R]) -> candle_core::Result<T>,
) -> candle_core::Result<T> {
    let (s, l) = t.storage_and_layout();
    match &*s {
        candle_core::Storage::Cpu(cs) => {
            let v: Cow<'_, [R]> = read::<R>(cs, l)?;
            f(&v)
        }
        _ => candle_core::bail!("the CPU kernels got a tensor on another device"),
    }
}

/// `Σ a_i·b_i` with eight independent accumulators, so that the compiler
/// can vectorize it.
#[inline]
pub(crate) fn dot<R: Real>(a: &[R], b: &[R]) -> R {
    let mut acc = [R::zero(); 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s = R::zero();
    for (x, y) in ra.iter().zip(rb) {
        s += *x * *y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// `Σ a_i` with eight independent accumulators.
#[inline]
pub(crate) fn sum<R: Real>(a: &[R]) -> R {
    let mut acc = [R::zero(); 8];
    let ca = a.chunks_exact(8);
    let ra = ca.remainder();
    for x in ca {
        for j in 0..8 {
            acc[j] += x[j];
        }
    }
    let mut s = R::zero();
    for x in ra {
        s += *x;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// Run `$body` with `$R` bound to `f64` for f64 inputs and `f32` otherwise.
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch_real {
    ($dt:expr, $R:ident => $body:expr) => {
        if $dt == candle_core::DType::F64 {
            type $R = f64;
            $body
        } else {
            type $R = f32;
            $body
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_reads_follow_logical_order() {
        let t = Tensor::arange(0f32, 6., &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap()
            .t()
            .unwrap();
        let v: Vec<f32> = tensor_read(&t).unwrap();
        assert_eq!(v, vec![0., 3., 1., 4., 2., 5.]);
        let n = t.narrow(0, 1, 2).unwrap();
        let v: Vec<f64> = tensor_read(&n).unwrap();
        assert_eq!(v, vec![1., 4., 2., 5.]);
    }
}
