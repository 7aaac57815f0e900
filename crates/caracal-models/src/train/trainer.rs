//! The causal-LM training loop: gradient accumulation over micro-batches,
//! global-norm gradient clipping (Pascanu et al., "On the difficulty of
//! training recurrent neural networks", ICML 2013, Algorithm 2), AdamW,
//! warmup + cosine learning rate, periodic evaluation, atomic checkpoints
//! and exact resumption.

use super::checkpoint::{self, CheckpointMeta};
use super::data::{batch_rng, eval_batches, random_batch, TokenData};
use super::grads;
use super::optim::{AdamW, AdamWConfig};
use super::schedule::CosineSchedule;
use crate::model::Llama;
use candle_core::{DType, Tensor, Var};
use caracal_core::progress::JsonlLog;
use caracal_core::{Error, Result};
use caracal_kernels::Reduction;
use std::path::Path;
use std::time::Instant;

/// Everything that fixes a training run (stored in each checkpoint).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup: usize,
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this (none: no clipping).
    pub clip: Option<f64>,
    pub seed: u64,
    /// Target id that contributes no loss.
    pub ignore_index: i64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Held-out batches per evaluation.
    pub eval_batches: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub ckpt_every: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 200,
            batch_size: 8,
            seq_len: 64,
            grad_accum: 1,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup: 20,
            adamw: AdamWConfig::default(),
            clip: Some(1.0),
            seed: 0,
            ignore_index: -100,
            eval_every: 50,
            eval_batches: 4,
            ckpt_every: 50,
        }
    }
}

