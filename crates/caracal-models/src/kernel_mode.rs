//! Which implementation each layer runs: the fused kernels of
//! `caracal-kernels` (Liger-Kernel's ops with fused backward passes), the
//! same maths composed of plain candle ops, or candle-nn's own fused
//! inference ops in the op order of candle-transformers' models.

use candle_core::Tensor;
use caracal_core::Result;
use caracal_kernels::CastingMode;

/// Fused kernels or candle-composed references, switchable per model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KernelMode {
    /// `caracal_kernels::{rms_norm, rope, swiglu, causal_softmax,
    /// fused_linear_cross_entropy}`.
    #[default]
    Fused,
    /// `caracal_kernels::*::reference`: plain candle ops, candle autograd.
    Reference,
    /// Inference only: candle-nn's fused ops (`rms_norm`, `rope_i`/`rope`,
    /// `softmax_last_dim`, `silu`) in the op order of candle-transformers'
    /// `quantized_llama`, so that a GGUF model reproduces candle's logits
    /// bit for bit when run token by token. Useful where the comparison is
    /// ill-conditioned: with quantized weights, `QMatMul` rounds every
    /// activation row to 8 bits, and a 1e-7 change upstream of that
    /// rounding moves a 30-layer model's perplexity by about 1%. These ops
    /// have no backward pass, so training rejects this mode.
    Candle,
}

impl KernelMode {
    /// A short lower-case name (`fused`, `reference`).
    pub fn name(self) -> &'static str {
        match self {
            KernelMode::Fused => "fused",
            KernelMode::Reference => "reference",
            KernelMode::Candle => "candle",
        }
    }

    /// Llama RMSNorm `x·rstd·w` over the last dimension.
    pub fn rms_norm(self, x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
        match self {
            KernelMode::Fused => caracal_kernels::rms_norm(x, w, eps, 0.0, CastingMode::Llama),
            KernelMode::Reference => Ok(caracal_kernels::rms_norm::reference::rms_norm(
                x,
                w,
                eps,
                0.0,
                CastingMode::Llama,
            )?),
            KernelMode::Candle => Ok(candle_nn::ops::rms_norm(x, w, eps as f32)?),
        }
    }

    /// Rotate-half RoPE on `q` `[B, Hq, T, D]` and `k` `[B, Hk, T, D]`,
    /// with `cos`/`sin` `[T, D]` (the `[θ, θ]` layout). [`KernelMode::Candle`]
    /// applies RoPE itself (see `Llama`), so here it runs the reference.
    pub fn rope(
        self,
        q: &Tensor,
        k: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        match self {
            KernelMode::Fused => caracal_kernels::rope(q, k, cos, sin),
            KernelMode::Reference | KernelMode::Candle => {
                Ok(caracal_kernels::rope::reference::rope(q, k, cos, sin)?)
            }
        }
    }

    /// `silu(a)·b`.
    pub fn swiglu(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            KernelMode::Fused => caracal_kernels::swiglu(a, b),
            KernelMode::Reference => Ok(caracal_kernels::glu::reference::swiglu(a, b)?),
            KernelMode::Candle => Ok((candle_nn::ops::silu(a)? * b)?),
        }
    }
}

impl std::str::FromStr for KernelMode {
    type Err = caracal_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fused" => Ok(KernelMode::Fused),
            "reference" | "ref" => Ok(KernelMode::Reference),
            "candle" => Ok(KernelMode::Candle),
            _ => Err(caracal_core::Error::invalid(format!(
                "kernel mode `{s}` is unknown; expected `fused`, `reference` or `candle`"
            ))),
        }
    }
}
