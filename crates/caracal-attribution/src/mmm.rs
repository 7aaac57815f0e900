//! A small media-mix model (MMM) of daily conversions from channel spend,
//! the top-down side of LiDDA's calibration.
//!
//! `y_d = b + Σ_c θ_c · sat_c(adstock_c(spend_c))_d + Σ_j η_j m_jd
//!        + α₁ sin(2πd/7) + α₂ cos(2πd/7) + ε_d`
//!
//! with geometric adstock `a_d = s_d + λ a_{d−1}` (Broadbent 1979), Hill
//! saturation `a / (a + K)` (Jin et al., "Bayesian Methods for Media Mix
//! Modeling with Carryover and Shape Effects", Google 2017, eq. 2–3, with
//! shape 1), macro covariates `m` (standardized) and weekly seasonality.
//! `λ_c` and `K_c` are chosen per channel from a grid by coordinate descent
//! on the residual sum of squares; the θ are least squares constrained to
//! be non-negative (negative ones are dropped and the rest refitted).
//! A channel's contribution is `Σ_d θ_c · sat_c(...)_d`.
//!
//! [`fit_mmm_kernels`] fixes some channels' carry-over to a given lag
//! kernel instead (the joint fit of [`crate::calibrate::member_informed_mmm`]).

use crate::data::{normalize, Aggregates, Macro};
use crate::linalg::solve;
use caracal_core::{Error, Result};
use serde::Serialize;

/// A fitted MMM.
#[derive(Clone, Debug, Serialize)]
pub struct MmmFit {
    pub channels: Vec<String>,
    /// Adstock decay per channel (NaN where a lag kernel was given).
    pub decay: Vec<f64>,
    /// Half-saturation `K_c` as a multiple of the channel's mean adstock
    /// (`inf`: linear).
    pub half_saturation: Vec<f64>,
    pub coef: Vec<f64>,
    /// Conversions attributed to each channel over the fitted days.
    pub contribution: Vec<f64>,
    /// Standard error of each contribution: `Σ_d sat_c(...)_d` times the
    /// OLS standard error of `θ_c` (`σ̂²(XᵀX)⁻¹` over the active columns),
    /// conditional on the chosen adstock and saturation (the grid search
    /// adds uncertainty this does not count). 0 for dropped channels.
    pub contribution_se: Vec<f64>,
    /// Sum of the KPI over the fitted days.
    pub kpi_total: f64,
    /// The design of the final fit, for refits with constraints
    /// ([`fit_tied`]): channel columns, then the other columns, and the KPI.
    #[serde(skip)]
    design: (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>),
    pub shares: Vec<f64>,
    pub r2: f64,
    pub days: usize,
}

const DECAYS: [f64; 7] = [0.0, 0.3, 0.5, 0.7, 0.85, 0.9, 0.95];
const HALF_SAT: [f64; 4] = [0.5, 1.0, 2.0, f64::INFINITY];

fn transform(spend: &[f64], decay: f64, k: f64) -> Vec<f64> {
    let mut a = Vec::with_capacity(spend.len());
    let mut prev = 0.0;
    for &s in spend {
        prev = s + decay * prev;
        a.push(prev);
    }
    saturate(a, k)
}

/// Hill saturation `a/(a + K·mean(a))` (Jin et al. 2017, with shape 1), or
/// for `K = ∞` the linear response scaled to mean 1.
fn saturate(a: Vec<f64>, k: f64) -> Vec<f64> {
    let mean = a.iter().sum::<f64>() / a.len().max(1) as f64;
    if k.is_infinite() {
        return a.iter().map(|x| x / mean.max(1e-12)).collect();
    }
    let kk = (k * mean).max(1e-12);
    a.iter().map(|x| x / (x + kk)).collect()
}

