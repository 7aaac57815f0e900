//! Binary data: how far a latent-Gaussian estimator can get above raw glasso.
//!
//! On thresholded binary data (p = 50, n = 400, `SEEDS` seeds from
//! `FIRST_SEED`, default 10 from 1)
//! this prints the ROC AUC of raw glasso (covariance, R's penalized
//! diagonal: the baseline of `tests/recovery.rs`), glasso on the correlation
//! with the diagonal unpenalized, glasso on the tetrachoric correlation (the
//! latent correlation of the threshold model, by the moment equation
//! `P(x_j = 1, x_k = 1) − q_j q_k = ∫₀^ρ φ₂(c_j, c_k; r) dr`), the
//! rank-based latent correlation (`latent-glasso`, Kendall's tau through
//! Fan et al.'s bridge; with R's and with the unpenalized diagonal), IGGL and
//! Meinshausen–Bühlmann, and how often each beats raw glasso. The crate docs
//! quote its table.
//!
//! `cargo run --release -p caracal-graph --example binary_baselines`
//! (`DATA=counts`, `gaussian`, `t` or `mixed` for the same table on other
//! simulated data, without the tetrachoric column). The last column is IGGL
//! at its settings before the loss scale (ν = 10, natural weights);
//! `NU`, `TAU_D2` (`τ_d²`) and `SCALE=natural|fisher` override the settings
//! of the IGGL column.
#![allow(clippy::needless_range_loop)]
use caracal_graph::{
    adjacency, cov2cor, covariance, edge_recovery, glasso_path, lambda_grid, lambda_max,
    latent_correlation, path_recovery, simulate,
    special::{bvn_cdf, pnorm, qnorm},
    DataKind, Diagonal, FitOptions, GlassoOptions, GraphKind, LossScale, Mat, Method, SimOptions,
};

/// `∫₀^ρ φ₂(a, b; r) dr = Φ₂(a, b; ρ) − Φ(a)Φ(b)` (Plackett's identity).
fn excess(a: f64, b: f64, rho: f64) -> f64 {
    bvn_cdf(a, b, rho) - pnorm(a) * pnorm(b)
}

fn tetrachoric(x: &[Vec<f64>]) -> Mat<f64> {
    let p = x.len();
    let n = x[0].len() as f64;
    let q: Vec<f64> = x.iter().map(|c| c.iter().sum::<f64>() / n).collect();
    let c: Vec<f64> = q.iter().map(|&q| qnorm(1.0 - q)).collect();
    Mat::from_fn(p, p, |a, b| {
        if a == b {
            return 1.0;
        }
        let p11 = x[a]
            .iter()
            .zip(&x[b])
            .filter(|(u, v)| **u > 0.5 && **v > 0.5)
            .count() as f64
            / n;
        let target = p11 - q[a] * q[b];
        let (mut lo, mut hi) = (-0.995, 0.995);
        for _ in 0..50 {
            let mid = 0.5 * (lo + hi);
            if excess(c[a], c[b], mid) < target {
                lo = mid
            } else {
                hi = mid
            }
        }
        0.5 * (lo + hi)
    })
}

fn auc_of(s: &Mat<f64>, diag: Diagonal, truth: &[bool], ratio: f64) -> (f64, f64, f64) {
    let grid = lambda_grid(lambda_max(s), 30, ratio).unwrap();
    let t = GlassoOptions::new(grid[0]).diagonal(diag).tol(1e-4);
    match glasso_path(s, &grid, &t) {
        Ok(fits) => {
            let path: Vec<Vec<bool>> = fits.iter().map(|f| adjacency(&f.precision)).collect();
            let r = edge_recovery(truth, &path).unwrap();
            (r.auc, *r.fpr.last().unwrap(), *r.tpr.last().unwrap())
        }
        Err(_) => (f64::NAN, 0.0, 0.0),
    }
}

