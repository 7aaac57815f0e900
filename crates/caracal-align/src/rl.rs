//! On-policy RL for language models: RLOO and GRPO.
//!
//! Each step takes `prompts_per_step` prompts (a seeded order, epoch by
//! epoch), samples `k` completions per prompt from the policy (KV-cache
//! generation, seeded per step, prompt and sample), scores each with a
//! [`RewardFn`], shapes it with a **sequence-level** KL penalty to the
//! reference, `R = r − β·(log π_old(y) − log π_ref(y))` (the RM-Robustness
//! code's and TRL's RLOO form; token-level KL, TRL #5889, sums the same
//! per-token terms and differs only under per-token clipping, which this
//! sequence-level loss does not use), turns the group into advantages
//! ([`crate::advantage::rloo`] or [`crate::advantage::grpo`]) and minimizes
//! the PPO-clipped objective with a sequence-level ratio
//! `ρ = exp(log π(y) − log π_old(y))`:
//! `L = −mean(min(ρA, clip(ρ, 1 ± ε)A))`. One update per batch (π_old is the
//! policy that sampled), so ρ = 1 in value and the gradient is REINFORCE's
//! `−mean(A·∇log π(y))`.

use crate::advantage::{grpo, rloo};
use crate::logps::{completion_logps, Completion};
use crate::train::checkpoint;
use crate::train::{due, RunLog};
use candle_core::{DType, Tensor, Var};
use caracal_core::{Error, Result, Rng};
use caracal_models::train::{grads, AdamW, AdamWConfig};
use caracal_models::{generate, hf, GenerateOptions, Llama, Sampling, Tokenizer};
use std::path::Path;
use std::time::Instant;

/// The advantage estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algo {
    Rloo,
    Grpo,
}

impl std::str::FromStr for Algo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rloo" => Ok(Algo::Rloo),
            "grpo" => Ok(Algo::Grpo),
            o => Err(Error::invalid(format!(
                "algorithm `{o}` is unknown; use rloo or grpo"
            ))),
        }
    }
}

/// Everything that fixes an RL run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RlOptions {
    pub algo: Algo,
    /// Samples per prompt.
    pub k: usize,
    /// KL coefficient β.
    pub beta: f64,
    /// PPO clip ε.
    pub clip_eps: f64,
    pub prompts_per_step: usize,
    pub steps: usize,
    pub lr: f64,
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm.
    pub grad_clip: Option<f64>,
    /// Checkpoint every this many steps (0: at the end only).
    pub ckpt_every: usize,
}

impl Default for RlOptions {
    /// TRL's RLOO defaults where they apply: k = 2, β = 0.05, ε = 0.2.
    fn default() -> Self {
        RlOptions {
            algo: Algo::Rloo,
            k: 2,
            beta: 0.05,
            clip_eps: 0.2,
            prompts_per_step: 4,
            steps: 100,
            lr: 1e-6,
            max_new_tokens: 64,
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
            adamw: AdamWConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            grad_clip: Some(1.0),
            ckpt_every: 50,
        }
    }
}

