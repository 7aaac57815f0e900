//! The prunable structures of a Llama block and the weights each one owns.
//!
//! - FFN neuron `j`: row `j` of `gate_proj` and `up_proj`, column `j` of
//!   `down_proj` (input channel `j` of `down_proj`).
//! - KV-head group `g` (grouped-query attention, Ainslie et al. 2023): key
//!   and value head `g` (rows `g·D..(g+1)·D` of `k_proj`/`v_proj`), its
//!   `n_rep` query heads `g·n_rep..(g+1)·n_rep` (those rows of `q_proj`),
//!   and their attention outputs (those input columns of `o_proj`).

use caracal_models::LlamaConfig;

/// One group per FFN neuron, as `down_proj` input channels.
pub fn neuron_groups(intermediate: usize) -> Vec<Vec<usize>> {
    (0..intermediate).map(|j| vec![j]).collect()
}

/// One group per KV head, as `o_proj` input channels (equal to the
/// group's `q_proj` rows).
pub fn kv_group_channels(cfg: &LlamaConfig) -> Vec<Vec<usize>> {
    let w = cfg.n_rep() * cfg.head_dim;
    (0..cfg.num_key_value_heads)
        .map(|g| (g * w..(g + 1) * w).collect())
        .collect()
}

/// The `k_proj`/`v_proj` rows of KV head `g`.
pub fn kv_rows(cfg: &LlamaConfig, g: usize) -> Vec<usize> {
    (g * cfg.head_dim..(g + 1) * cfg.head_dim).collect()
}

/// The query heads of KV-head group `g`.
pub fn query_heads(cfg: &LlamaConfig, g: usize) -> std::ops::Range<usize> {
    g * cfg.n_rep()..(g + 1) * cfg.n_rep()
}

/// The channels of the kept groups, in group order.
pub fn flatten(groups: &[Vec<usize>], kept: &[usize]) -> Vec<usize> {
    kept.iter()
        .flat_map(|&g| groups[g].iter().copied())
        .collect()
}
