//! Gated linear units: SwiGLU `silu(a)·b` and GeGLU `gelu_tanh(a)·b`.
//!
//! Liger-Kernel (arXiv 2410.10989, §3.2; `ops/swiglu.py`, `ops/geglu.py`):
//! the forward keeps nothing but its inputs; the backward recomputes the
//! activation and writes both gradients in one pass:
//! - SwiGLU: `db = dc·silu(a)`, `da = dc·b·(σ(a) + silu(a)·(1 − σ(a)))`.
//! - GeGLU (tanh GELU, `t = tanh(√(2/π)(a + 0.044715a³))`):
//!   `da = dc·b·[½(1+t) + ½a(1−t²)√(2/π)(1 + 3·0.044715a²)]`.

use crate::cpu::{self, check_float};
use crate::cross_entropy::KernelFloat;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use caracal_core::{Error, Result};
use rayon::prelude::*;

/// Elements per rayon task.
const GRAIN: usize = 1 << 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Silu,
    GeluTanh,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

impl Gate {
    /// The activation and its derivative at `a`. `exp` is the kernels'
    /// vectorizable polynomial (about 1 ulp in f32), and `tanh(u)` is
    /// `1 − 2/(e^{2u} + 1)`, so the loops vectorize instead of calling libm.
    #[inline]
    fn act_and_grad<R: KernelFloat>(self, a: R) -> (R, R) {
        match self {
            Gate::Silu => {
                let s = R::one() / (R::one() + (-a).fast_exp());
                let silu = a * s;
                (silu, s + silu * (R::one() - s))
            }
            Gate::GeluTanh => {
                let half = R::lit(0.5);
                let k = R::lit(SQRT_2_OVER_PI);
                let c = R::lit(GELU_C);
                let u = k * (a + c * a * a * a);
                // Clamp so e^{2u} stays finite; tanh is ±1 to f32 precision there.
                let u2 = (u + u).max(R::lit(-80.0));
                let u2 = if u2 > R::lit(80.0) { R::lit(80.0) } else { u2 };
                let t = R::one() - R::lit(2.0) / (u2.fast_exp() + R::one());
                let act = half * a * (R::one() + t);
                let d = half * (R::one() + t)
                    + half * a * (R::one() - t * t) * k * (R::one() + R::lit(3.0) * c * a * a);
                (act, d)
            }
        }
    }

    /// The gate as kernels.cu numbers it.
    #[cfg(feature = "cuda")]
    fn code(self) -> i32 {
        match self {
            Gate::Silu => 0,
            Gate::GeluTanh => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Gate::Silu => "swiglu",
            Gate::GeluTanh => "geglu",
        }
    }
}

struct GluOp(Gate);

fn forward<R: KernelFloat>(gate: Gate, a: &[R], b: &[R]) -> Vec<R> {
    let mut out = vec![R::zero(); a.len()];
    out.par_chunks_mut(GRAIN)
        .zip(a.par_chunks(GRAIN).zip(b.par_chunks(GRAIN)))
        .for_each(|(o, (a, b))| {
            for i in 0..o.len() {
                o[i] = gate.act_and_grad(a[i]).0 * b[i];
            }
        });
    out
}

fn backward<R: KernelFloat>(gate: Gate, a: &[R], b: &[R], dc: &[R]) -> (Vec<R>, Vec<R>) {
    let mut da = vec![R::zero(); a.len()];
    let mut db = vec![R::zero(); a.len()];
    da.par_chunks_mut(GRAIN)
        .zip(db.par_chunks_mut(GRAIN))
        .zip(
            a.par_chunks(GRAIN)
                .zip(b.par_chunks(GRAIN))
                .zip(dc.par_chunks(GRAIN)),
        )
        .for_each(|((da, db), ((a, b), dc))| {
            for i in 0..da.len() {
                let (act, d) = gate.act_and_grad(a[i]);
                db[i] = dc[i] * act;
                da[i] = dc[i] * b[i] * d;
            }
        });
    (da, db)
}

impl CustomOp2 for GluOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::glu::fwd(s1, l1, s2, l2, self.0.code())
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dt = s1.dtype();
        crate::dispatch_real!(dt, R => {
            let a = cpu::read::<R>(s1, l1)?;
            let b = cpu::read::<R>(s2, l2)?;
            Ok((cpu::write(forward(self.0, &a, &b), dt)?, l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dc: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if a.device().is_cuda() {
            let (da, db) = crate::cuda::glu::bwd(a, b, dc, self.0.code())?;
            return Ok((Some(da), Some(db)));
        }
        let dt = a.dtype();
        crate::dispatch_real!(dt, R => {
            // Borrow the inputs (no copy on the f32 path).
            let (da, db) = cpu::with_slice::<R, _>(a, |av| {
                cpu::with_slice::<R, _>(b, |bv| {
                    cpu::with_slice::<R, _>(dc, |dcv| Ok(backward(self.0, av, bv, dcv)))
                })
            })?;
            Ok((
                Some(cpu::tensor_from(da, a.shape(), dt)?),
                Some(cpu::tensor_from(db, b.shape(), dt)?),
            ))
        })
    }
}

fn apply(gate: Gate, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = gate.name();
    check_float(op, "a", a.dtype())?;
    crate::ensure_like(op, "b", b, "a", a)?;
    crate::ensure_cpu(op, a)?;
    let (a, b) = (crate::device_layout(a)?, crate::device_layout(b)?);
    Ok(a.apply_op2(&b, GluOp(gate))?)
}

/// `silu(a)·b` with a fused backward.
pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    apply(Gate::Silu, a, b)
}

/// `gelu_tanh(a)·b` with a fused backward.
pub fn geglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    apply(Gate::GeluTanh, a, b)
}

/// The fused backward of [`swiglu`] on its own, for loops outside candle's
/// autograd: `(da, db)` for the upstream gradient `dc`.
pub fn swiglu_backward(a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
    backward_of(Gate::Silu, a, b, dc)
}

/// The fused backward of [`geglu`] on its own: `(da, db)`.
pub fn geglu_backward(a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
    backward_of(Gate::GeluTanh, a, b, dc)
}

fn backward_of(gate: Gate, a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
    let op = format!("{}_backward", gate.name());
    for (name, t) in [("b", b), ("dc", dc)] {
        crate::ensure_like(&op, name, t, "a", a)?;
    }
    let (a, b, dc) = (
        crate::device_layout(a)?,
        crate::device_layout(b)?,
        crate::device_layout(dc)?,
    );
    match CustomOp2::bwd(&GluOp(gate), &a, &b, &dc, &dc)? {
        (Some(da), Some(db)) => Ok((da, db)),
        _ => Err(Error::invalid(format!("{op}: no gradient"))),
    }
}

/// References composed of plain candle ops (autograd through candle).
pub mod reference {
    use candle_core::{Result, Tensor};

    /// `silu(a)·b` as `a·σ(a)·b`, with σ built from `exp`.
    pub fn swiglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let sig = (a.neg()?.exp()? + 1.0)?.recip()?;
        (a * sig)? * b
    }

    /// `½a(1 + tanh(√(2/π)(a + 0.044715a³)))·b`.
    pub fn geglu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let cube = ((a * a)? * a)?;
        let inner = ((a + (cube * super::GELU_C)?)? * super::SQRT_2_OVER_PI)?;
        let g = ((inner.tanh()? + 1.0)? * a)?.affine(0.5, 0.0)?;
        g * b
    }
}
