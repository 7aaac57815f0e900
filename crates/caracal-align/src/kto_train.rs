//! Training a policy with KTO (Ethayarajh et al., "KTO: Model Alignment as
//! Prospect Theoretic Optimization", ICML 2024, eq. 8) on unpaired
//! examples, as TRL 1.16's `KTOTrainer` trains: each micro-batch's policy
//! log-probs of its completions carry the gradient; the reference point `z₀`
//! is the clamped, detached mean of `log π − log ref` over the examples' KL
//! (mismatched) sequences ([`kto_kl`]); the loss is [`kto_loss`], plain
//! math on those log-probs. The KL sequences are fixed when the data is
//! prepared ([`kl_dataset`]). The reference model's log-probs, of the
//! examples and of their KL sequences, are computed once without gradients
//! and cached in a file keyed by the reference model and the tokenized
//! sequences ([`kto_reference_key`], [`cached_reference_logps`]), so
//! training never holds the reference model. Accumulation, clipping, AdamW
//! under linear warmup and decay, seeded example order, atomic checkpoints
//! and exact resume are those of the direct trainer ([`PairTraining`]).
//!
//! [`cached_reference_logps`]: crate::direct_train::cached_reference_logps

use crate::direct::{kto_kl, kto_loss, KtoOptions};
use crate::direct_train::{sequences_key, CachedReference};
use crate::kto::{kl_sequences, KtoSeq};
use crate::logps::{completion_logps, Completion};
use crate::train::checkpoint;
use crate::train::{due, PairTraining, RunLog};
use candle_core::{DType, Device, Tensor, Var};
use caracal_core::{Error, Result};
use caracal_models::train::{grads, AdamW};
use caracal_models::{hf, Llama, Tokenizer};
use std::path::Path;
use std::time::Instant;

/// Everything that fixes a KTO run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KtoTrainOptions {
    pub kto: KtoOptions,
    /// Examples longer than this many tokens were dropped.
    pub max_length: usize,
    /// The pad id of the batches (never scored).
    pub pad_id: u32,
    /// `batch_size` is TRL's `per_device_train_batch_size`: examples per
    /// micro-batch, and the size of the groups of [`kl_dataset`].
    #[serde(flatten)]
    pub train: PairTraining,
}

/// The KL sequence of each example: TRL forms them when it prepares the
/// data (`train_dataset.map(_get_kl_dataset, batched=True,
/// batch_size=per_device_train_batch_size)`, before the trainer shuffles),
/// so example `i` is paired for good with the completion of the previous
/// example of its group of `batch` consecutive examples in file order
/// ([`kl_sequences`], cyclically within the group), whichever examples
/// share its micro-batch later.
pub fn kl_dataset(examples: &[KtoSeq], batch: usize) -> Vec<Completion> {
    examples
        .chunks(batch.max(1))
        .flat_map(kl_sequences)
        .collect()
}

/// The reference's summed completion log-probs of each example and of its
/// KL sequence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KtoReference {
    /// What they were computed from ([`kto_reference_key`]).
    pub key: String,
    pub logps: Vec<f64>,
    pub kl_logps: Vec<f64>,
}

impl CachedReference for KtoReference {
    fn key(&self) -> &str {
        &self.key
    }
}

/// The cache key of a reference model at `model`, the examples and their
/// KL sequences ([`sequences_key`]).
pub fn kto_reference_key(model: &Path, examples: &[KtoSeq], kl: &[Completion]) -> Result<String> {
    sequences_key(model, examples.iter().map(|e| &e.seq).chain(kl))
}

/// Summed completion log-probs of `seqs` under `model` in micro-batches of
/// `batch`, detached.
fn detached_logps(model: &Llama, seqs: &[&Completion], batch: usize, pad: u32) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(batch.max(1)) {
        out.extend(
            completion_logps(model, chunk, pad)?
                .sum
                .detach()
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?,
        );
    }
    Ok(out)
}

