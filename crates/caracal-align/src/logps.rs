//! Completion log-probabilities of a batch of sequences: the per-token
//! op ([`Llama::token_logps`], the fused linear cross-entropy with
//! `reduction = none`, so the `[N, T, V]` logits never exist) summed over
//! the completion tokens of each sequence. Prompt and pad tokens never count;
//! sequences are right-padded, so a sequence's sum does not depend on what
//! else is in the batch.

use crate::direct::SideLogps;
use candle_core::{DType, Tensor};
use caracal_core::Result;
use caracal_models::Llama;

/// Target id that contributes nothing.
pub const IGNORE: i64 = -100;

/// A tokenized sequence and the index of its first completion token.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub ids: Vec<u32>,
    /// `ids[start..]` is the completion; `start ≥ 1` (something must
    /// predict the first completion token).
    pub start: usize,
}

impl Completion {
    /// Completion tokens that count.
    pub fn len(&self) -> usize {
        self.ids.len().saturating_sub(self.start)
    }

    /// Whether the completion is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Right-padded ids `[N, T]`, targets `[N, T]` (the next token at completion
/// positions, [`IGNORE`] elsewhere) and completion lengths of `seqs`.
pub fn batch_targets(
    seqs: &[&Completion],
    pad: u32,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor, Vec<f64>)> {
    let t = seqs.iter().map(|s| s.ids.len()).max().unwrap_or(0);
    if seqs.is_empty() || t == 0 {
        caracal_core::bail!("no sequences to score");
    }
    let (mut ids, mut tgt, mut lens) = (Vec::new(), Vec::new(), Vec::new());
    for (i, s) in seqs.iter().enumerate() {
        if s.start == 0 || s.start > s.ids.len() {
            caracal_core::bail!(
                "sequence {i} has its completion starting at {} of {} tokens; it needs at least one prompt token",
                s.start,
                s.ids.len()
            );
        }
        for p in 0..t {
            ids.push(*s.ids.get(p).unwrap_or(&pad));
            let next = p + 1;
            tgt.push(if next >= s.start && next < s.ids.len() {
                s.ids[next] as i64
            } else {
                IGNORE
            });
        }
        lens.push(s.len() as f64);
    }
    let n = seqs.len();
    Ok((
        Tensor::from_vec(ids, (n, t), device)?,
        Tensor::from_vec(tgt, (n, t), device)?,
        lens,
    ))
}

/// Summed completion log-probs `[N]` (f32) and completion lengths `[N]`
/// of `seqs` under `model`, right-padded with `pad`.
pub fn completion_logps(model: &Llama, seqs: &[&Completion], pad: u32) -> Result<SideLogps> {
    let dev = model.device();
    let (ids, tgt, lens) = batch_targets(seqs, pad, dev)?;
    let lp = model.token_logps(&ids, &tgt, IGNORE)?;
    let n = lens.len();
    Ok(SideLogps {
        sum: lp.sum(1)?,
        len: Tensor::from_vec(lens, n, dev)?,
    })
}

/// The mean NLL per completion token over a side (TRL's CPO `nll_loss`:
/// cross-entropy averaged over every counted token of the batch).
pub fn mean_nll(side: &SideLogps) -> Result<Tensor> {
    let total = side.len.to_dtype(DType::F64)?.sum_all()?;
    Ok((side.sum.to_dtype(DType::F64)?.sum_all()?.neg()? / total)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use caracal_models::{KernelMode, LlamaConfig};

    fn model() -> Llama {
        Llama::random(&LlamaConfig::tiny(64, 32, 2), 5, DType::F32, &Device::Cpu).unwrap()
    }

    /// The sums equal log-softmax of the full logits summed over the
    /// completion positions, whatever the batch and its padding.
    #[test]
    fn sums_the_completion_tokens_only_whatever_the_batch() {
        let m = model();
        let a = Completion {
            ids: vec![3, 9, 4, 17, 22],
            start: 3,
        };
        let b = Completion {
            ids: vec![5, 6, 7, 8, 9, 10, 11, 12],
            start: 2,
        };
        let together = completion_logps(&m, &[&a, &b], 0).unwrap();
        let s: Vec<f32> = together.sum.to_vec1().unwrap();
        let lens: Vec<f64> = together.len.to_vec1().unwrap();
        assert_eq!(lens, vec![2.0, 6.0]);
        for (k, c) in [&a, &b].iter().enumerate() {
            let alone: Vec<f32> = completion_logps(&m, &[c], 0)
                .unwrap()
                .sum
                .to_vec1()
                .unwrap();
            assert!((alone[0] - s[k]).abs() < 1e-4, "{} vs {}", alone[0], s[k]);
            let x = Tensor::new(c.ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let lp: Vec<Vec<f32>> = m
                .log_probs(&x)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2()
                .unwrap();
            let want: f32 = (c.start..c.ids.len())
                .map(|j| lp[j - 1][c.ids[j] as usize])
                .sum();
            assert!((want - s[k]).abs() < 1e-4, "{want} vs {}", s[k]);
        }
        let nll = mean_nll(&together).unwrap().to_scalar::<f64>().unwrap();
        assert!((nll + (s[0] + s[1]) as f64 / 8.0).abs() < 1e-5);
        let e = completion_logps(
            &m,
            &[&Completion {
                ids: vec![1, 2],
                start: 0,
            }],
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least one prompt token"), "{e}");
    }

    /// Fused (chunked, no logits) and Reference (full logits) give the same
    /// DPO loss and the same gradients in the weights.
    #[test]
    fn fused_and_reference_agree_in_value_and_gradient() {
        use crate::direct::{direct_loss, DirectLoss, PairLogps};
        let fused = model();
        let reference = fused.clone().with_mode(KernelMode::Reference);
        let w = Completion {
            ids: vec![3, 9, 4, 17, 22, 30],
            start: 2,
        };
        let l = Completion {
            ids: vec![3, 9, 40, 41],
            start: 2,
        };
        let refp = PairLogps::from_vecs(&[-12.0], &[-8.0], &[4.0], &[2.0], &Device::Cpu).unwrap();
        let run = |m: &Llama| {
            let p = PairLogps {
                chosen: completion_logps(m, &[&w], 0).unwrap(),
                rejected: completion_logps(m, &[&l], 0).unwrap(),
            };
            let out = direct_loss(
                &DirectLoss::Dpo {
                    beta: 0.5,
                    label_smoothing: 0.0,
                },
                &p,
                Some(&refp),
                None,
            )
            .unwrap();
            let v = out.loss.to_scalar::<f64>().unwrap();
            let g = out.loss.backward().unwrap();
            let grads: Vec<Vec<f32>> = m
                .named_vars()
                .iter()
                .map(|(_, v)| {
                    g.get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect();
            (v, grads)
        };
        let (vf, gf) = run(&fused);
        let (vr, gr) = run(&reference);
        assert!((vf - vr).abs() < 1e-5, "{vf} vs {vr}");
        for (a, b) in gf.iter().zip(&gr) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-4 + 1e-3 * y.abs(), "{x} vs {y}");
            }
        }
    }
}
