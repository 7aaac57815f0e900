//! `caracal rm`: Bradley–Terry reward models with BSR (caracal-align):
//! train, evaluate, score, and the robustness study.

use anyhow::{Context, Result};
use candle_core::Device;
use caracal_align::study::{world_model_config, world_pairs, StudyConfig};
use caracal_align::world::{Split, World, WorldConfig};
use caracal_align::{
    evaluate, read_pairs, tokenize_pairs, LoadOptions, PadChoice, PairLoss, PairTraining,
    PreferencePair, RewardModel, RewardObjective, RmTrainOptions, RmTrainer, TokenPair,
};
use caracal_models::train::AdamWConfig;
use caracal_models::{HeadInit, Llama};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Subcommands of `caracal rm`.
#[derive(clap::Subcommand)]
pub enum RmCmd {
    /// Train a reward model on preference pairs (default: a small Llama on the synthetic world's pairs).
    Train(TrainArgs),
    /// Evaluate a reward model on pairs with TRL's metrics (loss, accuracy, margin, rewards) and diagnostics.
    Eval(EvalArgs),
    /// Write the reward of every pair or text as JSON lines.
    Score(ScoreArgs),
    /// The BSR robustness study on the synthetic preference world (BT vs BSR vs baselines, four splits).
    Study(StudyArgs),
    /// Write preference pairs of the synthetic world (TRL's JSONL), with their gold rewards.
    World(WorldArgs),
}

/// Options of `caracal rm world`.
#[derive(clap::Args, Debug)]
pub struct WorldArgs {
    /// train, in-domain, prompt-ood, response-ood or mutual-ood.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Number of pairs.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed of the pairs (the world itself is fixed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output JSONL (default: standard output); written atomically.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The objective's flags, shared by train and eval.
#[derive(clap::Args, Debug, Clone)]
pub struct ObjectiveArgs {
    /// Pairwise loss: bt (Bradley–Terry), hinge, bt-norm, bt-dr.
    #[arg(long, default_value = "bt")]
    pub loss: String,
    /// Hinge margin (--loss hinge).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f64,
    /// Add BSR's λ·B·mean(rewards)² per micro-batch (the paper's default λ is 1e-3).
    #[arg(long, value_name = "LAMBDA")]
    pub bsr: Option<f64>,
    /// Add TRL's center_rewards_coefficient η·mean((r_w + r_l)²) (TRL recommends 0.01).
    #[arg(long, value_name = "ETA")]
    pub center_rewards: Option<f64>,
}

impl ObjectiveArgs {
    fn objective(&self) -> Result<RewardObjective> {
        let o = RewardObjective {
            loss: PairLoss::parse(&self.loss, self.margin)?,
            bsr: self.bsr,
            center: self.center_rewards,
        };
        o.validate()?;
        Ok(o)
    }
}

/// How to open the model; shared.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Pad token text (default: the model's own when it differs from EOS, else a distinct one such as <|endoftext|>).
    #[arg(long)]
    pub pad_token: Option<String>,
    /// Initialization of a fresh head: paper (std 1/sqrt(H), the BSR paper's) or hf (std 0.02), or a std.
    #[arg(long, default_value = "paper")]
    pub head_init: String,
    /// Drop pairs longer than this many tokens on either side (counted, never truncated; TRL's default).
    #[arg(long, default_value_t = 1024)]
    pub max_length: usize,
}

impl ModelArgs {
    fn load_options(&self, seed: u64) -> Result<LoadOptions> {
        Ok(LoadOptions {
            head_init: self.head_init.parse::<HeadInit>()?,
            seed,
            pad: match &self.pad_token {
                Some(t) => PadChoice::Token(t.clone()),
                None => PadChoice::Auto,
            },
        })
    }
}

