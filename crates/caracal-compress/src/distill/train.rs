//! Distilling a student from a frozen teacher on text: random windows of
//! the training tokens (seeded per step and micro-batch, as the LM trainer
//! draws them), the objective of [`super::loss`], gradient accumulation,
//! global-norm clipping, AdamW under warmup and cosine decay, periodic
//! held-out evaluation (the student's perplexity and its forward KL to the
//! teacher), atomic checkpoints and exact resume, a progress bar and one
//! JSON line per step.

use super::loss::{distill_loss, DistillObjective, Divergence};
use candle_core::{DType, Tensor, Var};
use caracal_core::progress::JsonlLog;
use caracal_core::{Error, Result};
use caracal_models::train::data::{batch_rng, eval_batches, random_batch};
use caracal_models::train::policy_checkpoint::{load_policy, save_policy};
use caracal_models::train::{grads, truncate_log, AdamW, TokenData, TrainOptions};
use caracal_models::{hf, Llama, Tokenizer};
use std::path::Path;
use std::time::Instant;

/// Everything that fixes a distillation run (stored in each checkpoint).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DistillOptions {
    pub objective: DistillObjective,
    /// Steps, batches, learning rate, schedule, seed, cadence.
    pub train: TrainOptions,
}

impl DistillOptions {
    pub fn validate(&self) -> Result<()> {
        self.objective.validate()?;
        self.train.validate()
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DistillStepStats {
    pub step: usize,
    /// Mean objective over the micro-batches.
    pub loss: f64,
    /// Mean `τ²·D(teacher, student)`.
    pub kd: f64,
    /// Mean student cross-entropy (nats/token).
    pub ce: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub seconds: f64,
}

/// Held-out scores of the student.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DistillEval {
    /// Cross-entropy (nats/token) and its perplexity.
    pub ce: f64,
    pub ppl: f64,
    /// Forward KL(teacher‖student) at τ = 1 (nats/token).
    pub kl_to_teacher: f64,
    pub tokens: usize,
}

/// What a distillation checkpoint records besides tensors.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DistillCheckpointMeta {
    pub opts: DistillOptions,
    pub step: usize,
}

const KEY: &str = "caracal_distill";

/// A student, its frozen teacher and the optimizer state.
pub struct DistillTrainer {
    pub student: Llama,
    pub teacher: Llama,
    pub tokenizer: Tokenizer,
    pub opts: DistillOptions,
    pub opt: AdamW,
    pub step: usize,
    vars: Vec<Var>,
}

/// The student's cross-entropy and forward KL to the teacher on `tokens`,
/// over at most `max_batches` batches of non-overlapping windows.
pub fn evaluate_student(
    student: &Llama,
    teacher: &Llama,
    tokens: &[u32],
    batch: usize,
    seq_len: usize,
    max_batches: usize,
) -> Result<DistillEval> {
    let dev = student.device().clone();
    let fkl = DistillObjective {
        divergence: Divergence::Fkl,
        temperature: 1.0,
        kd_weight: 1.0,
    };
    let (mut ce, mut kl, mut n) = (0.0, 0.0, 0usize);
    for b in eval_batches(tokens, batch, seq_len, max_batches, -100, &dev)? {
        let l = distill_loss(student, teacher, &b.ids, &b.targets, -100, &fkl)?;
        ce += l.ce * b.n_tokens as f64;
        kl += l.kd * b.n_tokens as f64;
        n += b.n_tokens;
    }
    if n == 0 {
        caracal_core::bail!(
            "the held-out text is shorter than one window of {seq_len} tokens; give more text or a smaller --seq-len"
        );
    }
    let ce = ce / n as f64;
    Ok(DistillEval {
        ce,
        ppl: ce.exp(),
        kl_to_teacher: kl / n as f64,
        tokens: n,
    })
}

impl DistillTrainer {
    /// Start distilling `teacher` into `student` (same tokenizer).
    pub fn new(
        student: Llama,
        teacher: Llama,
        tokenizer: Tokenizer,
        opts: DistillOptions,
    ) -> Result<Self> {
        opts.validate()?;
        student.ensure_trainable()?;
        let (vs, vt) = (student.config().vocab_size, teacher.config().vocab_size);
        if vs != vt {
            caracal_core::bail!(
                "the teacher has a vocabulary of {vt} tokens and the student {vs}; distillation needs one tokenizer"
            );
        }
        let vars: Vec<Var> = student.named_vars().into_iter().map(|(_, v)| v).collect();
        let opt = AdamW::new(opts.train.adamw.clone(), &vars)?;
        Ok(DistillTrainer {
            student,
            teacher,
            tokenizer,
            opts,
            opt,
            step: 0,
            vars,
        })
    }