fn method_auc(sim: &caracal_graph::Simulated, method: Method) -> f64 {
    options_auc(
        sim,
        FitOptions {
            method,
            ..FitOptions::default()
        },
    )
}

fn options_auc(sim: &caracal_graph::Simulated, o: FitOptions) -> f64 {
    let o = FitOptions {
        path: 30,
        ratio: 0.05,
        ..o
    };
    path_recovery(&sim.data, &sim.truth, &o).unwrap().auc
}

fn main() -> caracal_core::Result<()> {
    // `DATA=counts|gaussian|t|mixed` runs the same table on other data (no
    // tetrachoric column).
    let data: DataKind = caracal_core::knob::env("DATA", String::from("binary"))?
        .parse()
        .map_err(|e| caracal_core::Error::Invalid(format!("DATA: {e}")))?;
    let binary = data == DataKind::Binary;
    let seeds: u64 = caracal_core::knob::env("SEEDS", 10)?;
    let first: u64 = caracal_core::knob::env("FIRST_SEED", 1)?;
    // `NU`, `TAU_D2` and `SCALE=natural|fisher` override IGGL's defaults.
    let nu: f64 = caracal_core::knob::env("NU", caracal_graph::iggl::DEFAULT_NU)?;
    let tau_d2: f64 =
        caracal_core::knob::env("TAU_D2", caracal_graph::iggl::DEFAULT_DISCRETE_NOISE)?;
    let scale: LossScale = caracal_core::knob::env("SCALE", String::from("auto"))?
        .parse()
        .map_err(|e| caracal_core::Error::Invalid(format!("SCALE: {e}")))?;
    for graph in [GraphKind::Random, GraphKind::ScaleFree, GraphKind::Hub] {
        let names = [
            "glasso raw (cov, R default)",
            "glasso on correlation, diag unpen",
            "glasso on tetrachoric",
            "latent-glasso (Kendall bridge)",
            "glasso on Kendall latent corr, diag unpen",
            "IGGL",
            "MB",
            "IGGL, ν = 10, natural scale (the default before)",
        ];
        let mut sums = vec![0.0; names.len()];
        let mut wins = vec![0usize; names.len()];
        for seed in first..first + seeds {
            let sim = simulate(&SimOptions {
                graph,
                data,
                seed,
                ..SimOptions::new(400, 50)
            })
            .unwrap();
            let t = &sim.truth;
            let r = cov2cor(&covariance(&sim.data));
            let a = [
                method_auc(&sim, Method::Glasso),
                auc_of(&r, Diagonal::Unpenalized, t, 0.05).0,
                if !binary {
                    f64::NAN
                } else {
                    auc_of(&tetrachoric(&sim.data.cols), Diagonal::Unpenalized, t, 0.05).0
                },
                method_auc(&sim, Method::LatentGlasso),
                auc_of(
                    &latent_correlation(&sim.data, 0.001).unwrap().correlation,
                    Diagonal::Unpenalized,
                    t,
                    0.05,
                )
                .0,
                options_auc(
                    &sim,
                    FitOptions {
                        scale,
                        nu,
                        discrete_noise: tau_d2,
                        ..FitOptions::default()
                    },
                ),
                method_auc(&sim, Method::Mb),
                options_auc(
                    &sim,
                    FitOptions {
                        nu: 10.0,
                        scale: LossScale::Natural,
                        ..FitOptions::default()
                    },
                ),
            ];
            println!(
                "{graph:?} seed {seed}: {}",
                a.iter()
                    .map(|v| format!("{v:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            for k in 0..a.len() {
                sums[k] += a[k];
                if a[k] > a[0] {
                    wins[k] += 1;
                }
            }
        }
        for k in 0..names.len() {
            println!(
                "{graph:?} | {} | mean AUC {:.4} | beats raw glasso on {}/{seeds} seeds",
                names[k],
                sums[k] / seeds as f64,
                wins[k]
            );
        }
    }
    Ok(())
}
