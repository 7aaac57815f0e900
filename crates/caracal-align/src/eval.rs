//! Evaluating a reward model on preference pairs as TRL's
//! `RewardTrainer.evaluate()` reports it: the pairs, in file order, form
//! micro-batches of `batch` pairs; each metric is computed per micro-batch
//! and averaged over micro-batches. `loss` is the training objective
//! (with BSR's `λ·B·m²` for that micro-batch's `B`, and the centering term).

use crate::diagnostics::{diagnostics, Diagnostics};
use crate::loss::RewardObjective;
use crate::pairs::TokenPair;
use crate::reward_model::RewardModel;
use candle_core::DType;
use caracal_core::Result;

/// TRL's reward metrics (same names) for one micro-batch or averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct RewardMetrics {
    /// The objective, nats.
    pub loss: f64,
    /// Share of pairs with `r_w > r_l` (strictly).
    pub accuracy: f64,
    /// Mean `r_w − r_l`.
    pub margin: f64,
    /// Mean of all `2B` rewards.
    pub mean_reward: f64,
    pub min_reward: f64,
    pub max_reward: f64,
}

impl RewardMetrics {
    /// Metrics of one micro-batch from its rewards and its loss.
    pub fn of(chosen: &[f64], rejected: &[f64], loss: f64) -> RewardMetrics {
        let b = chosen.len() as f64;
        let all = chosen.iter().chain(rejected);
        RewardMetrics {
            loss,
            accuracy: chosen.iter().zip(rejected).filter(|(w, l)| w > l).count() as f64 / b,
            margin: chosen.iter().zip(rejected).map(|(w, l)| w - l).sum::<f64>() / b,
            mean_reward: all.clone().sum::<f64>() / (2.0 * b),
            min_reward: all.clone().copied().fold(f64::INFINITY, f64::min),
            max_reward: all.copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// The unweighted mean over micro-batches (as `evaluate()` logs them).
    pub fn mean(batches: &[RewardMetrics]) -> RewardMetrics {
        let n = batches.len().max(1) as f64;
        let f = |g: fn(&RewardMetrics) -> f64| batches.iter().map(g).sum::<f64>() / n;
        RewardMetrics {
            loss: f(|m| m.loss),
            accuracy: f(|m| m.accuracy),
            margin: f(|m| m.margin),
            mean_reward: f(|m| m.mean_reward),
            min_reward: f(|m| m.min_reward),
            max_reward: f(|m| m.max_reward),
        }
    }
}

/// An evaluation: the averaged metrics, the per-pair rewards and, when
/// asked, the representation diagnostics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub metrics: RewardMetrics,
    /// Pairs evaluated.
    pub pairs: usize,
    /// Micro-batches.
    pub batches: usize,
    #[serde(skip)]
    pub chosen: Vec<f64>,
    #[serde(skip)]
    pub rejected: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
}

/// Evaluate `rm` on `pairs` in micro-batches of `batch` pairs.
pub fn evaluate(
    rm: &RewardModel,
    pairs: &[TokenPair],
    batch: usize,
    objective: &RewardObjective,
    with_diagnostics: bool,
) -> Result<EvalReport> {
    objective.validate()?;
    if batch == 0 {
        caracal_core::bail!("--batch-size is 0; it must be at least 1");
    }
    if pairs.is_empty() {
        caracal_core::bail!("no pairs to evaluate (all were dropped, or the file is empty)");
    }
    let mut per_batch = Vec::new();
    let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
    let (mut hc, mut hr) = (Vec::new(), Vec::new());
    for chunk in pairs.chunks(batch) {
        let b = chunk.len();
        let seqs: Vec<&[u32]> = chunk
            .iter()
            .map(|p| p.chosen.as_slice())
            .chain(chunk.iter().map(|p| p.rejected.as_slice()))
            .collect();
        let (pooled, r) = rm.forward(&seqs)?;
        let r = r.to_dtype(DType::F64)?;
        let (rw, rl) = (r.narrow(0, 0, b)?, r.narrow(0, b, b)?);
        let loss = objective
            .loss(&rw, &rl)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let (w, l): (Vec<f64>, Vec<f64>) = (rw.to_vec1()?, rl.to_vec1()?);
        per_batch.push(RewardMetrics::of(&w, &l, loss));
        chosen.extend(w);
        rejected.extend(l);
        if with_diagnostics {
            let rows: Vec<Vec<f32>> = pooled.to_dtype(DType::F32)?.to_vec2()?;
            let (a, bb) = rows.split_at(b);
            hc.extend_from_slice(a);
            hr.extend_from_slice(bb);
        }
    }
    let diagnostics = if with_diagnostics {
        let w = rm.head_vector()?;
        Some(diagnostics(&hc, &hr, &w)?)
    } else {
        None
    };
    Ok(EvalReport {
        metrics: RewardMetrics::mean(&per_batch),
        pairs: pairs.len(),
        batches: per_batch.len(),
        chosen,
        rejected,
        diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_a_batch_and_their_mean() {
        let m = RewardMetrics::of(&[1.0, 0.5, 2.0, -0.3], &[-0.5, 0.5, 1.0, -1.0], 0.3);
        assert_eq!(m.accuracy, 0.75); // the tie does not count
        assert!((m.margin - (1.5 + 0.0 + 1.0 + 0.7) / 4.0).abs() < 1e-15);
        assert!((m.mean_reward - 3.2 / 8.0).abs() < 1e-15);
        assert_eq!((m.min_reward, m.max_reward), (-1.0, 2.0));
        let n = RewardMetrics::of(&[0.0], &[1.0], 0.9);
        let avg = RewardMetrics::mean(&[m, n]);
        assert!((avg.accuracy - 0.375).abs() < 1e-15 && (avg.loss - 0.6).abs() < 1e-15);
    }
}
