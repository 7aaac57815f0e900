//! Iterative Gaussian graph learning (IGGL): a dependency graph from
//! per-variable losses that need not be Gaussian likelihoods.
//!
//! The formulation is our reconstruction of the abstract (the paper's full
//! text was not found; see the crate documentation for the whole argument).
//! Data `x_ij` (row `i`, variable `j`), losses `l_j` ([`crate::loss`]), an
//! intercept `α_j`, a latent `z_ij`, `η_ij = α_j + z_ij`, and a sparse
//! precision `Ω`:
//!
//! ```text
//! F(α, Z, Ω) = (1/n) Σ_ij w_j l_j(x_ij; α_j + z_ij)        (marginal fit)
//!            + (1/2n) Σ_i z_iᵀ Ω z_i − ½ ln det Ω          (Gaussian shrinkage of rows)
//!            + (λ/2) Σ_{j≠k} |Ω_jk| + (ν/2) Σ_j Ω_jj        (sparsity; scale)
//! ```
//!
//! The loss weights `w_j` are fixed before the first iteration
//! ([`LossScale`], [`loss_weights`]). The term `ν Σ Ω_jj` fixes the scale
//! degeneracy: without it `Z → 0`, `Ω → ∞` drives `F → −∞`. With it, Hadamard's inequality gives
//! `−ln det Ω + ν Σ Ω_jj ≥ p (1 + ln ν)`, so `F` is bounded below, and the
//! latent covariance `W = Ω⁻¹` has its diagonal pinned at `S_Z,jj + ν`.
//!
//! Algorithm (block coordinate descent):
//! 1. **Z-step** (majorize–minimize). With curvature bounds `L_j`
//!    (`D = diag(L)`), `l_j(x; η) ≤ l_j(x; η⁰) + l_j'(η − η⁰) + (L_j/2)(η − η⁰)²`.
//!    The surrogate is minimized exactly in `(α, Z)`: with the working
//!    response `w_ij = η⁰_ij − l_j'(x_ij; η⁰_ij)/L_j`,
//!    `α = colmeans(W)` and `z_i = (D + Ω)⁻¹ D (w_i − α)` (one Cholesky
//!    for all rows). For Poisson columns (no global bound) `L_j` is the mean
//!    local curvature and the step is backtracked until `F` decreases.
//! 2. **Ω-step**: `Ω = argmin tr(S_Z Ω) − ln det Ω + λ‖Ω‖₁,off + ν Σ Ω_jj`
//!    with `S_Z = ZᵀZ/n`: the graphical lasso with diagonal weight `ν`
//!    ([`crate::glasso`](mod@crate::glasso), warm started).
//!
//! Each step does not increase `F`; `F` is bounded below, so it converges.
//! We stop when the relative decrease of `F` falls below `tol`.

use crate::data::Dataset;
use crate::glasso::{glasso_warm, log_det, Diagonal, GlassoFit, GlassoOptions};
use crate::loss::Loss;
use caracal_core::{bail, ensure, Error, Result};
use faer::linalg::solvers::{DenseSolveCore, Solve};
use faer::Mat;

/// How the loss of each column is chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum LossChoice {
    /// [`Loss::detect`] per column.
    Auto,
    /// The same loss for every column.
    All(Loss),
    /// One loss per column.
    PerColumn(Vec<Loss>),
}

/// How the marginal losses are weighted against the Gaussian shrinkage.
///
/// A loss that is not a likelihood has no natural scale, and even a
/// likelihood's scale decides how strongly each row's posterior mode is
/// shrunk along the current graph (see the crate docs, "Loss scale").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossScale {
    /// Every loss as written: logistic and Poisson weight 1, Gaussian and
    /// Huber `1/τ²` ([`IgglOptions::noise`]).
    Natural,
    /// Logistic and Poisson losses divided by `τ_d² l_j''(α̂_j)`, their
    /// curvature at the intercept-only fit: each discrete column's working
    /// response then has noise variance `τ_d²` there
    /// ([`IgglOptions::discrete_noise`]). Gaussian and Huber as in `Natural`.
    Fisher,
    /// `Fisher` when every column has the logistic loss (binary data),
    /// `Natural` otherwise.
    Auto,
}

