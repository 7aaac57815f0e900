//! Calibration statistics from text: one forward pass of the dense model
//! over `samples` windows of `seq_len` tokens, reading every layer's
//! `o_proj` and `down_proj` inputs through
//! [`Llama::forward_hidden_with_taps`]. It accumulates, per layer,
//!
//! - the Gram matrices `XᵀX` of both inputs (OSSCAR's Hessians before
//!   damping; a window's product in the model's dtype, the sum in f64);
//! - Minitron's activation importances (Muralidharan et al., "Compact
//!   Language Models via Pruning and Knowledge Distillation", 2024):
//!   `Σ_tokens |m_j|` for each SwiGLU output `m_j` (the `down_proj`
//!   input), and `Σ_tokens ‖a_h‖₂` for each query head's attention output
//!   `a_h` (its `o_proj` input columns).
//!
//! The layers see the dense model's activations (one-shot, as Wanda does;
//! SparseGPT and OSSCAR can also feed each layer its pruned predecessors'
//! outputs, which costs a pass per layer).

use candle_core::{DType, Tensor};
use caracal_core::Result;
use caracal_models::{Llama, Tap};
use faer::Mat;

/// How much calibration text is read.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibOptions {
    /// Most windows; fewer when the text is short (never an error while
    /// the text holds one window).
    pub samples: usize,
    /// Tokens per window.
    pub seq_len: usize,
    /// Windows per forward pass.
    pub batch_size: usize,
}

impl Default for CalibOptions {
    fn default() -> Self {
        CalibOptions {
            samples: 128,
            seq_len: 256,
            batch_size: 8,
        }
    }
}

/// One layer's statistics.
#[derive(Clone, Debug)]
pub struct LayerStats {
    /// `Σ mmᵀ` over tokens of the `down_proj` input `m` (`I × I`).
    pub down_gram: Mat<f64>,
    /// `Σ aaᵀ` over tokens of the `o_proj` input `a` (`Hq·D × Hq·D`).
    pub o_gram: Mat<f64>,
    /// `Σ_tokens |m_j|`, one per FFN neuron.
    pub neuron_abs: Vec<f64>,
    /// `Σ_tokens ‖a_h‖₂`, one per query head.
    pub head_norm: Vec<f64>,
}

/// Statistics of every layer and what they were computed from.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub layers: Vec<LayerStats>,
    /// Windows read.
    pub windows: usize,
    /// Tokens per window.
    pub seq_len: usize,
    /// Tokens in all (`windows · seq_len`).
    pub tokens: usize,
}

/// Starts of the calibration windows in a text of `n_tokens`: up to
/// `samples` non-overlapping windows, spread evenly over the text.
pub fn window_starts(n_tokens: usize, opts: &CalibOptions) -> Result<Vec<usize>> {
    if opts.seq_len == 0 || opts.samples == 0 || opts.batch_size == 0 {
        caracal_core::bail!(
            "the calibration needs at least one window of at least one token (samples {}, seq-len {}, batch size {})",
            opts.samples,
            opts.seq_len,
            opts.batch_size
        );
    }
    if n_tokens < opts.seq_len {
        caracal_core::bail!(
            "the calibration text has {n_tokens} tokens, fewer than one window of {}; give more text or a smaller --seq-len",
            opts.seq_len
        );
    }
    let avail = n_tokens / opts.seq_len;
    let take = opts.samples.min(avail);
    Ok((0..take).map(|i| i * avail / take * opts.seq_len).collect())
}

/// `Σ xxᵀ` over the rows of `x` `[..., d]`, added to `acc`.
fn add_gram(acc: &mut Mat<f64>, x: &Tensor) -> Result<()> {
    let d = acc.nrows();
    let n = x.elem_count() / d;
    let x = x.reshape((n, d))?;
    let g = x.t()?.contiguous()?.matmul(&x)?;
    let v: Vec<f64> = g.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    for j in 0..d {
        for i in 0..d {
            acc[(i, j)] += v[i * d + j];
        }
    }
    Ok(())
}

/// Add `v` elementwise to `acc`.
fn add_vec(acc: &mut [f64], v: &Tensor) -> Result<()> {
    let v: Vec<f64> = v.to_dtype(DType::F64)?.to_vec1()?;
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b;
    }
    Ok(())
}

/// Run the dense `model` over calibration windows of `tokens` and collect
/// every layer's statistics.
pub fn calibrate(model: &Llama, tokens: &[u32], opts: &CalibOptions) -> Result<Calibration> {
    let cfg = model.config();
    let starts = window_starts(tokens.len(), opts)?;
    let (i, dq) = (
        cfg.intermediate_size,
        cfg.num_attention_heads * cfg.head_dim,
    );
    let (hq, hd) = (cfg.num_attention_heads, cfg.head_dim);
    let mut layers: Vec<LayerStats> = (0..cfg.num_hidden_layers)
        .map(|_| LayerStats {
            down_gram: Mat::zeros(i, i),
            o_gram: Mat::zeros(dq, dq),
            neuron_abs: vec![0.0; i],
            head_norm: vec![0.0; hq],
        })
        .collect();
    let t = opts.seq_len;
    let pb = caracal_core::progress::bar(starts.len() as u64, "calibrate");
    for chunk in starts.chunks(opts.batch_size) {
        let mut ids = Vec::with_capacity(chunk.len() * t);
        for &s in chunk {
            ids.extend_from_slice(&tokens[s..s + t]);
        }
        let ids = Tensor::from_vec(ids, (chunk.len(), t), model.device())?;
        model.forward_hidden_with_taps(&ids, &mut |l, tap, x| {
            let st = &mut layers[l];
            match tap {
                Tap::DownProjInput => {
                    add_gram(&mut st.down_gram, x)?;
                    let n = x.elem_count() / i;
                    add_vec(
                        &mut st.neuron_abs,
                        &x.reshape((n, i))?.to_dtype(DType::F64)?.abs()?.sum(0)?,
                    )
                }
                Tap::OProjInput => {
                    add_gram(&mut st.o_gram, x)?;
                    let n = x.elem_count() / dq;
                    let per_head = x
                        .reshape((n, hq, hd))?
                        .to_dtype(DType::F64)?
                        .sqr()?
                        .sum(2)?
                        .sqrt()?
                        .sum(0)?;
                    add_vec(&mut st.head_norm, &per_head)
                }
                _ => Ok(()),
            }
        })?;
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(Calibration {
        layers,
        windows: starts.len(),
        seq_len: t,
        tokens: starts.len() * t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_give_fewer_windows_and_too_short_is_one_sentence() {
        let o = CalibOptions {
            samples: 128,
            seq_len: 256,
            batch_size: 8,
        };
        // ~15k tokens: 58 windows, evenly spread, non-overlapping.
        let s = window_starts(15_000, &o).unwrap();
        assert_eq!(s.len(), 58);
        assert!(s.windows(2).all(|w| w[1] >= w[0] + 256));
        assert!(*s.last().unwrap() + 256 <= 15_000);
        // Plenty of text: 128 windows spread over all of it.
        let s = window_starts(1_000_000, &o).unwrap();
        assert_eq!(s.len(), 128);
        assert!(*s.last().unwrap() > 900_000);
        assert_eq!(window_starts(256, &o).unwrap(), vec![0]);
        let e = window_starts(255, &o).unwrap_err().to_string();
        assert!(
            e.contains("255 tokens") && e.contains("fewer than one window"),
            "{e}"
        );
    }
}
