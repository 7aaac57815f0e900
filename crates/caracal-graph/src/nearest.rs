//! The nearest correlation matrix in the Frobenius norm, by Higham's
//! alternating projections with Dykstra's correction (Higham 2002, IMA J.
//! Numer. Anal. 22, Algorithm 3.3 with `W = I`): project in turn onto the
//! positive semi-definite cone (clip negative eigenvalues) and onto the
//! matrices with a unit diagonal; Anderson-accelerated (Higham & Strabić
//! 2016).

use caracal_core::{Error, Result};
use faer::linalg::solvers::Solve;
use faer::Mat;

/// Symmetric `a` with its negative eigenvalues set to zero.
fn psd_part(a: &Mat<f64>) -> Result<Mat<f64>> {
    let e = a
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|_| Error::Numeric("an eigendecomposition failed".into()))?;
    let (u, s) = (e.U(), e.S().column_vector());
    let p = a.nrows();
    let mut us = Mat::zeros(p, p);
    for k in 0..p {
        let l = s[k].max(0.0);
        for i in 0..p {
            us[(i, k)] = u[(i, k)] * l;
        }
    }
    Ok(&us * u.transpose())
}

/// The smallest eigenvalue of a symmetric matrix.
pub fn min_eigenvalue(a: &Mat<f64>) -> Result<f64> {
    let ev: Vec<f64> = a
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|_| Error::Numeric("eigenvalues failed".into()))?;
    Ok(ev.first().copied().unwrap_or(f64::INFINITY))
}

/// The correlation matrix nearest to the symmetric, unit-diagonal `a`; `a`
/// itself when it is already positive semi-definite.
///
/// In Higham's iteration the Dykstra-corrected matrix `R = Y − ΔS` keeps the
/// off-diagonal of `a` for ever: each step only moves its diagonal, by
/// `d ← d + 1 − diag(P_S(R))`. The method is therefore a fixed-point
/// iteration in `p` unknowns, and we accelerate it with Anderson
/// acceleration (depth 5), as Higham & Strabić (2016, Numer. Algorithms 72)
/// do. It stops when `max_i |diag(P_S(R))_i − 1| < tol`, or after 1000
/// iterations (typically it needs tens), and returns `P_S(R)` rescaled to a
/// unit diagonal. That is a valid correlation matrix (positive
/// semi-definite, unit diagonal) even if the cap is reached; only its
/// nearness would then be approximate.
pub fn nearest_correlation(a: &Mat<f64>, tol: f64) -> Result<Mat<f64>> {
    caracal_core::ensure!(
        a.nrows() == a.ncols(),
        "the nearest correlation matrix needs a square matrix; got {} × {}",
        a.nrows(),
        a.ncols()
    );
    if min_eigenvalue(a)? >= 0.0 {
        return Ok(a.clone());
    }
    let p = a.nrows();
    const DEPTH: usize = 5;
    let mut r = a.clone();
    let mut d: Vec<f64> = (0..p).map(|i| a[(i, i)]).collect();
    // History of residual and map differences (Walker & Ni 2011, type II).
    let (mut df, mut dg): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    let mut prev: Option<(Vec<f64>, Vec<f64>)> = None;
    let mut x = psd_part(&r)?;
    for _ in 0..1000 {
        let f: Vec<f64> = (0..p).map(|i| 1.0 - x[(i, i)]).collect();
        if f.iter().all(|v| v.abs() < tol) {
            break;
        }
        let g: Vec<f64> = d.iter().zip(&f).map(|(di, fi)| di + fi).collect();
        if let Some((fp, gp)) = &prev {
            df.push(f.iter().zip(fp).map(|(a, b)| a - b).collect());
            dg.push(g.iter().zip(gp).map(|(a, b)| a - b).collect());
            if df.len() > DEPTH {
                df.remove(0);
                dg.remove(0);
            }
        }
        let gamma = least_squares(&df, &f);
        d = g.clone();
        for (k, gk) in gamma.iter().enumerate() {
            for i in 0..p {
                d[i] -= gk * dg[k][i];
            }
        }
        prev = Some((f, g));
        for i in 0..p {
            r[(i, i)] = d[i];
        }
        x = psd_part(&r)?;
    }
    // Rescaling the PSD iterate to a unit diagonal keeps it inside the cone
    // (a congruence); at convergence the scale factors are 1 to `tol`.
    let s: Vec<f64> = (0..p)
        .map(|i| x[(i, i)].max(f64::MIN_POSITIVE).sqrt())
        .collect();
    Ok(Mat::from_fn(p, p, |i, j| {
        if i == j {
            1.0
        } else {
            0.5 * (x[(i, j)] + x[(j, i)]) / (s[i] * s[j])
        }
    }))
}

/// `argmin_γ ‖f − Σ_k γ_k cols[k]‖₂` for a handful of columns, by the normal
/// equations with a relative ridge of 1e-12 (the columns can be nearly
/// dependent near convergence).
fn least_squares(cols: &[Vec<f64>], f: &[f64]) -> Vec<f64> {
    let m = cols.len();
    if m == 0 {
        return Vec::new();
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let scale = (0..m).map(|k| dot(&cols[k], &cols[k])).fold(0.0, f64::max);
    let gram = Mat::from_fn(m, m, |i, j| {
        dot(&cols[i], &cols[j]) + if i == j { 1e-12 * scale } else { 0.0 }
    });
    let rhs = Mat::from_fn(m, 1, |i, _| dot(&cols[i], f));
    match gram.llt(faer::Side::Lower) {
        Ok(c) => {
            let g = c.solve(&rhs);
            (0..m).map(|i| g[(i, 0)]).collect()
        }
        Err(_) => vec![0.0; m],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Higham (2002), §4: the nearest correlation matrix to
    /// `[[1, 1, 0], [1, 1, 1], [0, 1, 1]]` is, to four decimals,
    /// `[[1, 0.7607, 0.1573], [0.7607, 1, 0.7607], [0.1573, 0.7607, 1]]`.
    #[test]
    fn highams_example() {
        let a = Mat::from_fn(3, 3, |i, j| if i.abs_diff(j) <= 1 { 1.0 } else { 0.0 });
        let x = nearest_correlation(&a, 1e-12).unwrap();
        let want = [
            [1.0, 0.7607, 0.1573],
            [0.7607, 1.0, 0.7607],
            [0.1573, 0.7607, 1.0],
        ];
        for i in 0..3 {
            for j in 0..3 {
                assert!(
                    (x[(i, j)] - want[i][j]).abs() < 5e-5,
                    "{i},{j}: {}",
                    x[(i, j)]
                );
            }
        }
        assert!(min_eigenvalue(&x).unwrap() > -1e-10);
        assert!(nearest_correlation(&Mat::zeros(2, 3), 1e-12).is_err());
        // Already a correlation matrix: unchanged.
        let c = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { 0.2 });
        assert_eq!(nearest_correlation(&c, 1e-12).unwrap(), c);
    }
}
