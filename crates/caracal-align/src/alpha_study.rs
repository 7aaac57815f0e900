//! The AlphaPO study, small (Gupta et al., "AlphaPO: Reward Shape Matters
//! for LLM Alignment", arXiv 2501.03884, §5: on-policy preference pairs as in
//! SimPO, DPO vs SimPO vs AlphaPO): in the synthetic preference world
//! ([`crate::world`]), whose gold reward is known, so the gold win rate
//! needs no judge model.
//!
//! **Design (fixed before the reported seeds ran).**
//! 1. The SFT policy is the world-pretrained Llama of the robustness study
//!    ([`crate::study::pretrain`] with [`StudyConfig::full`]'s sizes: 64 × 2,
//!    6000 documents, 400 steps; data seed 0).
//! 2. On-policy pairs (SimPO's protocol, the paper's §5): for each of
//!    `train_prompts` training-split prompts (drawn from the seed), `k = 5`
//!    samples from the SFT policy (temperature 1, at most 24 new tokens,
//!    seeded from the seed); the gold reward picks the best as chosen and
//!    the worst as rejected; a prompt whose best and worst tie is dropped
//!    (counted). The pairs are the sampled token ids themselves.
//! 3. Methods, hyper-parameters from the paper's Mistral row and DPO's usual
//!    β: DPO (β = 0.1, summed log-probs, the SFT policy as reference), SimPO
//!    (β = 2.5, γ = 0.25, i.e. γ/β = 0.1) and AlphaPO with the same β and γ
//!    at α ∈ {−0.25, 0.1, 0.25}. Seeds 1–5. One epoch, micro-batch 16 pairs, 10%
//!    warmup and linear decay (the crate's schedule; the paper used cosine),
//!    AdamW, clip 1. Each method's learning rate was chosen on pilot seed 100
//!    alone from {1e-4, 3e-4, 1e-3} by gold win rate ([`AlphaStudyConfig::pilot`]).
//! 4. Evaluation: for each of 200 in-domain prompts, 2 samples from the
//!    policy and 2 from the SFT policy with the same sampling seeds; the gold
//!    win rate against the SFT policy (ties count ½), the mean gold reward,
//!    the mean sequence KL `log π(y) − log π_SFT(y)` over the policy's
//!    samples, the mean length.
//! 5. Likelihood displacement: the mean per-token log-likelihood of the
//!    chosen (and rejected) responses of 128 held-out on-policy pairs (made as
//!    in 2 from in-domain prompts) and of the first 128 training pairs, at
//!    step 0, every eighth of training and at the end.
//!
//! The paper's claims, tested as stated: in gold win rate AlphaPO (α > 0) ≥
//! SimPO ≥ DPO, and AlphaPO (α > 0) displaces the chosen responses'
//! likelihood less than SimPO (a higher final change in their per-token
//! log-likelihood).

use crate::direct::DirectLoss;
use crate::direct_eval::pair_logps;
use crate::direct_train::{reference_logps, DirectTrainOptions, DirectTrainer};
use crate::logps::{completion_logps, Completion};
use crate::rl::{completion_text, mix};
use crate::study::{deep_copy, pretrain, MeanSd, StudyConfig};
use crate::template::{CompletionPair, Template};
use crate::train::PairTraining;
use crate::world::{Split, World};
use candle_core::DType;
use caracal_core::Result;
use caracal_models::{generate, GenerateOptions, Llama, Sampling, Tokenizer};
use std::time::Instant;

/// One compared method: a loss and its learning rate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Method {
    pub label: String,
    pub loss: DirectLoss,
    pub lr: f64,
}

/// Everything that fixes the study.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlphaStudyConfig {
    /// The world and the SFT policy's pretraining (the robustness study's).
    pub study: StudyConfig,
    pub methods: Vec<Method>,
    pub seeds: Vec<u64>,
    pub train_prompts: usize,
    /// Samples per prompt from which a pair is picked.
    pub k: usize,
    pub max_new_tokens: usize,
    /// Training (the learning rate is each method's).
    pub train: PairTraining,
    pub eval_prompts: usize,
    pub eval_samples: usize,
    /// Held-out pairs (and training pairs) whose log-likelihood is tracked.
    pub probe_pairs: usize,
    /// Points of the log-likelihood curve after step 0.
    pub probe_points: usize,
}