/// The reference's log-probs of `examples` and of their KL sequences `kl`,
/// in micro-batches of `batch`, without gradients.
pub fn kto_reference_logps(
    reference: &Llama,
    examples: &[KtoSeq],
    kl: &[Completion],
    batch: usize,
    pad: u32,
    key: String,
) -> Result<KtoReference> {
    if kl.len() != examples.len() {
        caracal_core::bail!(
            "{} KL sequences were given for {} examples; build them with kl_dataset",
            kl.len(),
            examples.len()
        );
    }
    let seqs: Vec<&Completion> = examples.iter().map(|e| &e.seq).collect();
    let kls: Vec<&Completion> = kl.iter().collect();
    Ok(KtoReference {
        key,
        logps: detached_logps(reference, &seqs, batch, pad)?,
        kl_logps: detached_logps(reference, &kls, batch, pad)?,
    })
}

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KtoStepStats {
    pub step: usize,
    pub epoch: f64,
    /// Mean loss over the micro-batches.
    pub loss: f64,
    /// Mean `z₀` over the micro-batches.
    pub kl: f64,
    /// Mean reward `β·r` of the step's desirable examples (`None`: none).
    pub rewards_chosen: Option<f64>,
    /// Mean reward of the step's undesirable examples (`None`: none).
    pub rewards_rejected: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub seconds: f64,
}

/// What a KTO checkpoint records besides tensors.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct KtoCheckpointMeta {
    pub opts: KtoTrainOptions,
    pub step: usize,
    pub train_examples: usize,
}

const KEY: &str = "caracal_kto";

/// A policy with its optimizer state and the cached reference log-probs.
pub struct KtoTrainer {
    pub policy: Llama,
    pub tokenizer: Tokenizer,
    pub opts: KtoTrainOptions,
    pub opt: AdamW,
    pub step: usize,
    pub train_examples: usize,
    reference: Option<KtoReference>,
    vars: Vec<Var>,
}

impl KtoTrainer {
    /// Start training `policy` on `n_examples` examples; `reference` holds
    /// one value per example and per KL sequence.
    pub fn new(
        policy: Llama,
        tokenizer: Tokenizer,
        opts: KtoTrainOptions,
        n_examples: usize,
        reference: KtoReference,
    ) -> Result<Self> {
        opts.train.validate()?;
        // kto_loss validates the KTO options; one example checks them now.
        let dev = Device::Cpu;
        kto_loss(
            &opts.kto,
            &Tensor::new(&[0f64], &dev)?,
            &Tensor::zeros(0, DType::F64, &dev)?,
            &Tensor::new(0f64, &dev)?,
        )?;
        if n_examples == 0 {
            caracal_core::bail!("no training examples (all were dropped, or the file is empty)");
        }
        policy.ensure_trainable()?;
        let vars: Vec<Var> = policy.named_vars().into_iter().map(|(_, v)| v).collect();
        let opt = AdamW::new(opts.train.adamw.clone(), &vars)?;
        let mut t = KtoTrainer {
            policy,
            tokenizer,
            opts,
            opt,
            step: 0,
            train_examples: n_examples,
            reference: None,
            vars,
        };
        t.set_reference(reference)?;
        Ok(t)
    }

    /// Attach the reference log-probs (after [`KtoTrainer::resume`]).
    pub fn set_reference(&mut self, reference: KtoReference) -> Result<()> {
        if reference.logps.len() != self.train_examples
            || reference.kl_logps.len() != self.train_examples
        {
            caracal_core::bail!(
                "the reference log-probs cover {} examples and {} KL sequences but training has {} examples",
                reference.logps.len(),
                reference.kl_logps.len(),
                self.train_examples
            );
        }
        self.reference = Some(reference);
        Ok(())
    }

    /// Continue from a checkpoint written by [`KtoTrainer::save`]; attach
    /// the reference with [`KtoTrainer::set_reference`].
    pub fn resume(path: &Path, device: &Device) -> Result<Self> {
        let st = checkpoint::load_policy::<KtoCheckpointMeta>(path, device, KEY, "KTO", |m| {
            m.opts.train.adamw.clone()
        })?;
        let vars: Vec<Var> = st.policy.named_vars().into_iter().map(|(_, v)| v).collect();
        Ok(KtoTrainer {
            policy: st.policy,
            tokenizer: st.tokenizer,
            opt: st.opt,
            opts: st.meta.opts,
            step: st.meta.step,
            train_examples: st.meta.train_examples,
            reference: None,
            vars,
        })
    }

    /// Total optimizer steps of the run.
    pub fn total_steps(&self) -> usize {
        self.opts.train.total_steps(self.train_examples)
    }

