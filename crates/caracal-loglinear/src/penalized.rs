//! L1- and group-L1-regularized IPS along a λ path, with a KKT check.
//!
//! Minimizes `ℓ(θ) − ℓ_sat + λ·Σ_j |θ_j|` (L1) or `+ λ·Σ_B √|B| ‖θ_B‖₂`
//! (group L1 over the problem's blocks: a table's model terms); the
//! intercept and other constant columns are not penalized.
//!
//! L1 (She & Tang's regularized IPS): each coordinate minimizes the MM
//! surrogate of [`crate::algo::coords`] plus `λ|θ_j + t|` exactly; for a 0/1
//! feature with `b = E e^{−θ_j}` this is `θ_j ← ln((S−λ)/b)` if `S−λ > b`,
//! `ln((S+λ)/b)` if `S+λ < b`, else 0. Group L1: a proximal step on the
//! quadratic bound with curvature `L = s_B · max_j Σ_i μ_i|x_ij|`, doubling `L`
//! until the bound holds, then group soft-thresholding. Both are monotone.

use crate::algo::coords::Coords;
use crate::objective::half_deviance;
use crate::problem::Problem;
use caracal_core::{bail, ensure, Error, Result};

/// Which penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Penalty {
    /// `λ Σ |θ_j|`.
    L1,
    /// `λ Σ_B √|B| ‖θ_B‖₂` over the problem's blocks.
    GroupL1,
}

/// Options of a penalized fit.
#[derive(Clone, Debug)]
pub struct PenaltyOptions {
    /// The penalty.
    pub penalty: Penalty,
    /// Stop when the KKT violation is below this (count units).
    pub kkt_tol: f64,
    /// Most sweeps per λ.
    pub max_sweeps: usize,
}

impl Default for PenaltyOptions {
    fn default() -> Self {
        PenaltyOptions {
            penalty: Penalty::L1,
            kkt_tol: 1e-8,
            max_sweeps: 100_000,
        }
    }
}

/// A penalized fit at one λ.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PenalizedFit {
    /// The penalty level (count units).
    pub lambda: f64,
    /// Coefficients.
    pub theta: Vec<f64>,
    /// Fitted means of the active cells.
    pub mu: Vec<f64>,
    /// Penalized objective at the start and after every sweep.
    pub objective: Vec<f64>,
    /// Deviance `G²` of the fit.
    pub deviance: f64,
    /// Penalized coefficients that are non-zero.
    pub n_nonzero: usize,
    /// Largest KKT violation.
    pub kkt: f64,
    /// Sweeps run.
    pub sweeps: usize,
}

struct Groups {
    free: Vec<usize>,
    groups: Vec<Vec<usize>>,
    weights: Vec<f64>,
    scales: Vec<f64>,
}

fn groups(p: &Problem, penalty: Penalty) -> Groups {
    let np = p.n_params();
    let free: Vec<usize> = (0..np).filter(|&j| !p.penalized[j]).collect();
    let groups: Vec<Vec<usize>> = match penalty {
        Penalty::L1 => (0..np)
            .filter(|&j| p.penalized[j])
            .map(|j| vec![j])
            .collect(),
        Penalty::GroupL1 => {
            let mut seen = vec![false; np];
            let mut g: Vec<Vec<usize>> = Vec::new();
            for b in &p.blocks {
                let b: Vec<usize> = b
                    .iter()
                    .copied()
                    .filter(|&j| p.penalized[j] && !seen[j])
                    .collect();
                b.iter().for_each(|&j| seen[j] = true);
                if !b.is_empty() {
                    g.push(b);
                }
            }
            g.extend(
                (0..np)
                    .filter(|&j| p.penalized[j] && !seen[j])
                    .map(|j| vec![j]),
            );
            g
        }
    };
    let weights = groups.iter().map(|g| (g.len() as f64).sqrt()).collect();
    let scales = groups.iter().map(|g| p.design.block_scale(g)).collect();
    Groups {
        free,
        groups,
        weights,
        scales,
    }
}

fn penalty_value(g: &Groups, theta: &[f64], lambda: f64) -> f64 {
    g.groups
        .iter()
        .zip(&g.weights)
        .map(|(b, w)| w * b.iter().map(|&j| theta[j] * theta[j]).sum::<f64>().sqrt())
        .sum::<f64>()
        * lambda
}

