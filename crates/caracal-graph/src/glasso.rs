//! The graphical lasso by block coordinate descent.
//!
//! Friedman, Hastie & Tibshirani (2008), "Sparse inverse covariance
//! estimation with the graphical lasso", Biostatistics 9(3). The problem
//! (their eq. 1, written as a minimisation):
//!
//! `min_{Θ ≻ 0}  −ln det Θ + tr(SΘ) + λ Σ_{i≠j} |Θ_ij| + d Σ_j Θ_jj`
//!
//! with `d = λ` when the diagonal is penalized (R `glasso`'s default) and
//! `d = 0` when it is not (scikit-learn's convention). Its dual works on
//! `W = Θ⁻¹`, whose diagonal is fixed at `S_jj + d` (eq. 2.3 and after).
//! For each column `j` in turn, the lasso (eq. 2.4)
//! `min_β ½ βᵀW₁₁β − s₁₂ᵀβ + λ‖β‖₁` is solved by coordinate descent
//! ([`crate::lasso`]) and `w₁₂ = W₁₁β`. At convergence (§2, last step)
//! `θ₂₂ = 1/(w₂₂ − w₁₂ᵀβ)` and `θ₁₂ = −β θ₂₂`.
//!
//! Convergence is judged as R `glasso` 1.11 does (`thr`): the largest
//! absolute change of a column of `W` over a sweep must fall below
//! `tol · Σ_{i≠j}|S_ij| / (p − 1)`, and each inner lasso stops when no
//! coordinate moves by `that / Σ|W|`. So `tol = 1e-4` is R's default.
//!
//! Screening: the solution is block diagonal over the connected components
//! of the graph `{|S_ij| > λ}` (Witten, Friedman & Simon 2011, Theorem 1;
//! Mazumder & Hastie 2012). Components are solved independently, in
//! parallel with rayon, and single nodes in closed form `Θ_jj = 1/(S_jj + d)`.
//! Only the components in the warm start change, not the solution.

use crate::lasso::CovLasso;
use caracal_core::{bail, Error, Result};
use faer::Mat;
use rayon::prelude::*;

/// How the diagonal of `Θ` is penalized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Diagonal {
    /// By `λ`, as R `glasso(penalize.diagonal = TRUE)` (its default).
    Penalized,
    /// Not at all, as R `penalize.diagonal = FALSE` and scikit-learn.
    Unpenalized,
    /// By a weight of its own (used to fix the scale in [`crate::iggl`](mod@crate::iggl)).
    Weight(f64),
}

impl Diagonal {
    /// The diagonal penalty weight `d` for a given `λ`.
    pub fn weight(self, lambda: f64) -> f64 {
        match self {
            Diagonal::Penalized => lambda,
            Diagonal::Unpenalized => 0.0,
            Diagonal::Weight(w) => w,
        }
    }
}

/// Settings of one graphical-lasso fit.
#[derive(Clone, Debug)]
pub struct GlassoOptions {
    /// Off-diagonal penalty `λ ≥ 0`.
    pub lambda: f64,
    /// Diagonal convention.
    pub diagonal: Diagonal,
    /// R's `thr`: relative convergence threshold (default `1e-4`).
    pub tol: f64,
    /// Most outer sweeps (R's `maxit`, default 10 000).
    pub max_iter: usize,
    /// Split into connected components of `|S_ij| > λ` first (default on).
    pub screen: bool,
}

impl GlassoOptions {
    /// Defaults as R `glasso`: penalized diagonal, `thr = 1e-4`.
    pub fn new(lambda: f64) -> Self {
        GlassoOptions {
            lambda,
            diagonal: Diagonal::Penalized,
            tol: 1e-4,
            max_iter: 10_000,
            screen: true,
        }
    }

    /// The same with another diagonal convention.
    pub fn diagonal(mut self, d: Diagonal) -> Self {
        self.diagonal = d;
        self
    }

    /// The same with another tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
}

/// A fitted graphical lasso.
#[derive(Clone, Debug)]
pub struct GlassoFit {
    /// `Θ̂`, symmetric positive definite.
    pub precision: Mat<f64>,
    /// `Ŵ = Θ̂⁻¹` as the dual iterations left it.
    pub covariance: Mat<f64>,
    /// The `λ` used.
    pub lambda: f64,
    /// `−ln det Θ + tr(SΘ) + λ‖Θ‖₁,off + d Σ Θ_jj`.
    pub objective: f64,
    /// Outer sweeps of the largest component (0 when all nodes are isolated).
    pub iterations: usize,
    /// Column `j` holds the lasso coefficients `β` of node `j` (col-major p×p).
    beta: Vec<f64>,
}

