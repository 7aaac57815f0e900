//! Choosing `λ`: the extended BIC and StARS stability selection.
//!
//! - eBIC (Foygel & Drton 2010, NeurIPS, eq. 2):
//!   `eBIC_γ = −2 ℓ(Θ̂) + |E| ln n + 4 γ |E| ln p`, with `γ = 0.5` by default.
//! - StARS (Liu, Roeder & Wasserman 2010, NeurIPS, §3): refit on `N`
//!   subsamples of size `b`; each pair's selection frequency `θ̂_e` gives the
//!   instability `D(λ) = mean_e 2 θ̂_e (1 − θ̂_e)`; monotonize from the
//!   sparse end, `D̄(λ) = sup_{t ≥ λ} D(t)`, and pick the smallest `λ` with
//!   `D̄(λ) ≤ β` (`β = 0.1`, huge's default; `b = ⌊10√n⌋` when `n > 144`,
//!   else `0.8 n`, `N = 20`).

use crate::data::Dataset;
use caracal_core::{ensure, Result, Rng};
use rayon::prelude::*;

/// `−2ℓ + |E| ln n + 4γ|E| ln p`.
pub fn ebic(neg2loglik: f64, n: usize, p: usize, n_edges: usize, gamma: f64) -> f64 {
    let k = n_edges as f64;
    neg2loglik + k * (n as f64).ln() + 4.0 * gamma * k * (p as f64).ln()
}

/// The index of the smallest value (first on ties).
pub fn argmin(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |a, (i, &x)| if x < a.1 { (i, x) } else { a },
        )
        .0
}

/// Settings of StARS.
#[derive(Clone, Debug)]
pub struct StarsOptions {
    /// Subsamples `N`.
    pub subsamples: usize,
    /// Instability threshold `β`.
    pub beta: f64,
    /// Seed of the subsampling.
    pub seed: u64,
}

impl Default for StarsOptions {
    fn default() -> Self {
        StarsOptions {
            subsamples: 20,
            beta: 0.1,
            seed: 1,
        }
    }
}

/// StARS's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stars {
    /// Monotonized instability `D̄` at each `λ` of the path.
    pub instability: Vec<f64>,
    /// The chosen index on the path.
    pub index: usize,
}

/// Run StARS. `fit_path(sub)` must return, for the subsample `sub`, one
/// edge pattern per `λ` of the path (sparse to dense), in pairs order.
pub fn stars<F>(d: &Dataset, o: &StarsOptions, fit_path: F) -> Result<Stars>
where
    F: Fn(&Dataset) -> Result<Vec<Vec<bool>>> + Sync,
{
    ensure!(o.subsamples >= 2, "StARS needs at least 2 subsamples");
    let n = d.n();
    let b = if n > 144 {
        ((10.0 * (n as f64).sqrt()) as usize).min(n)
    } else {
        (0.8 * n as f64) as usize
    }
    .max(2);
    let mut rng = Rng::new(o.seed);
    let draws: Vec<Vec<usize>> = (0..o.subsamples)
        .map(|_| {
            let mut idx: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut idx);
            idx.truncate(b);
            idx
        })
        .collect();
    let paths: Vec<Vec<Vec<bool>>> = draws
        .par_iter()
        .map(|idx| fit_path(&d.subset_rows(idx)))
        .collect::<Result<_>>()?;
    let k = paths[0].len();
    ensure!(
        paths.iter().all(|p| p.len() == k),
        "every subsample must give the same number of path points"
    );
    let mut raw = Vec::with_capacity(k);
    for l in 0..k {
        let m = paths[0][l].len();
        let mut d_sum = 0.0;
        for e in 0..m {
            let th = paths.iter().filter(|p| p[l][e]).count() as f64 / paths.len() as f64;
            d_sum += 2.0 * th * (1.0 - th);
        }
        raw.push(if m == 0 { 0.0 } else { d_sum / m as f64 });
    }
    let mut instability = Vec::with_capacity(k);
    let mut run = 0.0f64;
    for v in raw {
        run = run.max(v);
        instability.push(run);
    }
    let index = instability.iter().rposition(|&v| v <= o.beta).unwrap_or(0);
    Ok(Stars { instability, index })
}