impl LossScale {
    /// What `Auto` means for columns with these losses: `Fisher` or `Natural`.
    pub fn resolve(self, losses: &[Loss]) -> LossScale {
        match self {
            LossScale::Auto if losses.iter().all(|l| *l == Loss::Logistic) => LossScale::Fisher,
            LossScale::Auto => LossScale::Natural,
            s => s,
        }
    }

    /// The name the CLI uses.
    pub fn name(self) -> &'static str {
        match self {
            LossScale::Auto => "auto",
            LossScale::Natural => "natural",
            LossScale::Fisher => "fisher",
        }
    }
}

impl std::str::FromStr for LossScale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(LossScale::Auto),
            "natural" => Ok(LossScale::Natural),
            "fisher" => Ok(LossScale::Fisher),
            _ => bail!("unknown loss scale `{s}`; expected auto, natural or fisher"),
        }
    }
}

/// Settings of an IGGL fit.
#[derive(Clone, Debug)]
pub struct IgglOptions {
    /// Off-diagonal penalty `λ`.
    pub lambda: f64,
    /// Diagonal weight `ν` on `Ω` that fixes the latent scale (default 3;
    /// may be 0 only with `posterior`). Larger `ν` weakens the pull of the
    /// Gaussian prior on `Z` against the data curvature `L_j` (see the crate
    /// docs, "Choice of ν").
    pub nu: f64,
    /// Add the shared posterior covariance `V = (Ω + D)⁻¹` to the Ω-step
    /// (the variational variant, see the crate docs; default off).
    pub posterior: bool,
    /// Noise variance `τ²` of Gaussian and Huber columns: their loss is
    /// divided by `τ²` (default 1; `→ 0` makes them observed exactly).
    pub noise: f64,
    /// Working noise variance `τ_d²` of discrete columns under
    /// [`LossScale::Fisher`] (default 0.25).
    pub discrete_noise: f64,
    /// How the losses are weighted (default [`LossScale::Auto`]).
    pub scale: LossScale,
    /// Loss per column (default auto-detected).
    pub losses: LossChoice,
    /// Most outer iterations (default 100).
    pub max_iter: usize,
    /// Relative decrease of `G` that stops the iterations (default 1e-5).
    pub tol: f64,
}

impl IgglOptions {
    /// Defaults at a given `λ`.
    pub fn new(lambda: f64) -> Self {
        IgglOptions {
            lambda,
            nu: DEFAULT_NU,
            posterior: false,
            noise: 1.0,
            discrete_noise: DEFAULT_DISCRETE_NOISE,
            scale: LossScale::Auto,
            losses: LossChoice::Auto,
            max_iter: 100,
            tol: 1e-5,
        }
    }
}

/// The default scale weight `ν` (see the crate docs, "Choice of ν").
pub const DEFAULT_NU: f64 = 3.0;

/// The default working noise variance `τ_d²` of discrete columns under
/// [`LossScale::Fisher`] (see the crate docs, "Loss scale").
pub const DEFAULT_DISCRETE_NOISE: f64 = 0.25;

/// The weight of each column's loss in `F` (see [`LossScale`]); `alpha0`
/// holds the intercept-only fits.
pub fn loss_weights(losses: &[Loss], alpha0: &[f64], o: &IgglOptions) -> Vec<f64> {
    let fisher = o.scale.resolve(losses) == LossScale::Fisher;
    losses
        .iter()
        .zip(alpha0)
        .map(|(l, &a)| match l {
            Loss::Gaussian | Loss::Huber { .. } => 1.0 / o.noise,
            // The curvature at the intercept is positive: `intercept` clamps
            // the mean away from 0 (and 1), even for a constant column.
            _ if fisher => 1.0 / (o.discrete_noise * l.curvature(a)),
            _ => 1.0,
        })
        .collect()
}