/// Least squares of `y` on the columns `x` (each a full-length column),
/// with the first `n_pos` coefficients constrained non-negative.
fn nnls_first(x: &[Vec<f64>], y: &[f64], n_pos: usize) -> Result<(Vec<f64>, f64)> {
    let p = x.len();
    let mut active = vec![true; p];
    loop {
        let cols: Vec<usize> = (0..p).filter(|&j| active[j]).collect();
        let q = cols.len();
        let mut a = vec![vec![0.0; q]; q];
        let mut b = vec![0.0; q];
        for (i, &ci) in cols.iter().enumerate() {
            for (k, &ck) in cols.iter().enumerate() {
                a[i][k] = x[ci].iter().zip(&x[ck]).map(|(u, v)| u * v).sum();
            }
            a[i][i] += 1e-9;
            b[i] = x[ci].iter().zip(y).map(|(u, v)| u * v).sum();
        }
        let beta = solve(a, b)?;
        let mut coef = vec![0.0; p];
        for (i, &c) in cols.iter().enumerate() {
            coef[c] = beta[i];
        }
        let neg = (0..n_pos)
            .filter(|&j| active[j] && coef[j] < 0.0)
            .min_by(|&a, &b| coef[a].total_cmp(&coef[b]));
        match neg {
            Some(j) => active[j] = false,
            None => {
                let rss = (0..y.len())
                    .map(|d| {
                        let f: f64 = (0..p).map(|j| coef[j] * x[j][d]).sum();
                        (y[d] - f).powi(2)
                    })
                    .sum();
                return Ok((coef, rss));
            }
        }
    }
}

/// Fit the MMM to daily spend and the daily KPI in `macros.conversions`
/// (or `kpi` when given: `(day0, values)`). Leading days with zero KPI are
/// taken as before the KPI was recorded and skipped.
pub fn fit_mmm(aggr: &Aggregates, macros: &Macro, kpi: Option<(i64, &[f64])>) -> Result<MmmFit> {
    fit_mmm_kernels(aggr, macros, kpi, &vec![None; aggr.channels.len()])
}

/// A channel's spend convolved with a fixed lag kernel,
/// `a_d = Σ_k w_k s_{d−k}`, then saturated with half-saturation `k`.
fn convolve(spend: &[f64], kernel: &[f64], k: f64) -> Vec<f64> {
    let a: Vec<f64> = (0..spend.len())
        .map(|d| {
            kernel
                .iter()
                .enumerate()
                .take(d + 1)
                .map(|(k, w)| w * spend[d - k])
                .sum()
        })
        .collect();
    saturate(a, k)
}

