//! Accelerated IPS with restart (She & Tang's momentum variant, in the
//! FISTA form with adaptive restart of O'Donoghue & Candès 2015):
//!
//! `z = θ_k + ((t_k − 1)/t_{k+1})(θ_k − θ_{k−1})`, one cyclic IPS/MM sweep
//! from `z`; if the objective rises above `ℓ(θ_k)`, discard it, restart from
//! `θ_k` with `t = 1` and take a plain sweep. The accepted objective is
//! therefore monotone.

use super::coords::Coords;
use crate::fit::Trace;
use crate::objective::half_deviance;
use crate::options::FitOptions;
use crate::problem::Problem;
use caracal_core::Result;

/// Fit by momentum sweeps; returns `(θ, μ, trace)`.
pub(crate) fn fit(p: &Problem, opts: &FitOptions) -> Result<(Vec<f64>, Vec<f64>, Trace)> {
    let cd = Coords::new(p);
    let np = p.n_params();
    let order: Vec<usize> = (0..np).collect();
    let mut theta = vec![0.0; np];
    let mut prev = theta.clone();
    let mut mu = p.mean(&theta);
    let mut obj = half_deviance(&p.y, &mu);
    let mut t: f64 = 1.0;
    let trace = Trace::run(obj, opts, |_| {
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let beta = (t - 1.0) / t_next;
        if beta > 0.0 {
            let mut z: Vec<f64> = theta
                .iter()
                .zip(&prev)
                .map(|(a, b)| a + beta * (a - b))
                .collect();
            let mut mz = p.mean(&z);
            if let Ok(dev) = cd.sweep(&order, &mut z, &mut mz) {
                let oz = half_deviance(&p.y, &mz);
                if oz.is_finite() && oz <= obj {
                    prev = std::mem::replace(&mut theta, z);
                    mu = mz;
                    obj = oz;
                    t = t_next;
                    return Ok((dev, obj));
                }
            }
        }
        // Restart: a plain sweep from θ_k.
        let mut th = theta.clone();
        let dev = cd.sweep(&order, &mut th, &mut mu)?;
        prev = std::mem::replace(&mut theta, th);
        obj = half_deviance(&p.y, &mu);
        t = if beta > 0.0 { 1.0 } else { t_next };
        Ok((dev, obj))
    })?;
    Ok((theta, mu, trace))
}