/// A fitted IGGL model.
#[derive(Clone, Debug)]
pub struct IgglFit {
    /// The latent precision `Ω̂`: its zero pattern is the graph.
    pub precision: Mat<f64>,
    /// Intercepts `α̂_j`.
    pub alpha: Vec<f64>,
    /// Latent means `ẑ` (column-major: `z[j * n + i]`).
    pub z: Vec<f64>,
    /// The shared posterior covariance `V = (Ω + D)⁻¹`.
    pub v: Mat<f64>,
    /// The loss of each column.
    pub losses: Vec<Loss>,
    /// `λ` used.
    pub lambda: f64,
    /// `G(α̂, Ẑ, V̂, Ω̂)`.
    pub objective: f64,
    /// `G` without the penalties (a bound on the negative log-likelihood per row).
    pub fit_term: f64,
    /// Outer iterations run.
    pub iterations: usize,
    /// Whether `tol` was met.
    pub converged: bool,
    omega: GlassoFit,
}

/// The losses and prepared columns for `d`.
pub fn prepare(d: &Dataset, choice: &LossChoice) -> Result<(Vec<Loss>, Vec<Vec<f64>>)> {
    let losses: Vec<Loss> = match choice {
        LossChoice::Auto => d.cols.iter().map(|c| Loss::detect(c)).collect(),
        LossChoice::All(l) => vec![*l; d.p()],
        LossChoice::PerColumn(v) => {
            ensure!(
                v.len() == d.p(),
                "{} losses for {} columns; give one per column",
                v.len(),
                d.p()
            );
            v.clone()
        }
    };
    let cols = losses
        .iter()
        .zip(&d.cols)
        .zip(&d.names)
        .map(|((l, c), name)| l.prepare(name, c))
        .collect::<Result<Vec<_>>>()?;
    Ok((losses, cols))
}

struct Problem<'a> {
    x: &'a [Vec<f64>],
    losses: &'a [Loss],
    /// Loss weights (`1/τ²` for Gaussian and Huber, 1 otherwise).
    wt: Vec<f64>,
    /// Fixed curvatures `L_j` (weighted).
    lj: Vec<f64>,
    n: usize,
    p: usize,
}