/// [`fit_mmm`] with some channels' carry-over fixed: `kernels[c] =
/// Some(w)` replaces channel `c`'s geometric adstock by the lag kernel `w`
/// (its saturation is still searched); `None` keeps the full grid search.
pub fn fit_mmm_kernels(
    aggr: &Aggregates,
    macros: &Macro,
    kpi: Option<(i64, &[f64])>,
    kernels: &[Option<Vec<f64>>],
) -> Result<MmmFit> {
    if kernels.len() != aggr.channels.len() {
        return Err(Error::invalid(
            "fit_mmm_kernels: one kernel slot per channel",
        ));
    }
    let (k0, y_all): (i64, Vec<f64>) = match kpi {
        Some((d, v)) => (d, v.to_vec()),
        None => match &macros.conversions {
            Some(v) => (macros.day0, v.clone()),
            None => {
                return Err(Error::invalid(
                    "the MMM needs a daily KPI: add a `conversions` column to the macro file",
                ))
            }
        },
    };
    let first = y_all.iter().position(|v| *v > 0.0).ok_or_else(|| {
        Error::invalid("the daily KPI is zero on every day; the MMM has nothing to fit")
    })?;
    // Days (absolute) covered by the KPI, the spend and the macro factors.
    let lo = (k0 + first as i64).max(aggr.day0).max(macros.day0);
    let hi = (k0 + y_all.len() as i64)
        .min(aggr.day0 + aggr.n_days() as i64)
        .min(
            macros.day0
                + macros
                    .values
                    .first()
                    .map_or(i64::MAX / 4, |v| v.len() as i64),
        );
    let n = (hi - lo).max(0) as usize;
    let nc = aggr.channels.len();
    if n < nc + macros.names.len() + 6 {
        return Err(Error::invalid(format!(
            "the MMM has {n} days where spend, macro factors and the KPI overlap; it needs at least {}",
            nc + macros.names.len() + 6
        )));
    }
    let y: Vec<f64> = (0..n).map(|d| y_all[(lo - k0) as usize + d]).collect();
    // Channel transforms use all spend up to `hi` (adstock burn-in), then
    // are cut to the fitted days.
    let cut = |v: Vec<f64>| -> Vec<f64> {
        v[(lo - aggr.day0) as usize..(hi - aggr.day0) as usize].to_vec()
    };
    let spend_to_hi: Vec<Vec<f64>> = aggr
        .spend
        .iter()
        .map(|s| s[..(hi - aggr.day0) as usize].to_vec())
        .collect();
    let mut other: Vec<Vec<f64>> = Vec::new();
    for v in &macros.values {
        let seg: Vec<f64> = (0..n).map(|d| v[(lo - macros.day0) as usize + d]).collect();
        let mean = seg.iter().sum::<f64>() / n as f64;
        let sd = (seg.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-12);
        other.push(seg.iter().map(|x| (x - mean) / sd).collect());
    }
    let w = 2.0 * std::f64::consts::PI / 7.0;
    other.push((0..n).map(|d| ((lo + d as i64) as f64 * w).sin()).collect());
    other.push((0..n).map(|d| ((lo + d as i64) as f64 * w).cos()).collect());
    other.push(vec![1.0; n]);

    let mut decay = vec![0.5; nc];
    let mut hs = vec![f64::INFINITY; nc];
    let mut cols: Vec<Vec<f64>> = (0..nc)
        .map(|c| match &kernels[c] {
            Some(w) => cut(convolve(&spend_to_hi[c], w, hs[c])),
            None => cut(transform(&spend_to_hi[c], decay[c], hs[c])),
        })
        .collect();
    for c in 0..nc {
        if kernels[c].is_some() {
            decay[c] = f64::NAN;
        }
    }
    let fit = |cols: &[Vec<f64>]| -> Result<(Vec<f64>, f64)> {
        let x: Vec<Vec<f64>> = cols.iter().chain(&other).cloned().collect();
        nnls_first(&x, &y, nc)
    };
    let (_, mut best) = fit(&cols)?;
    for _pass in 0..2 {
        for c in 0..nc {
            // A fixed kernel keeps its carry-over: only saturation is searched.
            let decays: &[f64] = if kernels[c].is_some() {
                &[f64::NAN]
            } else {
                &DECAYS
            };
            for &l in decays {
                for &k in &HALF_SAT {
                    let col = match &kernels[c] {
                        Some(w) => convolve(&spend_to_hi[c], w, k),
                        None => transform(&spend_to_hi[c], l, k),
                    };
                    let saved = std::mem::replace(&mut cols[c], cut(col));
                    let (_, rss) = fit(&cols)?;
                    if rss < best - 1e-12 {
                        best = rss;
                        decay[c] = l;
                        hs[c] = k;
                    } else {
                        cols[c] = saved;
                    }
                }
            }
        }
    }
    let (coef, rss) = fit(&cols)?;
    let contribution: Vec<f64> = (0..nc)
        .map(|c| coef[c] * cols[c].iter().sum::<f64>())
        .collect();
    let contribution_se = {
        let x: Vec<Vec<f64>> = cols.iter().chain(&other).cloned().collect();
        // Active columns: every non-channel column, and channels kept by
        // the non-negativity constraint.
        let act: Vec<usize> = (0..x.len()).filter(|&j| j >= nc || coef[j] > 0.0).collect();
        let q = act.len();
        let sigma2 = rss / (n as f64 - q as f64).max(1.0);
        let gram: Vec<Vec<f64>> = act
            .iter()
            .map(|&i| {
                act.iter()
                    .map(|&k| x[i].iter().zip(&x[k]).map(|(u, v)| u * v).sum::<f64>())
                    .collect()
            })
            .collect();
        let mut se = vec![0.0; nc];
        for (r, &c) in act.iter().enumerate().filter(|(_, &c)| c < nc) {
            let mut e = vec![0.0; q];
            e[r] = 1.0;
            let mut g = gram.clone();
            g[r][r] += 1e-9;
            let inv_col = solve(g, e)?;
            se[c] = (sigma2 * inv_col[r].max(0.0)).sqrt() * cols[c].iter().sum::<f64>();
        }
        se
    };
    let mean = y.iter().sum::<f64>() / n as f64;
    let tss: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    Ok(MmmFit {
        channels: aggr.channels.clone(),
        decay,
        half_saturation: hs,
        coef: coef[..nc].to_vec(),
        shares: normalize(&contribution),
        contribution,
        contribution_se,
        kpi_total: y.iter().sum(),
        design: (cols, other, y),
        r2: 1.0 - rss / tss.max(1e-12),
        days: n,
    })
}

