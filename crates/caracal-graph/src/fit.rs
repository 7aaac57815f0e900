//! One entry point over all methods: fit at one `λ`, or along a path and
//! pick `λ` by eBIC or StARS. This is what `caracal graph fit` calls.

use crate::covariance::{correlation, covariance};
use crate::data::Dataset;
use crate::edges::{adjacency, edges, Edge};
use crate::glasso::{log_det, Diagonal, GlassoOptions};
use crate::iggl::{latent_cov, prepare, IgglOptions, LossChoice, LossScale};
use crate::latent::latent_correlation;
use crate::loss::Loss;
use crate::neighbourhood::Rule;
use crate::npn::{npn_correlation, Npn};
use crate::path::{
    glasso_path, iggl_lambda_max, iggl_path, lambda_grid, lambda_max, neighbourhood_path,
};
use crate::recovery::{edge_recovery, Recovery};
use crate::select::{argmin, ebic, stars, StarsOptions};
use caracal_core::{bail, ensure, Result};
use faer::Mat;

/// The estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Iterative Gaussian graph learning with per-column losses.
    Iggl,
    /// Graphical lasso on the sample covariance of the raw data.
    Glasso,
    /// Meinshausen–Bühlmann neighbourhood selection.
    Mb,
    /// Graphical lasso on the nonparanormal correlation.
    NpnGlasso,
    /// Graphical lasso on the rank-based latent correlation of mixed binary
    /// and continuous data ([`crate::latent`], Fan et al. 2017).
    LatentGlasso,
}

impl std::str::FromStr for Method {
    type Err = caracal_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "iggl" => Ok(Method::Iggl),
            "glasso" => Ok(Method::Glasso),
            "mb" => Ok(Method::Mb),
            "npn-glasso" => Ok(Method::NpnGlasso),
            "latent-glasso" => Ok(Method::LatentGlasso),
            _ => bail!(
                "unknown method `{s}`; expected iggl, glasso, mb, npn-glasso or latent-glasso"
            ),
        }
    }
}

impl Method {
    /// The name the CLI uses.
    pub fn name(self) -> &'static str {
        match self {
            Method::Iggl => "iggl",
            Method::Glasso => "glasso",
            Method::Mb => "mb",
            Method::NpnGlasso => "npn-glasso",
            Method::LatentGlasso => "latent-glasso",
        }
    }
}

/// How `λ` is chosen on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Extended BIC.
    Ebic,
    /// StARS stability.
    Stars,
    /// StARS for IGGL, eBIC for the other methods (the default). IGGL's
    /// eBIC uses the Gaussian likelihood of `Ω̂` on `S_Z`, which the `ν`
    /// ridge on `diag(Ω⁻¹)` damps, so on mixed data it tends to λ_max.
    Auto,
}

impl Selection {
    /// The rule `Auto` stands for under `method`.
    pub fn resolve(self, method: Method) -> Selection {
        match (self, method) {
            (Selection::Auto, Method::Iggl) => Selection::Stars,
            (Selection::Auto, _) => Selection::Ebic,
            (s, _) => s,
        }
    }
}

/// Settings of [`fit_graph`] and [`fit_path`].
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Estimator (default IGGL).
    pub method: Method,
    /// A fixed `λ`; `None` fits a path and selects.
    pub lambda: Option<f64>,
    /// Path length (default 20).
    pub path: usize,
    /// `λ_min / λ_max` (default 0.1).
    pub ratio: f64,
    /// IGGL losses (default auto).
    pub losses: LossChoice,
    /// IGGL scale weight `ν` (default [`crate::iggl::DEFAULT_NU`]).
    pub nu: f64,
    /// IGGL loss weighting (default [`LossScale::Auto`]).
    pub scale: LossScale,
    /// IGGL working noise variance `τ_d²` of discrete columns under the
    /// Fisher scale (default [`crate::iggl::DEFAULT_DISCRETE_NOISE`]).
    pub discrete_noise: f64,
    /// Glasso diagonal convention (default penalized, as R).
    pub diagonal: Diagonal,
    /// Neighbourhood-selection rule (default AND).
    pub rule: Rule,
    /// Nonparanormal flavour for npn-glasso (default shrinkage).
    pub npn: Npn,
    /// Path selection (default [`Selection::Auto`]: StARS for IGGL, eBIC otherwise).
    pub selection: Selection,
    /// eBIC `γ` (default 0.5).
    pub gamma: f64,
    /// Glasso tolerance (R's `thr`, default 1e-4).
    pub tol: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            method: Method::Iggl,
            lambda: None,
            path: 20,
            ratio: 0.1,
            losses: LossChoice::Auto,
            nu: crate::iggl::DEFAULT_NU,
            scale: LossScale::Auto,
            discrete_noise: crate::iggl::DEFAULT_DISCRETE_NOISE,
            diagonal: Diagonal::Penalized,
            rule: Rule::And,
            npn: Npn::Shrinkage,
            selection: Selection::Auto,
            gamma: 0.5,
            tol: 1e-4,
        }
    }
}

