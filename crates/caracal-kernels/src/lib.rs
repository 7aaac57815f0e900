//! Liger-Kernel's fused training ops (Hsu et al., "Liger Kernel: Efficient
//! Triton Kernels for LLM Training", arXiv 2410.10989) as candle custom ops,
//! each with a fused backward pass.
//!
//! Every op takes f32, bf16, f16 or f64 tensors, contiguous or strided, and
//! computes in f32 (f64 for f64 inputs). Each module also exposes a
//! `reference` built from plain candle ops, which the tests and the
//! benchmarks compare against.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! let a = Tensor::new(&[[0.5f32, -1.0]], &Device::Cpu).unwrap();
//! let b = Tensor::new(&[[2.0f32, 3.0]], &Device::Cpu).unwrap();
//! let c = caracal_kernels::swiglu(&a, &b).unwrap();
//! assert_eq!(c.dims(), &[1, 2]);
//! ```

// Plumbing.
pub mod chunk;
pub mod cpu;
pub mod real;
pub mod testing;

// Normalization and positional ops.
pub mod layer_norm;
pub mod rms_norm;
pub mod rope;

// Gated activations.
pub mod glu;

// Attention.
pub mod softmax;

// The CUDA path (feature `cuda`): NVRTC-compiled kernels behind the same ops.
#[cfg(feature = "cuda")]
pub mod cuda;

// Losses.
pub mod cross_entropy;
pub mod divergence;
pub mod fused_linear_ce;
pub mod fused_linear_jsd;
pub mod jsd;

pub use cross_entropy::{
    cross_entropy, cross_entropy_in_place, cross_entropy_with_grad, CeOptions, CeOutput, Reduction,
};
pub use divergence::{kl_div, kl_div_backward, tvd, KlReduction};
pub use fused_linear_ce::{
    fused_linear_cross_entropy, fused_linear_cross_entropy_with_grads, FlceGrads, FlceOptions,
};
pub use fused_linear_jsd::{fused_linear_jsd, FljsdOptions};
pub use glu::{geglu, geglu_backward, swiglu, swiglu_backward};
pub use jsd::{jsd, jsd_with_grad};
pub use layer_norm::{layer_norm, layer_norm_backward};
pub use rms_norm::{rms_norm, rms_norm_backward, CastingMode};
pub use rope::{rope, rope_backward};
pub use softmax::causal_softmax;

use candle_core::Tensor;
use caracal_core::{Error, Result};

/// Error unless `t` lives where this build has kernels for `op`: the CPU,
/// or a CUDA device in a build with the `cuda` feature.
pub(crate) fn ensure_cpu(op: &str, t: &Tensor) -> Result<()> {
    if t.device().is_cpu() {
        return Ok(());
    }
    #[cfg(feature = "cuda")]
    if t.device().is_cuda() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{op}: the tensor is on {:?}, but this build only has the CPU kernels; \
         build with `--features cuda` for CUDA tensors",
        t.device().location()
    )))
}

/// Error unless `t` lives on the CPU (ops without a CUDA path).
pub(crate) fn ensure_cpu_only(op: &str, t: &Tensor) -> Result<()> {
    if t.device().is_cpu() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{op}: the tensor is on {:?}, but {op} only has a CPU kernel",
            t.device().location()
        )))
    }
}

/// Error unless `t` (called `name`) has the shape and dtype of `like`
/// (called `like_name`), as a backward's upstream gradient must.
pub(crate) fn ensure_like(
    op: &str,
    name: &str,
    t: &Tensor,
    like_name: &str,
    like: &Tensor,
) -> Result<()> {
    if t.dims() != like.dims() || t.dtype() != like.dtype() {
        return Err(Error::invalid(format!(
            "{op}: {name} is {:?} {:?} but {like_name} is {:?} {:?}; they must have the same shape and dtype",
            t.dims(),
            t.dtype(),
            like.dims(),
            like.dtype()
        )));
    }
    Ok(())
}

/// `t` made contiguous when it lives on a CUDA device (the CUDA kernels
/// read contiguous rows); unchanged on the CPU, whose kernels gather strides.
pub(crate) fn device_layout(t: &Tensor) -> Result<Tensor> {
    if t.device().is_cpu() {
        Ok(t.clone())
    } else {
        Ok(t.contiguous()?)
    }
}
