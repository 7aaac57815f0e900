//! Binary data: the exact latent-threshold model fitted by stochastic EM.
//!
//! `x_ij = 1{u_ij > c_j}`, `u_i ~ N(0, Σ)` with `Σ` a correlation matrix and
//! `c_j = Φ⁻¹(1 − q_j)`: the E-step runs persistent Gibbs chains (one per
//! row, truncated-normal conditionals, SWEEPS sweeps per iteration), the
//! M-step is glasso (diagonal unpenalized) on the correlation of the averaged
//! `E[u uᵀ]`, ITERS iterations per λ, warm started along a 30-point path. It
//! is the posterior-moment counterpart of IGGL's posterior-mode Z-step for a
//! loss that is exact for thresholded data, kept as an experiment (see the
//! crate docs, binary data).
//!
//! `SEEDS=3 SWEEPS=40 ITERS=10 cargo run --release -p caracal-graph --example gibbs_em`
#![allow(clippy::needless_range_loop)]
use caracal_core::rng::Rng;
use caracal_graph::{
    adjacency, cov2cor, edge_recovery, glasso_warm, lambda_grid, path_recovery, simulate,
    special::{dnorm, pnorm, qnorm},
    DataKind, Diagonal, FitOptions, GlassoFit, GlassoOptions, GraphKind, Mat, Method, SimOptions,
};

/// The inverse Mills ratio `φ(a)/(1 − Φ(a))`: from [`pnorm`] for `a < 2.5`;
/// beyond, from Laplace's continued fraction
/// `(1 − Φ(a))/φ(a) = 1/(a + 1/(a + 2/(a + …)))`, evaluated from the tail.
fn inverse_mills(a: f64) -> f64 {
    if a < 2.5 {
        dnorm(a) / (1.0 - pnorm(a))
    } else {
        let mut r = a;
        for k in (1..=60).rev() {
            r = a + k as f64 / r;
        }
        r
    }
}

/// Mean and second moment of `N(m, s²)` truncated to `(c, ∞)` (`upper`) or `(−∞, c]`.
fn truncated_moments(m: f64, s: f64, c: f64, upper: bool) -> (f64, f64) {
    // Reflect the lower case onto the upper one.
    let (m0, c0, sign) = if upper { (m, c, 1.0) } else { (-m, -c, -1.0) };
    let a = (c0 - m0) / s;
    let lam = inverse_mills(a);
    let mean = m0 + s * lam;
    let var = s * s * (1.0 + a * lam - lam * lam).max(0.0);
    (sign * mean, var + mean * mean)
}

/// Mean and sd of `u_j` given the rest of the row under precision `Ω`.
fn conditional(omega: &Mat<f64>, u: &[f64], j: usize) -> (f64, f64) {
    let mut m = 0.0;
    for (k, uk) in u.iter().enumerate() {
        if k != j {
            m -= omega[(j, k)] * uk;
        }
    }
    let var = 1.0 / omega[(j, j)];
    (m * var, var.sqrt())
}

/// N(0,1) truncated to [a, ∞).
fn tail(rng: &mut Rng, a: f64) -> f64 {
    if a < 0.3 {
        loop {
            let z = rng.normal();
            if z >= a {
                return z;
            }
        }
    }
    let al = 0.5 * (a + (a * a + 4.0).sqrt());
    loop {
        let z = a - rng.uniform().max(1e-300).ln() / al;
        if rng.uniform() <= (-(z - al) * (z - al) / 2.0).exp() {
            return z;
        }
    }
}

/// The experiment's knobs (environment variables of the same names).
#[derive(Clone, Copy)]
struct Settings {
    sweeps: usize,
    iters: usize,
    ratio: f64,
    corr: bool,
    rb: bool,
    plugin: bool,
}

