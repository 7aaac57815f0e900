//! The rank-based latent correlation of mixed binary and continuous data
//! (Fan, Liu, Ning & Zou 2017, "High dimensional semiparametric latent
//! graphical model for mixed data", JRSS-B 79, §2–3), as R/Python
//! `latentcor` computes it with `method = "original"`.
//!
//! **Model.** A latent Gaussian copula: `U ~ N(0, Σ)` with unit diagonal and
//! unknown monotone maps `f_j`; a continuous column is `X_j = f_j⁻¹(U_j)`, a
//! binary one is `X_j = 1{U_j > C_j}`. The graph is the support of `Σ⁻¹`.
//!
//! **Estimator.** Kendall's tau-a `τ_jk` ([`crate::kendall`]) is invariant to
//! the monotone maps, and its expectation is a known increasing "bridge"
//! function `F(Σ_jk)` of the latent correlation, with thresholds
//! `Δ_j = Φ⁻¹(P(X_j = lower level))` estimated from the column:
//! - continuous–continuous: `F(r) = (2/π) asin r` (Kendall 1948);
//! - binary–binary: `F(r) = 2 (Φ₂(Δ_j, Δ_k; r) − Φ(Δ_j)Φ(Δ_k))` (Fan et al.
//!   2017, Theorem 2.1);
//! - binary–continuous: `F(r) = 4 Φ₂(Δ_j, 0; r/√2) − 2Φ(Δ_j)` (Theorem 2.2).
//!
//! Each `Σ̂_jk = F⁻¹(τ_jk)` is solved by a safeguarded Newton iteration
//! (`F′` is known in closed form through Plackett's identity) on
//! `[−0.99, 0.99]`; a `τ` beyond the bridge's range at `±0.99` gives `±0.99`,
//! as `latentcor` does (two continuous columns use `sin(πτ/2)` unclamped). The pointwise matrix need not be positive
//! semi-definite: it is projected to the nearest correlation matrix
//! ([`crate::nearest`]) and shrunk, `R = (1 − ν) R̂ + ν I` (default
//! `ν = 0.001`, `latentcor`'s), so that its smallest eigenvalue is at least
//! `ν` and the graphical lasso can run on it.
//!
//! A column with exactly two distinct values is binary; any other is treated
//! as continuous. Counts and ordinal columns with many ties are therefore an
//! approximation: ties lower `|τ_a|`, so their latent correlations shrink
//! towards 0 (`latentcor`'s truncated and ternary bridges are not
//! implemented; for counts, IGGL's Poisson loss is the method of choice).

use crate::data::Dataset;
use crate::kendall::kendall_matrix_with;
use crate::nearest::nearest_correlation;
use crate::special::{bvn_cdf, bvn_pdf, pnorm, qnorm_precise};
use faer::Mat;
use rayon::prelude::*;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

use caracal_core::{ensure, Result};

/// How a column enters the latent model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColumnKind {
    /// Continuous: the latent variable through an unknown monotone map.
    Continuous,
    /// Binary: the latent variable thresholded at `Δ`, where `Φ(Δ)` is the
    /// share of the lower of the two levels.
    Binary {
        /// The latent threshold `Δ`.
        threshold: f64,
    },
}

impl ColumnKind {
    /// The kind of a column: binary when it has exactly two distinct values.
    pub fn of(x: &[f64]) -> ColumnKind {
        let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if x.iter().all(|&v| v == lo || v == hi) && lo < hi {
            let share = x.iter().filter(|&&v| v == lo).count() as f64 / x.len() as f64;
            ColumnKind::Binary {
                threshold: qnorm_precise(share),
            }
        } else {
            ColumnKind::Continuous
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Continuous => "continuous",
            ColumnKind::Binary { .. } => "binary",
        }
    }
}