fn check_s(s: &Mat<f64>, o: &GlassoOptions) -> Result<()> {
    let p = s.nrows();
    if s.ncols() != p || p == 0 {
        bail!(
            "glasso: S is {}×{}; give a square, non-empty covariance matrix",
            p,
            s.ncols()
        );
    }
    if !(o.lambda.is_finite() && o.lambda >= 0.0) {
        bail!("glasso: λ = {} must be finite and ≥ 0", o.lambda);
    }
    let d = o.diagonal.weight(o.lambda);
    if !(d.is_finite() && d >= 0.0) {
        bail!("glasso: the diagonal penalty {d} must be finite and ≥ 0");
    }
    if o.tol.is_nan() || o.tol <= 0.0 {
        bail!("glasso: tol = {} must be positive", o.tol);
    }
    for a in 0..p {
        if s[(a, a)].is_nan() || s[(a, a)] + d <= 0.0 {
            bail!(
                "glasso: S[{a},{a}] = {} must be positive (a constant variable?)",
                s[(a, a)]
            );
        }
        for b in 0..p {
            let v = s[(a, b)];
            if !v.is_finite() || (v - s[(b, a)]).abs() > 1e-9 * (1.0 + v.abs()) {
                bail!("glasso: S must be finite and symmetric; S[{a},{b}] = {v}");
            }
        }
    }
    Ok(())
}

