//! `caracal rl`: on-policy RL for language models (RLOO, GRPO) against a
//! reward model or a built-in reward (caracal-align).

use anyhow::{Context, Result};
use candle_core::Device;
use caracal_align::rl::{Algo, ModelReward, RewardFn, RlOptions, RlTrainer, WorldGold};
use caracal_align::world::{World, WorldConfig};
use caracal_align::{LoadOptions, RewardModel};
use caracal_models::{load_model, GgufWeights};
use std::path::{Path, PathBuf};

/// Subcommands of `caracal rl`.
#[derive(clap::Subcommand)]
pub enum RlCmd {
    /// Train a policy with RLOO or GRPO.
    Train(TrainArgs),
    /// The BSR paper's RLHF experiment in the synthetic world: RLOO against a BT and a BSR reward model, scored by the gold reward.
    Study(StudyArgs),
}

/// Options of `caracal rl study`.
#[derive(clap::Args, Debug)]
pub struct StudyArgs {
    /// Override the seeds (comma-separated), e.g. a pilot seed.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Override the RLOO learning rate (for the pilot).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Override the RLOO steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Write the report here as JSON (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Options of `caracal rl train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// rloo (leave-one-out baseline) or grpo (group-normalized advantages).
    #[arg(long, default_value = "rloo")]
    pub algo: String,
    /// The policy: a Hugging Face folder, a .gguf file (dequantized) or a caracal LM checkpoint.
    #[arg(long)]
    pub policy: PathBuf,
    /// The KL reference (default: the policy's starting weights).
    #[arg(long)]
    pub ref_model: Option<PathBuf>,
    /// rm:DIR (a reward model folder, as `caracal rm train` writes) or builtin:world-gold (the synthetic world's gold reward).
    #[arg(long)]
    pub reward: String,
    /// Prompts: JSONL lines with a "prompt" field, or plain text, one prompt per line.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Samples per prompt.
    #[arg(long, default_value_t = 2)]
    pub k: usize,
    /// KL coefficient β of the sequence-level penalty.
    #[arg(long, default_value_t = 0.05)]
    pub beta: f64,
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    #[arg(long, default_value_t = 4)]
    pub prompts_per_step: usize,
    #[arg(long, default_value_t = 1e-6)]
    pub lr: f64,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub ckpt_every: usize,
    /// Output folder: checkpoint.safetensors, metrics.jsonl and, at the end, the policy as a Hugging Face folder.
    #[arg(long, default_value = "runs/rl")]
    pub out: PathBuf,
    /// Continue from `<out>/checkpoint.safetensors` (give the same --prompts, --reward and reference).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps in total, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// Dispatch.
pub fn run(cmd: RlCmd) -> Result<()> {
    match cmd {
        RlCmd::Train(a) => train(a),
        RlCmd::Study(a) => study(a),
    }
}

fn read_prompts(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| caracal_core::Error::file(path, format!("cannot read as UTF-8 text: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                caracal_core::Error::file(path, format!("line {}: is not valid JSON ({e})", i + 1))
            })?;
            let p = v.get("prompt").and_then(|p| p.as_str()).ok_or_else(|| {
                caracal_core::Error::file(
                    path,
                    format!("line {}: needs a string field `prompt`", i + 1),
                )
            })?;
            out.push(p.to_string());
        } else {
            out.push(line.to_string());
        }
    }
    if out.is_empty() {
        return Err(caracal_core::Error::file(path, "holds no prompts").into());
    }
    Ok(out)
}

fn reward_fn(spec: &str) -> Result<Box<dyn RewardFn>> {
    match spec.split_once(':') {
        Some(("rm", dir)) => {
            let rm = RewardModel::load(Path::new(dir), &LoadOptions::default(), &Device::Cpu)?;
            if rm.fresh_head {
                anyhow::bail!("{dir} has no trained score head; give a reward model folder (caracal rm train writes one)");
            }
            Ok(Box::new(ModelReward(rm)))
        }
        Some(("builtin", "world-gold")) => {
            Ok(Box::new(WorldGold(World::new(&WorldConfig::default())?)))
        }
        _ => anyhow::bail!("--reward `{spec}` is unknown; use rm:DIR or builtin:world-gold"),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let dev = Device::Cpu;
    let prompts = read_prompts(&a.prompts)?;
    let mut reward = reward_fn(&a.reward)?;
    let ref_path = a.ref_model.clone().unwrap_or_else(|| a.policy.clone());
    let (reference, _) = load_model(&ref_path, GgufWeights::Dequantized, &dev)
        .with_context(|| format!("cannot open the reference {}", ref_path.display()))?;
    let mut tr = if a.resume {
        let ck = a.out.join("checkpoint.safetensors");
        let tr = RlTrainer::resume(&ck, reference, &dev)
            .with_context(|| format!("cannot resume from {}", ck.display()))?;
        eprintln!("resuming at step {} of {}", tr.step, tr.opts.steps);
        tr
    } else {
        let (policy, tok) = load_model(&a.policy, GgufWeights::Dequantized, &dev)
            .with_context(|| format!("cannot open the policy {}", a.policy.display()))?;
        let opts = RlOptions {
            algo: a.algo.parse::<Algo>()?,
            k: a.k,
            beta: a.beta,
            prompts_per_step: a.prompts_per_step,
            steps: a.steps,
            lr: a.lr,
            max_new_tokens: a.max_new_tokens,
            temperature: a.temperature,
            top_p: a.top_p,
            seed: a.seed,
            ckpt_every: a.ckpt_every,
            ..RlOptions::default()
        };
        RlTrainer::new(policy, reference, tok, opts)?
    };
    let mut last = None;
    tr.run(&prompts, reward.as_mut(), &a.out, a.stop_after, |s| {
        last = Some(s.clone())
    })?;
    match last {
        Some(s) if tr.step == tr.opts.steps => println!(
            "trained {} steps of {:?}; last step: reward {:.4}, KL {:.4}, length {:.1} tokens; policy saved to {}",
            tr.step,
            tr.opts.algo,
            s.reward,
            s.kl,
            s.length,
            a.out.display()
        ),
        _ => println!("stopped at step {} of {}; continue with --resume", tr.step, tr.opts.steps),
    }
    Ok(())
}

fn study(a: StudyArgs) -> Result<()> {
    let mut cfg = caracal_align::rlhf::RlhfConfig::full();
    if let Some(s) = a.seeds {
        cfg.seeds = s;
    }
    if let Some(lr) = a.lr {
        cfg.rl.lr = lr;
    }
    if let Some(n) = a.steps {
        cfg.rl.steps = n;
    }
    let r = caracal_align::rlhf::run_rlhf(&cfg, |m| eprintln!("{m}"))?;
    if let Some(p) = &a.out {
        caracal_core::write_json_atomic(p, &r)?;
    }
    println!(
        "gold reward of RLOO policies (mean over {} in-domain prompts × {} samples):",
        cfg.eval_prompts, cfg.eval_samples
    );
    for run in &r.runs {
        println!(
            "seed {} {:<14} SFT {:.4} → {:.4} (proxy {:.3} → {:.3}, KL {:.2})",
            run.seed,
            run.objective,
            run.before.gold,
            run.after.gold,
            run.before.proxy,
            run.after.proxy,
            run.after.kl
        );
    }
    println!("total {:.1} s", r.seconds);
    Ok(())
}