/// One fitted graph, whatever the method.
#[derive(Clone, Debug)]
pub struct GraphFit {
    /// The estimator.
    pub method: Method,
    /// The precision matrix (for `mb`: the symmetrized regression
    /// coefficients, not a precision).
    pub precision: Mat<f64>,
    /// Its nonzero off-diagonal entries.
    pub edges: Vec<Edge>,
    /// `λ` used.
    pub lambda: f64,
    /// The method's penalized objective at the solution (NaN for `mb`).
    pub objective: f64,
    /// Iterations (outer sweeps; for `mb`, total lasso sweeps).
    pub iterations: usize,
    /// Extended BIC at this fit.
    pub ebic: f64,
    /// IGGL's per-column losses (empty otherwise).
    pub losses: Vec<Loss>,
}

/// A path of fits, sparse to dense, and the selected index.
#[derive(Clone, Debug)]
pub struct PathFit {
    /// `λ` values, decreasing.
    pub lambdas: Vec<f64>,
    /// One fit per `λ`.
    pub fits: Vec<GraphFit>,
    /// The index chosen by the selection rule.
    pub selected: usize,
    /// StARS instability along the path, when StARS selected.
    pub instability: Option<Vec<f64>>,
}

/// Shrinkage of the latent correlation towards `I` (`latentcor`'s default).
pub const LATENT_NU: f64 = 0.001;

/// The input matrix of the covariance-based methods.
fn input_matrix(d: &Dataset, o: &FitOptions) -> Result<Mat<f64>> {
    Ok(match o.method {
        Method::Glasso => covariance(d),
        Method::Mb => correlation(d),
        Method::NpnGlasso => npn_correlation(d, o.npn)?,
        Method::LatentGlasso => latent_correlation(d, LATENT_NU)?.correlation,
        Method::Iggl => Mat::zeros(0, 0),
    })
}

/// The default `λ` grid of a method on `d`.
pub fn default_lambdas(d: &Dataset, o: &FitOptions) -> Result<Vec<f64>> {
    let max = match o.method {
        Method::Iggl => iggl_lambda_max(d, &iggl_options(o, 0.0))?,
        _ => lambda_max(&input_matrix(d, o)?),
    };
    lambda_grid(max, o.path, o.ratio)
}

fn iggl_options(o: &FitOptions, lambda: f64) -> IgglOptions {
    IgglOptions {
        nu: o.nu,
        scale: o.scale,
        discrete_noise: o.discrete_noise,
        losses: o.losses.clone(),
        ..IgglOptions::new(lambda)
    }
}

/// Fit `d` at each of `lambdas` (decreasing) with warm starts.
pub fn fit_lambdas(d: &Dataset, o: &FitOptions, lambdas: &[f64]) -> Result<Vec<GraphFit>> {
    ensure!(!lambdas.is_empty(), "no λ values given");
    ensure!(
        lambdas.windows(2).all(|w| w[0] >= w[1]),
        "give λ values in decreasing order"
    );
    let (n, p) = (d.n(), d.p());
    let graph = |method, precision: Mat<f64>, lambda, objective, iterations, neg2: f64, losses| {
        let e = edges(&precision);
        GraphFit {
            method,
            ebic: ebic(neg2, n, p, e.len(), o.gamma),
            edges: e,
            precision,
            lambda,
            objective,
            iterations,
            losses,
        }
    };
    match o.method {
        Method::Glasso | Method::NpnGlasso | Method::LatentGlasso => {
            let s = input_matrix(d, o)?;
            let t = GlassoOptions::new(lambdas[0])
                .diagonal(o.diagonal)
                .tol(o.tol);
            glasso_path(&s, lambdas, &t)?
                .into_iter()
                .map(|f| {
                    let tr: f64 = (0..p)
                        .flat_map(|b| (0..p).map(move |a| (a, b)))
                        .map(|(a, b)| s[(a, b)] * f.precision[(a, b)])
                        .sum();
                    let neg2 = n as f64 * (tr - log_det(&f.precision)?);
                    Ok(graph(
                        o.method,
                        f.precision,
                        f.lambda,
                        f.objective,
                        f.iterations,
                        neg2,
                        vec![],
                    ))
                })
                .collect()
        }
        Method::Mb => {
            let r = input_matrix(d, o)?;
            neighbourhood_path(&r, lambdas)?
                .into_iter()
                .map(|f| {
                    let mut neg2 = 0.0;
                    for a in 0..p {
                        let mut rss = 1.0;
                        for b in 0..p {
                            rss -= 2.0 * r[(b, a)] * f.coef[(b, a)];
                            for c in 0..p {
                                rss += f.coef[(b, a)] * r[(b, c)] * f.coef[(c, a)];
                            }
                        }
                        neg2 += n as f64 * rss.max(1e-12).ln();
                    }
                    Ok(graph(
                        Method::Mb,
                        f.weights(o.rule),
                        f.lambda,
                        f64::NAN,
                        f.iterations,
                        neg2,
                        vec![],
                    ))
                })
                .collect()
        }
        Method::Iggl => iggl_path(d, lambdas, &iggl_options(o, lambdas[0]))?
            .into_iter()
            .map(|f| {
                // The Ω-step's own Gaussian likelihood of the latent rows:
                // −2ℓ = n (tr(S_Z Ω) − ln det Ω), as huge does for npn. The
                // fit term of F is no calibrated likelihood (its scale is set
                // by the losses and ν), so 2n·fit_term picked λ_max.
                let sz = latent_cov(&f.z, n, p);
                let tr: f64 = (0..p)
                    .flat_map(|b| (0..p).map(move |a| (a, b)))
                    .map(|(a, b)| sz[(a, b)] * f.precision[(a, b)])
                    .sum();
                let neg2 = n as f64 * (tr - log_det(&f.precision)?);
                Ok(graph(
                    Method::Iggl,
                    f.precision,
                    f.lambda,
                    f.objective,
                    f.iterations,
                    neg2,
                    f.losses,
                ))
            })
            .collect(),
    }
}

