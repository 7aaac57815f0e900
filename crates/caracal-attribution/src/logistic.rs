//! Logistic-regression attribution (the LR baseline of Shao & Li, "Data-driven
//! multi-touch attribution models", KDD 2011, and of DARNN, Ren et al. 2018).
//!
//! `P(conv | x) = σ(w·x + b)` with `x` = `log(1 + touches of channel c)` per
//! channel plus the member features, fitted by Newton's method (IRLS) with a
//! small ridge `λ‖w‖²/2`. A channel's credit is its model-based removal
//! effect summed over all members: `Σ_i σ(ℓ_i) − σ(ℓ_i − w_c x_ic)`.

use crate::data::{Credit, Journey, Journeys};
use crate::linalg::solve;
use caracal_core::{Error, Result};

/// A fitted logistic regression over channel counts and member features.
#[derive(Clone, Debug)]
pub struct Logistic {
    pub n_channels: usize,
    /// Weights: channels first, then features, then the intercept.
    pub w: Vec<f64>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Logistic {
    fn x(&self, j: &Journey) -> Vec<f64> {
        design(j, self.n_channels)
    }

    /// Linear predictor of a journey.
    pub fn logit(&self, j: &Journey) -> f64 {
        self.x(j).iter().zip(&self.w).map(|(a, b)| a * b).sum()
    }

    /// P(conversion) of a journey.
    pub fn predict(&self, j: &Journey) -> f64 {
        sigmoid(self.logit(j))
    }

    /// Removal-effect credit summed over all journeys; value credit splits
    /// each converter's value by its own removal effects.
    pub fn credit(&self, data: &Journeys) -> Credit {
        let mut c = Credit::zeros(&data.channels);
        for j in &data.journeys {
            let x = self.x(j);
            let l = self.logit(j);
            let p = sigmoid(l);
            let d: Vec<f64> = (0..self.n_channels)
                .map(|k| (p - sigmoid(l - self.w[k] * x[k])).max(0.0))
                .collect();
            let s: f64 = d.iter().sum();
            for k in 0..self.n_channels {
                c.conversions[k] += d[k];
                if j.converted && s > 0.0 {
                    c.value[k] += j.value * d[k] / s;
                }
            }
        }
        c
    }
}

fn design(j: &Journey, m: usize) -> Vec<f64> {
    let mut x = vec![0.0; m];
    for t in &j.touches {
        x[t.channel] += 1.0;
    }
    x.iter_mut().for_each(|v: &mut f64| *v = v.ln_1p());
    x.extend_from_slice(&j.features);
    x.push(1.0);
    x
}

/// Fit by IRLS with ridge `lambda` (not on the intercept).
pub fn fit_logistic(data: &Journeys, lambda: f64) -> Result<Logistic> {
    let m = data.channels.len();
    let xs: Vec<Vec<f64>> = data.journeys.iter().map(|j| design(j, m)).collect();
    let p = m + data.feature_names.len() + 1;
    if xs.is_empty() || xs.iter().any(|x| x.len() != p) {
        return Err(Error::invalid(
            "logistic regression needs at least one journey, all with the same features",
        ));
    }
    let mut w = vec![0.0; p];
    for _ in 0..50 {
        let mut h = vec![vec![0.0; p]; p];
        let mut g = vec![0.0; p];
        for (x, j) in xs.iter().zip(&data.journeys) {
            let mu = sigmoid(x.iter().zip(&w).map(|(a, b)| a * b).sum());
            let r = mu - if j.converted { 1.0 } else { 0.0 };
            let wt = (mu * (1.0 - mu)).max(1e-12);
            for a in 0..p {
                g[a] += r * x[a];
                for b in 0..=a {
                    h[a][b] += wt * x[a] * x[b];
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                h[b][a] = h[a][b];
            }
            if a + 1 < p {
                h[a][a] += lambda;
                g[a] += lambda * w[a];
            }
        }
        let step = solve(h, g)?;
        let mut mx = 0.0f64;
        for (wi, s) in w.iter_mut().zip(&step) {
            *wi -= s;
            mx = mx.max(s.abs());
        }
        if mx < 1e-9 {
            return Ok(Logistic { n_channels: m, w });
        }
    }
    Ok(Logistic { n_channels: m, w })
}
