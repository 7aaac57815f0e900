//! A dense linear solve for the small systems of the logistic regression
//! and the MMM (Gaussian elimination with partial pivoting).

use caracal_core::{Error, Result};

/// Solve `A x = b` for square `A` (row-major `a[i][j]`).
pub fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let n = b.len();
    if a.len() != n || a.iter().any(|r| r.len() != n) {
        return Err(Error::invalid("solve: A must be n×n and b of length n"));
    }
    for k in 0..n {
        let piv = (k..n)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap_or(k);
        if a[piv][k].abs() < 1e-300 || !a[piv][k].is_finite() {
            return Err(Error::Numeric(format!(
                "solve: the matrix is singular (pivot {k} is 0)"
            )));
        }
        a.swap(k, piv);
        b.swap(k, piv);
        for i in k + 1..n {
            let f = a[i][k] / a[k][k];
            if f != 0.0 {
                for j in k..n {
                    a[i][j] -= f * a[k][j];
                }
                b[i] -= f * b[k];
            }
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i][j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn solves_a_small_system() {
        let x = super::solve(vec![vec![0.0, 2.0], vec![3.0, 1.0]], vec![4.0, 5.0]).unwrap();
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12);
        assert!(super::solve(vec![vec![1.0, 1.0], vec![1.0, 1.0]], vec![1.0, 2.0]).is_err());
    }
}
