//! Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight
//! Decay Regularization", ICLR 2019, Algorithm 2) over candle `Var`s.

use candle_core::{backprop::GradStore, Tensor, Var};
use caracal_core::Result;

pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Adam {
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Adam> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<_>>()?;
        let v2 = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<_>>()?;
        Ok(Adam {
            vars,
            m,
            v: v2,
            t: 0,
            lr,
            weight_decay,
        })
    }

    /// One update from the gradients of a `backward()`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&m / c1)? / ((&v / c2)?.sqrt()? + eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - self.lr * self.weight_decay))?;
            var.set(&(decayed - (upd * self.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}
