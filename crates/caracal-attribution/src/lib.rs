//! Data-driven attribution (LiDDA, "Data Driven Attribution at LinkedIn",
//! arXiv 2505.09861) and its baselines.
//!
//! - [`data`]: journeys, aggregated paths, channel aggregates, macro factors, credit.
//! - [`read`]: CSV readers with clear handling of bad input (Parquet: not yet).
//! - [`simulate`](mod@simulate): a simulator with confounded targeting and known true credit.
//! - [`heuristics`]: first / last touch, linear, time-decay, U-shaped.
//! - [`shapley`]: simplified and ordered Shapley (Zhao et al. 2018).
//! - [`markov`]: removal effect of order-k chains in closed form.
//! - [`logistic`]: logistic-regression attribution.
//! - [`mmm`]: media-mix model with adstock, saturation and macro factors.
//! - [`transformer`]: LiDDA's conversion model, credit by attention or
//!   leave-one-out, optional MMM calibration `L = L_conv + β·L_calib`
//!   against an MMM whose carry-over the member models measure.
//! - [`calibrate`]: the member-informed MMM, carry-over kernels, post-hoc
//!   reconciliation; and an experimental tie of member ratios to one MMM
//!   scale.
//! - [`methods`]: every method behind one name; fit them all at once.
//! - [`evaluate`]: credit error (total variation) and bootstrap intervals.
//! - [`budget`]: budget back-evaluation inside the simulator.
//! - [`linalg`], [`adam`]: a small dense solve and the optimizer.
//!
//! ```
//! use caracal_attribution::{heuristics::*, markov::markov_attribution, read::paths_from_reader};
//! let csv = b"path;total_conversions;total_conversion_value;total_null\n\
//!             search > email;3;30;2\nemail;1;10;6\nsearch;0;0;4\n";
//! let paths = paths_from_reader(csv, "paths.csv").unwrap();
//! let last = heuristic_credit(&paths, Heuristic::LastTouch);
//! assert_eq!(last.conversions, vec![0.0, 4.0]);
//! let m = markov_attribution(&paths, 1).unwrap();
//! assert!((m.credit.conversions.iter().sum::<f64>() - 4.0).abs() < 1e-9);
//! ```

// Index loops read like the equations they implement.
#![allow(clippy::needless_range_loop)]

pub mod adam;
pub mod budget;
pub mod calibrate;
pub mod data;
pub mod evaluate;
pub mod heuristics;
pub mod linalg;
pub mod logistic;
pub mod markov;
pub mod methods;
pub mod mmm;
pub mod read;
pub mod shapley;
pub mod simulate;
pub mod transformer;

pub use data::{Aggregates, Credit, Journey, Journeys, Macro, PathRow, Paths, Touch};
pub use evaluate::total_variation;
pub use methods::{fit_methods, Inputs, Method, MethodResult};
pub use simulate::{simulate, SimConfig, Simulation};