fn run(x: &[Vec<f64>], truth: &[bool], o: &Settings) -> f64 {
    let Settings {
        sweeps,
        iters,
        ratio,
        corr,
        rb,
        plugin,
    } = *o;
    let (n, p) = (x[0].len(), x.len());
    let c: Vec<f64> = x
        .iter()
        .map(|col| qnorm(1.0 - col.iter().sum::<f64>() / n as f64))
        .collect();
    let mut rng = Rng::new(12345);
    // u[i][j], start at the marginal truncated mean sign.
    let mut u: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..p)
                .map(|j| {
                    if x[j][i] > 0.5 {
                        c[j].max(0.0) + 0.5
                    } else {
                        c[j].min(0.0) - 0.5
                    }
                })
                .collect()
        })
        .collect();
    let mut omega = Mat::<f64>::identity(p, p);
    let estep = |omega: &Mat<f64>, u: &mut Vec<Vec<f64>>, rng: &mut Rng| -> Mat<f64> {
        let mut s = Mat::<f64>::zeros(p, p);
        for _ in 0..sweeps {
            for i in 0..n {
                let ui = &mut u[i];
                for j in 0..p {
                    let (m, sd) = conditional(omega, ui, j);
                    // x=1: u > c ; x=0: u <= c
                    ui[j] = if x[j][i] > 0.5 {
                        m + sd * tail(rng, (c[j] - m) / sd)
                    } else {
                        m - sd * tail(rng, (m - c[j]) / sd)
                    };
                }
                if rb {
                    // Rao–Blackwell: E[u_j u_k] = E[E[u_j | u_-j] u_k].
                    let mut t = vec![0.0; p];
                    let mut t2 = vec![0.0; p];
                    for j in 0..p {
                        let (m, sd) = conditional(omega, ui, j);
                        (t[j], t2[j]) = truncated_moments(m, sd, c[j], x[j][i] > 0.5);
                    }
                    for a in 0..p {
                        for b in 0..a {
                            s[(a, b)] += 0.5 * (t[a] * ui[b] + ui[a] * t[b]);
                        }
                        s[(a, a)] += t2[a];
                    }
                } else {
                    for a in 0..p {
                        for b in 0..=a {
                            s[(a, b)] += ui[a] * ui[b];
                        }
                    }
                }
            }
        }
        let k = (sweeps * n) as f64;
        Mat::from_fn(
            p,
            p,
            |a, b| if a >= b { s[(a, b)] / k } else { s[(b, a)] / k },
        )
    };
    // Empty-graph burn-in: Ω = I (independent), then λ_max from the first S.
    let s0 = estep(&omega, &mut u, &mut rng);
    let s0 = if corr { cov2cor(&s0) } else { s0 };
    let mut lmax: f64 = 0.0;
    for a in 0..p {
        for b in 0..a {
            lmax = lmax.max(s0[(a, b)].abs());
        }
    }
    let grid = lambda_grid(lmax, 30, ratio).unwrap();
    if plugin {
        // Feedback-free: the E-step runs at the unpenalized fit (λ = 0), and
        // the λ path is glasso on its converged latent correlation.
        let o = GlassoOptions::new(0.0)
            .diagonal(Diagonal::Unpenalized)
            .tol(1e-6);
        let mut s = s0.clone();
        for _ in 0..iters {
            let f = glasso_warm(&s, &o, None).unwrap();
            omega = f.precision;
            let e = estep(&omega, &mut u, &mut rng);
            s = cov2cor(&e);
        }
        let t = GlassoOptions::new(grid[0])
            .diagonal(Diagonal::Unpenalized)
            .tol(1e-4);
        let path: Vec<Vec<bool>> = caracal_graph::glasso_path(&s, &grid, &t)
            .unwrap()
            .iter()
            .map(|f| adjacency(&f.precision))
            .collect();
        return edge_recovery(truth, &path).unwrap().auc;
    }
    let mut g: Option<GlassoFit> = None;
    let mut path = vec![];
    for &l in &grid {
        let o = GlassoOptions::new(l)
            .diagonal(Diagonal::Unpenalized)
            .tol(1e-6);
        for _ in 0..iters {
            let s = estep(&omega, &mut u, &mut rng);
            let s = if corr { cov2cor(&s) } else { s };
            let f = glasso_warm(&s, &o, g.as_ref()).unwrap();
            omega = f.precision.clone();
            g = Some(f);
        }
        path.push(adjacency(&omega));
    }
    edge_recovery(truth, &path).unwrap().auc
}

fn main() -> caracal_core::Result<()> {
    use caracal_core::knob;
    let seeds: u64 = knob::env("SEEDS", 5)?;
    let sweeps: usize = knob::env("SWEEPS", 3)?;
    let iters: usize = knob::env("ITERS", 5)?;
    let plugin = knob::flag("PLUGIN", false)?;
    let rb = knob::flag("RB", false)?;
    let corr = knob::flag("CORR", true)?;
    let settings = Settings {
        sweeps,
        iters,
        ratio: 0.05,
        corr,
        rb,
        plugin,
    };
    for graph in [GraphKind::Random, GraphKind::ScaleFree, GraphKind::Hub] {
        let (mut sg, mut se, mut wins) = (0.0, 0.0, 0);
        for seed in 1..=seeds {
            let sim = simulate(&SimOptions {
                graph,
                data: DataKind::Binary,
                seed,
                ..SimOptions::new(400, 50)
            })
            .unwrap();
            let o = FitOptions {
                method: Method::Glasso,
                path: 30,
                ratio: 0.05,
                ..FitOptions::default()
            };
            let ga = path_recovery(&sim.data, &sim.truth, &o).unwrap().auc;
            let t0 = std::time::Instant::now();
            let ea = run(&sim.data.cols, &sim.truth, &settings);
            println!(
                "{graph:?} seed {seed}: gibbs-EM {ea:.3} glasso {ga:.3} ({:.1}s)",
                t0.elapsed().as_secs_f64()
            );
            sg += ga;
            se += ea;
            if ea > ga {
                wins += 1;
            }
        }
        println!(
            "{graph:?}: mean gibbs-EM {:.4} glasso {:.4} wins {wins}/{seeds}",
            se / seeds as f64,
            sg / seeds as f64
        );
    }
    Ok(())
}
