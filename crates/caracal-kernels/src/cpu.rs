//! Moving data between candle storage and the plain slices that the CPU
//! kernels work on: any float dtype, contiguous or strided, in; the input's
//! dtype out.

use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor};
use half::{bf16, f16};
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

/// Element offsets of a layout in logical (row-major) order.
fn offsets(layout: &Layout) -> Vec<usize> {
    let dims = layout.dims();
    let stride = layout.stride();
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let mut idx = vec![0usize; dims.len()];
    let mut off = layout.start_offset();
    for _ in 0..n {
        out.push(off);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            off += stride[d];
            if idx[d] < dims[d] {
                break;
            }
            off -= stride[d] * dims[d];
            idx[d] = 0;
        }
    }
    out
}

fn gather<S: Copy, R>(src: &[S], layout: &Layout, f: impl Fn(S) -> R) -> Vec<R> {
    match layout.contiguous_offsets() {
        Some((a, b)) => src[a..b].iter().map(|&v| f(v)).collect(),
        None => offsets(layout).into_iter().map(|o| f(src[o])).collect(),
    }
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
        other => candle_core::bail!(
            "expected a float tensor, got dtype {:?}",
            other.dtype()
        ),
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
        DType::BF16 => CpuStorage::BF16(v.into_iter().map(|x| bf16::from_f64(x.as_f64())).collect()),
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
