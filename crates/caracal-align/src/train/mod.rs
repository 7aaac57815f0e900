//! Training a reward model on preference pairs: each micro-batch of `B`
//! pairs runs its `2B` sequences through the model at once, the objective
//! ([`RewardObjective`]; BSR's mean is over that micro-batch) is
//! backpropagated, gradients are accumulated, clipped by global norm and
//! applied by AdamW under linear warmup and decay (the BSR recipe: 5%
//! warmup, linear decay). The pair order of epoch `e` is a permutation
//! drawn from `(seed, e)` alone, so a run resumed from a checkpoint sees
//! exactly the batches an uninterrupted run would have seen.

pub mod checkpoint;
pub mod run_log;

pub use run_log::{due, RunLog};

use crate::eval::{evaluate, EvalReport, RewardMetrics};
use crate::loss::RewardObjective;
use crate::pairs::TokenPair;
use crate::reward_model::RewardModel;
use candle_core::{DType, Tensor, Var};
use caracal_core::{Error, Result, Rng};
use caracal_models::train::{grads, AdamW, AdamWConfig, LinearSchedule};
use std::path::Path;
use std::time::Instant;

/// What fixes a training run on preference pairs, whatever its loss: the
/// pass over the data, the optimizer and the checkpoint cadence. The pair
/// order of epoch `e` is a permutation drawn from `(seed, e)` alone.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairTraining {
    pub epochs: usize,
    /// Pairs per micro-batch (BSR's `B`).
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Share of the steps spent warming up.
    pub warmup_ratio: f64,
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this.
    pub clip: Option<f64>,
    pub seed: u64,
    /// Evaluate every this many steps (0: at the end only).
    pub eval_every: usize,
    /// Checkpoint every this many steps (0: at the end only).
    pub ckpt_every: usize,
}

impl Default for PairTraining {
    /// TRL's defaults where the BSR recipe does not say otherwise: 1 epoch,
    /// AdamW (0.9, 0.999, 1e-8, no decay), clip 1.0, 5% warmup and linear
    /// decay (the paper's); micro-batch 8 pairs, lr 1e-5.
    fn default() -> Self {
        PairTraining {
            epochs: 1,
            batch_size: 8,
            grad_accum: 1,
            lr: 1e-5,
            warmup_ratio: 0.05,
            adamw: AdamWConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            clip: Some(1.0),
            seed: 0,
            eval_every: 0,
            ckpt_every: 100,
        }
    }
}

