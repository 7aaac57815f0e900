//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
//! ICLR 2019, Algorithm 2): Adam moments with bias correction and weight
//! decay applied to the weights directly.

use crate::params::Params;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use caracal_core::Result;

/// AdamW's moments and step count, saved with a training state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AdamState {
    pub step: i32,
    pub m: Vec<Option<Vec<f32>>>,
    pub v: Vec<Option<Vec<f32>>>,
}

/// AdamW state for one [`Params`] set.
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay, applied to matrices outside the embedding tables.
    pub weight_decay: f64,
    step: i32,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    decay: Vec<bool>,
}

impl AdamW {
    pub fn new(params: &Params, lr: f64, weight_decay: f64) -> Self {
        let n = params.vars().len();
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            m: vec![None; n],
            v: vec![None; n],
            decay: params
                .names()
                .iter()
                .zip(params.vars())
                .map(|(n, v)| v.rank() == 2 && !n.starts_with("emb."))
                .collect(),
        }
    }

    /// The moments and the step count, to resume exactly.
    pub fn state(&self) -> Result<AdamState> {
        let flat = |v: &[Option<Tensor>]| -> Result<Vec<Option<Vec<f32>>>> {
            v.iter()
                .map(|t| match t {
                    Some(t) => Ok(Some(t.flatten_all()?.to_vec1::<f32>()?)),
                    None => Ok(None),
                })
                .collect()
        };
        Ok(AdamState {
            step: self.step,
            m: flat(&self.m)?,
            v: flat(&self.v)?,
        })
    }

    /// Continue from a saved [`AdamW::state`] for the same `params`.
    pub fn load_state(&mut self, params: &Params, s: &AdamState) -> Result<()> {
        let n = params.vars().len();
        caracal_core::ensure!(
            s.m.len() == n && s.v.len() == n,
            "the optimizer state has {} tensors but the model has {n}",
            s.m.len()
        );
        let mk = |vals: &Option<Vec<f32>>, var: &candle_core::Var| -> Result<Option<Tensor>> {
            match vals {
                None => Ok(None),
                Some(v) => {
                    caracal_core::ensure!(
                        v.len() == var.elem_count(),
                        "an optimizer moment has {} values but its parameter has {}",
                        v.len(),
                        var.elem_count()
                    );
                    Ok(Some(Tensor::from_vec(v.clone(), var.dims(), var.device())?))
                }
            }
        };
        for (i, var) in params.vars().iter().enumerate() {
            self.m[i] = mk(&s.m[i], var)?;
            self.v[i] = mk(&s.v[i], var)?;
        }
        self.step = s.step;
        Ok(())
    }

    /// One update of every parameter that has a gradient:
    /// `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
    /// `θ ← θ − lr·(m̂ / (√v̂ + ε) + λ·θ)`.
    pub fn step(&mut self, params: &Params, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step);
        let bc2 = 1.0 - self.beta2.powi(self.step);
        for (i, var) in params.vars().iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Gradients can carry autograd history; keep none of it in the moments.
            let g = &g.detach();
            let m = match &self.m[i] {
                Some(m) => ((m * self.beta1)? + (g * (1.0 - self.beta1))?)?,
                None => (g * (1.0 - self.beta1))?,
            };
            let v = match &self.v[i] {
                Some(v) => ((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?,
                None => (g.sqr()? * (1.0 - self.beta2))?,
            };
            let upd = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor().detach();
            let mut next = (&theta - (upd * self.lr)?)?;
            if self.decay[i] && self.weight_decay > 0.0 {
                next = (next - (theta * (self.lr * self.weight_decay))?)?;
            }
            var.set(&next)?;
            self.m[i] = Some(m);
            self.v[i] = Some(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caracal_core::Rng;

    #[test]
    fn minimizes_a_quadratic() {
        let mut p = Params::new();
        let x = p.normal("x", &[3], 1.0, &mut Rng::new(1)).unwrap();
        let target = Tensor::new(&[1.0f32, -2.0, 0.5], x.device()).unwrap();
        let mut opt = AdamW::new(&p, 0.1, 0.0);
        for _ in 0..300 {
            let l = (x.clone() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&p, &l.backward().unwrap()).unwrap();
        }
        let got: Vec<f32> = p.get("x").unwrap().to_vec1().unwrap();
        for (a, b) in got.iter().zip([1.0, -2.0, 0.5]) {
            assert!((a - b).abs() < 1e-2, "{got:?}");
        }
    }
}
