//! The nearest correlation matrix in the Frobenius norm, by Higham's
//! alternating projections with Dykstra's correction (Higham 2002, IMA J.
//! Numer. Anal. 22, Algorithm 3.3 with `W = I`): project in turn onto the
//! positive semi-definite cone (clip negative eigenvalues) and onto the
//! matrices with a unit diagonal.

use caracal_core::{Error, Result};
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
/// itself when it is already positive semi-definite. Stops when an
/// iteration moves the estimate by less than `tol` (relative, Frobenius), or
/// after 10 000 iterations.
pub fn nearest_correlation(a: &Mat<f64>, tol: f64) -> Result<Mat<f64>> {
    if min_eigenvalue(a)? >= 0.0 {
        return Ok(a.clone());
    }
    let p = a.nrows();
    let mut y = a.clone();
    let mut ds = Mat::<f64>::zeros(p, p);
    let mut x = a.clone();
    for _ in 0..10_000 {
        let r = &y - &ds;
        x = psd_part(&r)?;
        ds = &x - &r;
        let mut next = x.clone();
        for i in 0..p {
            next[(i, i)] = 1.0;
        }
        let step = (&next - &y).norm_l2() / next.norm_l2();
        y = next;
        if step < tol {
            break;
        }
    }
    // The unit-diagonal iterate can be a hair outside the cone; the PSD
    // iterate a hair off the unit diagonal. Rescaling the PSD iterate to a
    // unit diagonal keeps it inside the cone (a congruence).
    let d: Vec<f64> = (0..p)
        .map(|i| x[(i, i)].max(f64::MIN_POSITIVE).sqrt())
        .collect();
    Ok(Mat::from_fn(p, p, |i, j| {
        if i == j {
            1.0
        } else {
            0.5 * (x[(i, j)] + x[(j, i)]) / (d[i] * d[j])
        }
    }))
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
        // Already a correlation matrix: unchanged.
        let c = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { 0.2 });
        assert_eq!(nearest_correlation(&c, 1e-12).unwrap(), c);
    }
}