/// Fit a path (the default grid) and select `λ` by `o.selection`.
pub fn fit_path(d: &Dataset, o: &FitOptions) -> Result<PathFit> {
    let lambdas = default_lambdas(d, o)?;
    let selection = o.selection.resolve(o.method);
    let stars_opts = StarsOptions::default();
    // Progress in whole paths: the full data, then each StARS subsample
    // (drawn only on a terminal).
    let paths = 1 + if selection == Selection::Ebic {
        0
    } else {
        stars_opts.subsamples
    };
    let pb = caracal_core::progress::bar(paths as u64, &format!("graph fit ({})", o.method.name()));
    pb.set_message("λ path");
    let fits = fit_lambdas(d, o, &lambdas)?;
    pb.inc(1);
    let (selected, instability) = match selection {
        Selection::Ebic => (
            argmin(&fits.iter().map(|f| f.ebic).collect::<Vec<_>>()),
            None,
        ),
        Selection::Stars | Selection::Auto => {
            pb.set_message("StARS subsamples");
            // IGGL's losses and loss scale are decided on the full data, so a
            // subsample cannot detect another loss or scale for a column.
            let sub_o = match o.method {
                Method::Iggl => {
                    let (losses, _) = prepare(d, &o.losses)?;
                    FitOptions {
                        scale: o.scale.resolve(&losses),
                        losses: LossChoice::PerColumn(losses),
                        ..o.clone()
                    }
                }
                _ => o.clone(),
            };
            let st = stars(d, &stars_opts, |sub| {
                let path = fit_lambdas(sub, &sub_o, &lambdas)?
                    .iter()
                    .map(|f| adjacency(&f.precision))
                    .collect();
                pb.inc(1);
                Ok(path)
            })?;
            (st.index, Some(st.instability))
        }
    };
    pb.finish_and_clear();
    Ok(PathFit {
        lambdas,
        fits,
        selected,
        instability,
    })
}

/// Fit at `o.lambda`, or along a path with selection when it is `None`.
pub fn fit_graph(d: &Dataset, o: &FitOptions) -> Result<GraphFit> {
    match o.lambda {
        Some(l) => Ok(fit_lambdas(d, o, &[l])?.remove(0)),
        None => {
            let mut pf = fit_path(d, o)?;
            Ok(pf.fits.swap_remove(pf.selected))
        }
    }
}

/// Edge recovery of `o.method` along its default `λ` grid on `d`, against the
/// true pattern `truth` ([`crate::edges::pairs`] order): the ROC of a
/// method on simulated data ([`crate::simulate`](mod@crate::simulate)), as `huge.roc` draws it.
pub fn path_recovery(d: &Dataset, truth: &[bool], o: &FitOptions) -> Result<Recovery> {
    let lambdas = default_lambdas(d, o)?;
    let path: Vec<Vec<bool>> = fit_lambdas(d, o, &lambdas)?
        .iter()
        .map(|f| adjacency(&f.precision))
        .collect();
    edge_recovery(truth, &path)
}
