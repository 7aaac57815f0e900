//! The dense linear algebra Newton, the coefficient projections and df need:
//! weighted Gram matrices from the row-wise design and PSD solves (faer).

use crate::design::Csr;
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use rayon::prelude::*;

/// `Xᵀ diag(w) X` (`p × p`), rows split over the rayon threads.
pub fn gram(csr: &Csr, w: &[f64], p: usize) -> Mat<f64> {
    let n = w.len();
    let parts = rayon::current_num_threads().clamp(1, 8).min(n.max(1));
    let chunk = n.div_ceil(parts).max(1);
    let locals: Vec<Vec<f64>> = (0..parts)
        .into_par_iter()
        .map(|c| {
            let mut g = vec![0.0; p * p];
            let lo = (c * chunk).min(n);
            let hi = ((c + 1) * chunk).min(n);
            for (i, &wi) in w.iter().enumerate().take(hi).skip(lo) {
                let (a, b) = (csr.ptr[i], csr.ptr[i + 1]);
                if wi == 0.0 {
                    continue;
                }
                for k in a..b {
                    let (jk, xk) = (csr.idx[k] as usize, csr.val[k] * wi);
                    let row = &mut g[jk * p..jk * p + p];
                    for l in k..b {
                        row[csr.idx[l] as usize] += xk * csr.val[l];
                    }
                }
            }
            g
        })
        .collect();
    Mat::from_fn(p, p, |i, j| {
        let (a, b) = if i <= j { (i, j) } else { (j, i) };
        // Entries were written to (min, max) or (max, min) by column order: add both.
        let mut s = 0.0;
        for g in &locals {
            s += g[a * p + b];
            if a != b {
                s += g[b * p + a];
            }
        }
        s
    })
}

/// Solve `H x = b` for symmetric PSD `H`: Cholesky, or the pseudo-inverse
/// (minimum-norm solution) when `H` is singular. Returns `x` and whether `H` was of full rank.
pub fn solve_psd(h: &Mat<f64>, b: &[f64]) -> (Vec<f64>, bool) {
    let p = b.len();
    let rhs = Mat::from_fn(p, 1, |i, _| b[i]);
    if let Ok(l) = h.llt(Side::Lower) {
        let x = l.solve(&rhs);
        let x: Vec<f64> = (0..p).map(|i| x[(i, 0)]).collect();
        if x.iter().all(|v| v.is_finite()) {
            return (x, true);
        }
    }
    let Ok(e) = h.self_adjoint_eigen(Side::Lower) else {
        return (vec![f64::NAN; p], false);
    };
    let (u, s) = (e.U(), e.S().column_vector());
    let smax = (0..p).fold(0.0f64, |m, i| m.max(s[i].abs()));
    let tol = smax * 1e-10 * p as f64;
    let mut x = vec![0.0; p];
    for k in 0..p {
        if s[k] > tol {
            let c: f64 = (0..p).map(|i| u[(i, k)] * b[i]).sum::<f64>() / s[k];
            for i in 0..p {
                x[i] += c * u[(i, k)];
            }
        }
    }
    (x, false)
}

/// Numerical rank of a symmetric PSD matrix.
pub fn rank_psd(h: &Mat<f64>) -> usize {
    let Ok(ev) = h.self_adjoint_eigenvalues(Side::Lower) else {
        return 0;
    };
    let smax = ev.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = smax * 1e-10 * ev.len() as f64;
    ev.iter().filter(|&&v| v > tol).count()
}

/// Diagonal of `H⁻¹`, or `None` when `H` is singular.
pub fn inverse_diagonal(h: &Mat<f64>) -> Option<Vec<f64>> {
    let p = h.nrows();
    let l = h.llt(Side::Lower).ok()?;
    let inv = l.solve(Mat::<f64>::identity(p, p));
    let d: Vec<f64> = (0..p).map(|i| inv[(i, i)]).collect();
    d.iter().all(|v| v.is_finite() && *v >= 0.0).then_some(d)
}
