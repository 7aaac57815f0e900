//! KTO on unpaired examples (Ethayarajh et al., ICML 2024) as TRL 1.16's
//! `KTOTrainer` prepares and evaluates them: `{"prompt", "completion",
//! "label"}` lines; the EOS text appended to each completion when missing;
//! `prompt` and `prompt + completion` tokenized, the completion starting at
//! their common prefix (`kto_trainer.py` 1077–1112); the KL reference point
//! from mismatched examples, each prompt with the completion of the
//! previous example of its batch (1141–1157, `[c[-1]] + c[:-1]`); the loss
//! and metrics of [`crate::direct::kto_loss`] (1443–1548).

use crate::direct::{kto_kl, kto_loss, KtoOptions};
use crate::logps::{completion_logps, Completion};
use crate::template::common_prefix;
use caracal_core::{Error, Result};
use caracal_models::{Llama, Tokenizer};
use std::path::Path;

/// One unpaired example.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KtoExample {
    pub prompt: String,
    pub completion: String,
    /// Desirable (`true`) or undesirable.
    pub label: bool,
}

/// Read `{"prompt", "completion", "label"}` lines; a malformed line is an
/// error naming it.
pub fn read_examples(path: &Path) -> Result<Vec<KtoExample>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read as UTF-8 text: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: KtoExample = serde_json::from_str(line).map_err(|e| {
            Error::file(
                path,
                format!(
                    "line {}: expected {{\"prompt\": string, \"completion\": string, \"label\": true|false}} ({e})",
                    i + 1
                ),
            )
        })?;
        out.push(e);
    }
    if out.is_empty() {
        return Err(Error::file(path, "holds no examples"));
    }
    Ok(out)
}

/// A tokenized example.
#[derive(Clone, Debug, PartialEq)]
pub struct KtoSeq {
    pub seq: Completion,
    pub label: bool,
}

/// Tokenize as TRL's KTOTrainer; examples longer than `max_length` are
/// dropped and counted (the count is returned).
pub fn tokenize(
    examples: &[KtoExample],
    tok: &Tokenizer,
    eos_text: Option<&str>,
    max_length: usize,
) -> Result<(Vec<KtoSeq>, usize)> {
    let mut out = Vec::with_capacity(examples.len());
    let mut dropped = 0;
    for (i, e) in examples.iter().enumerate() {
        let mut c = e.completion.clone();
        if let Some(eos) = eos_text {
            if !c.ends_with(eos) {
                c.push_str(eos);
            }
        }
        let p = tok.encode_with_special(&e.prompt)?;
        let full = tok.encode_with_special(&format!("{}{c}", e.prompt))?;
        let start = common_prefix(&p, &full);
        if start == 0 {
            caracal_core::bail!(
                "example {}: the prompt is empty or merges entirely into the completion; give a prompt",
                i + 1
            );
        }
        if full.len() > max_length {
            dropped += 1;
            continue;
        }
        out.push(KtoSeq {
            seq: Completion { ids: full, start },
            label: e.label,
        });
    }
    Ok((out, dropped))
}

/// The mismatched sequences of a batch: prompt `i` with the completion of
/// example `i − 1` (cyclically).
pub fn kl_sequences(batch: &[KtoSeq]) -> Vec<Completion> {
    let n = batch.len();
    (0..n)
        .map(|i| {
            let (p, c) = (&batch[i].seq, &batch[(i + n - 1) % n].seq);
            let mut ids = p.ids[..p.start].to_vec();
            ids.extend_from_slice(&c.ids[c.start..]);
            Completion {
                ids,
                start: p.start,
            }
        })
        .collect()
}

/// KTO's evaluation metrics under TRL's names.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct KtoMetrics {
    pub loss: f64,
    pub kl: f64,
    pub rewards_chosen: f64,
    pub rewards_rejected: f64,
    pub rewards_margins: f64,
    pub logps_chosen: f64,
    pub logps_rejected: f64,
}

impl KtoMetrics {
    /// The metrics under TRL's names.
    pub fn to_trl_json(&self) -> serde_json::Value {
        serde_json::json!({
            "loss": self.loss,
            "kl": self.kl,
            "rewards/chosen": self.rewards_chosen,
            "rewards/rejected": self.rewards_rejected,
            "rewards/margins": self.rewards_margins,
            "logps/chosen": self.logps_chosen,
            "logps/rejected": self.logps_rejected,
        })
    }
}

fn sums(model: &Llama, seqs: &[&Completion], pad: u32) -> Result<Vec<f64>> {
    Ok(completion_logps(model, seqs, pad)?
        .sum
        .detach()
        .to_dtype(candle_core::DType::F64)?
        .to_vec1()?)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Evaluate KTO in batches of `batch` examples (the KL pairs are formed
/// within each batch); the loss is weighted by batch size and the other
/// metrics are per-batch means averaged, as TRL's `evaluate()`.
pub fn evaluate_kto(
    policy: &Llama,
    reference: &Llama,
    examples: &[KtoSeq],
    opts: &KtoOptions,
    batch: usize,
    pad: u32,
) -> Result<KtoMetrics> {
    if batch == 0 {
        caracal_core::bail!("--batch-size is 0; it must be at least 1");
    }
    if examples.is_empty() {
        caracal_core::bail!("no examples to evaluate (all were dropped, or the file is empty)");
    }
    let dev = policy.device();
    let (mut loss_w, mut n) = (0.0, 0usize);
    let mut rows: Vec<[f64; 6]> = Vec::new();
    for chunk in examples.chunks(batch) {
        let seqs: Vec<&Completion> = chunk.iter().map(|e| &e.seq).collect();
        let kl_seqs = kl_sequences(chunk);
        let kl_refs: Vec<&Completion> = kl_seqs.iter().collect();
        let (pl, rl) = (sums(policy, &seqs, pad)?, sums(reference, &seqs, pad)?);
        let z0 = kto_kl(
            &candle_core::Tensor::new(sums(policy, &kl_refs, pad)?, dev)?,
            &candle_core::Tensor::new(sums(reference, &kl_refs, pad)?, dev)?,
        )?;
        let split = |want: bool, v: &[f64]| -> Vec<f64> {
            chunk
                .iter()
                .zip(v)
                .filter(|(e, _)| e.label == want)
                .map(|(_, x)| *x)
                .collect()
        };
        let r: Vec<f64> = pl.iter().zip(&rl).map(|(a, b)| a - b).collect();
        let (rd, ru) = (split(true, &r), split(false, &r));
        let (loss, _, _) = kto_loss(
            opts,
            &candle_core::Tensor::new(rd.as_slice(), dev)?,
            &candle_core::Tensor::new(ru.as_slice(), dev)?,
            &z0,
        )?;
        loss_w += loss.to_scalar::<f64>()? * chunk.len() as f64;
        n += chunk.len();
        let (rc, rr) = (mean(&rd) * opts.beta, mean(&ru) * opts.beta);
        rows.push([
            z0.to_scalar::<f64>()?,
            rc,
            rr,
            rc - rr,
            mean(&split(true, &pl)),
            mean(&split(false, &pl)),
        ]);
    }
    let col = |i: usize| mean(&rows.iter().map(|r| r[i]).collect::<Vec<_>>());
    Ok(KtoMetrics {
        loss: loss_w / n as f64,
        kl: col(0),
        rewards_chosen: col(1),
        rewards_rejected: col(2),
        rewards_margins: col(3),
        logps_chosen: col(4),
        logps_rejected: col(5),
    })
}