impl PairTraining {
    /// Check the options once.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--grad-accum", self.grad_accum),
        ] {
            if v == 0 {
                caracal_core::bail!("{name} is 0; it must be at least 1");
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            caracal_core::bail!("--lr is {}; it must be positive", self.lr);
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            caracal_core::bail!(
                "--warmup-ratio is {}; it must be in [0, 1)",
                self.warmup_ratio
            );
        }
        if let Some(c) = self.clip {
            if c.is_nan() || c <= 0.0 {
                caracal_core::bail!("gradient clip {c} must be positive");
            }
        }
        Ok(())
    }

    /// Optimizer steps per epoch for `n` pairs.
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        n.div_ceil(self.batch_size * self.grad_accum)
    }

    /// Optimizer steps of the run for `n` pairs.
    pub fn total_steps(&self, n: usize) -> usize {
        self.epochs * self.steps_per_epoch(n)
    }

    /// Linear warmup and decay over the run.
    pub fn schedule(&self, n: usize) -> LinearSchedule {
        let total = self.total_steps(n);
        LinearSchedule {
            peak: self.lr,
            warmup: (self.warmup_ratio * total as f64).ceil() as usize,
            total,
        }
    }

    /// The pair order of epoch `epoch`: a permutation drawn from
    /// `(seed, epoch)` alone.
    fn epoch_order(&self, epoch: usize, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng =
            Rng::new(self.seed ^ (0x5EED_0000 + epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.shuffle(&mut order);
        order
    }

    /// The pair indices of each micro-batch of optimizer step `step` (the
    /// last step of an epoch may have fewer micro-batches, and its last
    /// micro-batch fewer pairs).
    pub fn micro_batches(&self, step: usize, n: usize) -> Vec<Vec<usize>> {
        let spe = self.steps_per_epoch(n);
        let order = self.epoch_order(step / spe, n);
        let b = self.batch_size;
        let first = (step % spe) * self.grad_accum * b;
        (0..self.grad_accum)
            .map(|m| {
                order
                    .iter()
                    .skip(first + m * b)
                    .take(b)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// Everything that fixes a reward-model training run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RmTrainOptions {
    pub objective: RewardObjective,
    #[serde(flatten)]
    pub train: PairTraining,
}

impl RmTrainOptions {
    /// Check the options once.
    pub fn validate(&self) -> Result<()> {
        self.objective.validate()?;
        self.train.validate()
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RmStepStats {
    pub step: usize,
    pub epoch: f64,
    #[serde(flatten)]
    pub metrics: RewardMetrics,
    pub lr: f64,
    pub grad_norm: f64,
    pub seconds: f64,
}

/// A reward model with its optimizer state.
pub struct RmTrainer {
    pub rm: RewardModel,
    pub opts: RmTrainOptions,
    pub opt: AdamW,
    /// Optimizer steps completed.
    pub step: usize,
    /// Training pairs the run was started with.
    pub train_pairs: usize,
    vars: Vec<Var>,
}

impl RmTrainer {
    /// Start training `rm` on `n_pairs` pairs from step 0.
    pub fn new(rm: RewardModel, opts: RmTrainOptions, n_pairs: usize) -> Result<Self> {
        opts.validate()?;
        if n_pairs == 0 {
            caracal_core::bail!("no training pairs (all were dropped, or the file is empty)");
        }
        if rm.clf.model.mode == caracal_models::KernelMode::Candle {
            caracal_core::bail!(
                "kernel mode `candle` is for inference only; train with `fused` or `reference`"
            );
        }
        rm.clf.model.ensure_trainable()?;
        let vars: Vec<Var> = rm.clf.named_vars().into_iter().map(|(_, v)| v).collect();
        let opt = AdamW::new(opts.train.adamw.clone(), &vars)?;
        Ok(RmTrainer {
            rm,
            opts,
            opt,
            step: 0,
            train_pairs: n_pairs,
            vars,
        })
    }

    /// Continue from a checkpoint written by [`RmTrainer::save`].
    pub fn resume(path: &Path, device: &candle_core::Device) -> Result<Self> {
        let l = checkpoint::load(path, device)?;
        let vars: Vec<Var> = l
            .model
            .clf
            .named_vars()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        Ok(RmTrainer {
            rm: l.model,
            opts: l.meta.opts,
            opt: l.opt,
            step: l.meta.step,
            train_pairs: l.meta.train_pairs,
            vars,
        })
    }

    /// Total optimizer steps of the run.
    pub fn total_steps(&self) -> usize {
        self.opts.train.total_steps(self.train_pairs)
    }

    /// Write a checkpoint atomically into the folder `dir` (the tokenizer
    /// beside it).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::file(dir, format!("cannot create: {e}")))?;
        let tokenizer = checkpoint::save_tokenizer(dir, &self.rm.tokenizer)?;
        let meta = checkpoint::RmCheckpointMeta {
            opts: self.opts.clone(),
            step: self.step,
            total_steps: self.total_steps(),
            train_pairs: self.train_pairs,
            pad_id: self.rm.pad_id(),
            eos_text: self.rm.eos_text.clone(),
            tokenizer,
        };
        checkpoint::save(&dir.join(checkpoint::FILE), &self.rm, &self.opt, &meta)
    }

    /// One optimizer step.
    pub fn train_step(&mut self, pairs: &[TokenPair]) -> Result<RmStepStats> {
        if pairs.len() != self.train_pairs {
            caracal_core::bail!(
                "the run was started on {} training pairs but {} were given; use the same pairs file and --max-length",
                self.train_pairs,
                pairs.len()
            );
        }
        let t0 = Instant::now();
        let mut sum: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let mut metrics = Vec::new();
        let idx = self.opts.train.micro_batches(self.step, self.train_pairs);
        let n_micro = idx.len();
        for batch in &idx {
            let b = batch.len();
            let seqs: Vec<&[u32]> = batch
                .iter()
                .map(|&i| pairs[i].chosen.as_slice())
                .chain(batch.iter().map(|&i| pairs[i].rejected.as_slice()))
                .collect();
            let (_, r) = self.rm.forward(&seqs)?;
            let (rw, rl) = (r.narrow(0, 0, b)?, r.narrow(0, b, b)?);
            let loss = self.opts.objective.loss(&rw, &rl)?;
            let l = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !l.is_finite() {
                return Err(Error::Numeric(format!(
                    "the training loss is {l} at step {}; lower the learning rate",
                    self.step + 1
                )));
            }
            let w: Vec<f64> = rw.to_dtype(DType::F64)?.to_vec1()?;
            let lv: Vec<f64> = rl.to_dtype(DType::F64)?.to_vec1()?;
            metrics.push(RewardMetrics::of(&w, &lv, l));
            let grads = (loss / n_micro as f64)?.backward()?;
            grads::accumulate(&mut sum, &grads, &self.vars)?;
        }
        let grad_norm = grads::clip_global_norm(&mut sum, self.opts.train.clip)?;
        let lr = self.opts.train.schedule(self.train_pairs).lr(self.step);
        self.opt.step(&self.vars, &sum, lr)?;
        self.step += 1;
        let spe = self.opts.train.steps_per_epoch(self.train_pairs);
        Ok(RmStepStats {
            step: self.step,
            epoch: self.step as f64 / spe as f64,
            metrics: RewardMetrics::mean(&metrics),
            lr,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Train to the end (or stop after `stop_after` steps in total, as a
    /// simulated kill), logging one JSON line per step to `out/metrics.jsonl`,
    /// evaluating on `eval` and checkpointing into `out`.
    pub fn run(
        &mut self,
        pairs: &[TokenPair],
        eval: Option<&[TokenPair]>,
        out: Option<&Path>,
        stop_after: Option<usize>,
        mut on_step: impl FnMut(&RmStepStats, Option<&EvalReport>),
    ) -> Result<Option<EvalReport>> {
        let total = self.total_steps();
        let mut log = RunLog::open(out, self.step, total, "rm train")?;
        let end = stop_after.unwrap_or(total).min(total);
        let tr = self.opts.train.clone();
        let mut last = None;
        while self.step < end {
            let s = self.train_step(pairs)?;
            let ev = match eval {
                Some(e) if due(tr.eval_every, s.step, total) => Some(evaluate(
                    &self.rm,
                    e,
                    tr.batch_size,
                    &self.opts.objective,
                    false,
                )?),
                _ => None,
            };
            let mut rec = serde_json::to_value(&s).map_err(|e| Error::invalid(e.to_string()))?;
            if let Some(e) = &ev {
                for (k, v) in [
                    ("eval_loss", e.metrics.loss),
                    ("eval_accuracy", e.metrics.accuracy),
                    ("eval_margin", e.metrics.margin),
                ] {
                    rec[k] = v.into();
                }
            }
            let msg = format!("loss {:.4} acc {:.3}", s.metrics.loss, s.metrics.accuracy);
            log.record(s.step, msg, &rec)?;
            if let Some(d) = out.filter(|_| due(tr.ckpt_every, s.step, total)) {
                self.save(d)?;
            }
            on_step(&s, ev.as_ref());
            if ev.is_some() {
                last = ev;
            }
        }
        log.finish();
        if self.step == total {
            if let Some(d) = out {
                self.rm.save(d)?;
            }
        }
        Ok(last)
    }
}