impl RlOptions {
    /// Check the options once.
    pub fn validate(&self) -> Result<()> {
        if self.k < 2 {
            caracal_core::bail!(
                "--k is {}; RLOO and GRPO need at least 2 samples per prompt",
                self.k
            );
        }
        for (n, v) in [
            ("--prompts-per-step", self.prompts_per_step),
            ("--steps", self.steps),
            ("--max-new-tokens", self.max_new_tokens),
        ] {
            if v == 0 {
                caracal_core::bail!("{n} is 0; it must be at least 1");
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            caracal_core::bail!("--lr is {}; it must be positive", self.lr);
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            caracal_core::bail!("--beta is {}; it must be a finite number ≥ 0", self.beta);
        }
        if !(self.clip_eps.is_finite() && self.clip_eps > 0.0) {
            caracal_core::bail!("the clip ε is {}; it must be positive", self.clip_eps);
        }
        if !(self.temperature > 0.0 && self.top_p > 0.0 && self.top_p <= 1.0) {
            caracal_core::bail!(
                "--temperature {} must be > 0 and --top-p {} in (0, 1]",
                self.temperature,
                self.top_p
            );
        }
        Ok(())
    }
}

/// A reward for a completion of a prompt.
pub trait RewardFn {
    /// The reward of `completion` (text, and its token ids) for `prompt`.
    fn reward(&mut self, prompt: &str, completion: &str, ids: &[u32]) -> Result<f64>;
}

/// A [`crate::RewardModel`] as a reward: scores `prompt + completion`, the
/// EOS text appended when missing, as TRL's reward trainer tokenizes.
pub struct ModelReward(pub crate::RewardModel);

impl RewardFn for ModelReward {
    fn reward(&mut self, prompt: &str, completion: &str, _ids: &[u32]) -> Result<f64> {
        let rm = &self.0;
        let ids = crate::pairs::encode_response(
            &rm.tokenizer,
            rm.eos_text.as_deref(),
            Some(prompt),
            completion,
        )?;
        Ok(rm.rewards(&[&ids], 1)?[0])
    }
}

/// The synthetic world's gold reward (`builtin:world-gold`).
pub struct WorldGold(pub crate::world::World);

impl RewardFn for WorldGold {
    fn reward(&mut self, prompt: &str, completion: &str, _ids: &[u32]) -> Result<f64> {
        Ok(self.0.gold(prompt, completion))
    }
}

/// What one step did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RlStepStats {
    pub step: usize,
    pub loss: f64,
    /// Mean raw reward of the samples.
    pub reward: f64,
    /// Mean sequence KL estimate `log π_old(y) − log π_ref(y)`.
    pub kl: f64,
    /// Mean completion length, tokens.
    pub length: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct RlCheckpointMeta {
    opts: RlOptions,
    step: usize,
}

const KEY: &str = "caracal_rl";

/// A policy, its frozen reference and the optimizer.
pub struct RlTrainer {
    pub policy: Llama,
    pub reference: Llama,
    pub tokenizer: Tokenizer,
    pub opts: RlOptions,
    pub opt: AdamW,
    pub step: usize,
    vars: Vec<Var>,
}

/// The text a completion adds to its prompt: the decoded whole sequence
/// minus the decoded prompt, so that `prompt + completion` reads as the
/// model wrote it (a word-level tokenizer keeps its space, a byte-level BPE
/// its merged characters); the completion decoded alone when the prefix
/// does not match.
pub fn completion_text(tok: &Tokenizer, prompt: &[u32], completion: &[u32]) -> Result<String> {
    let p = tok.decode(prompt)?;
    let mut all = prompt.to_vec();
    all.extend_from_slice(completion);
    let full = tok.decode(&all)?;
    match full.strip_prefix(p.as_str()) {
        Some(rest) => Ok(rest.to_string()),
        None => tok.decode(completion),
    }
}

pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut x = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 27)
}

impl RlTrainer {
    /// Start from `policy`; the reference is `reference` (often a copy of
    /// the policy's starting weights).
    pub fn new(
        policy: Llama,
        reference: Llama,
        tokenizer: Tokenizer,
        opts: RlOptions,
    ) -> Result<Self> {
        opts.validate()?;
        if reference.config().vocab_size != policy.config().vocab_size {
            caracal_core::bail!(
                "the reference model has a vocabulary of {} tokens and the policy {}; they must share one tokenizer",
                reference.config().vocab_size,
                policy.config().vocab_size
            );
        }
        policy.ensure_trainable()?;
        let vars: Vec<Var> = policy.named_vars().into_iter().map(|(_, v)| v).collect();
        let opt = AdamW::new(opts.adamw.clone(), &vars)?;
        Ok(RlTrainer {
            policy,
            reference,
            tokenizer,
            opts,
            opt,
            step: 0,
            vars,
        })
    }

    /// Continue from a checkpoint written by [`RlTrainer::save`], with the
    /// same reference model.
    pub fn resume(path: &Path, reference: Llama, device: &candle_core::Device) -> Result<Self> {
        let st = checkpoint::load_policy::<RlCheckpointMeta>(path, device, KEY, "RL", |m| {
            m.opts.adamw.clone()
        })?;
        Ok(RlTrainer {
            vars: st.policy.named_vars().into_iter().map(|(_, v)| v).collect(),
            policy: st.policy,
            reference,
            tokenizer: st.tokenizer,
            opt: st.opt,
            opts: st.meta.opts,
            step: st.meta.step,
        })
    }

