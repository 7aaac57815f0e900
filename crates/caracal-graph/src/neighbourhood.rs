//! Neighbourhood selection (Meinshausen & Bühlmann 2006, Ann. Statist. 34).
//!
//! Each variable is regressed on all others by the lasso (their eq. 3) on
//! standardized data, `min_β (1/2n)‖x_a − X_{−a}β‖² + λ‖β‖₁`, which in
//! covariance form is `½ βᵀR_{−a,−a}β − r_{−a,a}ᵀβ + λ‖β‖₁` with `R` the
//! correlation matrix ([`crate::lasso`]). The edge set is combined by the
//! AND rule (`β_ab ≠ 0` and `β_ba ≠ 0`, their eq. 5 `Ê^{λ,∧}`) or the OR rule
//! (either, `Ê^{λ,∨}`). The `p` regressions run in parallel.
//!
//! Their default `λ(α) = (σ̂/√n) · Φ̃⁻¹(α / (2p²))` (eq. 9, with `σ̂ = 1`
//! after standardizing) controls the probability of falsely joining
//! connectivity components at level `α`: [`mb_lambda`].

use crate::lasso::CovLasso;
use crate::special::qnorm;
use caracal_core::{ensure, Result};
use faer::Mat;
use rayon::prelude::*;

/// How the two regressions of a pair are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// An edge when both coefficients are nonzero.
    And,
    /// An edge when either coefficient is nonzero.
    Or,
}

/// Neighbourhood selection at one `λ`.
#[derive(Clone, Debug)]
pub struct NeighbourhoodFit {
    /// `coef[(b, a)]` is the coefficient of `x_b` in the regression of `x_a`.
    pub coef: Mat<f64>,
    /// `λ` used.
    pub lambda: f64,
    /// Total coordinate-descent sweeps.
    pub iterations: usize,
}

impl NeighbourhoodFit {
    /// Whether `a — b` is an edge under `rule`.
    pub fn edge(&self, a: usize, b: usize, rule: Rule) -> bool {
        let (x, y) = (self.coef[(a, b)] != 0.0, self.coef[(b, a)] != 0.0);
        match rule {
            Rule::And => x && y,
            Rule::Or => x || y,
        }
    }

    /// A symmetric weight matrix: the mean of the two coefficients on the
    /// edges of `rule`, zero elsewhere.
    pub fn weights(&self, rule: Rule) -> Mat<f64> {
        let p = self.coef.nrows();
        Mat::from_fn(p, p, |a, b| {
            if a != b && self.edge(a, b, rule) {
                0.5 * (self.coef[(a, b)] + self.coef[(b, a)])
            } else {
                0.0
            }
        })
    }
}

/// Meinshausen–Bühlmann's `λ(α) = Φ⁻¹(1 − α/(2p²)) / √n` for standardized data.
pub fn mb_lambda(n: usize, p: usize, alpha: f64) -> f64 {
    qnorm(1.0 - alpha / (2.0 * (p * p) as f64)) / (n as f64).sqrt()
}

/// Run the `p` lasso regressions on the correlation matrix `r` at `λ`,
/// from `warm` coefficients when given.
pub fn neighbourhood(
    r: &Mat<f64>,
    lambda: f64,
    warm: Option<&NeighbourhoodFit>,
) -> Result<NeighbourhoodFit> {
    let p = r.nrows();
    ensure!(
        r.ncols() == p && p >= 2,
        "neighbourhood selection needs a square matrix with p ≥ 2"
    );
    ensure!(
        lambda.is_finite() && lambda >= 0.0,
        "neighbourhood selection: λ = {lambda} must be ≥ 0"
    );
    let v: Vec<f64> = (0..p * p).map(|k| r[(k % p, k / p)]).collect();
    let cols: Vec<(Vec<f64>, usize)> = (0..p)
        .into_par_iter()
        .map(|a| {
            let lasso = CovLasso { v: &v, p, skip: a };
            let mut beta: Vec<f64> = match warm {
                Some(w) => (0..p)
                    .map(|b| if b == a { 0.0 } else { w.coef[(b, a)] })
                    .collect(),
                None => vec![0.0; p],
            };
            let mut u = vec![0.0; p];
            lasso.gram_times(&beta, &mut u);
            let sweeps = lasso.solve(
                &v[a * p..(a + 1) * p],
                lambda,
                &mut beta,
                &mut u,
                1e-7,
                100_000,
            );
            (beta, sweeps)
        })
        .collect();
    let mut coef = Mat::<f64>::zeros(p, p);
    let mut iterations = 0;
    for (a, (beta, sw)) in cols.into_iter().enumerate() {
        iterations += sw;
        for b in 0..p {
            coef[(b, a)] = beta[b];
        }
    }
    Ok(NeighbourhoodFit {
        coef,
        lambda,
        iterations,
    })
}