/// An MMM refit with tied channels.
#[derive(Clone, Debug, Serialize)]
pub struct TiedFit {
    pub contribution: Vec<f64>,
    /// Common scale of the tied channels.
    pub scale: f64,
    /// Wald / likelihood-ratio statistic of the tie against the free fit,
    /// `n · ln(RSS_tied / RSS_free)`, ≈ χ² with `constraints` degrees of
    /// freedom when the member ratios are right.
    pub lr: f64,
    pub constraints: usize,
}

/// Refit the MMM with the channels in `tied` (index, weight) sharing one
/// coefficient: their contributions are constrained to `κ · weight_c` and
/// only the common scale `κ ≥ 0` is fitted, on the column
/// `Σ_c weight_c · sat_c(...) / Σ_d sat_c(...)_d` (same adstock and
/// saturation as the free fit). Other channels keep free non-negative
/// coefficients. Returns every channel's contribution and `κ`.
pub fn fit_tied(fit: &MmmFit, tied: &[(usize, f64)]) -> Result<TiedFit> {
    let (cols, other, y) = &fit.design;
    let nc = cols.len();
    if tied
        .iter()
        .any(|&(c, w)| c >= nc || !(w >= 0.0 && w.is_finite()))
    {
        return Err(Error::invalid(
            "fit_tied: tied channels must exist and have finite non-negative weights",
        ));
    }
    let sums: Vec<f64> = cols.iter().map(|c| c.iter().sum::<f64>()).collect();
    let free: Vec<usize> = (0..nc)
        .filter(|c| !tied.iter().any(|t| t.0 == *c))
        .collect();
    let mut tcol = vec![0.0; y.len()];
    for &(c, w) in tied {
        for (t, v) in tcol.iter_mut().zip(&cols[c]) {
            *t += w * v / sums[c].max(1e-12);
        }
    }
    let x: Vec<Vec<f64>> = free
        .iter()
        .map(|&c| cols[c].clone())
        .chain(std::iter::once(tcol))
        .chain(other.iter().cloned())
        .collect();
    let (coef, rss_tied) = nnls_first(&x, y, free.len() + 1)?;
    let full: Vec<Vec<f64>> = cols.iter().chain(other.iter()).cloned().collect();
    let (_, rss_free) = nnls_first(&full, y, nc)?;
    let kappa = coef[free.len()];
    let mut contribution = vec![0.0; nc];
    for (k, &c) in free.iter().enumerate() {
        contribution[c] = coef[k] * sums[c];
    }
    for &(c, w) in tied {
        contribution[c] = kappa * w;
    }
    Ok(TiedFit {
        contribution,
        scale: kappa,
        lr: y.len() as f64 * (rss_tied.max(1e-300) / rss_free.max(1e-300)).ln().max(0.0),
        constraints: tied.len().saturating_sub(1),
    })
}