/// The paper's hyper-parameters (module docs, item 3).
const BETA_SIMPO: f64 = 2.5;
const GAMMA_SIMPO: f64 = 0.25;
const BETA_DPO: f64 = 0.1;

fn dpo(lr: f64) -> Method {
    Method {
        label: "DPO".into(),
        loss: DirectLoss::Dpo {
            beta: BETA_DPO,
            label_smoothing: 0.0,
        },
        lr,
    }
}

fn simpo(lr: f64) -> Method {
    Method {
        label: "SimPO".into(),
        loss: DirectLoss::Simpo {
            beta: BETA_SIMPO,
            gamma: GAMMA_SIMPO,
        },
        lr,
    }
}

fn alphapo(alpha: f64, lr: f64) -> Method {
    Method {
        label: format!("AlphaPO α={alpha}"),
        loss: DirectLoss::AlphaPo {
            beta: BETA_SIMPO,
            gamma: GAMMA_SIMPO,
            alpha,
        },
        lr,
    }
}

/// The pilot's learning-rate grid.
pub const PILOT_LRS: [f64; 3] = [1e-4, 3e-4, 1e-3];

impl AlphaStudyConfig {
    /// The reported study: five methods, seeds 1–5. The learning rates are
    /// the pilot's picks by gold win rate (seed 100 alone,
    /// [`AlphaStudyConfig::pilot`], `bench/results/alpha_pilot.json`):
    /// DPO 1e-3 (0.800; 3e-4 0.787, 1e-4 0.743), SimPO 3e-4 (0.800; 1e-3
    /// 0.797), AlphaPO α = −0.25 1e-3 (0.838), α = 0.1 1e-3 (0.787), α = 0.25
    /// 3e-4 (0.690; 1e-3 0.642). The pilot took 8 s per run, so the seeds
    /// were raised from 1–3 to 1–5 before any of them ran.
    pub fn full() -> Self {
        AlphaStudyConfig {
            study: StudyConfig::full(),
            methods: vec![
                dpo(1e-3),
                simpo(3e-4),
                alphapo(-0.25, 1e-3),
                alphapo(0.1, 1e-3),
                alphapo(0.25, 3e-4),
            ],
            seeds: vec![1, 2, 3, 4, 5],
            train_prompts: 1024,
            k: 5,
            max_new_tokens: 24,
            train: PairTraining {
                epochs: 1,
                batch_size: 16,
                warmup_ratio: 0.1,
                ckpt_every: 0,
                ..PairTraining::default()
            },
            eval_prompts: 200,
            eval_samples: 2,
            probe_pairs: 128,
            probe_points: 8,
        }
    }

    /// The pilot: every method at every learning rate of [`PILOT_LRS`], seed
    /// 100 only.
    pub fn pilot() -> Self {
        let full = Self::full();
        let mut methods = Vec::new();
        for m in &full.methods {
            for &lr in &PILOT_LRS {
                methods.push(Method {
                    label: format!("{} lr {lr:e}", m.label),
                    lr,
                    ..m.clone()
                });
            }
        }
        AlphaStudyConfig {
            methods,
            seeds: vec![100],
            ..full
        }
    }

    /// The tour's setting: DPO, SimPO and AlphaPO (α = 0.25) on one seed,
    /// a smaller SFT policy and fewer prompts.
    pub fn tour() -> Self {
        let full = Self::full();
        AlphaStudyConfig {
            study: StudyConfig::tour(),
            methods: vec![
                full.methods[0].clone(),
                full.methods[1].clone(),
                full.methods[4].clone(),
            ],
            seeds: vec![1],
            train_prompts: 256,
            eval_prompts: 100,
            probe_pairs: 64,
            probe_points: 4,
            ..full
        }
    }