/// Options of `caracal rm train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// A Hugging Face folder (causal LM or LlamaForSequenceClassification), a .gguf file (dequantized), or a reward-model run folder (default: a fresh small Llama on the synthetic world's tokenizer).
    #[arg(long, value_name = "DIR|FILE.gguf")]
    pub model: Option<PathBuf>,
    /// JSONL pairs {"prompt","chosen","rejected"} or {"chosen","rejected"} (default: 2000 pairs of the synthetic world).
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
    /// Held-out pairs evaluated at --eval-every and at the end (default with the world: 500 in-domain pairs).
    #[arg(long, value_name = "FILE")]
    pub eval_pairs: Option<PathBuf>,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    #[command(flatten)]
    pub model_args: ModelArgs,
    /// Peak learning rate (default 1e-5 with --model, 1e-3 for the fresh default model).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Passes over the pairs.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Pairs per micro-batch (BSR's B).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Share of the steps spent in linear warmup (then linear decay to 0).
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    /// Decoupled weight decay (matrices only).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Seed of the head, the pair order (and the default data).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate every N steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 100)]
    pub ckpt_every: usize,
    /// Output folder: checkpoint.safetensors, metrics.jsonl and, at the end, a LlamaForSequenceClassification folder.
    #[arg(long, default_value = "runs/rm")]
    pub out: PathBuf,
    /// Continue from `<out>/checkpoint.safetensors` (options come from the checkpoint; give the same --pairs).
    #[arg(long)]
    pub resume: bool,
    /// Print the final summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many steps in total, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// Options of `caracal rm eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A reward-model folder (Hugging Face or a caracal run), or a .gguf file (fresh head).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL pairs.
    #[arg(long)]
    pub pairs: PathBuf,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    #[command(flatten)]
    pub model_args: ModelArgs,
    /// Pairs per micro-batch, in file order; each metric is the mean over micro-batches (TRL's evaluate()).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Hidden-state norms, ‖h(y_w) − h(y_l)‖ and the effective rank of the final hidden states.
    #[arg(long)]
    pub diagnostics: bool,
    /// Print JSON (TRL's metric names).
    #[arg(long)]
    pub json: bool,
}

/// Options of `caracal rm score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// A reward-model folder (Hugging Face or a caracal run).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL pairs: writes chosen_reward and rejected_reward per line.
    #[arg(long, conflicts_with = "texts", required_unless_present = "texts")]
    pub pairs: Option<PathBuf>,
    /// JSONL texts, {"text"} or {"prompt","completion"} per line: writes reward per line.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    #[command(flatten)]
    pub model_args: ModelArgs,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Output JSONL (default: standard output); written atomically.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Options of `caracal rm study`.