/// The columns that [`ColumnKind::of`] reads as continuous although they
/// have only 3 to 9 distinct values, as `(index, distinct values)`: ordinal
/// or small-count columns, whose ties shrink `|τ_a|` and so their latent
/// correlations (the module docs' approximation). For warnings.
pub fn few_level_columns(d: &Dataset) -> Vec<(usize, usize)> {
    d.cols
        .iter()
        .enumerate()
        .filter_map(|(j, c)| {
            let mut v = c.clone();
            v.sort_by(f64::total_cmp);
            v.dedup();
            (3..10).contains(&v.len()).then_some((j, v.len()))
        })
        .collect()
}

/// The bridge `F(r) = E τ_a` of a pair of columns, and its derivative.
pub fn bridge(a: ColumnKind, b: ColumnKind, r: f64) -> (f64, f64) {
    use ColumnKind::*;
    match (a, b) {
        (Continuous, Continuous) => (2.0 / PI * r.asin(), 2.0 / (PI * (1.0 - r * r).sqrt())),
        (Binary { threshold: h }, Binary { threshold: k }) => (
            2.0 * (bvn_cdf(h, k, r) - pnorm(h) * pnorm(k)),
            2.0 * bvn_pdf(h, k, r),
        ),
        (Binary { threshold: h }, Continuous) | (Continuous, Binary { threshold: h }) => {
            let s = r * FRAC_1_SQRT_2;
            (
                4.0 * bvn_cdf(h, 0.0, s) - 2.0 * pnorm(h),
                4.0 * FRAC_1_SQRT_2 * bvn_pdf(h, 0.0, s),
            )
        }
    }
}

/// The largest `|r|` the estimator returns.
pub const R_BOUND: f64 = 0.99;

/// `F⁻¹(τ)`: in closed form, `sin(πτ/2)`, for two continuous columns;
/// otherwise on `[−R_BOUND, R_BOUND]` by Newton's method kept inside a
/// shrinking bracket (bisection when a step leaves it), to `|Δr| < 1e-13`.
pub fn invert_bridge(a: ColumnKind, b: ColumnKind, tau: f64) -> f64 {
    if let (ColumnKind::Continuous, ColumnKind::Continuous) = (a, b) {
        return (PI / 2.0 * tau).sin();
    }
    let (mut lo, mut hi) = (-R_BOUND, R_BOUND);
    if bridge(a, b, lo).0 >= tau {
        return lo;
    }
    if bridge(a, b, hi).0 <= tau {
        return hi;
    }
    let mut r = 0.0;
    for _ in 0..100 {
        let (f, df) = bridge(a, b, r);
        let g = f - tau;
        if g > 0.0 {
            hi = r;
        } else {
            lo = r;
        }
        let mut next = r - g / df;
        if !(next > lo && next < hi && next.is_finite()) {
            next = 0.5 * (lo + hi);
        }
        let step = (next - r).abs();
        r = next;
        if step < 1e-13 || hi - lo < 1e-13 {
            break;
        }
    }
    r
}

/// The latent correlation of a data set, with the pieces it is built from.
#[derive(Clone, Debug)]
pub struct LatentCorrelation {
    /// Each column's kind (and, for binary columns, its threshold).
    pub kinds: Vec<ColumnKind>,
    /// Kendall's tau-a between columns.
    pub tau: Mat<f64>,
    /// The pointwise bridge inverses `F⁻¹(τ_jk)` (may be indefinite).
    pub pointwise: Mat<f64>,
    /// Whether `pointwise` was indefinite and had to be projected.
    pub projected: bool,
    /// The positive-definite estimate: nearest correlation matrix, shrunk by `ν`.
    pub correlation: Mat<f64>,
}