impl Problem<'_> {
    /// `(1/n) Σ w_j l_j + (1/2n) Σ zᵀΩz`: the part of `G` that depends on `(α, Z)`.
    fn smooth(&self, alpha: &[f64], z: &[f64], omega: &Mat<f64>) -> f64 {
        let (n, p) = (self.n, self.p);
        let mut data = 0.0;
        for j in 0..p {
            let l = self.losses[j];
            let zj = &z[j * n..(j + 1) * n];
            data += self.wt[j]
                * self.x[j]
                    .iter()
                    .zip(zj)
                    .map(|(&x, &zz)| l.value(x, alpha[j] + zz))
                    .sum::<f64>();
        }
        let mut quad = 0.0;
        for a in 0..p {
            for b in 0..p {
                let o = omega[(a, b)];
                if o != 0.0 {
                    let (za, zb) = (&z[a * n..(a + 1) * n], &z[b * n..(b + 1) * n]);
                    quad += o * za.iter().zip(zb).map(|(u, v)| u * v).sum::<f64>();
                }
            }
        }
        (data + 0.5 * quad) / n as f64
    }

    /// The majorize–minimize step from `(alpha, z)` at fixed `Ω`.
    fn z_step(&self, alpha: &[f64], z: &[f64], omega: &Mat<f64>) -> Result<(Vec<f64>, Vec<f64>)> {
        let (n, p) = (self.n, self.p);
        let lj = &self.lj;
        let mut w = vec![0.0; n * p];
        for j in 0..p {
            let l = self.losses[j];
            let zj = &z[j * n..(j + 1) * n];
            for i in 0..n {
                let eta = alpha[j] + zj[i];
                w[j * n + i] = eta - self.wt[j] * l.grad(self.x[j][i], eta) / lj[j];
            }
        }
        let new_alpha: Vec<f64> = (0..p)
            .map(|j| w[j * n..(j + 1) * n].iter().sum::<f64>() / n as f64)
            .collect();
        let m = Mat::from_fn(p, p, |a, b| {
            omega[(a, b)] + if a == b { lj[a] } else { 0.0 }
        });
        let llt = m
            .llt(faer::Side::Lower)
            .map_err(|_| Error::Numeric("iggl: D + Ω is not positive definite".into()))?;
        let mut rhs = Mat::from_fn(p, n, |j, i| lj[j] * (w[j * n + i] - new_alpha[j]));
        llt.solve_in_place(rhs.as_mut());
        let mut new_z = vec![0.0; n * p];
        for j in 0..p {
            for i in 0..n {
                new_z[j * n + i] = rhs[(j, i)];
            }
        }
        Ok((new_alpha, new_z))
    }

    /// `V = (Ω + D)⁻¹` and the terms of `G` that involve it:
    /// `½ Σ L_j V_jj + ½ tr(ΩV) − ½ ln det V`.
    fn v_step(&self, omega: &Mat<f64>) -> Result<(Mat<f64>, f64)> {
        let p = self.p;
        let m = Mat::from_fn(p, p, |a, b| {
            omega[(a, b)] + if a == b { self.lj[a] } else { 0.0 }
        });
        let v = m
            .llt(faer::Side::Lower)
            .map_err(|_| Error::Numeric("iggl: Ω + D is not positive definite".into()))?
            .inverse();
        // tr((Ω + D)V) = p, so the three terms are p/2 + ½ ln det(Ω + D).
        Ok((v, 0.5 * p as f64 + 0.5 * log_det(&m)?))
    }
}

/// `S_Z = ZᵀZ/n`.
pub(crate) fn latent_cov(z: &[f64], n: usize, p: usize) -> Mat<f64> {
    let mut s = Mat::<f64>::zeros(p, p);
    for a in 0..p {
        for b in a..p {
            let v = z[a * n..(a + 1) * n]
                .iter()
                .zip(&z[b * n..(b + 1) * n])
                .map(|(u, v)| u * v)
                .sum::<f64>()
                / n as f64;
            s[(a, b)] = v;
            s[(b, a)] = v;
        }
    }
    s
}

fn penalty(omega: &Mat<f64>, lambda: f64, nu: f64) -> f64 {
    let p = omega.nrows();
    let mut s = 0.0;
    for b in 0..p {
        for a in 0..p {
            s += if a == b {
                nu * omega[(a, a)]
            } else {
                lambda * omega[(a, b)].abs()
            };
        }
    }
    0.5 * s
}

