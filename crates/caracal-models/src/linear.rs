//! A bias-free linear map `y = x·Wᵀ` whose weight is either a trainable
//! dense `Var` or a GGUF-quantized tensor run through candle's `QMatMul`
//! (activations quantized on the fly; inference only).

use candle_core::quantized::QMatMul;
use candle_core::{Module, Tensor, Var};
use caracal_core::Result;
use std::sync::Arc;

/// The weight of a linear layer, `[out, in]`.
#[derive(Clone, Debug)]
pub enum Linear {
    /// A dense, trainable weight.
    Dense(Var),
    /// A quantized weight (k-quants, Q4_0, Q8_0, ...), inference only.
    Quant(Arc<QMatMul>, (usize, usize)),
}

impl Linear {
    /// `x` `[..., in]` → `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense(w) => {
                let dims = x.dims();
                let inner = dims[dims.len() - 1];
                let rows = x.elem_count() / inner.max(1);
                let y = x.reshape((rows, inner))?.matmul(&w.as_tensor().t()?)?;
                let mut out = dims.to_vec();
                *out.last_mut().expect("x has at least one dimension") = w.dims()[0];
                Ok(y.reshape(out)?)
            }
            Linear::Quant(q, _) => Ok(q.forward(&x.contiguous()?)?),
        }
    }

    /// `(out, in)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Linear::Dense(w) => (w.dims()[0], w.dims()[1]),
            Linear::Quant(_, s) => *s,
        }
    }

    /// The trainable weight, if dense.
    pub fn var(&self) -> Option<&Var> {
        match self {
            Linear::Dense(v) => Some(v),
            Linear::Quant(..) => None,
        }
    }
}