/// Largest violation of the KKT conditions at `θ` (count units): with
/// `g = Xᵀ(μ − y)`, unpenalized `|g_j|`; for a group with `θ_B ≠ 0`,
/// `‖g_B + λw θ_B/‖θ_B‖‖`; with `θ_B = 0`, `(‖g_B‖ − λw)⁺`.
pub fn kkt_violation(p: &Problem, theta: &[f64], mu: &[f64], lambda: f64, penalty: Penalty) -> f64 {
    let g = groups(p, penalty);
    let e = p.design.tmatvec(mu);
    let s = p.design.tmatvec(&p.y);
    let grad: Vec<f64> = e.iter().zip(&s).map(|(e, s)| e - s).collect();
    let mut v: f64 = g.free.iter().fold(0.0, |m, &j| m.max(grad[j].abs()));
    for (b, w) in g.groups.iter().zip(&g.weights) {
        let nt = b.iter().map(|&j| theta[j] * theta[j]).sum::<f64>().sqrt();
        let viol = if nt > 0.0 {
            b.iter()
                .map(|&j| (grad[j] + lambda * w * theta[j] / nt).powi(2))
                .sum::<f64>()
                .sqrt()
        } else {
            (b.iter().map(|&j| grad[j] * grad[j]).sum::<f64>().sqrt() - lambda * w).max(0.0)
        };
        v = v.max(viol);
    }
    v
}

/// The smallest λ at which every penalized coefficient is zero.
pub fn lambda_max(p: &Problem, penalty: Penalty) -> Result<f64> {
    let cd = Coords::new(p);
    let g = groups(p, penalty);
    let mut theta = vec![0.0; p.n_params()];
    let mut mu = p.mean(&theta);
    for _ in 0..10_000 {
        let dev = cd.sweep(&g.free, &mut theta, &mut mu)?;
        if dev < 1e-10 * (1.0 + p.y.iter().sum::<f64>()) {
            break;
        }
    }
    let e = p.design.tmatvec(&mu);
    Ok(g.groups
        .iter()
        .zip(&g.weights)
        .map(|(b, w)| {
            b.iter()
                .map(|&j| (e[j] - cd.s[j]).powi(2))
                .sum::<f64>()
                .sqrt()
                / w
        })
        .fold(0.0, f64::max))
}

/// Fit at one λ, warm-started from `start` when given.
pub fn fit_penalized(
    p: &Problem,
    lambda: f64,
    opts: &PenaltyOptions,
    start: Option<&[f64]>,
) -> Result<PenalizedFit> {
    ensure!(
        lambda.is_finite() && lambda >= 0.0,
        "lambda must be a non-negative number, got {lambda}"
    );
    let cd = Coords::new(p);
    let g = groups(p, opts.penalty);
    let np = p.n_params();
    let mut theta = match start {
        Some(s) if s.len() == np => s.to_vec(),
        Some(_) => bail!("the warm start has the wrong number of coefficients"),
        None => vec![0.0; np],
    };
    let mut mu = p.mean(&theta);
    let obj = |mu: &[f64], th: &[f64]| half_deviance(&p.y, mu) + penalty_value(&g, th, lambda);
    let mut objective = vec![obj(&mu, &theta)];
    let mut kkt = f64::INFINITY;
    let mut sweeps = 0;
    let mut scratch = vec![0.0; p.y.len()];
    while sweeps < opts.max_sweeps {
        sweeps += 1;
        cd.sweep(&g.free, &mut theta, &mut mu)?;
        for ((b, &w), &s) in g.groups.iter().zip(&g.weights).zip(&g.scales) {
            if b.len() == 1 {
                let j = b[0];
                let (pos, neg) = cd.pos_neg(j, &mu);
                let t = cd.step(j, pos, neg, cd.m[j], lambda * w, theta[j])?;
                cd.apply(j, t, &mut theta, &mut mu);
            } else {
                group_step(&cd, b, w * lambda, s, &mut theta, &mut mu, &mut scratch)?;
            }
        }
        objective.push(obj(&mu, &theta));
        kkt = kkt_violation(p, &theta, &mu, lambda, opts.penalty);
        if kkt < opts.kkt_tol {
            break;
        }
    }
    if kkt >= opts.kkt_tol {
        return Err(Error::NoConvergence(format!(
            "the penalized fit at lambda = {lambda:.4} did not converge in {} sweeps: the KKT violation is still {kkt:.3e} (target {:e}); raise --max-iter or use a larger lambda",
            opts.max_sweeps, opts.kkt_tol
        )));
    }
    let n_nonzero = (0..np)
        .filter(|&j| p.penalized[j] && theta[j] != 0.0)
        .count();
    Ok(PenalizedFit {
        lambda,
        deviance: 2.0 * half_deviance(&p.y, &mu),
        theta,
        mu,
        objective,
        n_nonzero,
        kkt,
        sweeps,
    })
}

