//! The result of a fit and the one entry point that dispatches to the algorithms.

use crate::algo;
use crate::options::{Algorithm, Convergence, FitOptions};
use crate::problem::Problem;
use caracal_core::{Error, Result};

/// How `theta` is parameterized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Coding {
    /// Treatment (dummy) coding: the first level of every factor is the
    /// reference, as R `glm` with default contrasts.
    Treatment,
    /// The columns of a user-supplied design matrix.
    Design,
}

/// A fitted log-affine model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fit {
    /// The algorithm that produced it.
    pub algorithm: Algorithm,
    /// The coding of `theta`.
    pub coding: Coding,
    /// Coefficient names, in `theta` order.
    pub names: Vec<String>,
    /// Coefficients `θ`.
    pub theta: Vec<f64>,
    /// Fitted means of the active cells (the problem's rows).
    pub mu: Vec<f64>,
    /// Fitted means of every cell in table / input order (0 at structural zeros).
    pub fitted: Vec<f64>,
    /// The objective `ℓ(θ) − ℓ_sat = G²/2` at the start and after every sweep.
    pub objective: Vec<f64>,
    /// The largest marginal deviation seen in every sweep.
    pub deviation: Vec<f64>,
    /// Sweeps (Newton: iterations) run.
    pub iterations: usize,
    /// Whether the stopping rule was met.
    pub converged: bool,
}

/// The per-sweep record an algorithm fills in.
pub(crate) struct Trace {
    pub objective: Vec<f64>,
    pub deviation: Vec<f64>,
    pub converged: bool,
}

impl Trace {
    /// Run `sweep` (returning the sweep's largest deviation and the objective
    /// after it) until `opts.convergence` holds or `opts.max_sweeps` is reached.
    pub fn run(
        start_objective: f64,
        opts: &FitOptions,
        mut sweep: impl FnMut(usize) -> Result<(f64, f64)>,
    ) -> Result<Trace> {
        let mut t = Trace {
            objective: vec![start_objective],
            deviation: Vec::new(),
            converged: false,
        };
        for k in 0..opts.max_sweeps {
            let (dev, obj) = sweep(k)?;
            if !obj.is_finite() || !dev.is_finite() {
                return Err(Error::Numeric(format!(
                    "{} produced a non-finite objective at sweep {}; the counts may be too extreme, try --algorithm ipf or newton",
                    opts.algorithm.name(),
                    k + 1
                )));
            }
            let prev = *t.objective.last().unwrap_or(&obj);
            t.objective.push(obj);
            t.deviation.push(dev);
            if opts.convergence.done(dev, prev, obj) {
                t.converged = true;
                break;
            }
        }
        if !t.converged && !opts.allow_unconverged {
            let last = t.deviation.last().copied().unwrap_or(f64::NAN);
            let (what, target) = match opts.convergence {
                Convergence::MaxDeviation(e) => ("the largest marginal deviation", e),
                Convergence::RelativeObjective(e) => ("the relative change of the objective", e),
            };
            let rel = match opts.convergence {
                Convergence::RelativeObjective(_) if t.objective.len() > 1 => {
                    let n = t.objective.len();
                    (t.objective[n - 2] - t.objective[n - 1]).abs()
                        / (t.objective[n - 1].abs() + 0.1)
                }
                _ => last,
            };
            return Err(Error::NoConvergence(format!(
                "{} did not converge in {} sweeps: {what} is still {rel:.3e} (target {target:e}); raise --max-iter, loosen --eps, or try --algorithm {}",
                opts.algorithm.name(),
                opts.max_sweeps,
                if opts.algorithm == Algorithm::Ipf { "newton" } else { "ipf (tables) or newton" }
            )));
        }
        Ok(t)
    }
}

/// Fit `problem` with the algorithm in `opts`.
///
/// Every algorithm returns `θ` in the problem's coding (treatment for tables),
/// the fitted means, and the objective after every sweep.
pub fn fit(problem: &Problem, opts: &FitOptions) -> Result<Fit> {
    let (theta, mu, trace) = match opts.algorithm {
        Algorithm::Ipf => algo::ipf::fit(problem, opts)?,
        Algorithm::Ips | Algorithm::Mm | Algorithm::Random(_) => algo::cd::fit(problem, opts)?,
        Algorithm::Block => algo::block::fit(problem, opts)?,
        Algorithm::Momentum => algo::momentum::fit(problem, opts)?,
        Algorithm::Newton => algo::newton::fit(problem, opts)?,
    };
    Ok(Fit {
        algorithm: opts.algorithm,
        coding: if problem.table.is_some() {
            Coding::Treatment
        } else {
            Coding::Design
        },
        names: problem.design.names.clone(),
        theta,
        fitted: problem.expand(&mu),
        mu,
        iterations: trace.deviation.len(),
        objective: trace.objective,
        deviation: trace.deviation,
        converged: trace.converged,
    })
}