    /// Continue from a checkpoint written by [`DistillTrainer::save`]; the
    /// teacher is given again (it is not stored).
    pub fn resume(path: &Path, teacher: Llama, device: &candle_core::Device) -> Result<Self> {
        let st = load_policy::<DistillCheckpointMeta>(path, device, KEY, "distillation", |m| {
            m.opts.train.adamw.clone()
        })?;
        let vars: Vec<Var> = st.policy.named_vars().into_iter().map(|(_, v)| v).collect();
        let t = DistillTrainer {
            student: st.policy,
            teacher,
            tokenizer: st.tokenizer,
            opts: st.meta.opts,
            opt: st.opt,
            step: st.meta.step,
            vars,
        };
        let (vs, vt) = (t.student.config().vocab_size, t.teacher.config().vocab_size);
        if vs != vt {
            caracal_core::bail!(
                "the teacher has a vocabulary of {vt} tokens and the checkpoint's student {vs}; give the run's teacher"
            );
        }
        Ok(t)
    }

    /// Write a checkpoint atomically into `dir` (the tokenizer beside it).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let meta = DistillCheckpointMeta {
            opts: self.opts.clone(),
            step: self.step,
        };
        save_policy(dir, &self.student, &self.opt, &self.tokenizer, KEY, &meta)
    }

    /// One optimizer step over `grad_accum` micro-batches of `data.train`.
    pub fn train_step(&mut self, data: &TokenData) -> Result<DistillStepStats> {
        let t0 = Instant::now();
        let o = self.opts.train.clone();
        let dev = self.student.device().clone();
        let mut sum: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let (mut loss_sum, mut kd, mut ce, mut tokens) = (0.0, 0.0, 0.0, 0);
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
            let l = distill_loss(
                &self.student,
                &self.teacher,
                &b.ids,
                &b.targets,
                o.ignore_index,
                &self.opts.objective,
            )?;
            let v = l.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !v.is_finite() {
                return Err(Error::Numeric(format!(
                    "the distillation loss is {v} at step {}; lower the learning rate",
                    self.step + 1
                )));
            }
            loss_sum += v;
            kd += l.kd;
            ce += l.ce;
            tokens += b.n_tokens;
            let g = (l.loss / o.grad_accum as f64)?.backward()?;
            grads::accumulate(&mut sum, &g, &self.vars)?;
        }
        let grad_norm = grads::clip_global_norm(&mut sum, o.clip)?;
        let lr = o.schedule().lr(self.step);
        self.opt.step(&self.vars, &sum, lr)?;
        self.step += 1;
        let m = o.grad_accum as f64;
        Ok(DistillStepStats {
            step: self.step,
            loss: loss_sum / m,
            kd: kd / m,
            ce: ce / m,
            lr,
            grad_norm,
            tokens,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// The student's held-out scores on `tokens`.
    pub fn evaluate(&self, tokens: &[u32]) -> Result<DistillEval> {
        let o = &self.opts.train;
        evaluate_student(
            &self.student,
            &self.teacher,
            tokens,
            o.batch_size,
            o.seq_len,
            o.eval_batches,
        )
    }

    /// Run to the end (or stop after `stop_after` steps in total, as a
    /// simulated kill), logging to `out/metrics.jsonl`, evaluating at
    /// `eval_every` and at the end, checkpointing into `out` and, at the
    /// end, writing the student there as a Hugging Face folder.
    pub fn run(
        &mut self,
        data: &TokenData,
        out: &Path,
        stop_after: Option<usize>,
        mut on_step: impl FnMut(&DistillStepStats, Option<&DistillEval>),
    ) -> Result<Option<DistillEval>> {
        std::fs::create_dir_all(out)
            .map_err(|e| Error::file(out, format!("cannot create: {e}")))?;
        let total = self.opts.train.steps;
        let log_path = out.join("metrics.jsonl");
        truncate_log(&log_path, self.step)?;
        let mut log = JsonlLog::append(&log_path)?;
        let end = stop_after.unwrap_or(total).min(total);
        let pb = caracal_core::progress::bar(total as u64, "distill");
        pb.set_position(self.step as u64);
        let (every, ckpt) = (self.opts.train.eval_every, self.opts.train.ckpt_every);
        let mut last = None;
        while self.step < end {
            let s = self.train_step(data)?;
            pb.set_position(s.step as u64);
            pb.set_message(format!("loss {:.4} kd {:.4} ce {:.4}", s.loss, s.kd, s.ce));
            let at_end = s.step == total;
            let ev = if (every > 0 && s.step % every == 0) || at_end {
                Some(self.evaluate(&data.val)?)
            } else {
                None
            };
            let mut rec = serde_json::to_value(&s).map_err(|e| Error::invalid(e.to_string()))?;
            if let Some(e) = &ev {
                rec["eval_ce"] = e.ce.into();
                rec["eval_ppl"] = e.ppl.into();
                rec["eval_kl_to_teacher"] = e.kl_to_teacher.into();
            }
            log.log(&rec)?;
            if (ckpt > 0 && s.step % ckpt == 0) || at_end {
                self.save(out)?;
            }
            on_step(&s, ev.as_ref());
            if ev.is_some() {
                last = ev;
            }
        }
        pb.finish_and_clear();
        if self.step == total {
            hf::save_dir(&self.student, out)?;
        }
        Ok(last)
    }
}