    fn validate(&self) -> Result<()> {
        self.train.validate()?;
        for m in &self.methods {
            m.loss.validate()?;
            if !(m.lr > 0.0 && m.lr.is_finite()) {
                caracal_core::bail!("method {}: the learning rate must be positive", m.label);
            }
        }
        if self.methods.is_empty() || self.seeds.is_empty() {
            caracal_core::bail!("the study needs at least one method and one seed");
        }
        if self.k < 2 || self.train_prompts == 0 || self.eval_prompts == 0 {
            caracal_core::bail!(
                "the study needs k ≥ 2 samples per prompt, training prompts and evaluation prompts"
            );
        }
        Ok(())
    }
}

/// One point of the log-likelihood curve: mean per-token log-likelihood of
/// the chosen and rejected responses.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LogLikPoint {
    pub step: usize,
    pub heldout_chosen: f64,
    pub heldout_rejected: f64,
    pub train_chosen: f64,
    pub train_rejected: f64,
}

/// A policy's samples on the evaluation prompts, scored.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PolicyEval {
    /// Share of comparisons the policy's sample wins against the SFT
    /// policy's on the gold reward (ties ½).
    pub win_rate: f64,
    pub gold: f64,
    /// Mean `log π(y) − log π_SFT(y)` over the policy's samples.
    pub kl: f64,
    pub length: f64,
}

/// One method on one seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodRun {
    pub method: String,
    pub seed: u64,
    pub eval: PolicyEval,
    pub curve: Vec<LogLikPoint>,
    /// Final minus initial mean per-token log-likelihood of the held-out
    /// chosen responses (negative: displaced).
    pub chosen_change: f64,
    pub rejected_change: f64,
    /// Final training loss (mean over the last step's micro-batches).
    pub final_loss: f64,
    pub seconds: f64,
}

/// One method over seeds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodSummary {
    pub method: String,
    pub win_rate: MeanSd,
    pub gold: MeanSd,
    pub kl: MeanSd,
    pub length: MeanSd,
    pub chosen_change: MeanSd,
    pub rejected_change: MeanSd,
}

/// The paper's claims, as measured (means over seeds).
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlphaClaims {
    /// Per AlphaPO α > 0: its win rate ≥ SimPO's.
    pub alphapo_ge_simpo_win: Vec<(String, bool)>,
    /// SimPO's win rate ≥ DPO's.
    pub simpo_ge_dpo_win: Option<bool>,
    /// Per AlphaPO α > 0: its chosen-likelihood change > SimPO's.
    pub alphapo_less_displacement: Vec<(String, bool)>,
}

/// On-policy pairs for one seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PairCounts {
    pub seed: u64,
    pub train: usize,
    pub train_ties_dropped: usize,
    pub heldout: usize,
    /// Mean gold margin (chosen − rejected) of the training pairs.
    pub train_gold_margin: f64,
}

/// The study's results.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlphaStudyReport {
    pub config: AlphaStudyConfig,
    pub pretrain_eval_loss: f64,
    /// The SFT policy's own samples: mean gold and length.
    pub sft_gold: f64,
    pub sft_length: f64,
    pub pairs: Vec<PairCounts>,
    pub runs: Vec<MethodRun>,
    pub summary: Vec<MethodSummary>,
    pub claims: AlphaClaims,
    pub seconds: f64,
}

/// A prompt's ids (the world's prompts are never empty).
fn prompt_ids(tok: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    let ids = tok.encode_with_special(prompt)?;
    if ids.is_empty() {
        caracal_core::bail!("a world prompt tokenized to nothing: {prompt:?}");
    }
    Ok(ids)
}