/// Fit IGGL at one `λ`, from `warm` (a fit at a nearby `λ`) when given.
pub fn iggl(d: &Dataset, o: &IgglOptions, warm: Option<&IgglFit>) -> Result<IgglFit> {
    ensure!(
        o.lambda.is_finite() && o.lambda >= 0.0,
        "iggl: λ = {} must be finite and ≥ 0",
        o.lambda
    );
    ensure!(
        o.nu.is_finite() && o.nu >= 0.0,
        "iggl: ν = {} must be ≥ 0",
        o.nu
    );
    ensure!(
        o.nu > 0.0 || o.posterior,
        "iggl: ν must be positive (it fixes the latent scale) unless `posterior` is on"
    );
    ensure!(
        o.noise.is_finite() && o.noise > 0.0,
        "iggl: the noise variance τ² = {} must be positive",
        o.noise
    );
    ensure!(
        o.discrete_noise.is_finite() && o.discrete_noise > 0.0,
        "iggl: the discrete noise variance τ_d² = {} must be positive",
        o.discrete_noise
    );
    let (n, p) = (d.n(), d.p());
    let (losses, x) = prepare(d, &o.losses)?;
    let alpha0: Vec<f64> = losses.iter().zip(&x).map(|(l, c)| l.intercept(c)).collect();
    let wt = loss_weights(&losses, &alpha0, o);
    // Fixed curvatures: the global bound, or for Poisson the curvature at
    // the intercept-only fit (the mean count).
    let lj: Vec<f64> = losses
        .iter()
        .zip(&alpha0)
        .zip(&wt)
        .map(|((l, a), w)| w * l.bound().unwrap_or_else(|| l.curvature(*a).max(1e-3)))
        .collect();
    let prob = Problem {
        x: &x,
        losses: &losses,
        wt,
        lj,
        n,
        p,
    };
    let gopts = GlassoOptions::new(o.lambda)
        .diagonal(Diagonal::Weight(o.nu))
        .tol(1e-7);
    let (mut alpha, mut z, mut gfit) = match warm {
        Some(w) if w.precision.nrows() == p && w.z.len() == n * p => {
            (w.alpha.clone(), w.z.clone(), w.omega.clone())
        }
        Some(_) => bail!("iggl: the warm start was fitted to data of another shape"),
        None => {
            let z = vec![0.0; n * p];
            let g = glasso_warm(&Mat::identity(p, p), &gopts, None)?;
            (alpha0, z, g)
        }
    };
    let v_step = |g: &GlassoFit| -> Result<(Mat<f64>, f64)> {
        if o.posterior {
            prob.v_step(&g.precision)
        } else {
            Ok((Mat::zeros(p, p), 0.0))
        }
    };
    let (mut v, mut vterm) = v_step(&gfit)?;
    let ld = |g: &GlassoFit| -> Result<f64> { log_det(&g.precision) };
    let mut smooth = prob.smooth(&alpha, &z, &gfit.precision);
    let penalty_of = |g: &GlassoFit| penalty(&g.precision, o.lambda, o.nu);
    let mut f = smooth + vterm - 0.5 * ld(&gfit)? + penalty_of(&gfit);
    let mut converged = false;
    let mut iterations = 0;
    for _ in 0..o.max_iter {
        iterations += 1;
        // Z-step, with backtracking when the quadratic is not a majorizer.
        let (a1, z1) = prob.z_step(&alpha, &z, &gfit.precision)?;
        let mut t = 1.0;
        loop {
            let at: Vec<f64> = alpha
                .iter()
                .zip(&a1)
                .map(|(a, b)| a + t * (b - a))
                .collect();
            let zt: Vec<f64> = z.iter().zip(&z1).map(|(a, b)| a + t * (b - a)).collect();
            let s = prob.smooth(&at, &zt, &gfit.precision);
            if s <= smooth || t < 1e-6 {
                if s <= smooth {
                    alpha = at;
                    z = zt;
                }
                break;
            }
            t *= 0.5;
        }
        // Ω-step on S_Z + V, then V-step.
        let mut s = latent_cov(&z, n, p);
        for b in 0..p {
            for a in 0..p {
                s[(a, b)] += 0.5 * (v[(a, b)] + v[(b, a)]);
            }
        }
        gfit = glasso_warm(&s, &gopts, Some(&gfit))?;
        (v, vterm) = v_step(&gfit)?;
        smooth = prob.smooth(&alpha, &z, &gfit.precision);
        let f_new = smooth + vterm - 0.5 * ld(&gfit)? + penalty_of(&gfit);
        if !f_new.is_finite() {
            return Err(Error::Numeric(
                "iggl: the objective became non-finite; increase λ".into(),
            ));
        }
        let rel = (f - f_new) / f.abs().max(1.0);
        f = f_new;
        if rel.abs() < o.tol {
            converged = true;
            break;
        }
    }
    let precision = gfit.precision.clone();
    let fit_term = f - penalty_of(&gfit);
    Ok(IgglFit {
        precision,
        alpha,
        z,
        v,
        losses,
        lambda: o.lambda,
        objective: f,
        fit_term,
        iterations,
        converged,
        omega: gfit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn losses_and_intercepts() -> (Vec<Loss>, Vec<f64>) {
        let ls = vec![Loss::Logistic, Loss::Poisson, Loss::Logistic];
        // P(x = 1) = 0.2, mean count 3, P(x = 1) = 0.5.
        let a = vec![(0.2f64 / 0.8).ln(), 3f64.ln(), 0.0];
        (ls, a)
    }

    #[test]
    fn fisher_scale_gives_every_discrete_column_the_same_working_noise() {
        let (ls, a) = losses_and_intercepts();
        let o = IgglOptions {
            scale: LossScale::Fisher,
            ..IgglOptions::new(0.1)
        };
        let w = loss_weights(&ls, &a, &o);
        // Weighted curvature at the intercept-only fit: 1/τ_d² for each.
        let curv = [0.2 * 0.8, 3.0, 0.25];
        for j in 0..3 {
            assert!(
                (w[j] * curv[j] - 1.0 / DEFAULT_DISCRETE_NOISE).abs() < 1e-12,
                "column {j}: weight {} times curvature {}",
                w[j],
                curv[j]
            );
        }
        // Explicit Fisher with another τ_d²: the weights scale as 1/τ_d².
        let w1 = loss_weights(
            &ls,
            &a,
            &IgglOptions {
                scale: LossScale::Fisher,
                discrete_noise: 1.0,
                ..o.clone()
            },
        );
        assert!((w1[2] - 4.0).abs() < 1e-12 && (w1[1] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn auto_is_fisher_on_binary_data_only() {
        let (mut ls, mut a) = losses_and_intercepts();
        let auto = IgglOptions::new(0.1);
        assert_eq!(auto.scale, LossScale::Auto);
        let w = loss_weights(&[ls[0], ls[2]], &[a[0], a[2]], &auto);
        let expect = [1.0 / (0.25 * 0.16), 1.0 / (0.25 * 0.25)];
        assert!((w[0] - expect[0]).abs() < 1e-12 && (w[1] - expect[1]).abs() < 1e-12);
        // A count column, or a continuous one, keeps the natural weights.
        assert_eq!(loss_weights(&ls, &a, &auto), vec![1.0; 3]);
        ls.push(Loss::Gaussian);
        a.push(0.0);
        let o = IgglOptions {
            noise: 0.5,
            ..IgglOptions::new(0.1)
        };
        assert_eq!(loss_weights(&ls, &a, &o), vec![1.0, 1.0, 1.0, 2.0]);
        let natural = IgglOptions {
            scale: LossScale::Natural,
            ..o.clone()
        };
        assert_eq!(loss_weights(&ls[..3], &a[..3], &natural), vec![1.0; 3]);
        let fisher = IgglOptions {
            scale: LossScale::Fisher,
            ..o
        };
        // Gaussian columns keep 1/τ² under Fisher.
        assert_eq!(loss_weights(&ls, &a, &fisher)[3], 2.0);
        assert!("fisher".parse::<LossScale>().unwrap() == LossScale::Fisher);
        let e = "fish".parse::<LossScale>().unwrap_err().to_string();
        assert!(e.contains("expected auto, natural or fisher"), "{e}");
    }

    #[test]
    fn a_non_positive_discrete_noise_is_a_clear_error() {
        let d = Dataset::new(
            vec!["a".into(), "b".into()],
            vec![vec![0.0, 1.0, 1.0, 0.0], vec![1.0, 1.0, 0.0, 0.0]],
        )
        .unwrap();
        let o = IgglOptions {
            discrete_noise: 0.0,
            ..IgglOptions::new(0.1)
        };
        let e = iggl(&d, &o, None).unwrap_err().to_string();
        assert!(e.contains("τ_d² = 0 must be positive"), "{e}");
    }
}