    /// Write a checkpoint atomically into `dir` (the tokenizer beside it).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let meta = KtoCheckpointMeta {
            opts: self.opts.clone(),
            step: self.step,
            train_examples: self.train_examples,
        };
        checkpoint::save_policy(dir, &self.policy, &self.opt, &self.tokenizer, KEY, &meta)
    }

    /// One optimizer step on `examples`, whose KL sequences are `kl`
    /// ([`kl_dataset`] with the run's batch size).
    pub fn train_step(&mut self, examples: &[KtoSeq], kl: &[Completion]) -> Result<KtoStepStats> {
        if examples.len() != self.train_examples || kl.len() != examples.len() {
            caracal_core::bail!(
                "the run was started on {} training examples but {} (with {} KL sequences) were given; use the same examples file and --max-length",
                self.train_examples,
                examples.len(),
                kl.len()
            );
        }
        let Some(reference) = &self.reference else {
            caracal_core::bail!("the reference log-probs are not attached; call set_reference");
        };
        let t0 = Instant::now();
        let dev = self.policy.device().clone();
        let pad = self.opts.pad_id;
        let idx = self
            .opts
            .train
            .micro_batches(self.step, self.train_examples);
        let n_micro = idx.len();
        let mut sum: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let (mut loss_sum, mut kl_sum) = (0.0, 0.0);
        let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
        for batch in &idx {
            let seqs: Vec<&Completion> = batch.iter().map(|&i| &examples[i].seq).collect();
            let kls: Vec<&Completion> = batch.iter().map(|&i| &kl[i]).collect();
            let policy = completion_logps(&self.policy, &seqs, pad)?
                .sum
                .to_dtype(DType::F64)?;
            let policy_kl = completion_logps(&self.policy, &kls, pad)?.sum.detach();
            let pick =
                |v: &[f64]| Tensor::new(batch.iter().map(|&i| v[i]).collect::<Vec<_>>(), &dev);
            let z0 = kto_kl(&policy_kl, &pick(&reference.kl_logps)?)?;
            let r = (policy - pick(&reference.logps)?)?;
            // The rewards of one label (an empty tensor when it has none).
            let group = |want: bool| -> Result<Tensor> {
                let at: Vec<u32> = (0..batch.len() as u32)
                    .filter(|&j| examples[batch[j as usize]].label == want)
                    .collect();
                if at.is_empty() {
                    return Ok(Tensor::zeros(0, DType::F64, &dev)?);
                }
                let n = at.len();
                Ok(r.index_select(&Tensor::from_vec(at, n, &dev)?, 0)?)
            };
            let (loss, rc, rr) = kto_loss(&self.opts.kto, &group(true)?, &group(false)?, &z0)?;
            let l = loss.to_scalar::<f64>()?;
            if !l.is_finite() {
                return Err(Error::Numeric(format!(
                    "the training loss is {l} at step {}; lower the learning rate",
                    self.step + 1
                )));
            }
            loss_sum += l;
            kl_sum += z0.to_scalar::<f64>()?;
            chosen.extend(rc.detach().to_vec1::<f64>()?);
            rejected.extend(rr.detach().to_vec1::<f64>()?);
            let g = (loss / n_micro as f64)?.backward()?;
            grads::accumulate(&mut sum, &g, &self.vars)?;
        }
        let grad_norm = grads::clip_global_norm(&mut sum, self.opts.train.clip)?;
        let lr = self.opts.train.schedule(self.train_examples).lr(self.step);
        self.opt.step(&self.vars, &sum, lr)?;
        self.step += 1;
        let m = n_micro as f64;
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Ok(KtoStepStats {
            step: self.step,
            epoch: self.step as f64 / self.opts.train.steps_per_epoch(self.train_examples) as f64,
            loss: loss_sum / m,
            kl: kl_sum / m,
            rewards_chosen: mean(&chosen),
            rewards_rejected: mean(&rejected),
            lr,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Train to the end (or stop after `stop_after` steps in total, as a
    /// simulated kill), logging one JSON line per step to
    /// `out/metrics.jsonl`, checkpointing into `out`, and at the end writing
    /// the policy as a Hugging Face folder there.
    pub fn run(
        &mut self,
        examples: &[KtoSeq],
        kl: &[Completion],
        out: &Path,
        stop_after: Option<usize>,
        mut on_step: impl FnMut(&KtoStepStats),
    ) -> Result<()> {
        let total = self.total_steps();
        let mut log = RunLog::open(Some(out), self.step, total, "align kto")?;
        let end = stop_after.unwrap_or(total).min(total);
        let every = self.opts.train.ckpt_every;
        while self.step < end {
            let s = self.train_step(examples, kl)?;
            log.record(s.step, format!("loss {:.4} kl {:.3}", s.loss, s.kl), &s)?;
            if due(every, s.step, total) {
                self.save(out)?;
            }
            on_step(&s);
        }
        log.finish();
        if self.step == total {
            hf::save_dir(&self.policy, out)?;
        }
        Ok(())
    }
}
