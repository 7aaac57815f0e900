//! Regularization paths: a decreasing, log-spaced grid of `λ` from the
//! smallest value that gives the empty graph, fitted with warm starts
//! (Friedman, Hastie & Tibshirani 2010, §2.5).

use crate::data::Dataset;
use crate::glasso::{glasso_warm, GlassoFit, GlassoOptions};
use crate::iggl::{iggl, prepare, IgglFit, IgglOptions};
use crate::neighbourhood::{neighbourhood, NeighbourhoodFit};
use caracal_core::{ensure, Result};
use faer::Mat;

/// `max_{i≠j} |S_ij|`: the smallest `λ` at which the graphical lasso and
/// neighbourhood selection (on a correlation matrix) return no edge.
pub fn lambda_max(s: &Mat<f64>) -> f64 {
    let p = s.nrows();
    let mut m = 0.0f64;
    for b in 0..p {
        for a in 0..b {
            m = m.max(s[(a, b)].abs());
        }
    }
    m
}

/// `n` values from `max` down to `ratio · max`, evenly spaced in log scale.
pub fn lambda_grid(max: f64, n: usize, ratio: f64) -> Result<Vec<f64>> {
    ensure!(n >= 1, "a λ path needs at least one value");
    ensure!(
        max > 0.0 && max.is_finite(),
        "λ_max = {max} must be positive; is every variable uncorrelated?"
    );
    ensure!(
        ratio > 0.0 && ratio < 1.0,
        "the λ ratio {ratio} must lie in (0, 1)"
    );
    if n == 1 {
        return Ok(vec![max]);
    }
    Ok((0..n)
        .map(|k| max * ratio.powf(k as f64 / (n - 1) as f64))
        .collect())
}

/// The graphical lasso along `lambdas` (decreasing), each fit warm-starting
/// the next; `template` gives everything but `λ`.
pub fn glasso_path(
    s: &Mat<f64>,
    lambdas: &[f64],
    template: &GlassoOptions,
) -> Result<Vec<GlassoFit>> {
    let mut out: Vec<GlassoFit> = Vec::with_capacity(lambdas.len());
    for &l in lambdas {
        let o = GlassoOptions {
            lambda: l,
            ..template.clone()
        };
        let f = glasso_warm(s, &o, out.last())?;
        out.push(f);
    }
    Ok(out)
}

/// IGGL along `lambdas` with warm starts.
pub fn iggl_path(d: &Dataset, lambdas: &[f64], template: &IgglOptions) -> Result<Vec<IgglFit>> {
    let mut out: Vec<IgglFit> = Vec::with_capacity(lambdas.len());
    for &l in lambdas {
        let o = IgglOptions {
            lambda: l,
            ..template.clone()
        };
        let f = iggl(d, &o, out.last())?;
        out.push(f);
    }
    Ok(out)
}

/// The `λ_max` of IGGL: `max |S_Z,jk|` for the latent `Z` fitted with the
/// empty graph (above it the graph stays empty at that `Z`).
pub fn iggl_lambda_max(d: &Dataset, template: &IgglOptions) -> Result<f64> {
    prepare(d, &template.losses)?;
    let o = IgglOptions {
        lambda: 1e6,
        ..template.clone()
    };
    let f = iggl(d, &o, None)?;
    let (n, p) = (d.n(), d.p());
    let mut m = 0.0f64;
    for b in 0..p {
        for a in 0..b {
            let v = f.z[a * n..(a + 1) * n]
                .iter()
                .zip(&f.z[b * n..(b + 1) * n])
                .map(|(u, v)| u * v)
                .sum::<f64>()
                / n as f64;
            m = m.max(v.abs());
        }
    }
    Ok(m)
}

/// Neighbourhood selection along `lambdas` with warm starts.
pub fn neighbourhood_path(r: &Mat<f64>, lambdas: &[f64]) -> Result<Vec<NeighbourhoodFit>> {
    let mut out: Vec<NeighbourhoodFit> = Vec::with_capacity(lambdas.len());
    for &l in lambdas {
        let f = neighbourhood(r, l, out.last())?;
        out.push(f);
    }
    Ok(out)
}
