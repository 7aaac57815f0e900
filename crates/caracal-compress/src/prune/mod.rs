//! Structured pruning that physically shrinks the model: whole FFN neurons
//! and whole KV-head groups leave the matrices, and the result is a smaller
//! Llama with a smaller `config.json` (unstructured zeros would leave the
//! model as large and as slow).
//!
//! Methods (the choice of kept groups), all at the same target size:
//! OSSCAR (Meng et al., ICML 2024) with a least-squares refit, and the
//! baselines Minitron (activation importance) and weight magnitude.
//!
//! ```text
//! calib      text → per-layer Hessians XᵀX and activation importances
//! osscar     greedy elimination + local search + refit, on one matrix
//! importance Minitron and magnitude scores
//! structured the pipeline: targets, per-layer choices, the report
//! apply      the smaller Llama
//! save       the Hugging Face folder with the tokenizer
//! ```

// The model's prunable structures.
pub mod groups;

// Statistics and linear algebra.
pub mod calib;
pub mod mat;
pub mod osscar;

// Choosing what to keep.
pub mod importance;
pub mod structured;

// The smaller model, written out, and what is reported.
pub mod apply;
pub mod report;
pub mod save;

pub use apply::{shrink, LayerCut};
pub use calib::{calibrate, CalibOptions, Calibration, LayerStats};
pub use osscar::{OsscarOptions, Selection};
pub use report::PruneReport;
pub use save::{save_pruned, TokenizerOut};
pub use structured::{
    prune_structured, prune_with_calibration, Method, PruneOptions, Pruned, Target,
};
