//! Training a policy with a direct alignment loss ([`DirectLoss`]) on
//! preference pairs. The reference model's completion log-probs are
//! computed once, without gradients, in micro-batches, and cached in a file
//! keyed by the reference model and the tokenized pairs
//! ([`cached_reference_logps`]), so training never holds the reference
//! model. Each step: the policy's chosen and rejected log-probs of a
//! micro-batch in one forward pass through the chunked per-token op, the
//! loss as plain math on them, backward, accumulation, clipping, AdamW
//! under linear warmup and decay; seeded pair order; atomic checkpoints and
//! exact resume ([`PairTraining`]).

use crate::direct::{direct_loss, DirectLoss, PairLogps, SideLogps};
use crate::direct_eval::{evaluate_direct, nll_term, pair_logps, DirectMetrics};
use crate::logps::Completion;
use crate::template::{CompletionPair, Template};
use crate::train::checkpoint;
use crate::train::{due, PairTraining, RunLog};
use candle_core::{DType, Tensor, Var};
use caracal_core::{Error, Result};
use caracal_models::train::{grads, AdamW};
use caracal_models::{hf, Llama, Tokenizer};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything that fixes a direct-alignment run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DirectTrainOptions {
    pub loss: DirectLoss,
    pub template: Template,
    pub max_length: usize,
    /// The pad id of the batches (never scored).
    pub pad_id: u32,
    #[serde(flatten)]
    pub train: PairTraining,
}

/// The reference's summed completion log-probs, chosen and rejected, per pair.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceLogps {
    /// What they were computed from ([`reference_key`]).
    pub key: String,
    pub chosen: Vec<f64>,
    pub rejected: Vec<f64>,
}

