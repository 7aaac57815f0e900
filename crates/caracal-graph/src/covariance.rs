//! Sample covariance and correlation matrices (maximum-likelihood scaling,
//! divided by `n`, as the glasso oracles use).

use crate::data::Dataset;
use faer::Mat;

/// `S = (1/n) Σ_i (x_i − x̄)(x_i − x̄)ᵀ`.
pub fn covariance(d: &Dataset) -> Mat<f64> {
    let (n, p) = (d.n(), d.p());
    let centred: Vec<Vec<f64>> = d
        .cols
        .iter()
        .map(|c| {
            let m = c.iter().sum::<f64>() / n as f64;
            c.iter().map(|v| v - m).collect()
        })
        .collect();
    let mut s = Mat::<f64>::zeros(p, p);
    for a in 0..p {
        for b in a..p {
            let v = centred[a]
                .iter()
                .zip(&centred[b])
                .map(|(x, y)| x * y)
                .sum::<f64>()
                / n as f64;
            s[(a, b)] = v;
            s[(b, a)] = v;
        }
    }
    s
}

/// `D^{-1/2} S D^{-1/2}` with `D = diag(S)`.
pub fn cov2cor(s: &Mat<f64>) -> Mat<f64> {
    let p = s.nrows();
    let d: Vec<f64> = (0..p)
        .map(|j| s[(j, j)].max(f64::MIN_POSITIVE).sqrt())
        .collect();
    Mat::from_fn(p, p, |a, b| {
        if a == b {
            1.0
        } else {
            s[(a, b)] / (d[a] * d[b])
        }
    })
}

/// Pearson correlation matrix of the columns.
pub fn correlation(d: &Dataset) -> Mat<f64> {
    cov2cor(&covariance(d))
}