    /// Write a checkpoint atomically into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let meta = RlCheckpointMeta {
            opts: self.opts.clone(),
            step: self.step,
        };
        checkpoint::save_policy(dir, &self.policy, &self.opt, &self.tokenizer, KEY, &meta)
    }

    /// The prompts of step `step`: a seeded permutation per pass over them.
    fn step_prompts(&self, n: usize, step: usize) -> Vec<usize> {
        let per = self.opts.prompts_per_step;
        let order = |pass: usize| {
            let mut o: Vec<usize> = (0..n).collect();
            Rng::new(mix(self.opts.seed, pass as u64)).shuffle(&mut o);
            o
        };
        let (first, last) = (step * per, step * per + per - 1);
        let (mut pass, mut cur) = (first / n, order(first / n));
        (first..=last)
            .map(|g| {
                if g / n != pass {
                    pass = g / n;
                    cur = order(pass);
                }
                cur[g % n]
            })
            .collect()
    }

    /// One step on `prompts` with `reward`.
    pub fn train_step(
        &mut self,
        prompts: &[String],
        reward: &mut dyn RewardFn,
    ) -> Result<RlStepStats> {
        if prompts.is_empty() {
            caracal_core::bail!("no prompts to train on");
        }
        let t0 = Instant::now();
        let o = self.opts.clone();
        let cfg = self.policy.config().clone();
        let stop: Vec<u32> = cfg.eos_token_id.into_iter().collect();
        let (mut seqs, mut raw) = (Vec::new(), Vec::new());
        for (i, &pi) in self
            .step_prompts(prompts.len(), self.step)
            .iter()
            .enumerate()
        {
            let prompt = &prompts[pi];
            let mut p_ids = self.tokenizer.encode_with_special(prompt)?;
            if p_ids.is_empty() {
                p_ids = cfg.bos_token_id.into_iter().collect();
            }
            if p_ids.is_empty() {
                caracal_core::bail!("prompt {} is empty and the model has no BOS token", pi + 1);
            }
            for j in 0..o.k {
                let g = GenerateOptions {
                    max_new_tokens: o.max_new_tokens,
                    sampling: Sampling::Sample {
                        temperature: o.temperature,
                        top_p: o.top_p,
                    },
                    seed: mix(mix(o.seed, self.step as u64), (i * o.k + j) as u64 + 1),
                    stop: stop.clone(),
                };
                let c = generate(&self.policy, &p_ids, &g)?;
                let text = completion_text(&self.tokenizer, &p_ids, &c)?;
                raw.push(reward.reward(prompt, &text, &c)?);
                let start = p_ids.len();
                let mut ids = p_ids.clone();
                ids.extend(&c);
                seqs.push(Completion { ids, start });
            }
        }
        let refs: Vec<&Completion> = seqs.iter().collect();
        let pad = cfg.pad_token_id.unwrap_or(0);
        let lp = completion_logps(&self.policy, &refs, pad)?
            .sum
            .to_dtype(DType::F64)?;
        let old: Vec<f64> = lp.detach().to_vec1()?;
        let rf: Vec<f64> = completion_logps(&self.reference, &refs, pad)?
            .sum
            .detach()
            .to_dtype(DType::F64)?
            .to_vec1()?;
        let shaped: Vec<f64> = raw
            .iter()
            .zip(old.iter().zip(&rf))
            .map(|(r, (a, b))| crate::advantage::kl_shaped(*r, *a, *b, o.beta))
            .collect();
        let adv = match o.algo {
            Algo::Rloo => rloo(&shaped, o.k)?,
            Algo::Grpo => grpo(&shaped, o.k)?,
        };
        let dev = self.policy.device();
        let a = Tensor::new(adv.as_slice(), dev)?;
        let ratio = (&lp - Tensor::new(old.as_slice(), dev)?)?.exp()?;
        let unclipped = (&ratio * &a)?;
        let clipped = (ratio.clamp(1.0 - o.clip_eps, 1.0 + o.clip_eps)? * &a)?;
        let loss = unclipped.minimum(&clipped)?.mean_all()?.neg()?;
        let l = loss.to_scalar::<f64>()?;
        if !l.is_finite() {
            return Err(Error::Numeric(format!(
                "the RL loss is {l} at step {}; lower the learning rate",
                self.step + 1
            )));
        }
        let g = loss.backward()?;
        let mut sum: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        grads::accumulate(&mut sum, &g, &self.vars)?;
        let grad_norm = grads::clip_global_norm(&mut sum, o.grad_clip)?;
        self.opt.step(&self.vars, &sum, o.lr)?;
        self.step += 1;
        let n = raw.len() as f64;
        Ok(RlStepStats {
            step: self.step,
            loss: l,
            reward: raw.iter().sum::<f64>() / n,
            kl: old.iter().zip(&rf).map(|(a, b)| a - b).sum::<f64>() / n,
            length: seqs.iter().map(|s| s.len() as f64).sum::<f64>() / n,
            lr: o.lr,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Train to `opts.steps` (or stop after `stop_after` steps in total),
    /// one JSON line per step in `out/metrics.jsonl`, checkpoints in `out`,
    /// and the policy as a Hugging Face folder there at the end.
    pub fn run(
        &mut self,
        prompts: &[String],
        reward: &mut dyn RewardFn,
        out: &Path,
        stop_after: Option<usize>,
        mut on_step: impl FnMut(&RlStepStats),
    ) -> Result<()> {
        let total = self.opts.steps;
        let mut log = RunLog::open(Some(out), self.step, total, "rl train")?;
        let end = stop_after.unwrap_or(total).min(total);
        while self.step < end {
            let s = self.train_step(prompts, reward)?;
            log.record(s.step, format!("reward {:.3} kl {:.3}", s.reward, s.kl), &s)?;
            if due(self.opts.ckpt_every, s.step, total) {
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
