//! One-coordinate updates shared by the coordinate-descent algorithms.
//!
//! IPS as exact coordinate descent (She & Tang, §2): for a 0/1 column,
//! `S = x_jᵀy, E = x_jᵀμ, t = log(S/E)`, `θ_j += t`, `μ_i *= exp(t x_ij)`.
//!
//! The MM step for real-valued or negative features (§3): with
//! `M = max_i |x_ij|`, Jensen gives `e^{xt} ≤ (x⁺/M)e^{Mt} + (x⁻/M)e^{−Mt} + 1 − |x|/M`,
//! tight at `t = 0`. Minimizing the surrogate with `c = x_jᵀy, P = Σμx⁺, N = Σμx⁻`
//! gives `v = (c + √(c² + 4PN)) / (2P)`, `t = ln(v)/M`. `N = 0` is the GIS step
//! and a 0/1 column is the exact IPS step.

use crate::problem::Problem;
use caracal_core::{Error, Result};
use rayon::prelude::*;

const PAR_MIN: usize = 1 << 16;

/// Per-column constants: `x_jᵀy` and `M_j`.
pub struct Coords<'a> {
    /// The problem.
    pub p: &'a Problem,
    /// `x_jᵀy`.
    pub s: Vec<f64>,
    /// `max_i |x_ij|`.
    pub m: Vec<f64>,
}

impl<'a> Coords<'a> {
    /// Precompute the column constants.
    pub fn new(p: &'a Problem) -> Self {
        let s = p.design.tmatvec(&p.y);
        let m = p.design.cols.iter().map(|c| c.max_abs()).collect();
        Coords { p, s, m }
    }

    /// `(P, N) = (Σ μ x⁺, Σ μ x⁻)` for column `j`.
    pub fn pos_neg(&self, j: usize, mu: &[f64]) -> (f64, f64) {
        let c = &self.p.design.cols[j];
        match &c.vals {
            None if c.rows.len() >= PAR_MIN => (
                c.rows
                    .par_chunks(1 << 14)
                    .map(|r| r.iter().map(|&i| mu[i as usize]).sum::<f64>())
                    .sum(),
                0.0,
            ),
            None => (c.rows.iter().map(|&i| mu[i as usize]).sum(), 0.0),
            Some(x) => {
                let (mut p, mut n) = (0.0, 0.0);
                for (&i, &x) in c.rows.iter().zip(x) {
                    if x > 0.0 {
                        p += mu[i as usize] * x;
                    } else {
                        n -= mu[i as usize] * x;
                    }
                }
                (p, n)
            }
        }
    }

    /// The MM step for column `j` with scale `m` (≥ `M_j`), penalized by
    /// `lambda·|θ_j + t|` when `lambda > 0` (then `theta_j` is the current value).
    pub fn step(
        &self,
        j: usize,
        pos: f64,
        neg: f64,
        m: f64,
        lambda: f64,
        theta_j: f64,
    ) -> Result<f64> {
        let c = self.s[j];
        if lambda == 0.0 {
            return self.root(j, c, pos, neg, m);
        }
        // Minimize (P/M)e^{Mt} + (N/M)e^{−Mt} − ct + λ|θ_j + t| over t: try each sign of θ_j + t.
        if let Some(t) = self.root_opt(c - lambda, pos, neg, m) {
            if theta_j + t > 0.0 {
                return Ok(t);
            }
        }
        if let Some(t) = self.root_opt(c + lambda, pos, neg, m) {
            if theta_j + t < 0.0 {
                return Ok(t);
            }
        }
        Ok(-theta_j)
    }

    /// Stationary point of `(P/M)e^{Mt} + (N/M)e^{−Mt} − ct`, if finite.
    fn root_opt(&self, c: f64, pos: f64, neg: f64, m: f64) -> Option<f64> {
        if m == 0.0 {
            return None;
        }
        let v = if pos > 0.0 {
            let d = (c * c + 4.0 * pos * neg).sqrt();
            if c >= 0.0 {
                (c + d) / (2.0 * pos)
            } else {
                2.0 * neg / (d - c)
            }
        } else if neg > 0.0 && c < 0.0 {
            neg / -c
        } else {
            return None;
        };
        (v > 0.0 && v.is_finite()).then(|| v.ln() / m)
    }

    fn root(&self, j: usize, c: f64, pos: f64, neg: f64, m: f64) -> Result<f64> {
        if pos == 0.0 && neg == 0.0 && c == 0.0 {
            return Ok(0.0);
        }
        self.root_opt(c, pos, neg, m).ok_or_else(|| {
            Error::invalid(format!(
                "feature `{}` has its observed total x'y = {c} on the boundary of what the model can reach, so the maximum-likelihood estimate does not exist (its coefficient goes to infinity); drop or merge that feature, or fit with a penalty (--lambda)",
                self.p.design.names[j]
            ))
        })
    }

    /// `θ_j += t` and `μ_i *= exp(t x_ij)`.
    pub fn apply(&self, j: usize, t: f64, theta: &mut [f64], mu: &mut [f64]) {
        if t == 0.0 {
            return;
        }
        theta[j] += t;
        let c = &self.p.design.cols[j];
        match &c.vals {
            None => {
                let f = t.exp();
                for &i in &c.rows {
                    mu[i as usize] *= f;
                }
            }
            Some(x) => {
                for (&i, &x) in c.rows.iter().zip(x) {
                    mu[i as usize] *= (t * x).exp();
                }
            }
        }
    }

    /// One exact / MM update of column `j`; returns `|x_jᵀ(y − μ)|` before it.
    pub fn update(&self, j: usize, theta: &mut [f64], mu: &mut [f64]) -> Result<f64> {
        let (pos, neg) = self.pos_neg(j, mu);
        let dev = (self.s[j] - (pos - neg)).abs();
        let t = self.step(j, pos, neg, self.m[j], 0.0, theta[j])?;
        self.apply(j, t, theta, mu);
        Ok(dev)
    }

    /// One cyclic sweep in `order`; returns the largest deviation.
    pub fn sweep(&self, order: &[usize], theta: &mut [f64], mu: &mut [f64]) -> Result<f64> {
        let mut dev: f64 = 0.0;
        for &j in order {
            dev = dev.max(self.update(j, theta, mu)?);
        }
        Ok(dev)
    }
}