/// FNV-1a, 64 bits: a stable fingerprint for cache keys (not a security hash).
fn fnv(bytes: impl IntoIterator<Item = u8>, mut h: u64) -> u64 {
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The cache key of a reference model at `model` (its path, size and
/// modification time; every file of a folder) and the tokenized sequences
/// it scores, in order: shared by every trainer that caches a reference.
pub fn sequences_key<'a>(
    model: &Path,
    seqs: impl IntoIterator<Item = &'a Completion>,
) -> Result<String> {
    let mut files = vec![model.to_path_buf()];
    if model.is_dir() {
        files = std::fs::read_dir(model)
            .map_err(|e| Error::file(model, format!("cannot list: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
    }
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for f in &files {
        let m = std::fs::metadata(f).map_err(|e| Error::file(f, format!("cannot stat: {e}")))?;
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h = fnv(f.to_string_lossy().bytes(), h);
        h = fnv(m.len().to_le_bytes(), h);
        h = fnv(t.to_le_bytes(), h);
    }
    for c in seqs {
        h = fnv((c.start as u64).to_le_bytes(), h);
        h = fnv(c.ids.iter().flat_map(|i| i.to_le_bytes()), h);
    }
    Ok(format!("{h:016x}"))
}

/// The cache key of a reference model at `model` and the tokenized pairs
/// ([`sequences_key`] of each pair's chosen and rejected sequences).
pub fn reference_key(model: &Path, pairs: &[CompletionPair]) -> Result<String> {
    sequences_key(model, pairs.iter().flat_map(|p| [&p.chosen, &p.rejected]))
}

/// The cache file of reference log-probs keyed `key` for the data file
/// `data`: `{stem}.ref-logps-{key}.json` beside it.
pub fn reference_cache_path(data: &Path, key: &str) -> PathBuf {
    let stem = data
        .file_stem()
        .map_or("data".into(), |s| s.to_string_lossy().into_owned());
    data.with_file_name(format!("{stem}.ref-logps-{key}.json"))
}

/// The reference's completion log-probs of `pairs`, in micro-batches of
/// `batch` pairs, detached (no gradient is kept).
pub fn reference_logps(
    reference: &Llama,
    pairs: &[CompletionPair],
    batch: usize,
    pad: u32,
    key: String,
) -> Result<ReferenceLogps> {
    let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
    for chunk in pairs.chunks(batch.max(1)) {
        let refs: Vec<&CompletionPair> = chunk.iter().collect();
        let p = pair_logps(reference, &refs, pad)?;
        chosen.extend(
            p.chosen
                .sum
                .detach()
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?,
        );
        rejected.extend(
            p.rejected
                .sum
                .detach()
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?,
        );
    }
    Ok(ReferenceLogps {
        key,
        chosen,
        rejected,
    })
}

/// Reference log-probs that can be cached on disk under a key.
pub trait CachedReference: serde::Serialize + serde::de::DeserializeOwned {
    /// What they were computed from.
    fn key(&self) -> &str;
}

impl CachedReference for ReferenceLogps {
    fn key(&self) -> &str {
        &self.key
    }
}

/// The reference log-probs from the cache file `cache` when its key
/// matches, else computed and written there atomically; the flag says
/// whether the cache served them.
pub fn cached_reference_logps<R: CachedReference>(
    cache: &Path,
    key: &str,
    compute: impl FnOnce() -> Result<R>,
) -> Result<(R, bool)> {
    if let Ok(text) = std::fs::read_to_string(cache) {
        if let Ok(r) = serde_json::from_str::<R>(&text) {
            if r.key() == key {
                return Ok((r, true));
            }
        }
    }
    let r = compute()?;
    caracal_core::write_json_atomic(cache, &r)?;
    Ok((r, false))
}

/// What one optimizer step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DirectStepStats {
    pub step: usize,
    pub epoch: f64,
    /// Mean loss over the micro-batches.
    pub loss: f64,
    /// Share of pairs whose chosen reward beats the rejected one.
    pub accuracy: f64,
    /// Mean reward margin.
    pub margin: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub seconds: f64,
}

/// What a direct-alignment checkpoint records besides tensors.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DirectCheckpointMeta {
    pub opts: DirectTrainOptions,
    pub step: usize,
    pub train_pairs: usize,
}

const KEY: &str = "caracal_align";

/// A policy with its optimizer state and the cached reference log-probs.
pub struct DirectTrainer {
    pub policy: Llama,
    pub tokenizer: Tokenizer,
    pub opts: DirectTrainOptions,
    pub opt: AdamW,
    pub step: usize,
    pub train_pairs: usize,
    reference: Option<ReferenceLogps>,
    vars: Vec<Var>,
}

impl DirectTrainer {
    /// Start training `policy` on `n_pairs` pairs; `reference` must hold
    /// one value per pair when the loss needs a reference.
    pub fn new(
        policy: Llama,
        tokenizer: Tokenizer,
        opts: DirectTrainOptions,
        n_pairs: usize,
        reference: Option<ReferenceLogps>,
    ) -> Result<Self> {
        opts.loss.validate()?;
        opts.train.validate()?;
        if n_pairs == 0 {
            caracal_core::bail!("no training pairs (all were dropped, or the file is empty)");
        }
        policy.ensure_trainable()?;
        let vars: Vec<Var> = policy.named_vars().into_iter().map(|(_, v)| v).collect();
        let opt = AdamW::new(opts.train.adamw.clone(), &vars)?;
        let mut t = DirectTrainer {
            policy,
            tokenizer,
            opts,
            opt,
            step: 0,
            train_pairs: n_pairs,
            reference: None,
            vars,
        };
        t.set_reference(reference)?;
        Ok(t)
    }

    /// Attach the reference log-probs (after [`DirectTrainer::resume`]).
    pub fn set_reference(&mut self, reference: Option<ReferenceLogps>) -> Result<()> {
        if self.opts.loss.needs_reference() {
            match &reference {
                Some(r)
                    if r.chosen.len() == self.train_pairs
                        && r.rejected.len() == self.train_pairs => {}
                Some(r) => caracal_core::bail!(
                    "the reference log-probs cover {} pairs but training has {}",
                    r.chosen.len(),
                    self.train_pairs
                ),
                None => caracal_core::bail!(
                    "this loss compares with a reference model; give --ref-model"
                ),
            }
        }
        self.reference = reference;
        Ok(())
    }

    /// Continue from a checkpoint written by [`DirectTrainer::save`].
    pub fn resume(path: &Path, device: &candle_core::Device) -> Result<Self> {
        let st =
            checkpoint::load_policy::<DirectCheckpointMeta>(path, device, KEY, "alignment", |m| {
                m.opts.train.adamw.clone()
            })?;
        let vars: Vec<Var> = st.policy.named_vars().into_iter().map(|(_, v)| v).collect();
        Ok(DirectTrainer {
            policy: st.policy,
            tokenizer: st.tokenizer,
            opt: st.opt,
            opts: st.meta.opts,
            step: st.meta.step,
            train_pairs: st.meta.train_pairs,
            reference: None,
            vars,
        })
    }

    /// Total optimizer steps of the run.
    pub fn total_steps(&self) -> usize {
        self.opts.train.total_steps(self.train_pairs)
    }

    /// Write a checkpoint atomically into `dir` (the tokenizer beside it).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let meta = DirectCheckpointMeta {
            opts: self.opts.clone(),
            step: self.step,
            train_pairs: self.train_pairs,
        };
        checkpoint::save_policy(dir, &self.policy, &self.opt, &self.tokenizer, KEY, &meta)
    }

    fn reference_for(&self, idx: &[usize], policy: &PairLogps) -> Result<Option<PairLogps>> {
        let Some(r) = &self.reference else {
            return Ok(None);
        };
        let dev = self.policy.device();
        let pick = |v: &[f64]| Tensor::new(idx.iter().map(|&i| v[i]).collect::<Vec<_>>(), dev);
        Ok(Some(PairLogps {
            chosen: SideLogps {
                sum: pick(&r.chosen)?,
                len: policy.chosen.len.clone(),
            },
            rejected: SideLogps {
                sum: pick(&r.rejected)?,
                len: policy.rejected.len.clone(),
            },
        }))
    }

    /// One optimizer step.
    pub fn train_step(&mut self, pairs: &[CompletionPair]) -> Result<DirectStepStats> {
        if pairs.len() != self.train_pairs {
            caracal_core::bail!(
                "the run was started on {} training pairs but {} were given; use the same pairs file, template and --max-length",
                self.train_pairs,
                pairs.len()
            );
        }
        let t0 = Instant::now();
        let idx = self.opts.train.micro_batches(self.step, self.train_pairs);
        let n_micro = idx.len();
        let mut sum: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let (mut loss_sum, mut acc, mut margin) = (0.0, 0.0, 0.0);
        for batch in &idx {
            let refs: Vec<&CompletionPair> = batch.iter().map(|&i| &pairs[i]).collect();
            let p = pair_logps(&self.policy, &refs, self.opts.pad_id)?;
            let r = self.reference_for(batch, &p)?;
            let nll = nll_term(&self.policy, &refs, self.opts.pad_id, &self.opts.loss, &p)?;
            let out = direct_loss(&self.opts.loss, &p, r.as_ref(), nll.as_ref())?;
            let l = out.loss.to_scalar::<f64>()?;
            if !l.is_finite() {
                return Err(Error::Numeric(format!(
                    "the training loss is {l} at step {}; lower the learning rate",
                    self.step + 1
                )));
            }
            let (rw, rl): (Vec<f64>, Vec<f64>) = (
                out.chosen_rewards.to_vec1()?,
                out.rejected_rewards.to_vec1()?,
            );
            let b = rw.len() as f64;
            acc += rw.iter().zip(&rl).filter(|(a, c)| a > c).count() as f64 / b;
            margin += rw.iter().zip(&rl).map(|(a, c)| a - c).sum::<f64>() / b;
            loss_sum += l;
            let g = (out.loss / n_micro as f64)?.backward()?;
            grads::accumulate(&mut sum, &g, &self.vars)?;
        }
        let grad_norm = grads::clip_global_norm(&mut sum, self.opts.train.clip)?;
        let lr = self.opts.train.schedule(self.train_pairs).lr(self.step);
        self.opt.step(&self.vars, &sum, lr)?;
        self.step += 1;
        let m = n_micro as f64;
        Ok(DirectStepStats {
            step: self.step,
            epoch: self.step as f64 / self.opts.train.steps_per_epoch(self.train_pairs) as f64,
            loss: loss_sum / m,
            accuracy: acc / m,
            margin: margin / m,
            lr,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Train to the end (or stop after `stop_after` steps in total, as a
    /// simulated kill), logging one JSON line per step to
    /// `out/metrics.jsonl`, checkpointing into `out`, and at the end writing
    /// the policy as a Hugging Face folder there. `eval` (pairs and their
    /// reference model) is evaluated at `eval_every` and at the end.
    pub fn run(
        &mut self,
        pairs: &[CompletionPair],
        eval: Option<(&[CompletionPair], Option<&Llama>)>,
        out: &Path,
        stop_after: Option<usize>,
        mut on_step: impl FnMut(&DirectStepStats, Option<&DirectMetrics>),
    ) -> Result<Option<DirectMetrics>> {
        let total = self.total_steps();
        let mut log = RunLog::open(Some(out), self.step, total, "align train")?;
        let end = stop_after.unwrap_or(total).min(total);
        let tr = self.opts.train.clone();
        let mut last = None;
        while self.step < end {
            let s = self.train_step(pairs)?;
            let ev = match eval {
                Some((e, r)) if due(tr.eval_every, s.step, total) => Some(evaluate_direct(
                    &self.policy,
                    r,
                    e,
                    &self.opts.loss,
                    tr.batch_size,
                    self.opts.pad_id,
                )?),
                _ => None,
            };
            let mut rec = serde_json::to_value(&s).map_err(|e| Error::invalid(e.to_string()))?;
            if let Some(e) = &ev {
                rec["eval_loss"] = e.loss.into();
                rec["eval_rewards/accuracies"] = e.rewards_accuracies.into();
                rec["eval_rewards/margins"] = e.rewards_margins.into();
            }
            log.record(
                s.step,
                format!("loss {:.4} acc {:.3}", s.loss, s.accuracy),
                &rec,
            )?;
            if due(tr.ckpt_every, s.step, total) {
                self.save(out)?;
            }
            on_step(&s, ev.as_ref());
            if ev.is_some() {
                last = ev;
            }
        }
        log.finish();
        if self.step == total {
            hf::save_dir(&self.policy, out)?;
        }
        Ok(last)
    }
}