#[derive(clap::Args, Debug)]
pub struct StudyArgs {
    /// full (7 objectives × 3 seeds) or tour (BT vs BSR 1e-3, one seed, under 2 minutes).
    #[arg(long, default_value = "full")]
    pub scale: String,
    /// Override the seeds (comma-separated), e.g. a pilot seed.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Override the reward models' peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Override the number of training pairs.
    #[arg(long)]
    pub train_pairs: Option<usize>,
    /// Write study.json here (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Dispatch.
pub fn run(cmd: RmCmd) -> Result<()> {
    match cmd {
        RmCmd::Train(a) => train(a),
        RmCmd::Eval(a) => eval(a),
        RmCmd::Score(a) => score(a),
        RmCmd::Study(a) => study(a),
        RmCmd::World(a) => world(a),
    }
}

fn note(rm: &RewardModel) {
    for n in &rm.notes {
        eprintln!("note: {n}");
    }
}

fn load_pairs(
    path: &Path,
    rm: &RewardModel,
    max_length: usize,
) -> Result<(Vec<TokenPair>, caracal_align::PairStats)> {
    let pairs = read_pairs(path)?;
    let (tp, stats) = tokenize_pairs(&pairs, &rm.tokenizer, rm.eos_text.as_deref(), max_length)?;
    for w in stats.warnings(&path.display().to_string()) {
        eprintln!("warning: {w}");
    }
    Ok((tp, stats))
}

fn train(a: TrainArgs) -> Result<()> {
    let dev = Device::Cpu;
    let world = World::new(&WorldConfig::default())?;
    let (mut tr, train_pairs, eval_pairs, data_name) = if a.resume {
        let ck = a.out.join(caracal_align::train::checkpoint::FILE);
        let tr = RmTrainer::resume(&ck, &dev)
            .with_context(|| format!("cannot resume from {}", ck.display()))?;
        let (train, eval, name) = data(&a, &tr.rm, &world)?;
        eprintln!("resuming at step {} of {}", tr.step, tr.total_steps());
        (tr, train, eval, name)
    } else {
        let opts_load = a.model_args.load_options(a.seed)?;
        let (rm, default_lr) = match &a.model {
            Some(p) => (RewardModel::load(p, &opts_load, &dev)?, 1e-5),
            None => {
                let (tok, cfg) = world_model_config(&world, 64, 2)?;
                let m = Llama::random(&cfg, a.seed, candle_core::DType::F32, &dev)?;
                (RewardModel::from_parts(m, None, tok, &opts_load)?, 1e-3)
            }
        };
        note(&rm);
        let (train, eval, name) = data(&a, &rm, &world)?;
        let opts = RmTrainOptions {
            objective: a.objective.objective()?,
            train: PairTraining {
                epochs: a.epochs,
                batch_size: a.batch_size,
                grad_accum: a.grad_accum,
                lr: a.lr.unwrap_or(default_lr),
                warmup_ratio: a.warmup_ratio,
                adamw: AdamWConfig {
                    weight_decay: a.weight_decay,
                    ..PairTraining::default().adamw
                },
                clip: (a.clip > 0.0).then_some(a.clip),
                seed: a.seed,
                eval_every: a.eval_every,
                ckpt_every: a.ckpt_every,
            },
        };
        let tr = RmTrainer::new(rm, opts, train.len())?;
        (tr, train, eval, name)
    };
    eprintln!(
        "training {} on {} pairs from {data_name}: {} steps, micro-batch {} pairs, lr {}",
        tr.opts.objective.label(),
        train_pairs.len(),
        tr.total_steps(),
        tr.opts.train.batch_size,
        tr.opts.train.lr
    );
    let out = a.out.clone();
    let last = tr.run(
        &train_pairs,
        eval_pairs.as_deref(),
        Some(&out),
        a.stop_after,
        |s, ev| {
            if let Some(e) = ev {
                eprintln!(
                    "step {}: eval loss {:.4} accuracy {:.3} margin {:.3}",
                    s.step, e.metrics.loss, e.metrics.accuracy, e.metrics.margin
                );
            }
        },
    )?;
    let done = tr.step == tr.total_steps();
    let summary = json!({
        "objective": tr.opts.objective.label(),
        "steps": tr.step,
        "total_steps": tr.total_steps(),
        "finished": done,
        "out": out,
        "eval": last.as_ref().map(|e| &e.metrics),
    });
    if a.json {
        println!("{summary}");
    } else if done {
        println!(
            "trained {}: {} steps; model saved to {} (LlamaForSequenceClassification){}",
            tr.opts.objective.label(),
            tr.step,
            out.display(),
            last.map(|e| format!(
                "; eval accuracy {:.3}, loss {:.4} nats",
                e.metrics.accuracy, e.metrics.loss
            ))
            .unwrap_or_default()
        );
    } else {
        println!(
            "stopped at step {} of {}; continue with --resume",
            tr.step,
            tr.total_steps()
        );
    }
    Ok(())
}

type Data = (Vec<TokenPair>, Option<Vec<TokenPair>>, String);

fn data(a: &TrainArgs, rm: &RewardModel, world: &World) -> Result<Data> {
    let max = a.model_args.max_length;
    match &a.pairs {
        Some(p) => {
            let (train, _) = load_pairs(p, rm, max)?;
            let eval = match &a.eval_pairs {
                Some(e) => Some(load_pairs(e, rm, max)?.0),
                None => None,
            };
            Ok((train, eval, p.display().to_string()))
        }
        None => {
            if a.model.is_some() {
                anyhow::bail!("--model was given without --pairs; give the pairs to train on (the synthetic world's pairs only fit the default model's tokenizer)");
            }
            let tok = |v: Vec<PreferencePair>| -> Result<Vec<TokenPair>> {
                Ok(tokenize_pairs(&v, &rm.tokenizer, rm.eos_text.as_deref(), max)?.0)
            };
            let train = tok(world_pairs(world, Split::Train, 2000, a.seed))?;
            let eval = match &a.eval_pairs {
                Some(e) => load_pairs(e, rm, max)?.0,
                None => tok(world_pairs(world, Split::InDomain, 500, a.seed))?,
            };
            Ok((train, Some(eval), "the synthetic preference world".into()))
        }
    }
}

fn eval(a: EvalArgs) -> Result<()> {
    let rm = RewardModel::load(&a.model, &a.model_args.load_options(0)?, &Device::Cpu)?;
    note(&rm);
    if rm.fresh_head {
        eprintln!(
            "warning: {} has no score head; rewards come from a freshly initialized head",
            a.model.display()
        );
    }
    let (pairs, stats) = load_pairs(&a.pairs, &rm, a.model_args.max_length)?;
    let obj = a.objective.objective()?;
    let r = evaluate(&rm, &pairs, a.batch_size, &obj, a.diagnostics)?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["objective"] = obj.label().into();
        v["pairs_read"] = stats.read.into();
        v["pairs_too_long"] = stats.too_long.into();
        v["pairs_identical"] = stats.identical.into();
        println!("{v}");
        return Ok(());
    }
    let m = r.metrics;
    println!(
        "{} pairs in {} micro-batches of ≤ {}: loss {:.6} nats ({}), accuracy {:.4}, margin {:.4}, reward mean {:.4} min {:.4} max {:.4}",
        r.pairs, r.batches, a.batch_size, m.loss, obj.label(), m.accuracy, m.margin, m.mean_reward, m.min_reward, m.max_reward
    );
    if let Some(d) = &r.diagnostics {
        println!(
            "‖h‖ mean {:.4} std {:.4} (p5 {:.4}, p95 {:.4}); ‖h(y_w) − h(y_l)‖ mean {:.4} std {:.4} skew {:.3}; ‖W_p‖ {:.4}; effective rank {:.3}",
            d.hidden_norm.mean, d.hidden_norm.std, d.hidden_norm.p05, d.hidden_norm.p95,
            d.diff_norm.mean, d.diff_norm.std, d.diff_norm.skewness, d.head_norm, d.effective_rank
        );
    }
    Ok(())
}

