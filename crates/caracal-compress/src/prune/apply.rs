//! Build the smaller model: slice every block's matrices to the kept
//! neurons and KV-head groups, put in the new `down_proj`/`o_proj`, and
//! construct a Llama whose config says the new sizes.

use crate::prune::groups::{kv_group_channels, kv_rows};
use crate::prune::mat::to_tensor;
use candle_core::Tensor;
use caracal_core::Result;
use caracal_models::hf::TensorMap;
use caracal_models::{Llama, LlamaConfig};
use faer::Mat;
use std::collections::HashMap;

/// What one layer keeps.
#[derive(Clone, Debug)]
pub struct LayerCut {
    /// Kept FFN neurons, ascending.
    pub neurons: Vec<usize>,
    /// The new `down_proj` weight `[H, neurons.len()]`.
    pub down: Mat<f64>,
    /// Kept KV-head groups, ascending.
    pub kv_groups: Vec<usize>,
    /// The new `o_proj` weight `[H, kv_groups.len()·n_rep·D]`.
    pub o: Mat<f64>,
}

/// The config of the pruned model: `intermediate_size` and the head
/// counts shrink; `head_dim` is unchanged (and written out explicitly).
pub fn pruned_config(cfg: &LlamaConfig, neurons: usize, kv_groups: usize) -> LlamaConfig {
    let mut c = cfg.clone();
    c.intermediate_size = neurons;
    c.num_key_value_heads = kv_groups;
    c.num_attention_heads = kv_groups * cfg.n_rep();
    c
}

/// Rows of `t` `[R, C]` in the order `idx`.
fn pick_rows(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let i = Tensor::from_vec(
        idx.iter().map(|&x| x as u32).collect::<Vec<_>>(),
        idx.len(),
        t.device(),
    )?;
    Ok(t.index_select(&i, 0)?.contiguous()?)
}

/// The row order that turns GGUF's interleaved RoPE layout of `heads`
/// heads of `d` rows into Hugging Face's rotate-half layout: row
/// `c·D/2 + i` of a head is interleaved row `2i + c`.
pub fn deinterleave_rows(heads: usize, d: usize) -> Vec<usize> {
    (0..heads)
        .flat_map(|h| (0..d).map(move |p| h * d + 2 * (p % (d / 2)) + p / (d / 2)))
        .collect()
}

/// The model with every layer cut as `cuts` says (one cut per layer, all
/// of the same sizes). Q/K rows of a GGUF model are written in Hugging
/// Face's layout, so the result saves as a standard folder.
pub fn shrink(model: &Llama, cuts: &[LayerCut]) -> Result<Llama> {
    let cfg = model.config();
    if cuts.len() != cfg.num_hidden_layers {
        caracal_core::bail!(
            "{} layer cuts given for a model of {} layers",
            cuts.len(),
            cfg.num_hidden_layers
        );
    }
    let (nn, ng) = (cuts[0].neurons.len(), cuts[0].kv_groups.len());
    if cuts
        .iter()
        .any(|c| c.neurons.len() != nn || c.kv_groups.len() != ng)
    {
        caracal_core::bail!("every layer must keep the same number of neurons and KV-head groups");
    }
    let new_cfg = pruned_config(cfg, nn, ng);
    let (h, d) = (cfg.hidden_size, cfg.head_dim);
    let mut vars: HashMap<String, Tensor> = model
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let dt = model.dtype();
    let dev = model.device();
    let groups = kv_group_channels(cfg);
    for (l, cut) in cuts.iter().enumerate() {
        let p = format!("model.layers.{l}");
        let mut take = |n: &str| -> Result<Tensor> {
            vars.remove(&format!("{p}.{n}.weight")).ok_or_else(|| {
                caracal_core::Error::invalid(format!(
                    "layer {l}'s {n} is quantized; load the model dequantized to prune it"
                ))
            })
        };
        let (mut q, mut k) = (take("self_attn.q_proj")?, take("self_attn.k_proj")?);
        let (v, gate, up) = (
            take("self_attn.v_proj")?,
            take("mlp.gate_proj")?,
            take("mlp.up_proj")?,
        );
        take("self_attn.o_proj")?;
        take("mlp.down_proj")?;
        if model.qk_interleaved() {
            q = pick_rows(&q, &deinterleave_rows(cfg.num_attention_heads, d))?;
            k = pick_rows(&k, &deinterleave_rows(cfg.num_key_value_heads, d))?;
        }
        let q_rows = crate::prune::groups::flatten(&groups, &cut.kv_groups);
        let kv: Vec<usize> = cut
            .kv_groups
            .iter()
            .flat_map(|&g| kv_rows(cfg, g))
            .collect();
        let (dq, i) = (ng * cfg.n_rep() * d, nn);
        if cut.down.nrows() != h
            || cut.down.ncols() != i
            || cut.o.nrows() != h
            || cut.o.ncols() != dq
        {
            caracal_core::bail!(
                "layer {l}: the new down_proj is {}×{} and o_proj {}×{}; expected {h}×{i} and {h}×{dq}",
                cut.down.nrows(),
                cut.down.ncols(),
                cut.o.nrows(),
                cut.o.ncols()
            );
        }
        let new = [
            ("self_attn.q_proj", pick_rows(&q, &q_rows)?),
            ("self_attn.k_proj", pick_rows(&k, &kv)?),
            ("self_attn.v_proj", pick_rows(&v, &kv)?),
            ("self_attn.o_proj", to_tensor(&cut.o, dt, dev)?),
            ("mlp.gate_proj", pick_rows(&gate, &cut.neurons)?),
            ("mlp.up_proj", pick_rows(&up, &cut.neurons)?),
            ("mlp.down_proj", to_tensor(&cut.down, dt, dev)?),
        ];
        for (n, t) in new {
            vars.insert(format!("{p}.{n}.weight"), t);
        }
    }
    let mut map = TensorMap::new("pruned model".into(), dt);
    for (n, t) in vars {
        map.insert(n, t, "pruned model".into());
    }
    let m = Llama::from_source(&new_cfg, &mut map, dev)?;
    Ok(m.with_mode(model.mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deinterleave_is_the_inverse_of_the_gguf_permutation() {
        // Interleaved head of 6 rows: pairs (x0,y0),(x1,y1),(x2,y2) → x0 x1 x2 y0 y1 y2.
        assert_eq!(deinterleave_rows(1, 6), vec![0, 2, 4, 1, 3, 5]);
        assert_eq!(deinterleave_rows(2, 4), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }
}
