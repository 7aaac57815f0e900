//! The nonparanormal transform (Liu, Lafferty & Wasserman 2009, JMLR 10;
//! Liu et al. 2012, Ann. Statist. 40 for the SKEPTIC), as R `huge.npn`.
//!
//! - shrinkage: `x_ij ← Φ⁻¹(rank_ij / (n + 1))`;
//! - truncation (Winsorized): `x_ij ← Φ⁻¹(clip(rank_ij / n, δ, 1 − δ))` with
//!   `δ = 1 / (4 n^{1/4} √(π ln n))` (Liu et al. 2009, eq. 11);
//! - skeptic: the correlation `2 sin(π/6 · ρ_Spearman)` (Liu et al. 2012,
//!   eq. 4.1); it gives a matrix, not data.
//!
//! As in `huge.npn`, the transformed data are divided by the standard
//! deviation of their first column (all columns share it).

use crate::covariance::correlation;
use crate::data::Dataset;
use crate::special::{qnorm, rank_average, sd};
use caracal_core::{bail, Result};
use faer::Mat;

/// Which nonparanormal estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Npn {
    /// Normal scores of ranks over `n + 1`.
    Shrinkage,
    /// Winsorized normal scores.
    Truncation,
    /// Spearman's rho mapped to a Pearson correlation.
    Skeptic,
}

impl std::str::FromStr for Npn {
    type Err = caracal_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "shrinkage" => Ok(Npn::Shrinkage),
            "truncation" => Ok(Npn::Truncation),
            "skeptic" => Ok(Npn::Skeptic),
            _ => bail!(
                "unknown nonparanormal method `{s}`; expected shrinkage, truncation or skeptic"
            ),
        }
    }
}

/// Transformed data for [`Npn::Shrinkage`] or [`Npn::Truncation`].
pub fn npn_transform(d: &Dataset, method: Npn) -> Result<Dataset> {
    let n = d.n() as f64;
    let delta = 1.0 / (4.0 * n.powf(0.25) * (std::f64::consts::PI * n.ln()).sqrt());
    let mut cols: Vec<Vec<f64>> = match method {
        Npn::Shrinkage => d
            .cols
            .iter()
            .map(|c| {
                rank_average(c)
                    .iter()
                    .map(|r| qnorm(r / (n + 1.0)))
                    .collect()
            })
            .collect(),
        Npn::Truncation => d
            .cols
            .iter()
            .map(|c| {
                rank_average(c)
                    .iter()
                    .map(|r| qnorm((r / n).clamp(delta, 1.0 - delta)))
                    .collect()
            })
            .collect(),
        Npn::Skeptic => {
            bail!("the skeptic gives a correlation matrix, not data; call npn_correlation")
        }
    };
    let s0 = sd(&cols[0]);
    cols.iter_mut()
        .for_each(|c| c.iter_mut().for_each(|v| *v /= s0));
    Dataset::new(d.names.clone(), cols)
}

/// The nonparanormal correlation matrix: of the transformed data, or the
/// skeptic's.
pub fn npn_correlation(d: &Dataset, method: Npn) -> Result<Mat<f64>> {
    match method {
        Npn::Skeptic => {
            let ranks: Vec<Vec<f64>> = d.cols.iter().map(|c| rank_average(c)).collect();
            let r = correlation(&Dataset {
                names: d.names.clone(),
                cols: ranks,
            });
            let p = d.p();
            Ok(Mat::from_fn(p, p, |a, b| {
                if a == b {
                    1.0
                } else {
                    2.0 * (std::f64::consts::PI / 6.0 * r[(a, b)]).sin()
                }
            }))
        }
        m => Ok(correlation(&npn_transform(d, m)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_maps_give_the_same_npn_correlation() {
        let mut r = caracal_core::Rng::new(3);
        let x: Vec<f64> = (0..200).map(|_| r.normal()).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 0.5 * r.normal()).collect();
        let a = Dataset::from_columns(vec![x.clone(), y.clone()]).unwrap();
        let b = Dataset::from_columns(vec![
            x.iter().map(|v| v.exp()).collect(),
            y.iter().map(|v| v.powi(3)).collect(),
        ])
        .unwrap();
        for m in [Npn::Shrinkage, Npn::Truncation, Npn::Skeptic] {
            let (ca, cb) = (
                npn_correlation(&a, m).unwrap(),
                npn_correlation(&b, m).unwrap(),
            );
            assert!((ca[(0, 1)] - cb[(0, 1)]).abs() < 1e-12);
            assert!(ca[(0, 1)] > 0.8, "{m:?} {}", ca[(0, 1)]);
        }
    }
}