/// The latent correlation of `d` ([module docs](self)), with shrinkage
/// `nu ∈ [0, 1)` towards the identity (`latentcor`'s default is 0.001).
///
/// ```
/// use caracal_graph::{latent_correlation, Dataset};
/// // A binary column that follows a continuous one, and a noisy third.
/// let x: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64).collect();
/// let b: Vec<f64> = x.iter().map(|&v| (v > 40.0) as u8 as f64).collect();
/// let z: Vec<f64> = (0..200).map(|i| ((i * 53) % 97) as f64).collect();
/// let d = Dataset::from_columns(vec![x, b, z]).unwrap();
/// let l = latent_correlation(&d, 0.001).unwrap();
/// assert!(l.correlation[(0, 1)] > 0.9); // thresholding keeps the latent link
/// assert_eq!(l.kinds[1].name(), "binary");
/// ```
pub fn latent_correlation(d: &Dataset, nu: f64) -> Result<LatentCorrelation> {
    ensure!(
        (0.0..1.0).contains(&nu),
        "the shrinkage ν must lie in [0, 1); got {nu}"
    );
    let p = d.p();
    let kinds: Vec<ColumnKind> = d.cols.iter().map(|c| ColumnKind::of(c)).collect();
    // Progress (on a terminal only): the pairs' tau, then the projection.
    let pairs = (p * p.saturating_sub(1) / 2) as u64;
    let pb = caracal_core::progress::bar(pairs, "latent correlation");
    pb.set_message("Kendall's tau");
    let k = kendall_matrix_with(&d.cols, |row| pb.inc(row as u64))?;
    pb.set_message("bridges and nearest correlation matrix");
    let rows: Vec<Vec<f64>> = (0..p)
        .into_par_iter()
        .map(|a| {
            (0..a)
                .map(|b| invert_bridge(kinds[a], kinds[b], k[a][b]))
                .collect()
        })
        .collect();
    let pointwise = Mat::from_fn(p, p, |a, b| match a.cmp(&b) {
        std::cmp::Ordering::Equal => 1.0,
        std::cmp::Ordering::Greater => rows[a][b],
        std::cmp::Ordering::Less => rows[b][a],
    });
    let near = nearest_correlation(&pointwise, 1e-10)?;
    let projected = near != pointwise;
    pb.finish_and_clear();
    let correlation = Mat::from_fn(p, p, |a, b| {
        if a == b {
            1.0
        } else {
            (1.0 - nu) * near[(a, b)]
        }
    });
    Ok(LatentCorrelation {
        kinds,
        tau: Mat::from_fn(p, p, |a, b| k[a][b]),
        pointwise,
        projected,
        correlation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_invert_and_match_their_derivatives() {
        let kinds = [
            ColumnKind::Continuous,
            ColumnKind::Binary { threshold: 0.4 },
            ColumnKind::Binary { threshold: -1.1 },
            ColumnKind::Binary { threshold: 0.0 },
        ];
        for &a in &kinds {
            for &b in &kinds {
                for r in [-0.9, -0.3, 0.0, 0.25, 0.8] {
                    let (f, df) = bridge(a, b, r);
                    let h = 1e-6;
                    let fd = (bridge(a, b, r + h).0 - bridge(a, b, r - h).0) / (2.0 * h);
                    assert!((df - fd).abs() < 1e-7, "{a:?} {b:?} r={r}: {df} vs {fd}");
                    let back = invert_bridge(a, b, f);
                    assert!((back - r).abs() < 1e-11, "{a:?} {b:?} r={r}: {back}");
                }
            }
        }
        // Beyond the bridge's range the inverse stops at the bound.
        let bin = ColumnKind::Binary { threshold: 1.5 };
        assert_eq!(invert_bridge(bin, bin, 0.5), R_BOUND);
        assert_eq!(invert_bridge(bin, bin, -0.5), -R_BOUND);
    }

    #[test]
    fn kinds_and_thresholds() {
        let k = ColumnKind::of(&[2.0, 5.0, 5.0, 2.0, 5.0]);
        let want = qnorm_precise(0.4);
        assert_eq!(k, ColumnKind::Binary { threshold: want });
        assert_eq!(ColumnKind::of(&[0.0, 1.0, 2.0]), ColumnKind::Continuous);
    }
}
