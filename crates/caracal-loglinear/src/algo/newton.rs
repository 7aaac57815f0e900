//! Newton / IRLS, the verification baseline (the "unifying reference" of
//! She & Tang: Huang et al., JMLR 2010, find Newton-type methods fastest per
//! iteration count but costliest per step).
//!
//! Start as R `glm` does: one weighted least-squares step from `μ₀ = y + 0.1`.
//! Then `θ ← θ − s·H⁻¹g` with `g = Xᵀ(μ − y)`, `H = Xᵀdiag(μ)X`, halving `s`
//! until the objective does not increase (beyond its rounding error), so the
//! trace is monotone.

use crate::fit::Trace;
use crate::linalg::{gram, solve_psd};
use crate::objective::half_deviance;
use crate::options::FitOptions;
use crate::problem::Problem;
use caracal_core::Result;

/// Fit by Newton's method; returns `(θ, μ, trace)`.
pub(crate) fn fit(p: &Problem, opts: &FitOptions) -> Result<(Vec<f64>, Vec<f64>, Trace)> {
    let csr = p.design.csr();
    let np = p.n_params();
    let w0: Vec<f64> = p.y.iter().map(|y| y + 0.1).collect();
    let wz: Vec<f64> = (0..p.y.len())
        .map(|i| w0[i] * (w0[i].ln() - p.offset[i] + (p.y[i] - w0[i]) / w0[i]))
        .collect();
    let (mut theta, _) = solve_psd(&gram(&csr, &w0, np), &p.design.tmatvec(&wz));
    let mut mu = p.mean(&theta);
    let mut obj = half_deviance(&p.y, &mu);
    // Near the optimum the objective moves less than its rounding error; allow that much.
    let slack = 1e-14 * (1.0 + p.y.iter().sum::<f64>());
    let trace = Trace::run(obj, opts, |_| {
        let e = p.design.tmatvec(&mu);
        let s = p.design.tmatvec(&p.y);
        let g: Vec<f64> = e.iter().zip(&s).map(|(e, s)| e - s).collect();
        let dev = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let neg: Vec<f64> = g.iter().map(|v| -v).collect();
        let (delta, _) = solve_psd(&gram(&csr, &mu, np), &neg);
        let mut step = 1.0;
        while step > 1e-10 {
            let cand: Vec<f64> = theta
                .iter()
                .zip(&delta)
                .map(|(t, d)| t + step * d)
                .collect();
            let m = p.mean(&cand);
            let o = half_deviance(&p.y, &m);
            if o.is_finite() && o <= obj + slack {
                theta = cand;
                mu = m;
                obj = o;
                break;
            }
            step *= 0.5;
        }
        Ok((dev, obj))
    })?;
    Ok((theta, mu, trace))
}
