//! Gradient bookkeeping shared by the trainers: accumulation over
//! micro-batches and global-norm clipping (Pascanu et al., "On the
//! difficulty of training recurrent neural networks", ICML 2013,
//! Algorithm 2).

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use caracal_core::Result;

/// Add each variable's gradient from `grads` (as f32) into `sum[i]`.
pub fn accumulate(sum: &mut [Option<Tensor>], grads: &GradStore, vars: &[Var]) -> Result<()> {
    for (acc, v) in sum.iter_mut().zip(vars) {
        if let Some(g) = grads.get(v.as_tensor()) {
            let g = g.to_dtype(DType::F32)?;
            *acc = Some(match acc.take() {
                Some(a) => (a + g)?,
                None => g,
            });
        }
    }
    Ok(())
}

/// The global L2 norm of the gradients before clipping; when it exceeds
/// `clip`, every gradient is scaled by `clip / (norm + 1e-6)`.
pub fn clip_global_norm(sum: &mut [Option<Tensor>], clip: Option<f64>) -> Result<f64> {
    let mut sq = 0.0f64;
    for g in sum.iter().flatten() {
        sq += g
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    if let Some(c) = clip {
        if norm > c {
            let s = c / (norm + 1e-6);
            for g in sum.iter_mut().flatten() {
                *g = (&*g * s)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn accumulates_and_clips_to_the_global_norm() {
        let v = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let mut sum = vec![None];
        for _ in 0..2 {
            let g = (v.as_tensor() * 3.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            accumulate(&mut sum, &g, std::slice::from_ref(&v)).unwrap();
        }
        // Each backward gives [3, 3]; two give [6, 6], norm 6√2.
        let n = clip_global_norm(&mut sum, Some(1.0)).unwrap();
        assert!((n - 6.0 * 2f64.sqrt()).abs() < 1e-5);
        let g: Vec<f32> = sum[0].as_ref().unwrap().to_vec1().unwrap();
        let clipped = (g[0] as f64).hypot(g[1] as f64);
        assert!((clipped - 1.0).abs() < 1e-5, "{clipped}");
        // Without a clip the norm is reported and nothing changes.
        let again = clip_global_norm(&mut sum, None).unwrap();
        assert!((again - clipped).abs() < 1e-6, "{again} vs {clipped}");
    }
}
