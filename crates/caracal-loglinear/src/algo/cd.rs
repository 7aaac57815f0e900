//! Coordinate descent: IPS (exact, 0/1 features), the MM generalization
//! (real-valued or negative features), and randomized orders.
//!
//! She & Tang (arXiv:1610.02588) recast IPS as cyclic coordinate descent on
//! `ℓ(θ) = 1ᵀμ − yᵀ(o + Xθ)`; each update is exact for an indicator column
//! and a majorize–minimize step otherwise (see [`super::coords`]). The
//! randomized variants pick coordinates by a permutation per sweep, with
//! replacement, or with probability ∝ `Σ_i y_i x_ij²` (importance sampling),
//! giving a linear rate in expectation (Nesterov 2012). A sweep is `p` updates.

use super::coords::Coords;
use crate::fit::Trace;
use crate::objective::half_deviance;
use crate::options::{Algorithm, FitOptions, RandomMode};
use crate::problem::Problem;
use caracal_core::{bail, Result, Rng};

/// Fit by coordinate descent; returns `(θ, μ, trace)`.
pub(crate) fn fit(p: &Problem, opts: &FitOptions) -> Result<(Vec<f64>, Vec<f64>, Trace)> {
    if opts.algorithm == Algorithm::Ips {
        if let Some(j) = p.design.cols.iter().position(|c| !c.is_binary()) {
            bail!(
                "column `{}` is not a 0/1 indicator, and exact IPS needs indicators; use --algorithm mm for real-valued or negative features",
                p.design.names[j]
            );
        }
    }
    let cd = Coords::new(p);
    let np = p.n_params();
    let mut theta = vec![0.0; np];
    let mut mu = p.mean(&theta);
    let mut rng = Rng::new(opts.seed);
    let cyclic: Vec<usize> = (0..np).collect();
    // Importance weights ∝ Σ y x², as a cumulative table.
    let cum: Vec<f64> = {
        let mut acc = 0.0;
        p.design
            .cols
            .iter()
            .map(|c| {
                acc += c.iter().map(|(i, x)| p.y[i] * x * x).sum::<f64>() + 1e-12;
                acc
            })
            .collect()
    };
    let mut order = cyclic.clone();
    let trace = Trace::run(half_deviance(&p.y, &mu), opts, |_| {
        match opts.algorithm {
            Algorithm::Random(RandomMode::Permutation) => rng.shuffle(&mut order),
            Algorithm::Random(RandomMode::WithReplacement) => {
                order.iter_mut().for_each(|j| *j = rng.below(np));
            }
            Algorithm::Random(RandomMode::Importance) => {
                let total = cum[np - 1];
                order.iter_mut().for_each(|j| {
                    let u = rng.uniform() * total;
                    *j = cum.partition_point(|&c| c <= u).min(np - 1);
                });
            }
            _ => {}
        }
        let mut dev = cd.sweep(&order, &mut theta, &mut mu)?;
        if matches!(opts.algorithm, Algorithm::Random(_)) {
            // A random sweep may skip coordinates: judge convergence on the full gradient.
            dev = full_deviation(&cd, &mu);
        }
        Ok((dev, half_deviance(&p.y, &mu)))
    })?;
    Ok((theta, mu, trace))
}

/// `max_j |x_jᵀ(y − μ)|`.
pub fn full_deviation(cd: &Coords, mu: &[f64]) -> f64 {
    let e = cd.p.design.tmatvec(mu);
    e.iter()
        .zip(&cd.s)
        .fold(0.0, |m: f64, (e, s)| m.max((s - e).abs()))
}