/// Sample `n` completions of `p_ids` from `policy` with seeds `seed(j)`.
fn sample(
    policy: &Llama,
    p_ids: &[u32],
    n: usize,
    max_new: usize,
    seed: impl Fn(usize) -> u64,
) -> Result<Vec<Vec<u32>>> {
    let stop: Vec<u32> = policy.config().eos_token_id.into_iter().collect();
    (0..n)
        .map(|j| {
            generate(
                policy,
                p_ids,
                &GenerateOptions {
                    max_new_tokens: max_new,
                    sampling: Sampling::Sample {
                        temperature: 1.0,
                        top_p: 1.0,
                    },
                    seed: seed(j),
                    stop: stop.clone(),
                },
            )
        })
        .collect()
}

/// On-policy pairs: best and worst of `k` SFT samples by the gold reward.
/// Returns the pairs, the ties dropped and the mean gold margin.
fn on_policy_pairs(
    sft: &Llama,
    tok: &Tokenizer,
    world: &World,
    prompts: &[String],
    cfg: &AlphaStudyConfig,
    seed: u64,
) -> Result<(Vec<CompletionPair>, usize, f64)> {
    let (mut pairs, mut ties, mut margin) = (Vec::new(), 0, 0.0);
    for (i, p) in prompts.iter().enumerate() {
        let p_ids = prompt_ids(tok, p)?;
        let samples = sample(sft, &p_ids, cfg.k, cfg.max_new_tokens, |j| {
            mix(seed, (i * cfg.k + j) as u64 + 1)
        })?;
        let mut scored = Vec::with_capacity(cfg.k);
        for c in samples {
            let g = world.gold(p, &completion_text(tok, &p_ids, &c)?);
            scored.push((g, c));
        }
        // Stable picks: the first best and the last worst.
        let (mut best, mut worst) = (0, 0);
        for (j, (g, _)) in scored.iter().enumerate() {
            if *g > scored[best].0 {
                best = j;
            }
            if *g <= scored[worst].0 {
                worst = j;
            }
        }
        if scored[best].0 <= scored[worst].0 {
            ties += 1;
            continue;
        }
        margin += scored[best].0 - scored[worst].0;
        let side = |c: &[u32]| {
            let mut ids = p_ids.clone();
            ids.extend_from_slice(c);
            Completion {
                ids,
                start: p_ids.len(),
            }
        };
        pairs.push(CompletionPair {
            line: i + 1,
            chosen: side(&scored[best].1),
            rejected: side(&scored[worst].1),
        });
    }
    let m = margin / pairs.len().max(1) as f64;
    Ok((pairs, ties, m))
}

/// Mean per-token log-likelihood of the chosen and rejected sides.
fn mean_loglik(model: &Llama, pairs: &[CompletionPair], pad: u32) -> Result<(f64, f64)> {
    let (mut c, mut r) = (0.0, 0.0);
    for chunk in pairs.chunks(32) {
        let refs: Vec<&CompletionPair> = chunk.iter().collect();
        let p = pair_logps(model, &refs, pad)?;
        let avg = |s: &crate::direct::SideLogps| -> Result<f64> {
            let v: Vec<f64> =
                (s.sum.to_dtype(DType::F64)? / s.len.to_dtype(DType::F64)?)?.to_vec1()?;
            Ok(v.iter().sum())
        };
        c += avg(&p.chosen)?;
        r += avg(&p.rejected)?;
    }
    let n = pairs.len().max(1) as f64;
    Ok((c / n, r / n))
}

/// Samples of a policy on the evaluation prompts with their gold rewards.
struct Samples {
    seqs: Vec<Completion>,
    gold: Vec<f64>,
}

/// Evaluation sampling seed of prompt `i`, sample `j` (the same for every
/// policy: common random numbers).
fn eval_seed(i: usize, j: usize, n: usize) -> u64 {
    mix(0xA17A_5EED, (i * n + j) as u64 + 1)
}

fn eval_samples(
    policy: &Llama,
    tok: &Tokenizer,
    world: &World,
    prompts: &[String],
    cfg: &AlphaStudyConfig,
) -> Result<Samples> {
    let (mut seqs, mut gold) = (Vec::new(), Vec::new());
    for (i, p) in prompts.iter().enumerate() {
        let p_ids = prompt_ids(tok, p)?;
        for c in sample(policy, &p_ids, cfg.eval_samples, cfg.max_new_tokens, |j| {
            eval_seed(i, j, cfg.eval_samples)
        })? {
            gold.push(world.gold(p, &completion_text(tok, &p_ids, &c)?));
            let mut ids = p_ids.clone();
            ids.extend(&c);
            seqs.push(Completion {
                ids,
                start: p_ids.len(),
            });
        }
    }
    Ok(Samples { seqs, gold })
}