/// MMM shares mapped onto the journeys' channels (renormalized over the
/// channels both have), and the aggregate channels the journeys lack.
/// Journey channels the aggregates lack get `None`.
pub fn calibration_targets(
    mmm: &MmmFit,
    journey_channels: &[String],
) -> (Vec<Option<f64>>, Vec<String>) {
    let extra: Vec<String> = mmm
        .channels
        .iter()
        .filter(|c| !journey_channels.contains(c))
        .cloned()
        .collect();
    let raw: Vec<Option<f64>> = journey_channels
        .iter()
        .map(|c| {
            mmm.channels
                .iter()
                .position(|m| m == c)
                .map(|i| mmm.contribution[i].max(0.0))
        })
        .collect();
    let s: f64 = raw.iter().flatten().sum();
    let t = raw
        .iter()
        .map(|v| v.map(|x| if s > 0.0 { x / s } else { 0.0 }))
        .collect();
    (t, extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caracal_core::Rng;

    #[test]
    fn recovers_contributions_of_a_known_linear_mmm() {
        let mut rng = Rng::new(3);
        let n = 200;
        let spend: Vec<Vec<f64>> = (0..3)
            .map(|_| (0..n).map(|_| 50.0 + 100.0 * rng.uniform()).collect())
            .collect();
        let m: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let theta = [3.0, 0.0, 8.0];
        let cols: Vec<Vec<f64>> = (0..3)
            .map(|c| transform(&spend[c], 0.5, f64::INFINITY))
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|d| {
                20.0 + 2.0 * m[d]
                    + (0..3).map(|c| theta[c] * cols[c][d]).sum::<f64>()
                    + 0.1 * rng.normal()
            })
            .collect();
        let aggr = Aggregates {
            channels: vec!["a".into(), "b".into(), "tv".into()],
            day0: 0,
            spend,
        };
        let mac = Macro {
            day0: 0,
            names: vec!["m".into()],
            values: vec![m],
            conversions: Some(y),
        };
        let f = fit_mmm(&aggr, &mac, None).unwrap();
        assert!(f.r2 > 0.99, "{f:?}");
        assert_eq!(f.decay[0], 0.5);
        let true_share = 3.0 * n as f64 / (11.0 * n as f64);
        assert!((f.shares[0] - true_share).abs() < 0.02, "{:?}", f.shares);
        assert!(f.shares[1] < 0.02);
        // Standard errors: small against a contribution fitted with R² ≈ 1.
        assert!(f.contribution_se[0] > 0.0 && f.contribution_se[0] < 0.05 * f.contribution[0]);
        let (t, extra) =
            calibration_targets(&f, &["a".to_string(), "b".to_string(), "email".to_string()]);
        assert_eq!(extra, ["tv"]);
        assert!(t[2].is_none() && (t[0].unwrap() + t[1].unwrap() - 1.0).abs() < 1e-12);
        // A fixed kernel equal to the true (geometric, 0.5) carry-over gives
        // the same fit for that channel without the grid.
        let kernel: Vec<f64> = (0..n).map(|k| 0.5f64.powi(k as i32)).collect();
        let fk = fit_mmm_kernels(&aggr, &mac, None, &[Some(kernel), None, None]).unwrap();
        assert!(fk.decay[0].is_nan() && !fk.decay[2].is_nan());
        assert!((fk.shares[0] - true_share).abs() < 0.02, "{:?}", fk.shares);
        assert!(fit_mmm_kernels(&aggr, &mac, None, &[None, None]).is_err());
        let no_kpi = Macro {
            conversions: None,
            ..mac
        };
        let e = fit_mmm(&aggr, &no_kpi, None).unwrap_err().to_string();
        assert!(e.contains("`conversions` column"), "{e}");
    }
}
