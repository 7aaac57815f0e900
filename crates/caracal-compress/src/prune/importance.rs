//! The baselines' group scores, computed without any refit; a higher score
//! keeps the group.
//!
//! - **Minitron** (Muralidharan et al., "Compact Language Models via
//!   Pruning and Knowledge Distillation", 2024; activation-based
//!   importance): a neuron's `Σ_tokens |m_j|` at the `down_proj` input, a
//!   head's `Σ_tokens ‖a_h‖₂` of its attention output; a KV-head group
//!   scores the sum over its query heads.
//! - **Magnitude**: the L2 norm of every weight the group owns (see
//!   [`crate::prune::groups`]).

use crate::prune::calib::LayerStats;
use crate::prune::groups::{kv_group_channels, kv_rows, query_heads};
use caracal_models::LlamaConfig;
use faer::Mat;

/// Minitron's neuron scores.
pub fn minitron_neurons(st: &LayerStats) -> Vec<f64> {
    st.neuron_abs.clone()
}

/// Minitron's KV-head-group scores: the summed head scores of its query
/// heads.
pub fn minitron_kv_groups(st: &LayerStats, cfg: &LlamaConfig) -> Vec<f64> {
    (0..cfg.num_key_value_heads)
        .map(|g| query_heads(cfg, g).map(|h| st.head_norm[h]).sum())
        .collect()
}

fn row_sq(m: &Mat<f64>, r: usize) -> f64 {
    (0..m.ncols()).map(|j| m[(r, j)] * m[(r, j)]).sum()
}

fn col_sq(m: &Mat<f64>, c: usize) -> f64 {
    (0..m.nrows()).map(|i| m[(i, c)] * m[(i, c)]).sum()
}

/// Weight-magnitude neuron scores `‖(gate_j, up_j, down_{:j})‖₂` from the
/// Hugging Face-oriented weights (`gate`, `up` `[I, H]`, `down` `[H, I]`).
pub fn magnitude_neurons(gate: &Mat<f64>, up: &Mat<f64>, down: &Mat<f64>) -> Vec<f64> {
    (0..gate.nrows())
        .map(|j| (row_sq(gate, j) + row_sq(up, j) + col_sq(down, j)).sqrt())
        .collect()
}

/// Weight-magnitude KV-head-group scores: the L2 norm of the group's
/// `q_proj`, `k_proj`, `v_proj` rows and `o_proj` columns.
pub fn magnitude_kv_groups(
    cfg: &LlamaConfig,
    q: &Mat<f64>,
    k: &Mat<f64>,
    v: &Mat<f64>,
    o: &Mat<f64>,
) -> Vec<f64> {
    kv_group_channels(cfg)
        .iter()
        .enumerate()
        .map(|(g, ch)| {
            let qo: f64 = ch.iter().map(|&c| row_sq(q, c) + col_sq(o, c)).sum();
            let kv: f64 = kv_rows(cfg, g)
                .iter()
                .map(|&r| row_sq(k, r) + row_sq(v, r))
                .sum();
            (qo + kv).sqrt()
        })
        .collect()
}

/// The indices of the `k` highest scores, ascending (ties keep the lower
/// index; NaN scores rank last).
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| {
        if scores[i].is_nan() {
            f64::NEG_INFINITY
        } else {
            scores[i]
        }
    };
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_largest_in_order() {
        assert_eq!(top_k(&[0.1, 3.0, 2.0, 3.0, f64::NAN], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[1.0, 1.0, 1.0], 2), vec![0, 1]);
    }

    /// Hand-computed scores on a config with 4 query heads, 2 KV heads,
    /// head_dim 2.
    #[test]
    fn magnitude_scores_cover_every_weight_of_the_group() {
        let mut cfg = LlamaConfig::tiny(16, 8, 1);
        cfg.head_dim = 2;
        cfg.intermediate_size = 3;
        let ones = |r, c| Mat::from_fn(r, c, |_, _| 1.0);
        let s = magnitude_neurons(&ones(3, 8), &ones(3, 8), &ones(8, 3));
        assert_eq!(s, vec![24f64.sqrt(); 3]);
        // Group 0 = query heads 0, 1 = q rows / o columns 0..4, k/v rows 0..2.
        let q = Mat::from_fn(8, 8, |i, _| if i < 4 { 1.0 } else { 0.0 });
        let o = Mat::from_fn(8, 8, |_, j| if j < 4 { 1.0 } else { 0.0 });
        let k = Mat::from_fn(4, 8, |i, _| if i >= 2 { 1.0 } else { 0.0 });
        let s = magnitude_kv_groups(&cfg, &q, &k, &k, &o);
        assert_eq!(s, vec![64f64.sqrt(), 32f64.sqrt()]);
    }
}
