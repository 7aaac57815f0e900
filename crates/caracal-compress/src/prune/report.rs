//! What a pruning run reports (`caracal prune --json`): the sizes and
//! parameter counts before and after, the calibration used, and each
//! pruned matrix's relative calibration error `‖X(Ŵ − W)‖ / ‖XW‖`.

use caracal_models::LlamaConfig;
use serde::Serialize;

/// A model's prunable sizes and its parameter count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sizes {
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Parameters (tied embeddings counted once).
    pub params: usize,
}

impl Sizes {
    pub fn of(cfg: &LlamaConfig) -> Self {
        Sizes {
            intermediate_size: cfg.intermediate_size,
            num_attention_heads: cfg.num_attention_heads,
            num_key_value_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            params: cfg.n_params(),
        }
    }
}

/// One pruned matrix: how many input groups it keeps of how many, and its
/// relative calibration reconstruction error (0 when nothing was cut).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MatrixReport {
    pub kept: usize,
    pub of: usize,
    pub rel_error: f64,
}

/// One layer: `down_proj` (groups are FFN neurons) and `o_proj` (groups
/// are KV-head groups).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerReport {
    pub layer: usize,
    pub down_proj: MatrixReport,
    pub o_proj: MatrixReport,
}

/// The calibration a run used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibSummary {
    pub windows: usize,
    pub seq_len: usize,
    pub tokens: usize,
}

/// The report of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PruneReport {
    /// `osscar`, `minitron` or `magnitude`.
    pub method: String,
    pub before: Sizes,
    pub after: Sizes,
    /// `after.params / before.params`.
    pub params_ratio: f64,
    pub calibration: CalibSummary,
    pub layers: Vec<LayerReport>,
    /// Mean over layers of `down_proj`'s relative error.
    pub mean_rel_error_down_proj: f64,
    /// Mean over layers of `o_proj`'s relative error.
    pub mean_rel_error_o_proj: f64,
    /// Local-search swaps OSSCAR made in all (0 for the baselines).
    pub osscar_swaps: usize,
}

impl PruneReport {
    /// Assemble a report; the means and the ratio are computed here.
    pub fn new(
        method: &str,
        before: &LlamaConfig,
        after: &LlamaConfig,
        calibration: CalibSummary,
        layers: Vec<LayerReport>,
        osscar_swaps: usize,
    ) -> Self {
        let n = layers.len().max(1) as f64;
        let (before, after) = (Sizes::of(before), Sizes::of(after));
        PruneReport {
            method: method.to_string(),
            params_ratio: after.params as f64 / before.params as f64,
            mean_rel_error_down_proj: layers.iter().map(|l| l.down_proj.rel_error).sum::<f64>() / n,
            mean_rel_error_o_proj: layers.iter().map(|l| l.o_proj.rel_error).sum::<f64>() / n,
            before,
            after,
            calibration,
            layers,
            osscar_swaps,
        }
    }
}
