//! A sequence-classification head on the decoder, as Hugging Face's
//! `LlamaForSequenceClassification`: a bias-free linear map `W_s` `[L, H]`
//! applied to the final hidden state of each sequence's last non-pad token
//! (the rightmost position whose id is not `pad_id`). Reward models
//! (Bradley–Terry, `L = 1`) build on it.

use crate::model::Llama;
use candle_core::{DType, Tensor, Var};
use caracal_core::{Result, Rng};

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
        if num_labels == 0 {
            caracal_core::bail!("num_labels is 0; a classifier needs at least one output");
        }
        let h = model.config().hidden_size;
        let w = Rng::new(seed).normal_vec_f32(num_labels * h, 0.02);
        let score = Var::from_tensor(
            &Tensor::from_vec(w, (num_labels, h), model.device())?.to_dtype(model.dtype())?,
        )?;
        Ok(SequenceClassifier {
            model,
            score,
            pad_id,
        })
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

    /// Scores `[B, num_labels]` for right-padded `ids` `[B, T]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let last = self.last_positions(ids)?;
        let hidden = self.model.forward_hidden(ids, None)?;
        let (b, t, h) = hidden.dims3()?;
        let idx: Vec<u32> = last
            .iter()
            .enumerate()
            .map(|(i, &p)| (i * t + p) as u32)
            .collect();
        let idx = Tensor::new(idx.as_slice(), hidden.device())?;
        let pooled = hidden.reshape((b * t, h))?.index_select(&idx, 0)?;
        Ok(pooled.matmul(&self.score.as_tensor().t()?)?)
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