fn score(a: ScoreArgs) -> Result<()> {
    let rm = RewardModel::load(&a.model, &a.model_args.load_options(0)?, &Device::Cpu)?;
    note(&rm);
    let mut lines = String::new();
    if let Some(p) = &a.pairs {
        let (pairs, _) = load_pairs(p, &rm, a.model_args.max_length)?;
        for chunk in pairs.chunks(a.batch_size.max(1)) {
            let seqs: Vec<&[u32]> = chunk
                .iter()
                .map(|p| p.chosen.as_slice())
                .chain(chunk.iter().map(|p| p.rejected.as_slice()))
                .collect();
            let r = rm.rewards(&seqs, seqs.len())?;
            let b = chunk.len();
            for (i, p) in chunk.iter().enumerate() {
                lines += &format!(
                    "{}\n",
                    json!({"line": p.line, "chosen_reward": r[i], "rejected_reward": r[b + i]})
                );
            }
        }
    } else if let Some(t) = &a.texts {
        let texts = read_texts(t)?;
        let mut seqs = Vec::with_capacity(texts.len());
        for (line, prompt, completion) in &texts {
            seqs.push((
                *line,
                caracal_align::pairs::encode_response(
                    &rm.tokenizer,
                    rm.eos_text.as_deref(),
                    prompt.as_deref(),
                    completion,
                )?,
            ));
        }
        let too_long = seqs
            .iter()
            .filter(|(_, s)| s.len() > a.model_args.max_length)
            .count();
        if too_long > 0 {
            anyhow::bail!(
                "{too_long} texts of {} are longer than --max-length {} tokens; raise --max-length or shorten them",
                t.display(),
                a.model_args.max_length
            );
        }
        let refs: Vec<&[u32]> = seqs.iter().map(|(_, s)| s.as_slice()).collect();
        let r = rm.rewards(&refs, a.batch_size)?;
        for ((line, _), r) in seqs.iter().zip(r) {
            lines += &format!("{}\n", json!({"line": line, "reward": r}));
        }
    }
    match &a.out {
        Some(p) => {
            caracal_core::write_atomic(p, lines.as_bytes())?;
            eprintln!("wrote {} rewards to {}", lines.lines().count(), p.display());
        }
        None => print!("{lines}"),
    }
    Ok(())
}

type Text = (usize, Option<String>, String);

/// JSONL texts: {"text"} or {"prompt", "completion"} per line.
fn read_texts(path: &Path) -> Result<Vec<Text>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| caracal_core::Error::file(path, format!("cannot read as UTF-8 text: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: &str| caracal_core::Error::file(path, format!("line {}: {m}", i + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("is not valid JSON ({e})")))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        match (s("text"), s("prompt"), s("completion")) {
            (Some(t), None, None) => out.push((i + 1, None, t)),
            (None, p, Some(c)) => out.push((i + 1, p, c)),
            _ => {
                return Err(bad(
                    "needs a string field `text`, or `completion` (with an optional `prompt`)",
                )
                .into())
            }
        }
    }
    if out.is_empty() {
        return Err(caracal_core::Error::file(path, "holds no texts").into());
    }
    Ok(out)
}

