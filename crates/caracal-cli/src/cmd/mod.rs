//! One module per subcommand family.

pub mod graph;
pub mod loglin;
pub mod tour;
