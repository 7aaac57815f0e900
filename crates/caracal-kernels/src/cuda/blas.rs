//! One cuBLAS GEMM call on candle's handle and stream, over raw addresses,
//! with f32 (f64 for f64) accumulation and a storage dtype per operand.

use candle_core::cuda_backend::cudarc::cublas::{result, sys};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::DType;
use std::ffi::c_void;

type CResult<T> = candle_core::Result<T>;

fn data_type(dt: DType) -> CResult<sys::cudaDataType> {
    Ok(match dt {
        DType::F32 => sys::cudaDataType::CUDA_R_32F,
        DType::F64 => sys::cudaDataType::CUDA_R_64F,
        DType::BF16 => sys::cudaDataType::CUDA_R_16BF,
        DType::F16 => sys::cudaDataType::CUDA_R_16F,
        other => candle_core::bail!("no cuBLAS GEMM for {other:?}"),
    })
}

/// Column-major `C[m, n] = op(A)·op(B) + beta·C` (cuBLAS conventions):
/// `A`, `B` of dtype `ab`, `C` of dtype `c`; `ta`/`tb` transpose.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    dev: &CudaDevice,
    ab: DType,
    c_dt: DType,
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: u64,
    lda: usize,
    b: u64,
    ldb: usize,
    beta: f64,
    c: u64,
    ldc: usize,
) -> CResult<()> {
    let op = |t: bool| {
        if t {
            sys::cublasOperation_t::CUBLAS_OP_T
        } else {
            sys::cublasOperation_t::CUBLAS_OP_N
        }
    };
    for (what, v) in [
        ("m", m),
        ("n", n),
        ("k", k),
        ("lda", lda),
        ("ldb", ldb),
        ("ldc", ldc),
    ] {
        if v > i32::MAX as usize {
            candle_core::bail!("GEMM dimension {what} = {v} exceeds cuBLAS's 32-bit limit");
        }
    }
    let blas = dev.cublas_handle();
    let f64_math = ab == DType::F64;
    let (alpha32, beta32) = (1f32, beta as f32);
    let (alpha64, beta64) = (1f64, beta);
    let (pa, pb): (*const c_void, *const c_void) = if f64_math {
        (&alpha64 as *const f64 as _, &beta64 as *const f64 as _)
    } else {
        (&alpha32 as *const f32 as _, &beta32 as *const f32 as _)
    };
    let compute = if f64_math {
        sys::cublasComputeType_t::CUBLAS_COMPUTE_64F
    } else {
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
    };
    // SAFETY: the callers pass addresses of live buffers holding at least the
    // elements the GEMM reads (A, B) and writes (C) with these leading
    // dimensions, on the device whose handle and stream this uses.
    unsafe {
        result::gemm_ex(
            *blas.handle(),
            op(ta),
            op(tb),
            m as i32,
            n as i32,
            k as i32,
            pa,
            a as *const c_void,
            data_type(ab)?,
            lda as i32,
            b as *const c_void,
            data_type(ab)?,
            ldb as i32,
            pb,
            c as *mut c_void,
            data_type(c_dt)?,
            ldc as i32,
            compute,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
        .w()?;
    }
    Ok(())
}
