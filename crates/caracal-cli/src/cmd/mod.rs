//! One module per subcommand family.

pub mod align;
pub mod alpha;
pub mod attribution;
pub mod distill;
pub mod graph;
pub mod lm;
pub mod loglin;
pub mod prune;
pub mod rank;
pub mod rl;
pub mod rm;
pub mod slm;
pub mod tour;
