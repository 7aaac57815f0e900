//! What to fit with, and when to stop.

/// How randomized coordinate descent picks its coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RandomMode {
    /// A fresh random permutation of the coordinates every sweep.
    Permutation,
    /// Coordinates drawn uniformly with replacement.
    WithReplacement,
    /// Coordinates drawn with probability ∝ `Σ_i y_i x_ij²` (the curvature at the MLE).
    Importance,
}

/// The fitting algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Algorithm {
    /// Classic IPF over the model's margins (Deming–Stephan; AS 51 = R `loglin`). Tables only.
    Ipf,
    /// IPS: exact cyclic coordinate descent over 0/1 features.
    Ips,
    /// The MM step for real-valued or negative features, cyclic.
    Mm,
    /// Block-wise MM, every block updated jointly from the same μ.
    Block,
    /// Randomized coordinate descent.
    Random(RandomMode),
    /// Accelerated (momentum) IPS sweeps with restart.
    Momentum,
    /// Newton / IRLS with step halving: the verification baseline.
    Newton,
}

impl Algorithm {
    /// Parse a command-line name: `ipf`, `ips`, `mm`, `block`, `random` (permutation),
    /// `random-replace`, `random-importance`, `momentum`, `newton`.
    pub fn parse(s: &str) -> caracal_core::Result<Self> {
        Ok(match s {
            "ipf" => Algorithm::Ipf,
            "ips" => Algorithm::Ips,
            "mm" => Algorithm::Mm,
            "block" => Algorithm::Block,
            "random" | "random-permutation" => Algorithm::Random(RandomMode::Permutation),
            "random-replace" => Algorithm::Random(RandomMode::WithReplacement),
            "random-importance" => Algorithm::Random(RandomMode::Importance),
            "momentum" => Algorithm::Momentum,
            "newton" | "irls" => Algorithm::Newton,
            _ => caracal_core::bail!(
                "unknown algorithm `{s}`; choose one of ipf, ips, mm, block, random, random-replace, random-importance, momentum, newton"
            ),
        })
    }

    /// The command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Ipf => "ipf",
            Algorithm::Ips => "ips",
            Algorithm::Mm => "mm",
            Algorithm::Block => "block",
            Algorithm::Random(RandomMode::Permutation) => "random",
            Algorithm::Random(RandomMode::WithReplacement) => "random-replace",
            Algorithm::Random(RandomMode::Importance) => "random-importance",
            Algorithm::Momentum => "momentum",
            Algorithm::Newton => "newton",
        }
    }
}

/// When a fit has converged.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Convergence {
    /// R `loglin`'s rule: the largest |observed − fitted| marginal count
    /// (for a design: `max_j |x_jᵀ(y − μ)|`), taken before each adjustment of a
    /// sweep, is below `eps`.
    MaxDeviation(f64),
    /// `|ℓ_k − ℓ_{k−1}| / (|ℓ_k| + 0.1) < tol` on the objective (R `glm`'s rule).
    RelativeObjective(f64),
}

impl Convergence {
    /// Whether a sweep with largest deviation `dev` that moved the objective from `prev` to `obj` ends the fit.
    pub fn done(&self, dev: f64, prev: f64, obj: f64) -> bool {
        match *self {
            Convergence::MaxDeviation(eps) => dev < eps,
            Convergence::RelativeObjective(tol) => (prev - obj).abs() / (obj.abs() + 0.1) < tol,
        }
    }
}

/// Options of [`crate::fit()`].
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The stopping rule (default: largest marginal deviation below 1e-8).
    pub convergence: Convergence,
    /// Most sweeps (Newton: iterations).
    pub max_sweeps: usize,
    /// Seed of the randomized algorithms.
    pub seed: u64,
    /// Return the fit even when it did not converge (otherwise an error).
    pub allow_unconverged: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            algorithm: Algorithm::Ipf,
            convergence: Convergence::MaxDeviation(1e-8),
            max_sweeps: 10_000,
            seed: 0,
            allow_unconverged: false,
        }
    }
}

impl FitOptions {
    /// Default options with another algorithm.
    pub fn with(algorithm: Algorithm) -> Self {
        FitOptions {
            algorithm,
            ..Default::default()
        }
    }
}
