//! The CUDA path of every fused op (feature `cuda`).
//!
//! The kernels are CUDA C ([`rt::SOURCE`], `kernels.cu`), compiled at run
//! time by NVRTC through cudarc (once per process and compute capability)
//! and loaded once per device. The ops in the parent modules call into here
//! from their `cuda_fwd` and, for CUDA tensors, from their backward; the
//! public API does not change. FLCE does its GEMMs with cuBLAS on candle's
//! handle. Every kernel computes in f32 (f64 for f64 data) and stores in
//! the input dtype; bf16 and f16 are converted in the kernels.
//!
//! [`device`] opens a GPU with a clear error when there is none, and
//! [`memory`] reads the peak of allocated bytes (the stream-ordered pool's
//! high-water mark, the analogue of `torch.cuda.max_memory_allocated`).

pub(crate) mod blas;
pub(crate) mod ce;
pub(crate) mod div;
pub(crate) mod flce;
pub(crate) mod fljsd;
pub(crate) mod glu;
pub mod memory;
pub(crate) mod norm;
pub(crate) mod rope;
pub mod rt;

pub use memory::device;
