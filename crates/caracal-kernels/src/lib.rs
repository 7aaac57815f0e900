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

// Losses.
pub mod cross_entropy;
pub mod divergence;
pub mod fused_linear_ce;
pub mod fused_linear_jsd;
pub mod jsd;

pub use cross_entropy::{cross_entropy, CeOptions, CeOutput, Reduction};
pub use divergence::{kl_div, tvd, KlReduction};
pub use fused_linear_ce::{fused_linear_cross_entropy, FlceOptions};
pub use fused_linear_jsd::{fused_linear_jsd, FljsdOptions};
pub use glu::{geglu, swiglu};
pub use jsd::jsd;
pub use layer_norm::layer_norm;
pub use rms_norm::{rms_norm, CastingMode};
pub use rope::rope;

use candle_core::Tensor;
use caracal_core::{Error, Result};

/// Error unless `t` lives on the CPU (the CUDA path is a separate feature).
pub(crate) fn ensure_cpu(op: &str, t: &Tensor) -> Result<()> {
    if t.device().is_cpu() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{op}: the tensor is on {:?}, but this build only has the CPU kernels",
            t.device().location()
        )))
    }
}