/// Summed completion log-probs of `seqs` under `model`.
fn seq_logps(model: &Llama, seqs: &[Completion], pad: u32) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(32) {
        let refs: Vec<&Completion> = chunk.iter().collect();
        out.extend(
            completion_logps(model, &refs, pad)?
                .sum
                .detach()
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?,
        );
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn evaluate_policy(
    policy: &Llama,
    sft: &Llama,
    sft_samples: &Samples,
    tok: &Tokenizer,
    world: &World,
    prompts: &[String],
    cfg: &AlphaStudyConfig,
    pad: u32,
) -> Result<PolicyEval> {
    let s = eval_samples(policy, tok, world, prompts, cfg)?;
    let n = s.gold.len().max(1) as f64;
    let win = s
        .gold
        .iter()
        .zip(&sft_samples.gold)
        .map(|(a, b)| {
            if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            }
        })
        .sum::<f64>();
    let lp = seq_logps(policy, &s.seqs, pad)?;
    let lr = seq_logps(sft, &s.seqs, pad)?;
    Ok(PolicyEval {
        win_rate: win / n,
        gold: s.gold.iter().sum::<f64>() / n,
        kl: lp.iter().zip(&lr).map(|(a, b)| a - b).sum::<f64>() / n,
        length: s.seqs.iter().map(|c| c.len() as f64).sum::<f64>() / n,
    })
}

fn prompts(world: &World, split: Split, n: usize, seed: u64) -> Vec<String> {
    world
        .pairs(split, n, seed)
        .into_iter()
        .map(|p| p.prompt)
        .collect()
}

