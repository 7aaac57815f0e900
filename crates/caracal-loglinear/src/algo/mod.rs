//! The fitting algorithms of She & Tang, "Iterative proportional scaling
//! revisited: a modern optimization perspective" (arXiv:1610.02588), and a
//! Newton baseline. Each module states its update and the paper's view of it.

pub mod block;
pub mod cd;
pub mod coords;
pub mod ipf;
pub mod momentum;
pub mod newton;
