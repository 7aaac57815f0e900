//! Binary data: IGGL's logistic model fitted by a per-cell Laplace EM.
//!
//! The Z-step is Newton's method to each row's posterior mode (local
//! curvature `σ'(η_ij)` per cell, not the global bound 1/4), and the Ω-step
//! (glasso, diagonal weight ν) sees `S_Z + (1/n) Σ_i (Ω + D_i)⁻¹`, the
//! Laplace approximation of `E[z zᵀ]`. Kept as an experiment (see the crate
//! docs, binary data); ν = 0 diverges (the latent scale runs off).
//!
//! `NUS=1,3,10 cargo run --release -p caracal-graph --example laplace_em`
#![allow(clippy::needless_range_loop)]
use caracal_graph::{
    adjacency, edge_recovery, glasso_warm, lambda_grid, path_recovery, simulate, DataKind,
    Diagonal, FitOptions, GlassoFit, GlassoOptions, GraphKind, Mat, Method, SimOptions,
};
use faer::linalg::solvers::{DenseSolveCore, Solve};
use rayon::prelude::*;

fn sig(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

struct State {
    alpha: Vec<f64>,
    /// Rows of Z.
    z: Vec<Vec<f64>>,
    g: GlassoFit,
}

/// Row `i`'s objective `Σ_j ℓ(x_ij; α_j + z_j) + ½ zᵀΩz`.
fn row_objective(x: &[Vec<f64>], i: usize, alpha: &[f64], omega: &Mat<f64>, z: &[f64]) -> f64 {
    let p = z.len();
    let mut v = 0.0;
    for a in 0..p {
        let eta = alpha[a] + z[a];
        v += (1.0 + eta.exp()).ln() - x[a][i] * eta;
        for b in 0..p {
            v += 0.5 * z[a] * omega[(a, b)] * z[b];
        }
    }
    v
}

/// Newton to row `i`'s mode from `z`, then the Hessian there.
fn row_mode(
    x: &[Vec<f64>],
    i: usize,
    alpha: &[f64],
    omega: &Mat<f64>,
    z0: &[f64],
) -> (Vec<f64>, Mat<f64>) {
    let p = z0.len();
    let mut z = z0.to_vec();
    let hessian = |z: &[f64]| {
        Mat::from_fn(p, p, |a, b| {
            let s = sig(alpha[a] + z[a]);
            omega[(a, b)] + if a == b { s * (1.0 - s) } else { 0.0 }
        })
    };
    for _ in 0..4 {
        let g = Mat::from_fn(p, 1, |a, _| {
            let oz: f64 = (0..p).map(|b| omega[(a, b)] * z[b]).sum();
            sig(alpha[a] + z[a]) - x[a][i] + oz
        });
        let step = hessian(&z)
            .llt(faer::Side::Lower)
            .expect("Ω + D is positive definite")
            .solve(&g);
        let f0 = row_objective(x, i, alpha, omega, &z);
        let mut t = 1.0;
        loop {
            let zt: Vec<f64> = (0..p).map(|a| z[a] - t * step[(a, 0)]).collect();
            if row_objective(x, i, alpha, omega, &zt) <= f0 || t < 1e-4 {
                z = zt;
                break;
            }
            t *= 0.5;
        }
    }
    let h = hessian(&z);
    (z, h)
}

/// EM at one λ from the current state.
fn em(x: &[Vec<f64>], st: &mut State, lambda: f64, nu: f64, iters: usize) {
    let (n, p) = (x[0].len(), x.len());
    let gopts = GlassoOptions::new(lambda)
        .diagonal(Diagonal::Weight(nu))
        .tol(1e-7);
    for _ in 0..iters {
        let (alpha, omega) = (st.alpha.clone(), st.g.precision.clone());
        let res: Vec<(Vec<f64>, Mat<f64>)> =
            st.z.par_iter()
                .enumerate()
                .map(|(i, z0)| {
                    let (z, h) = row_mode(x, i, &alpha, &omega, z0);
                    let v = h
                        .llt(faer::Side::Lower)
                        .expect("positive definite")
                        .inverse();
                    (z, v)
                })
                .collect();
        let mut s = Mat::<f64>::zeros(p, p);
        for (z, v) in &res {
            for b in 0..p {
                for a in 0..p {
                    s[(a, b)] += (z[a] * z[b] + v[(a, b)]) / n as f64;
                }
            }
        }
        st.z = res.into_iter().map(|r| r.0).collect();
        for a in 0..p {
            let (mut g, mut hh) = (0.0, 0.0);
            for i in 0..n {
                let s = sig(st.alpha[a] + st.z[i][a]);
                g += s - x[a][i];
                hh += s * (1.0 - s);
            }
            st.alpha[a] -= g / hh.max(1e-9);
        }
        let old = st.g.precision.clone();
        st.g = glasso_warm(&s, &gopts, Some(&st.g)).expect("glasso");
        let mut d: f64 = 0.0;
        for b in 0..p {
            for a in 0..p {
                d = d.max((st.g.precision[(a, b)] - old[(a, b)]).abs());
            }
        }
        if d < 1e-5 {
            break;
        }
    }
}

fn main() -> caracal_core::Result<()> {
    let nus: Vec<f64> = caracal_core::knob::list("NUS", &[1.0, 3.0, 10.0])?;
    for (graph, seed) in [
        (GraphKind::Random, 1),
        (GraphKind::Hub, 2),
        (GraphKind::ScaleFree, 3),
    ] {
        let sim = simulate(&SimOptions {
            graph,
            data: DataKind::Binary,
            seed,
            ..SimOptions::new(400, 50)
        })
        .expect("simulate");
        let o = FitOptions {
            method: Method::Glasso,
            path: 30,
            ratio: 0.05,
            ..FitOptions::default()
        };
        let ga = path_recovery(&sim.data, &sim.truth, &o)
            .expect("glasso path")
            .auc;
        let x = &sim.data.cols;
        let (n, p) = (x[0].len(), x.len());
        for &nu in &nus {
            let alpha = x
                .iter()
                .map(|c| {
                    let m = c.iter().sum::<f64>() / n as f64;
                    (m / (1.0 - m)).ln()
                })
                .collect();
            let g0 = GlassoOptions::new(1e9).diagonal(Diagonal::Weight(nu));
            let mut st = State {
                alpha,
                z: vec![vec![0.0; p]; n],
                g: glasso_warm(&Mat::identity(p, p), &g0, None).expect("glasso"),
            };
            em(x, &mut st, 1e9, nu, 200);
            let mut lmax: f64 = 0.0;
            for a in 0..p {
                for b in 0..a {
                    let v: f64 = st.z.iter().map(|z| z[a] * z[b]).sum::<f64>() / n as f64;
                    lmax = lmax.max(v.abs());
                }
            }
            let mut path = vec![];
            for l in lambda_grid(lmax, 30, 0.02).expect("grid") {
                em(x, &mut st, l, nu, 60);
                path.push(adjacency(&st.g.precision));
            }
            let r = edge_recovery(&sim.truth, &path).expect("recovery");
            println!(
                "{graph:?} ν = {nu}: Laplace EM AUC {:.3}, glasso {ga:.3}",
                r.auc
            );
        }
    }
    Ok(())
}