/// Run the study; `progress` hears one line per stage.
pub fn run_alpha_study(
    cfg: &AlphaStudyConfig,
    mut progress: impl FnMut(&str),
) -> Result<AlphaStudyReport> {
    cfg.validate()?;
    let t0 = Instant::now();
    let world = World::new(&cfg.study.world)?;
    progress("pretraining the SFT policy on the world's text");
    let (sft, tok, pretrain_eval_loss) = pretrain(&world, &cfg.study)?;
    let pad = sft.config().pad_token_id.unwrap_or(0);
    let eval_prompts = prompts(
        &world,
        Split::InDomain,
        cfg.eval_prompts,
        cfg.study.data_seed + 1,
    );
    let sft_samples = eval_samples(&sft, &tok, &world, &eval_prompts, cfg)?;
    let n_eval = sft_samples.gold.len().max(1) as f64;
    let sft_gold = sft_samples.gold.iter().sum::<f64>() / n_eval;
    let sft_length = sft_samples.seqs.iter().map(|c| c.len() as f64).sum::<f64>() / n_eval;
    progress(&format!(
        "SFT policy: held-out LM loss {pretrain_eval_loss:.3}, gold {sft_gold:.3}, length {sft_length:.1}"
    ));

    let (mut runs, mut counts) = (Vec::new(), Vec::new());
    for &seed in &cfg.seeds {
        let train_prompts = prompts(&world, Split::Train, cfg.train_prompts, 1000 + seed);
        let (train, ties, margin) = on_policy_pairs(&sft, &tok, &world, &train_prompts, cfg, seed)?;
        let probe_prompts = prompts(&world, Split::InDomain, cfg.probe_pairs, 2000 + seed);
        let (heldout, _, _) =
            on_policy_pairs(&sft, &tok, &world, &probe_prompts, cfg, mix(seed, 0x4E1D))?;
        let train_probe = &train[..cfg.probe_pairs.min(train.len())];
        counts.push(PairCounts {
            seed,
            train: train.len(),
            train_ties_dropped: ties,
            heldout: heldout.len(),
            train_gold_margin: margin,
        });
        progress(&format!(
            "seed {seed}: {} on-policy training pairs ({ties} ties dropped, mean gold margin {margin:.3}), {} held-out",
            train.len(),
            heldout.len()
        ));
        let needs_ref = cfg.methods.iter().any(|m| m.loss.needs_reference());
        let reference = if needs_ref {
            Some(reference_logps(
                &sft,
                &train,
                cfg.train.batch_size,
                pad,
                "sft".into(),
            )?)
        } else {
            None
        };
        for m in &cfg.methods {
            let t = Instant::now();
            let opts = DirectTrainOptions {
                loss: m.loss,
                template: Template::TrlCpo,
                max_length: usize::MAX,
                pad_id: pad,
                train: PairTraining {
                    lr: m.lr,
                    seed,
                    ..cfg.train.clone()
                },
            };
            let r = m
                .loss
                .needs_reference()
                .then(|| reference.clone())
                .flatten();
            let mut tr = DirectTrainer::new(deep_copy(&sft)?, tok.clone(), opts, train.len(), r)?;
            let total = tr.total_steps();
            let probe = |model: &Llama, step: usize| -> Result<LogLikPoint> {
                let (hc, hr) = mean_loglik(model, &heldout, pad)?;
                let (tc, trj) = mean_loglik(model, train_probe, pad)?;
                Ok(LogLikPoint {
                    step,
                    heldout_chosen: hc,
                    heldout_rejected: hr,
                    train_chosen: tc,
                    train_rejected: trj,
                })
            };
            let mut curve = vec![probe(&tr.policy, 0)?];
            let points = cfg.probe_points.max(1);
            let mut final_loss = f64::NAN;
            while tr.step < total {
                let s = tr.train_step(&train)?;
                final_loss = s.loss;
                let due = (tr.step * points) / total != ((tr.step - 1) * points) / total;
                if (due || tr.step == total) && curve.last().map(|p| p.step) != Some(tr.step) {
                    curve.push(probe(&tr.policy, tr.step)?);
                }
            }
            let eval = evaluate_policy(
                &tr.policy,
                &sft,
                &sft_samples,
                &tok,
                &world,
                &eval_prompts,
                cfg,
                pad,
            )?;
            let (first, last) = (curve[0], curve[curve.len() - 1]);
            let run = MethodRun {
                method: m.label.clone(),
                seed,
                eval,
                chosen_change: last.heldout_chosen - first.heldout_chosen,
                rejected_change: last.heldout_rejected - first.heldout_rejected,
                curve,
                final_loss,
                seconds: t.elapsed().as_secs_f64(),
            };
            progress(&format!(
                "seed {seed} {:<16} win {:.3}, gold {:.3}, KL {:.2}, length {:.1}, Δ log-lik chosen {:+.3} rejected {:+.3} ({:.0} s)",
                run.method,
                eval.win_rate,
                eval.gold,
                eval.kl,
                eval.length,
                run.chosen_change,
                run.rejected_change,
                run.seconds
            ));
            runs.push(run);
        }
    }
    let summary = summarize(cfg, &runs);
    let claims = claims(&summary);
    Ok(AlphaStudyReport {
        config: cfg.clone(),
        pretrain_eval_loss,
        sft_gold,
        sft_length,
        pairs: counts,
        runs,
        summary,
        claims,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn summarize(cfg: &AlphaStudyConfig, runs: &[MethodRun]) -> Vec<MethodSummary> {
    cfg.methods
        .iter()
        .map(|m| {
            let rs: Vec<&MethodRun> = runs.iter().filter(|r| r.method == m.label).collect();
            let of = |f: &dyn Fn(&MethodRun) -> f64| {
                MeanSd::of(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            MethodSummary {
                method: m.label.clone(),
                win_rate: of(&|r| r.eval.win_rate),
                gold: of(&|r| r.eval.gold),
                kl: of(&|r| r.eval.kl),
                length: of(&|r| r.eval.length),
                chosen_change: of(&|r| r.chosen_change),
                rejected_change: of(&|r| r.rejected_change),
            }
        })
        .collect()
}

fn claims(summary: &[MethodSummary]) -> AlphaClaims {
    let find = |name: &str| summary.iter().find(|s| s.method == name);
    let (simpo, dpo) = (find("SimPO"), find("DPO"));
    let positive: Vec<&MethodSummary> = summary
        .iter()
        .filter(|s| {
            s.method
                .strip_prefix("AlphaPO α=")
                .and_then(|a| a.parse::<f64>().ok())
                .is_some_and(|a| a > 0.0)
        })
        .collect();
    AlphaClaims {
        alphapo_ge_simpo_win: simpo.map_or(Vec::new(), |s| {
            positive
                .iter()
                .map(|a| (a.method.clone(), a.win_rate.mean >= s.win_rate.mean))
                .collect()
        }),
        simpo_ge_dpo_win: simpo
            .zip(dpo)
            .map(|(s, d)| s.win_rate.mean >= d.win_rate.mean),
        alphapo_less_displacement: simpo.map_or(Vec::new(), |s| {
            positive
                .iter()
                .map(|a| {
                    (
                        a.method.clone(),
                        a.chosen_change.mean > s.chosen_change.mean,
                    )
                })
                .collect()
        }),
    }
}

impl AlphaStudyReport {
    /// A plain-text table of the summary.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<18} {:>15} {:>15} {:>13} {:>11} {:>17} {:>17}\n",
            "method",
            "win vs SFT",
            "gold",
            "KL to SFT",
            "length",
            "Δ chosen loglik",
            "Δ rejected loglik"
        );
        for m in &self.summary {
            s.push_str(&format!(
                "{:<18} {:>7.3} ± {:<5.3} {:>7.3} ± {:<5.3} {:>6.2} ± {:<4.2} {:>11.1} {:>+8.3} ± {:<6.3} {:>+8.3} ± {:<6.3}\n",
                m.method,
                m.win_rate.mean,
                m.win_rate.sd,
                m.gold.mean,
                m.gold.sd,
                m.kl.mean,
                m.kl.sd,
                m.length.mean,
                m.chosen_change.mean,
                m.chosen_change.sd,
                m.rejected_change.mean,
                m.rejected_change.sd
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(method: &str, win: f64, change: f64) -> MethodSummary {
        let m = |x| MeanSd { mean: x, sd: 0.0 };
        MethodSummary {
            method: method.into(),
            win_rate: m(win),
            gold: m(0.0),
            kl: m(0.0),
            length: m(0.0),
            chosen_change: m(change),
            rejected_change: m(0.0),
        }
    }

    #[test]
    fn claims_read_the_summary_as_stated() {
        let s = vec![
            summary("DPO", 0.6, -0.5),
            summary("SimPO", 0.55, -0.4),
            summary("AlphaPO α=-0.25", 0.9, 1.0),
            summary("AlphaPO α=0.25", 0.58, -0.3),
        ];
        let c = claims(&s);
        assert_eq!(c.simpo_ge_dpo_win, Some(false));
        // α < 0 is not part of the claim.
        assert_eq!(
            c.alphapo_ge_simpo_win,
            vec![("AlphaPO α=0.25".to_string(), true)]
        );
        assert_eq!(
            c.alphapo_less_displacement,
            vec![("AlphaPO α=0.25".to_string(), true)]
        );
    }

    #[test]
    fn configs_are_valid_and_the_pilot_covers_the_grid() {
        AlphaStudyConfig::full().validate().unwrap();
        AlphaStudyConfig::tour().validate().unwrap();
        let p = AlphaStudyConfig::pilot();
        assert_eq!(p.methods.len(), 5 * PILOT_LRS.len());
        assert_eq!(p.seeds, vec![100]);
        let bad = AlphaStudyConfig {
            k: 1,
            ..AlphaStudyConfig::tour()
        };
        assert!(bad.validate().is_err());
    }
}