fn study(a: StudyArgs) -> Result<()> {
    let mut cfg = match a.scale.as_str() {
        "full" => StudyConfig::full(),
        "tour" => StudyConfig::tour(),
        other => anyhow::bail!("--scale `{other}` is unknown; use full or tour"),
    };
    if let Some(s) = a.seeds {
        cfg.seeds = s;
    }
    if let Some(lr) = a.lr {
        cfg.rm.train.lr = lr;
    }
    if let Some(n) = a.train_pairs {
        cfg.train_pairs = n;
    }
    let r = caracal_align::study::run_study(&cfg, |m| eprintln!("{m}"))?;
    if let Some(p) = &a.out {
        caracal_core::write_json_atomic(p, &r)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!("Kendall τ of rewards against the gold reward, 4 responses per prompt (mean ± sd over seeds {:?}):", cfg.seeds);
    print!("{}", r.table());
    let c = &r.claims;
    for (v, g) in &c.ood_tau_gain {
        println!("{v} − bt, mean OOD τ: {g:+.4}");
    }
    if let (Some(m), Some(s)) = (c.diff_norm_mean_growth, c.diff_norm_std_growth) {
        println!(
            "‖h(y_w) − h(y_l)‖ growth from the pretrained base (mean over splits): mean bt {:+.4} vs bsr(1e-3) {:+.4}; std bt {:+.4} vs bsr(1e-3) {:+.4}",
            m.0, m.1, s.0, s.1
        );
    }
    println!("total {:.1} s", r.seconds);
    Ok(())
}

fn world(a: WorldArgs) -> Result<()> {
    let w = World::new(&WorldConfig::default())?;
    let split = Split::from_name(&a.split)?;
    let mut lines = String::new();
    for p in w.pairs(split, a.n, a.seed) {
        let (gc, gr) = (w.gold(&p.prompt, &p.chosen), w.gold(&p.prompt, &p.rejected));
        lines += &format!(
            "{}\n",
            json!({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected,
                   "gold_chosen": gc, "gold_rejected": gr})
        );
    }
    match &a.out {
        Some(p) => {
            caracal_core::write_atomic(p, lines.as_bytes())?;
            eprintln!("wrote {} {} pairs to {}", a.n, split.name(), p.display());
        }
        None => print!("{lines}"),
    }
    Ok(())
}

/// The tour's reward-model section: the study at its tour scale (BT vs BT +
/// BSR(1e-3), one seed), under 2 minutes.
pub fn tour(r: &mut crate::report::Report) -> Result<()> {
    use crate::report::table;
    let cfg = StudyConfig::tour();
    let rep = caracal_align::study::run_study(&cfg, |m| eprintln!("  {m}"))?;
    let names: Vec<String> = rep.summary[0].tau.iter().map(|(n, _)| n.clone()).collect();
    let mut rows = Vec::new();
    let mut summary = serde_json::Map::new();
    for v in &rep.summary {
        let mut cells = vec![v.variant.clone()];
        for (n, m) in &v.tau {
            cells.push(format!("{:.3}", m.mean));
            summary.insert(format!("{}_{}_tau", v.variant, n), json!(m.mean));
        }
        cells.push(format!("{:.3}", v.ood_tau.mean));
        let dn = v
            .diff_norm_mean
            .iter()
            .find(|(n, _)| n == "mutual-ood")
            .map_or(f64::NAN, |x| x.1);
        cells.push(format!("{dn:.2}"));
        summary.insert(format!("{}_ood_tau", v.variant), json!(v.ood_tau.mean));
        rows.push(cells);
    }
    let mut header: Vec<&str> = vec!["objective"];
    header.extend(names.iter().map(String::as_str));
    header.push("OOD mean");
    header.push("‖h(y_w) − h(y_l)‖, mutual-OOD");
    let html = format!(
        "<p>Bradley–Terry reward models with and without batch-wise sum-to-zero regularization (BSR, λ = 1e-3) on the \
         synthetic preference world: a {h}×{l} Llama pretrained on the world's text, then {n} training pairs (training \
         topics × training generators), one seed. Kendall τ of rewards against the gold reward over {k} responses per \
         prompt, {p} prompts per split. Study time {s:.1} s. The full study (7 objectives × 5 seeds): \
         <code>caracal rm study</code>; this setting: <code>caracal rm study --scale tour</code>.</p>{t}",
        h = cfg.hidden,
        l = cfg.layers,
        n = cfg.train_pairs,
        k = cfg.k,
        p = cfg.eval_prompts,
        s = rep.seconds,
        t = table(&header, &rows)
    );
    summary.insert(
        "unit".into(),
        json!("Kendall τ-b against the gold reward (mean over prompts)"),
    );
    summary.insert("seconds".into(), json!(rep.seconds));
    r.add(
        "align",
        "Reward models with BSR (caracal-align)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
