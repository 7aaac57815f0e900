//! Evaluating a policy on preference pairs with a direct alignment loss,
//! reported as TRL 1.16's `DPOTrainer.evaluate()` / `CPOTrainer.evaluate()`
//! report it: micro-batches of `batch` pairs in file order; `loss` is the
//! mean of per-batch losses weighted by batch size (transformers repeats
//! each batch's loss batch-size times), every other metric the plain mean
//! of per-batch values.

use crate::direct::{direct_loss, DirectLoss, PairLogps, SideLogps};
use crate::logps::{completion_logps, mean_nll, Completion};
use crate::template::CompletionPair;
use candle_core::{DType, Tensor};
use caracal_core::Result;
use caracal_models::Llama;
use serde_json::{json, Value};

/// TRL's metrics of a direct alignment loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct DirectMetrics {
    pub loss: f64,
    pub rewards_chosen: f64,
    pub rewards_rejected: f64,
    pub rewards_accuracies: f64,
    pub rewards_margins: f64,
    pub logps_chosen: f64,
    pub logps_rejected: f64,
    /// CPO-family losses only (0 when the NLL weight is 0, as TRL).
    pub nll_loss: Option<f64>,
}

impl DirectMetrics {
    /// The metrics under TRL's names.
    pub fn to_trl_json(&self) -> Value {
        let mut v = json!({
            "loss": self.loss,
            "rewards/chosen": self.rewards_chosen,
            "rewards/rejected": self.rewards_rejected,
            "rewards/accuracies": self.rewards_accuracies,
            "rewards/margins": self.rewards_margins,
            "logps/chosen": self.logps_chosen,
            "logps/rejected": self.logps_rejected,
        });
        if let Some(n) = self.nll_loss {
            v["nll_loss"] = n.into();
        }
        v
    }
}

/// Whether TRL reports this loss through CPOTrainer or ORPOTrainer (an
/// `nll_loss`, log-probs averaged when the loss averages them).
fn cpo_family(loss: &DirectLoss) -> bool {
    matches!(
        loss,
        DirectLoss::Cpo { .. }
            | DirectLoss::Simpo { .. }
            | DirectLoss::AlphaPo { .. }
            | DirectLoss::Orpo { .. }
    )
}

/// The NLL term of the losses that have one, as TRL computes it: CPO's over
/// the chosen completions' tokens (`p`, already computed); ORPO's over every
/// token of the chosen sequences after the first, the prompt included
/// (TRL 1.16 `ORPOTrainer.concatenated_forward`: labels are all non-pad
/// ids), which costs one more forward pass over the chosen sequences.
/// Token mean over the batch in both.
pub fn nll_term(
    model: &Llama,
    pairs: &[&CompletionPair],
    pad: u32,
    loss: &DirectLoss,
    p: &PairLogps,
) -> Result<Option<Tensor>> {
    Ok(match loss {
        DirectLoss::Cpo { nll_weight, .. } if *nll_weight != 0.0 => Some(mean_nll(&p.chosen)?),
        DirectLoss::Orpo { .. } => {
            let whole: Vec<Completion> = pairs
                .iter()
                .map(|q| Completion {
                    ids: q.chosen.ids.clone(),
                    start: 1,
                })
                .collect();
            let refs: Vec<&Completion> = whole.iter().collect();
            Some(mean_nll(&completion_logps(model, &refs, pad)?)?)
        }
        _ => None,
    })
}

/// Chosen and rejected completion log-probs of a batch in one forward pass.
pub fn pair_logps(model: &Llama, pairs: &[&CompletionPair], pad: u32) -> Result<PairLogps> {
    let b = pairs.len();
    let seqs: Vec<&Completion> = pairs
        .iter()
        .map(|p| &p.chosen)
        .chain(pairs.iter().map(|p| &p.rejected))
        .collect();
    let s = completion_logps(model, &seqs, pad)?;
    let half = |t: &Tensor, o: usize| t.narrow(0, o, b);
    Ok(PairLogps {
        chosen: SideLogps {
            sum: half(&s.sum, 0)?,
            len: half(&s.len, 0)?,
        },
        rejected: SideLogps {
            sum: half(&s.sum, b)?,
            len: half(&s.len, b)?,
        },
    })
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.to_vec1()?)
}

/// Evaluate `loss` on `pairs`; `reference` is required by the DPO family.
pub fn evaluate_direct(
    policy: &Llama,
    reference: Option<&Llama>,
    pairs: &[CompletionPair],
    loss: &DirectLoss,
    batch: usize,
    pad: u32,
) -> Result<DirectMetrics> {
    loss.validate()?;
    if batch == 0 {
        caracal_core::bail!("--batch-size is 0; it must be at least 1");
    }
    if pairs.is_empty() {
        caracal_core::bail!("no pairs to evaluate (all were dropped, or the file is empty)");
    }
    if loss.needs_reference() && reference.is_none() {
        caracal_core::bail!("this loss compares with a reference model; give --ref-model");
    }
    let cpo = cpo_family(loss);
    let (mut weighted_loss, mut n) = (0.0, 0usize);
    let mut per: Vec<[f64; 7]> = Vec::new();
    for chunk in pairs.chunks(batch) {
        let refs: Vec<&CompletionPair> = chunk.iter().collect();
        let p = pair_logps(policy, &refs, pad)?;
        let r = match reference {
            Some(m) if loss.needs_reference() => Some(pair_logps(m, &refs, pad)?),
            _ => None,
        };
        let nll = nll_term(policy, &refs, pad, loss, &p)?;
        let out = direct_loss(loss, &p, r.as_ref(), nll.as_ref())?;
        let l = out.loss.to_scalar::<f64>()?;
        weighted_loss += l * chunk.len() as f64;
        n += chunk.len();
        let (rw, rl) = (vec(&out.chosen_rewards)?, vec(&out.rejected_rewards)?);
        let avg = cpo && loss.averages();
        let side = |s: &SideLogps| -> Result<Vec<f64>> {
            let v = vec(&s.sum)?;
            Ok(if avg {
                v.iter().zip(vec(&s.len)?).map(|(a, b)| a / b).collect()
            } else {
                v
            })
        };
        let acc = rw.iter().zip(&rl).filter(|(a, b)| a > b).count() as f64 / rw.len() as f64;
        let margins: Vec<f64> = rw.iter().zip(&rl).map(|(a, b)| a - b).collect();
        per.push([
            mean(&rw),
            mean(&rl),
            acc,
            mean(&margins),
            mean(&side(&p.chosen)?),
            mean(&side(&p.rejected)?),
            match &nll {
                Some(t) => t.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                None => 0.0,
            },
        ]);
    }
    let col = |i: usize| mean(&per.iter().map(|r| r[i]).collect::<Vec<_>>());
    Ok(DirectMetrics {
        loss: weighted_loss / n as f64,
        rewards_chosen: col(0),
        rewards_rejected: col(1),
        rewards_accuracies: col(2),
        rewards_margins: col(3),
        logps_chosen: col(4),
        logps_rejected: col(5),
        nll_loss: cpo.then(|| col(6)),
    })
}
