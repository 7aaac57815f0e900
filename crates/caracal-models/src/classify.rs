//! A sequence-classification head on the decoder, as Hugging Face's
//! `LlamaForSequenceClassification`: a bias-free linear map `W_s` `[L, H]`
//! applied to the final hidden state of each sequence's last non-pad token
//! (the rightmost position whose id is not `pad_id`). Reward models
//! (Bradley–Terry, `L = 1`) build on it.

use crate::model::Llama;
use candle_core::{DType, Tensor, Var};
use caracal_core::{Result, Rng};

/// How a fresh scoring head is initialized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeadInit {
    /// `N(0, 1/H)`: std `1/√H`, so `E‖W‖ ≈ 1` for one label (the BSR
    /// paper's `initialize_reward_model_head`).
    InvSqrtHidden,
    /// `N(0, 0.02²)`: Hugging Face's `initializer_range`.
    HuggingFace,
    /// `N(0, std²)`.
    Std(f64),
}

impl HeadInit {
    /// The standard deviation for a hidden size `h`.
    pub fn std(self, h: usize) -> f64 {
        match self {
            HeadInit::InvSqrtHidden => 1.0 / (h as f64).sqrt(),
            HeadInit::HuggingFace => 0.02,
            HeadInit::Std(s) => s,
        }
    }
}

impl std::str::FromStr for HeadInit {
    type Err = caracal_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" | "inv-sqrt-hidden" => Ok(HeadInit::InvSqrtHidden),
            "hf" | "huggingface" => Ok(HeadInit::HuggingFace),
            other => match other.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(HeadInit::Std(v)),
                _ => Err(caracal_core::Error::invalid(format!(
                    "head initialization `{other}` is unknown; use `paper` (std 1/sqrt(H)), `hf` (std 0.02) or a positive std"
                ))),
            },
        }
    }
}

/// A decoder plus a linear scoring head.
#[derive(Clone, Debug)]
pub struct SequenceClassifier {
    pub model: Llama,
    /// `[num_labels, hidden]`.
    pub score: Var,
    /// The padding token id.
    pub pad_id: u32,
}

impl SequenceClassifier {
    /// Wrap `model` with a head of `num_labels` outputs, initialized
    /// `N(0, 0.02²)` from `seed`.
    pub fn new(model: Llama, num_labels: usize, pad_id: u32, seed: u64) -> Result<Self> {
        Self::with_init(model, num_labels, pad_id, HeadInit::HuggingFace, seed)
    }

    /// Wrap `model` with a fresh head of `num_labels` outputs drawn as
    /// `init` says from `seed`.
    pub fn with_init(
        model: Llama,
        num_labels: usize,
        pad_id: u32,
        init: HeadInit,
        seed: u64,
    ) -> Result<Self> {
        if num_labels == 0 {
            caracal_core::bail!("num_labels is 0; a classifier needs at least one output");
        }
        let h = model.config().hidden_size;
        let w = Rng::new(seed).normal_vec_f32(num_labels * h, init.std(h) as f32);
        let score = Tensor::from_vec(w, (num_labels, h), model.device())?;
        Self::with_head(model, score, pad_id)
    }

    /// Wrap `model` with a given head `[num_labels, hidden]` (a loaded
    /// `score.weight`).
    pub fn with_head(model: Llama, score: Tensor, pad_id: u32) -> Result<Self> {
        let h = model.config().hidden_size;
        match score.dims() {
            [l, hh] if *l > 0 && *hh == h => {}
            d => caracal_core::bail!(
                "the score head has shape {d:?}; expected [num_labels, {h}] for this model"
            ),
        }
        if pad_id as usize >= model.config().vocab_size {
            caracal_core::bail!(
                "pad id {pad_id} is outside the vocabulary of {} tokens",
                model.config().vocab_size
            );
        }
        let score = Var::from_tensor(&score.to_dtype(model.dtype())?)?;
        Ok(SequenceClassifier {
            model,
            score,
            pad_id,
        })
    }

    /// Number of outputs.
    pub fn num_labels(&self) -> usize {
        self.score.dims()[0]
    }

    /// The rightmost non-pad position of each row of `ids` `[B, T]`.
    pub fn last_positions(&self, ids: &Tensor) -> Result<Vec<usize>> {
        let rows: Vec<Vec<u32>> = ids.to_dtype(DType::U32)?.to_vec2()?;
        rows.iter()
            .enumerate()
            .map(|(b, r)| {
                r.iter().rposition(|&t| t != self.pad_id).ok_or_else(|| {
                    caracal_core::Error::invalid(format!(
                        "sequence {b} holds only padding (pad id {})",
                        self.pad_id
                    ))
                })
            })
            .collect()
    }

    /// The final hidden state `[B, H]` (after the last norm) at each row's
    /// last non-pad token, for right-padded `ids` `[B, T]`.
    pub fn pooled(&self, ids: &Tensor) -> Result<Tensor> {
        let last = self.last_positions(ids)?;
        let hidden = self.model.forward_hidden(ids, None)?;
        let (b, t, h) = hidden.dims3()?;
        let idx: Vec<u32> = last
            .iter()
            .enumerate()
            .map(|(i, &p)| (i * t + p) as u32)
            .collect();
        let idx = Tensor::new(idx.as_slice(), hidden.device())?;
        Ok(hidden.reshape((b * t, h))?.index_select(&idx, 0)?)
    }

    /// Apply the head to pooled hidden states `[B, H]`: `[B, num_labels]`.
    pub fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        Ok(pooled.matmul(&self.score.as_tensor().t()?)?)
    }

    /// Scores `[B, num_labels]` for right-padded `ids` `[B, T]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.head(&self.pooled(ids)?)
    }

    /// The decoder's variables plus `score.weight`.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = self.model.named_vars();
        v.push(("score.weight".to_string(), self.score.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use candle_core::Device;

    #[test]
    fn scores_the_last_real_token_and_ignores_right_padding() {
        let dev = Device::Cpu;
        let m = Llama::random(&LlamaConfig::tiny(32, 32, 2), 1, DType::F32, &dev).unwrap();
        let c = SequenceClassifier::new(m, 1, 0, 2).unwrap();
        let padded = Tensor::new(&[[5u32, 6, 7, 0, 0], [9, 8, 7, 6, 5]], &dev).unwrap();
        let s = c.forward(&padded).unwrap();
        assert_eq!(s.dims(), &[2, 1]);
        let alone = c
            .forward(&Tensor::new(&[[5u32, 6, 7]], &dev).unwrap())
            .unwrap();
        let d = (s.get(0).unwrap() - alone.get(0).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // Gradients reach the head and the decoder.
        let g = s.sum_all().unwrap().backward().unwrap();
        assert!(g.get(c.score.as_tensor()).is_some());
        assert!(g.get(c.model.named_vars()[0].1.as_tensor()).is_some());
        let e = c
            .forward(&Tensor::new(&[[0u32, 0]], &dev).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("only padding"), "{e}");
    }
}
