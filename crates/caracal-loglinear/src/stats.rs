//! Goodness of fit, degrees of freedom, information criteria, residuals and
//! the coefficient table.

use crate::fit::Fit;
use crate::linalg::{gram, inverse_diagonal, rank_psd};
use crate::objective::{deviance, deviance_residual, ln_gamma, pearson, pearson_residual};
use crate::problem::{Problem, Sampling};

/// Summary statistics of a fit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GoodnessOfFit {
    /// Deviance `G²`.
    pub deviance: f64,
    /// Pearson `X²`.
    pub pearson: f64,
    /// Residual degrees of freedom: estimable cells minus identifiable parameters.
    pub df: usize,
    /// Estimable cells (not structural zeros, fitted mean positive).
    pub cells: usize,
    /// Identifiable parameters (rank of the design over those cells).
    pub rank: usize,
    /// Log-likelihood under the problem's sampling scheme.
    pub loglik: f64,
    /// `−2 loglik + 2k`.
    pub aic: f64,
    /// `−2 loglik + k log(cells)`.
    pub bic: f64,
}

/// Rank of the design over the active cells (cheap when it is known full).
pub fn design_rank(p: &Problem) -> usize {
    if p.table.is_some() && !p.has_structural_zeros() && p.dropped.is_empty() {
        return p.n_params();
    }
    let ones = vec![1.0; p.y.len()];
    rank_psd(&gram(&p.design.csr(), &ones, p.n_params()))
}

/// `G²`, `X²`, df, log-likelihood, AIC and BIC of `fit`.
pub fn goodness_of_fit(p: &Problem, fit: &Fit) -> GoodnessOfFit {
    let mu = &fit.mu;
    let cells = mu.iter().filter(|&&m| m > 0.0).count();
    let rank = design_rank(p);
    let y = &p.y;
    let poisson: f64 = y
        .iter()
        .zip(mu)
        .map(|(&y, &m)| {
            if m > 0.0 {
                y * m.ln() - m - ln_gamma(y + 1.0)
            } else {
                0.0
            }
        })
        .sum();
    let (loglik, k) = match p.sampling {
        Sampling::Poisson => (poisson, rank as f64),
        Sampling::Multinomial => {
            let n: f64 = y.iter().sum();
            let ll = ln_gamma(n + 1.0)
                + y.iter()
                    .zip(mu)
                    .map(|(&y, &m)| {
                        if y > 0.0 {
                            y * (m / n).ln() - ln_gamma(y + 1.0)
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>();
            (ll, rank.saturating_sub(1) as f64)
        }
    };
    GoodnessOfFit {
        deviance: deviance(y, mu),
        pearson: pearson(y, mu),
        df: cells.saturating_sub(rank),
        cells,
        rank,
        loglik,
        aic: -2.0 * loglik + 2.0 * k,
        bic: -2.0 * loglik + k * (cells as f64).ln(),
    }
}

/// Pearson and deviance residuals for every cell in table / input order (0 at structural zeros).
pub fn residuals(p: &Problem, fit: &Fit) -> (Vec<f64>, Vec<f64>) {
    let mut pr = vec![0.0; p.n_cells];
    let mut dr = vec![0.0; p.n_cells];
    for (r, &i) in p.active.iter().enumerate() {
        pr[i] = pearson_residual(p.y[r], fit.mu[r]);
        dr[i] = deviance_residual(p.y[r], fit.mu[r]);
    }
    (pr, dr)
}

/// One row of the coefficient table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CoefRow {
    /// Coefficient name.
    pub name: String,
    /// Estimate.
    pub estimate: f64,
    /// Standard error from the inverse Fisher information (NaN when not identifiable).
    pub std_error: f64,
    /// `estimate / std_error`.
    pub z: f64,
}

/// Estimates with standard errors `√diag((Xᵀdiag(μ)X)⁻¹)`.
pub fn coefficient_table(p: &Problem, fit: &Fit) -> Vec<CoefRow> {
    let h = gram(&p.design.csr(), &fit.mu, p.n_params());
    let d = inverse_diagonal(&h);
    fit.names
        .iter()
        .zip(&fit.theta)
        .enumerate()
        .map(|(j, (n, &e))| {
            let se = d.as_ref().map_or(f64::NAN, |d| d[j].sqrt());
            CoefRow {
                name: n.clone(),
                estimate: e,
                std_error: se,
                z: e / se,
            }
        })
        .collect()
}