impl TrainOptions {
    /// Check the options once.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("seq_len", self.seq_len),
            ("grad_accum", self.grad_accum),
        ] {
            if v == 0 {
                caracal_core::bail!("training option `{name}` is 0; it must be at least 1");
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.min_lr >= 0.0) {
            caracal_core::bail!(
                "learning rates must be positive (lr {}, min_lr {})",
                self.lr,
                self.min_lr
            );
        }
        if let Some(c) = self.clip {
            if c.is_nan() || c <= 0.0 {
                caracal_core::bail!("gradient clip {c} must be positive");
            }
        }
        Ok(())
    }

    /// The learning-rate schedule these options describe.
    pub fn schedule(&self) -> CosineSchedule {
        CosineSchedule {
            peak: self.lr,
            floor: self.min_lr,
            warmup: self.warmup,
            total: self.steps,
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepStats {
    /// Steps completed after this one (1-based).
    pub step: usize,
    /// Mean training loss over the micro-batches (nats/token).
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Target tokens that counted.
    pub tokens: usize,
    pub seconds: f64,
}

/// Held-out loss and perplexity.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct EvalStats {
    /// Mean loss, nats/token.
    pub loss: f64,
    /// `exp(loss)`.
    pub ppl: f64,
    pub tokens: usize,
}

/// A model with its optimizer state and options.
pub struct Trainer {
    pub model: Llama,
    pub opts: TrainOptions,
    pub opt: AdamW,
    /// Optimizer steps completed.
    pub step: usize,
    /// `bytes` or a tokenizer path, recorded in checkpoints.
    pub tokenizer: String,
    vars: Vec<Var>,
}

impl Trainer {
    /// Start training `model` from step 0.
    pub fn new(model: Llama, opts: TrainOptions, tokenizer: impl Into<String>) -> Result<Self> {
        opts.validate()?;
        if model.mode == crate::KernelMode::Candle {
            caracal_core::bail!(
                "kernel mode `candle` is for inference only (candle-nn's fused ops have no backward); train with `fused` or `reference`"
            );
        }
        model.ensure_trainable()?;
        let vars: Vec<Var> = model.named_vars().into_iter().map(|(_, v)| v).collect();
        let opt = AdamW::new(opts.adamw.clone(), &vars)?;
        Ok(Trainer {
            model,
            opts,
            opt,
            step: 0,
            tokenizer: tokenizer.into(),
            vars,
        })
    }

    /// Continue from a checkpoint written by [`Trainer::save`].
    pub fn resume(path: &Path, device: &candle_core::Device) -> Result<Self> {
        let l = checkpoint::load(path, device)?;
        let vars: Vec<Var> = l.model.named_vars().into_iter().map(|(_, v)| v).collect();
        Ok(Trainer {
            model: l.model,
            opts: l.meta.opts,
            opt: l.opt,
            step: l.meta.step,
            tokenizer: l.meta.tokenizer,
            vars,
        })
    }

    /// Write a checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = CheckpointMeta {
            config: self.model.config().clone(),
            opts: self.opts.clone(),
            step: self.step,
            tokenizer: self.tokenizer.clone(),
            mode: self.model.mode,
        };
        checkpoint::save(path, &self.model, &self.opt, &meta)
    }

    /// One optimizer step over `grad_accum` micro-batches of `data.train`.
    pub fn train_step(&mut self, data: &TokenData) -> Result<StepStats> {
        let t0 = Instant::now();
        let o = &self.opts;
        let dev = self.model.device().clone();
        let mut sum: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let (mut loss_sum, mut tokens) = (0.0, 0);
        for micro in 0..o.grad_accum {
            let mut rng = batch_rng(o.seed, self.step, micro);
            let b = random_batch(
                &data.train,
                o.batch_size,
                o.seq_len,
                &mut rng,
                o.ignore_index,
                &dev,
            )?;
            let loss = self
                .model
                .loss(&b.ids, &b.targets, o.ignore_index, Reduction::Mean)?;
            let l = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !l.is_finite() {
                return Err(Error::Numeric(format!(
                    "the training loss is {l} at step {}; lower the learning rate",
                    self.step + 1
                )));
            }
            loss_sum += l;
            tokens += b.n_tokens;
            let grads = (loss / o.grad_accum as f64)?.backward()?;
            grads::accumulate(&mut sum, &grads, &self.vars)?;
        }
        let grad_norm = grads::clip_global_norm(&mut sum, o.clip)?;
        let lr = o.schedule().lr(self.step);
        self.opt.step(&self.vars, &sum, lr)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss: loss_sum / o.grad_accum as f64,
            lr,
            grad_norm,
            tokens,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Mean loss and perplexity on `tokens` over at most `max_batches`
    /// batches of non-overlapping windows.
    pub fn evaluate(&self, tokens: &[u32], max_batches: usize) -> Result<EvalStats> {
        evaluate(
            &self.model,
            tokens,
            self.opts.batch_size,
            self.opts.seq_len,
            max_batches,
        )
    }

    /// Run to `opts.steps` (or stop after `stop_after` steps in total, as a
    /// simulated kill), logging, evaluating and checkpointing under `out`.
    pub fn run(
        &mut self,
        data: &TokenData,
        out: Option<&Path>,
        stop_after: Option<usize>,
        mut on_step: impl FnMut(&StepStats, Option<&EvalStats>),
    ) -> Result<Option<EvalStats>> {
        let ckpt = out.map(|d| d.join("checkpoint.safetensors"));
        let mut log = match out {
            Some(d) => {
                let p = d.join("metrics.jsonl");
                truncate_log(&p, self.step)?;
                Some(JsonlLog::append(&p)?)
            }
            None => None,
        };
        let end = stop_after.unwrap_or(self.opts.steps).min(self.opts.steps);
        let pb = caracal_core::progress::bar(self.opts.steps as u64, "train");
        pb.set_position(self.step as u64);
        let mut last_eval = None;
        while self.step < end {
            let s = self.train_step(data)?;
            let tps = s.tokens as f64 / s.seconds.max(1e-9);
            pb.set_position(s.step as u64);
            pb.set_message(format!("loss {:.4}", s.loss));
            let at_end = s.step == self.opts.steps;
            let ev = if (self.opts.eval_every > 0 && s.step % self.opts.eval_every == 0) || at_end {
                Some(self.evaluate(&data.val, self.opts.eval_batches)?)
            } else {
                None
            };
            if let Some(l) = log.as_mut() {
                let mut rec = serde_json::json!({
                    "step": s.step, "loss": s.loss, "lr": s.lr, "grad_norm": s.grad_norm,
                    "tokens": s.tokens, "tokens_per_s": tps, "mode": self.model.mode.name(),
                });
                if let Some(e) = &ev {
                    rec["eval_loss"] = e.loss.into();
                    rec["eval_ppl"] = e.ppl.into();
                }
                l.log(&rec)?;
            }
            if let Some(p) = &ckpt {
                if (self.opts.ckpt_every > 0 && s.step % self.opts.ckpt_every == 0) || at_end {
                    self.save(p)?;
                }
            }
            on_step(&s, ev.as_ref());
            if ev.is_some() {
                last_eval = ev;
            }
        }
        pb.finish_and_clear();
        Ok(last_eval)
    }
}

/// Mean next-token loss and perplexity of `model` on `tokens`.
pub fn evaluate(
    model: &Llama,
    tokens: &[u32],
    batch: usize,
    seq: usize,
    max_batches: usize,
) -> Result<EvalStats> {
    let dev = model.device().clone();
    let batches = eval_batches(tokens, batch, seq, max_batches.max(1), -100, &dev)?;
    let (mut sum, mut n) = (0.0, 0usize);
    for b in batches {
        if b.n_tokens == 0 {
            continue;
        }
        let l = model.loss(&b.ids, &b.targets, -100, Reduction::Sum)?;
        sum += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        n += b.n_tokens;
    }
    if n == 0 {
        caracal_core::bail!("no held-out tokens to evaluate on; provide more text");
    }
    let loss = sum / n as f64;
    Ok(EvalStats {
        loss,
        ppl: loss.exp(),
        tokens: n,
    })
}

/// Drop records after `step` from a metrics log (they came from a run that
/// was killed after its last checkpoint).
pub fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        caracal_core::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}
