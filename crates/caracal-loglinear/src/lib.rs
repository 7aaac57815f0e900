//! Log-affine models `μ = exp(o + Xθ)` fitted by iterative proportional
//! scaling read as coordinate descent — She & Tang, *Iterative proportional
//! scaling revisited: a modern optimization perspective* (arXiv:1610.02588).
//!
//! Counts are Poisson or multinomial (same fit when the model has an
//! intercept); offsets `o = log(start)` may be `−∞` (structural zeros). Two
//! front ends build a [`Problem`]: a [`ContingencyTable`] with a hierarchical
//! model (`[AG][AD][GD]` or `A*G + A*D + G*D`, treatment coded), or any real
//! design matrix with counts. [`fit()`] runs one [`Algorithm`]: classic IPF,
//! exact IPS coordinate descent, the MM step for signed features, block-wise,
//! randomized, momentum with restart, or a Newton baseline. [`penalized`] adds
//! L1 / group-L1 paths with a KKT check, [`stats`] deviance, df, AIC/BIC,
//! residuals and a coefficient table.
//!
//! ```
//! use caracal_loglinear::{datasets, fit, parse_model, stats, Algorithm, FitOptions, Problem, Sampling, ZeroMargins};
//!
//! let table = datasets::ucb_admissions();
//! let model = parse_model("[AG][AD][GD]", &table.factor_names())?;
//! let problem = Problem::from_table(&table, &model, Sampling::Poisson, ZeroMargins::Error)?;
//! let f = fit(&problem, &FitOptions::with(Algorithm::Ipf))?;
//! let g = stats::goodness_of_fit(&problem, &f);
//! assert!((g.deviance - 20.204275).abs() < 1e-5 && g.df == 5);
//! assert_eq!(f.names[2], "GenderFemale"); // treatment coding, as R glm
//! # Ok::<(), caracal_core::Error>(())
//! ```

pub mod algo;
pub mod contingency;
pub mod datasets;
pub mod design;
pub mod fit;
pub mod linalg;
pub mod margins;
pub mod objective;
pub mod options;
pub mod params;
pub mod penalized;
pub mod problem;
pub mod spec;
pub mod stats;

pub use contingency::{ContingencyTable, Factor};
pub use design::Design;
pub use fit::{fit, Coding, Fit};
pub use options::{Algorithm, Convergence, FitOptions, RandomMode};
pub use penalized::{fit_path, fit_penalized, Penalty, PenaltyOptions};
pub use problem::{Problem, Sampling, ZeroMargins};
pub use spec::{parse_model, HierarchicalModel};