/// Connected components of `{|S_ij| > λ}` (union–find), each sorted.
pub fn components(s: &Mat<f64>, lambda: f64) -> Vec<Vec<usize>> {
    let p = s.nrows();
    let mut parent: Vec<usize> = (0..p).collect();
    fn find(par: &mut [usize], mut x: usize) -> usize {
        while par[x] != x {
            par[x] = par[par[x]];
            x = par[x];
        }
        x
    }
    for b in 0..p {
        for a in 0..b {
            if s[(a, b)].abs() > lambda {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                if ra != rb {
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); p];
    for j in 0..p {
        let r = find(&mut parent, j);
        groups[r].push(j);
    }
    groups.into_iter().filter(|g| !g.is_empty()).collect()
}

/// Fit the graphical lasso to the covariance `s`.
pub fn glasso(s: &Mat<f64>, o: &GlassoOptions) -> Result<GlassoFit> {
    glasso_warm(s, o, None)
}

struct Block {
    idx: Vec<usize>,
    w: Vec<f64>,
    beta: Vec<f64>,
    iters: usize,
}

/// Fit from a warm start (a fit at a nearby `λ`, e.g. the previous point of
/// a path), as R's `start = "warm"`.
pub fn glasso_warm(s: &Mat<f64>, o: &GlassoOptions, warm: Option<&GlassoFit>) -> Result<GlassoFit> {
    check_s(s, o)?;
    let p = s.nrows();
    if let Some(w) = warm {
        if w.precision.nrows() != p {
            bail!(
                "glasso: the warm start is {}×{} but S is {p}×{p}",
                w.precision.nrows(),
                w.precision.nrows()
            );
        }
    }
    let lam = o.lambda;
    let d = o.diagonal.weight(lam);
    let off_sum: f64 = (0..p)
        .flat_map(|b| (0..p).filter(move |&a| a != b).map(move |a| (a, b)))
        .map(|(a, b)| s[(a, b)].abs())
        .sum();
    let shr = if p > 1 {
        o.tol * off_sum / (p - 1) as f64
    } else {
        0.0
    };
    let groups = if o.screen {
        components(s, lam)
    } else {
        vec![(0..p).collect()]
    };
    let blocks: Vec<Result<Block>> = groups
        .into_par_iter()
        .map(|idx| {
            let q = idx.len();
            let sub = |m: &Mat<f64>| -> Vec<f64> {
                let mut v = vec![0.0; q * q];
                for (bb, &b) in idx.iter().enumerate() {
                    for (aa, &a) in idx.iter().enumerate() {
                        v[bb * q + aa] = m[(a, b)];
                    }
                }
                v
            };
            let ss = sub(s);
            let (w0, b0) = match warm {
                Some(wf) => {
                    let mut b = vec![0.0; q * q];
                    for (bb, &bj) in idx.iter().enumerate() {
                        for (aa, &a) in idx.iter().enumerate() {
                            b[bb * q + aa] = wf.beta[bj * p + a];
                        }
                    }
                    (sub(&wf.covariance), b)
                }
                None => (ss.clone(), vec![0.0; q * q]),
            };
            solve_block(&ss, q, lam, d, shr, o.max_iter, w0, b0).map(|(w, beta, iters)| Block {
                idx,
                w,
                beta,
                iters,
            })
        })
        .collect();
    let mut w = Mat::<f64>::zeros(p, p);
    let mut theta = Mat::<f64>::zeros(p, p);
    let mut beta = vec![0.0; p * p];
    let mut iterations = 0;
    for blk in blocks {
        let blk = blk?;
        let q = blk.idx.len();
        iterations = iterations.max(blk.iters);
        for (bb, &b) in blk.idx.iter().enumerate() {
            let col = &blk.beta[bb * q..(bb + 1) * q];
            let wcol = &blk.w[bb * q..(bb + 1) * q];
            let dot: f64 = col
                .iter()
                .zip(wcol)
                .enumerate()
                .filter(|(k, _)| *k != bb)
                .map(|(_, (x, y))| x * y)
                .sum();
            let tbb = 1.0 / (wcol[bb] - dot);
            if !(tbb.is_finite() && tbb > 0.0) {
                return Err(Error::Numeric(format!(
                    "glasso: Θ[{b},{b}] = {tbb} is not positive; increase λ or penalize the diagonal"
                )));
            }
            for (aa, &a) in blk.idx.iter().enumerate() {
                w[(a, b)] = wcol[aa];
                beta[b * p + a] = col[aa];
                theta[(a, b)] = if aa == bb { tbb } else { -col[aa] * tbb };
            }
        }
    }
    // Symmetrise (the two halves agree to the tolerance).
    for b in 0..p {
        for a in 0..b {
            let v = 0.5 * (theta[(a, b)] + theta[(b, a)]);
            theta[(a, b)] = v;
            theta[(b, a)] = v;
        }
    }
    let objective = objective(s, &theta, lam, d)?;
    Ok(GlassoFit {
        precision: theta,
        covariance: w,
        lambda: lam,
        objective,
        iterations,
        beta,
    })
}

/// `ln det A` for a symmetric positive definite `A` (Cholesky).
pub fn log_det(a: &Mat<f64>) -> Result<f64> {
    let llt = a
        .llt(faer::Side::Lower)
        .map_err(|_| Error::Numeric("a matrix that must be positive definite is not".into()))?;
    let l = llt.L();
    Ok((0..a.nrows()).map(|j| 2.0 * l[(j, j)].ln()).sum())
}

/// The penalized objective `−ln det Θ + tr(SΘ) + λ‖Θ‖₁,off + d Σ Θ_jj`.
pub fn objective(s: &Mat<f64>, theta: &Mat<f64>, lambda: f64, d: f64) -> Result<f64> {
    let p = s.nrows();
    let mut tr = 0.0;
    let mut pen = 0.0;
    for b in 0..p {
        for a in 0..p {
            tr += s[(a, b)] * theta[(a, b)];
            pen += if a == b {
                d * theta[(a, b)].abs()
            } else {
                lambda * theta[(a, b)].abs()
            };
        }
    }
    Ok(-log_det(theta)? + tr + pen)
}

#[allow(clippy::too_many_arguments)]
fn solve_block(
    s: &[f64],
    q: usize,
    lam: f64,
    d: f64,
    shr: f64,
    max_iter: usize,
    mut w: Vec<f64>,
    mut b: Vec<f64>,
) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    for j in 0..q {
        w[j * q + j] = s[j * q + j] + d;
        b[j * q + j] = 0.0;
    }
    if q == 1 {
        return Ok((w, b, 0));
    }
    let mut beta = vec![0.0; q];
    let mut u = vec![0.0; q];
    for it in 1..=max_iter {
        let sum_abs: f64 = w.iter().map(|x| x.abs()).sum();
        let thr_in = shr / sum_abs;
        let mut dlx = 0.0f64;
        for m in 0..q {
            beta.copy_from_slice(&b[m * q..(m + 1) * q]);
            let lasso = CovLasso {
                v: &w,
                p: q,
                skip: m,
            };
            lasso.gram_times(&beta, &mut u);
            lasso.solve(
                &s[m * q..(m + 1) * q],
                lam,
                &mut beta,
                &mut u,
                thr_in,
                100_000,
            );
            let mut dw = 0.0;
            for k in 0..q {
                if k != m {
                    dw += (u[k] - w[m * q + k]).abs();
                    w[m * q + k] = u[k];
                    w[k * q + m] = u[k];
                }
            }
            dlx = dlx.max(dw);
            b[m * q..(m + 1) * q].copy_from_slice(&beta);
        }
        if dlx < shr || !dlx.is_finite() {
            if !dlx.is_finite() {
                return Err(Error::Numeric(
                    "glasso: the iterations diverged (NaN); increase λ".into(),
                ));
            }
            return Ok((w, b, it));
        }
    }
    Err(Error::NoConvergence(format!(
        "glasso did not converge in {max_iter} sweeps at λ = {lam}; increase λ, tol or max_iter"
    )))
}