/// One proximal-gradient step on group `b` with backtracking on the curvature.
fn group_step(
    cd: &Coords,
    b: &[usize],
    lw: f64,
    s_b: f64,
    theta: &mut [f64],
    mu: &mut [f64],
    scratch: &mut [f64],
) -> Result<()> {
    let p = cd.p;
    let mut grad = Vec::with_capacity(b.len());
    let mut lmax: f64 = 0.0;
    for &j in b {
        let (pos, neg) = cd.pos_neg(j, mu);
        grad.push(pos - neg - cd.s[j]);
        lmax = lmax.max(pos + neg);
    }
    let mut l = (s_b * lmax).max(1e-12);
    let old: Vec<f64> = b.iter().map(|&j| theta[j]).collect();
    for _ in 0..60 {
        let u: Vec<f64> = old.iter().zip(&grad).map(|(t, g)| t - g / l).collect();
        let nu = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        let shrink = if nu > 0.0 {
            (1.0 - lw / (l * nu)).max(0.0)
        } else {
            0.0
        };
        let delta: Vec<f64> = u.iter().zip(&old).map(|(u, o)| shrink * u - o).collect();
        if delta.iter().all(|d| *d == 0.0) {
            return Ok(());
        }
        // Smooth change over the rows the group touches.
        let mut touched = Vec::new();
        for (&j, &d) in b.iter().zip(&delta) {
            for (i, x) in p.design.cols[j].iter() {
                if scratch[i] == 0.0 {
                    touched.push(i);
                }
                scratch[i] += d * x + f64::MIN_POSITIVE;
            }
        }
        let mut change = 0.0;
        for &i in &touched {
            change += mu[i] * scratch[i].exp_m1();
        }
        for (&j, &d) in b.iter().zip(&delta) {
            change -= cd.s[j] * d;
        }
        let lin: f64 = grad.iter().zip(&delta).map(|(g, d)| g * d).sum();
        let quad: f64 = delta.iter().map(|d| d * d).sum::<f64>() * 0.5 * l;
        if change <= lin + quad + 1e-12 * (1.0 + change.abs()) {
            for &i in &touched {
                mu[i] *= scratch[i].exp();
                scratch[i] = 0.0;
            }
            for (&j, d) in b.iter().zip(&delta) {
                theta[j] += d;
            }
            if shrink == 0.0 {
                b.iter().for_each(|&j| theta[j] = 0.0);
            }
            return Ok(());
        }
        for &i in &touched {
            scratch[i] = 0.0;
        }
        l *= 2.0;
    }
    Ok(())
}

/// Fits along `n_lambda` values from [`lambda_max`] down to `lambda_max · min_ratio`
/// (geometric), each warm-started from the previous one.
pub fn fit_path(
    p: &Problem,
    opts: &PenaltyOptions,
    n_lambda: usize,
    min_ratio: f64,
) -> Result<Vec<PenalizedFit>> {
    ensure!(n_lambda >= 1, "the path needs at least one lambda");
    ensure!(
        min_ratio > 0.0 && min_ratio < 1.0,
        "min_ratio must lie in (0, 1), got {min_ratio}"
    );
    let lmax = lambda_max(p, opts.penalty)?;
    let mut out: Vec<PenalizedFit> = Vec::with_capacity(n_lambda);
    for k in 0..n_lambda {
        let f = if n_lambda == 1 {
            1.0
        } else {
            k as f64 / (n_lambda - 1) as f64
        };
        let lambda = lmax * min_ratio.powf(f);
        let start = out.last().map(|f| f.theta.clone());
        out.push(fit_penalized(p, lambda, opts, start.as_deref())?);
    }
    Ok(out)
}
