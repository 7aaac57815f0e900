//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
//! ICLR 2019, Algorithm 2): with `g` the gradient at step `t`,
//!
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ − η·(m̂/(√v̂ + ε) + λθ)` with `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.
//!
//! The decay `λθ` is applied to matrices only (not to norm gains), as is
//! usual for transformers. The moments are f32 and are part of the
//! checkpoint, so a resumed run continues identically.

use candle_core::{DType, Tensor, Var};
use caracal_core::{Error, Result};

/// AdamW's hyper-parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW state for a fixed list of variables.
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Steps taken so far (`t`).
    pub t: u64,
    /// First and second moments, one pair per variable, f32.
    pub moments: Vec<(Tensor, Tensor)>,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(cfg: AdamWConfig, vars: &[Var]) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|v| {
                let z = Tensor::zeros(v.shape(), DType::F32, v.device())?;
                Ok((z.clone(), z))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW { cfg, t: 0, moments })
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `vars[i]`
    /// (`None`: no gradient reached it, the moments still decay).
    pub fn step(&mut self, vars: &[Var], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if vars.len() != self.moments.len() || grads.len() != vars.len() {
            return Err(Error::invalid(format!(
                "AdamW: {} variables, {} gradients and {} moment pairs; they must match",
                vars.len(),
                grads.len(),
                self.moments.len()
            )));
        }
        self.t += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for ((var, g), (m, v)) in vars.iter().zip(grads).zip(self.moments.iter_mut()) {
            let g = match g {
                Some(g) => g.to_dtype(DType::F32)?,
                None => m.zeros_like()?,
            };
            *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((&*v / bc2)?.sqrt()? + c.eps)?;
            let mut upd = ((&*m / bc1)? / denom)?;
            let theta = var.as_tensor().to_dtype(DType::F32)?;
            if c.weight_decay != 0.0 && var.rank() >= 2 {
                upd = (upd + (&theta * c.weight_decay)?)?;
            }
            let new = (theta - (upd * lr)?)?.to_dtype(var.dtype())?;
            var.set(&new)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One step by hand: m = 0.1g, v = 0.05g², m̂ = g, v̂ = g², so
    /// θ' = θ − η(g/(|g|+ε) + λθ).
    #[test]
    fn first_step_matches_the_closed_form() {
        let dev = Device::Cpu;
        let w = Var::new(&[[1.0f32, -2.0], [0.5, 3.0]], &dev).unwrap();
        let g = Tensor::new(&[[0.3f32, -0.1], [2.0, 0.0]], &dev).unwrap();
        let mut opt = AdamW::new(AdamWConfig::default(), std::slice::from_ref(&w)).unwrap();
        opt.step(std::slice::from_ref(&w), &[Some(g.clone())], 0.01)
            .unwrap();
        let got: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let th = [1.0f64, -2.0, 0.5, 3.0];
        let gv = [0.3f64, -0.1, 2.0, 0.0];
        for i in 0..4 {
            let want = th[i] - 0.01 * (gv[i] / (gv[i].abs() + 1e-8) + 0.1 * th[i]);
            assert!(
                (got[i] as f64 - want).abs() < 1e-6,
                "{i}: {} vs {want}",
                got[i]
            );
        }
    }
}
