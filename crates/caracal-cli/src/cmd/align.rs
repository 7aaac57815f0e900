//! `caracal align`: direct alignment losses (DPO, IPO, robust, hinge,
//! SimPO, AlphaPO, CPO, ORPO) on a policy, with TRL's tokenization and
//! metric names (caracal-align).

use anyhow::{Context, Result};
use candle_core::Device;
use caracal_align::direct::{DirectLoss, DirectParams};
use caracal_align::direct_eval::evaluate_direct;
use caracal_align::read_pairs;
use caracal_align::template::{tokenize, Specials, Template};
use caracal_models::{load_model, GgufWeights, Llama};
use std::path::PathBuf;

/// Subcommands of `caracal align`.
#[derive(clap::Subcommand)]
pub enum AlignCmd {
    /// Evaluate a policy on preference pairs with a direct alignment loss (TRL's metrics).
    Eval(EvalArgs),
    /// Train a policy with a direct alignment loss (reference log-probs computed once and cached).
    Train(TrainArgs),
    /// KTO on unpaired examples {"prompt","completion","label"}: evaluate (TRL's KTOTrainer metrics), or train with --out.
    Kto(KtoArgs),
    /// The AlphaPO study: DPO vs SimPO vs AlphaPO on on-policy pairs in the synthetic world, scored by its gold reward.
    Study(StudyArgs),
}

/// Options of `caracal align study`.
#[derive(clap::Args, Debug)]
pub struct StudyArgs {
    /// full (the reported study: 5 methods × seeds 1–3), pilot (every
    /// method at every learning rate of the grid, seed 100) or tour (3
    /// methods, 1 seed, smaller).
    #[arg(long, default_value = "full")]
    pub scale: String,
    /// Override the seeds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Write the report here as JSON (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Options of `caracal align kto`.
#[derive(clap::Args, Debug)]
pub struct KtoArgs {
    /// The policy: a Hugging Face folder, a .gguf file (dequantized) or a caracal checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// The reference model (same vocabulary).
    #[arg(long)]
    pub ref_model: PathBuf,
    /// JSONL examples {"prompt", "completion", "label": true|false}.
    #[arg(long)]
    pub examples: PathBuf,
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// λ_D, the weight of desirable examples.
    #[arg(long, default_value_t = 1.0)]
    pub desirable_weight: f64,
    /// λ_U, the weight of undesirable examples.
    #[arg(long, default_value_t = 1.0)]
    pub undesirable_weight: f64,
    /// Examples per batch (micro-batch when training); the KL pairs are formed within each group of this many examples in file order (TRL's per_device batch size).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Drop examples longer than this many tokens (counted, never truncated).
    #[arg(long, default_value_t = 1024)]
    pub max_length: usize,
    /// Print JSON with TRL's metric names.
    #[arg(long)]
    pub json: bool,
    /// Train the policy into this folder (checkpoint.safetensors, metrics.jsonl and, at the end, the policy as a Hugging Face folder); without it, evaluate.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Peak learning rate (training).
    #[arg(long, default_value_t = 1e-6, requires = "out")]
    pub lr: f64,
    #[arg(long, default_value_t = 1, requires = "out")]
    pub epochs: usize,
    /// Micro-batches per optimizer step (training).
    #[arg(long, default_value_t = 1, requires = "out")]
    pub grad_accum: usize,
    /// Share of the steps spent in linear warmup, then linear decay to 0 (training).
    #[arg(long, default_value_t = 0.1, requires = "out")]
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this; 0 disables clipping (training).
    #[arg(long, default_value_t = 1.0, requires = "out")]
    pub clip: f64,
    #[arg(long, default_value_t = 0, requires = "out")]
    pub seed: u64,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 50, requires = "out")]
    pub ckpt_every: usize,
    /// Continue from `<out>/checkpoint.safetensors` (options from the checkpoint; give the same --examples and --ref-model).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Stop after this many steps in total, as if killed (for testing --resume).
    #[arg(long, hide = true, requires = "out")]
    pub stop_after: Option<usize>,
}

/// The loss flags, shared by eval and train.
#[derive(clap::Args, Debug, Clone)]
pub struct LossArgs {
    /// The loss, one of dpo, ipo, hinge, robust, simpo, alphapo, cpo, orpo.
    #[arg(long, default_value = "dpo")]
    pub loss: String,
    /// β (TRL's `beta`).
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// AlphaPO's α (0 falls back to SimPO and says so).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub alpha: f64,
    /// SimPO/AlphaPO's margin γ, absolute as TRL's `simpo_gamma` (SimPO's scripts give γ/β: multiply by β).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub gamma: f64,
    /// ε of robust DPO (and of cDPO with --loss dpo, which TRL 1.16's sigmoid loss ignores).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// CPO's NLL weight (TRL's `cpo_alpha`).
    #[arg(long, default_value_t = 1.0)]
    pub cpo_alpha: f64,
    /// ORPO's λ.
    #[arg(long, default_value_t = 0.1)]
    pub orpo_lambda: f64,
    /// Tokenization: trl-dpo (DPOTrainer) or trl-cpo (CPOTrainer); default: the convention of the TRL trainer implementing the loss.
    #[arg(long)]
    pub template: Option<String>,
    /// Drop pairs longer than this many tokens (counted, never truncated).
    #[arg(long, default_value_t = 1024)]
    pub max_length: usize,
}

impl LossArgs {
    /// The loss and its template, notes printed.
    fn resolve(&self) -> Result<(DirectLoss, Template)> {
        let params = DirectParams {
            beta: self.beta,
            alpha: self.alpha,
            gamma: self.gamma,
            label_smoothing: self.label_smoothing,
            cpo_alpha: self.cpo_alpha,
            orpo_lambda: self.orpo_lambda,
        };
        let (loss, notes) = DirectLoss::from_name(&self.loss, &params)?;
        for n in notes {
            eprintln!("note: {n}");
        }
        let template = match &self.template {
            Some(t) => t.parse::<Template>()?,
            None => loss.default_template(),
        };
        Ok((loss, template))
    }
}

/// Options of `caracal align train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The policy to train: a Hugging Face folder, a .gguf file (dequantized) or a caracal LM checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// The reference model (dpo, ipo, hinge, robust); default: the --model's initial weights.
    #[arg(long)]
    pub ref_model: Option<PathBuf>,
    /// JSONL pairs {"prompt","chosen","rejected"} (plain text).
    #[arg(long)]
    pub pairs: PathBuf,
    /// Held-out pairs evaluated at --eval-every and at the end.
    #[arg(long)]
    pub eval_pairs: Option<PathBuf>,
    #[command(flatten)]
    pub loss: LossArgs,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-6)]
    pub lr: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Pairs per micro-batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Share of the steps spent in linear warmup (then linear decay to 0).
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate every N steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub ckpt_every: usize,
    /// Output folder: checkpoint.safetensors, metrics.jsonl and, at the end, the policy as a Hugging Face folder.
    #[arg(long, default_value = "runs/align")]
    pub out: PathBuf,
    /// Continue from `<out>/checkpoint.safetensors` (options from the checkpoint; give the same --pairs and --ref-model).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps in total, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// Options of `caracal align eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The policy: a Hugging Face folder, a .gguf file (dequantized) or a caracal checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// The reference model (dpo, ipo, hinge, robust); same vocabulary as the policy.
    #[arg(long)]
    pub ref_model: Option<PathBuf>,
    /// JSONL pairs {"prompt","chosen","rejected"} (plain text).
    #[arg(long)]
    pub pairs: PathBuf,
    #[command(flatten)]
    pub loss: LossArgs,
    /// Pairs per micro-batch, in file order (TRL's per_device_eval_batch_size).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Print JSON with TRL's metric names.
    #[arg(long)]
    pub json: bool,
}

/// Dispatch.
pub fn run(cmd: AlignCmd) -> Result<()> {
    match cmd {
        AlignCmd::Eval(a) => eval(a),
        AlignCmd::Train(a) => train(a),
        AlignCmd::Kto(a) => kto(a),
        AlignCmd::Study(a) => study(a),
    }
}

fn open(path: &std::path::Path) -> Result<(Llama, caracal_models::Tokenizer)> {
    load_model(path, GgufWeights::Dequantized, &Device::Cpu)
        .with_context(|| format!("cannot open model {}", path.display()))
}

fn eval(a: EvalArgs) -> Result<()> {
    let (loss, template) = a.loss.resolve()?;
    if loss.needs_reference() && a.ref_model.is_none() {
        anyhow::bail!(
            "--loss {} compares the policy with a reference model; give --ref-model",
            a.loss.loss
        );
    }
    let (policy, tok) = open(&a.model)?;
    let reference = match (&a.ref_model, loss.needs_reference()) {
        (Some(p), true) => {
            let (r, _) = open(p)?;
            if r.config().vocab_size != policy.config().vocab_size {
                anyhow::bail!(
                    "the reference model has a vocabulary of {} tokens and the policy {}; they must share one tokenizer",
                    r.config().vocab_size,
                    policy.config().vocab_size
                );
            }
            Some(r)
        }
        (Some(_), false) => {
            eprintln!(
                "note: --loss {} uses no reference model; --ref-model is ignored",
                a.loss.loss
            );
            None
        }
        _ => None,
    };
    let cfg = policy.config();
    let sp = Specials {
        eos_id: cfg.eos_token_id,
        eos_text: cfg.eos_token_id.and_then(|i| tok.id_to_token(i)),
        bos_id: cfg.bos_token_id,
    };
    let pairs = read_pairs(&a.pairs)?;
    let (cp, stats) = tokenize(&pairs, &tok, template, &sp, a.loss.max_length)?;
    for w in stats.warnings(&a.pairs.display().to_string()) {
        eprintln!("warning: {w}");
    }
    let pad = cfg.pad_token_id.unwrap_or(0);
    let m = evaluate_direct(&policy, reference.as_ref(), &cp, &loss, a.batch_size, pad)?;
    if a.json {
        let mut v = m.to_trl_json();
        v["pairs"] = cp.len().into();
        v["pairs_read"] = stats.read.into();
        v["template"] = format!("{template:?}").into();
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} pairs ({:?} template), {}: loss {:.6}, rewards chosen {:.4} rejected {:.4}, accuracy {:.4}, margin {:.4}, logps chosen {:.4} rejected {:.4}{}",
        cp.len(),
        template,
        a.loss.loss,
        m.loss,
        m.rewards_chosen,
        m.rewards_rejected,
        m.rewards_accuracies,
        m.rewards_margins,
        m.logps_chosen,
        m.logps_rejected,
        m.nll_loss.map(|n| format!(", nll {n:.4}")).unwrap_or_default()
    );
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    use caracal_align::direct_train::{
        cached_reference_logps, reference_cache_path, reference_key, reference_logps,
        DirectTrainOptions, DirectTrainer,
    };
    use caracal_align::PairTraining;
    let dev = Device::Cpu;
    let ck = a.out.join("checkpoint.safetensors");
    // The policy, its tokenizer and the options: new, or from the checkpoint.
    enum Start {
        Resumed(Box<DirectTrainer>),
        New(Box<Llama>),
    }
    let (start, tok) = if a.resume {
        let tr = DirectTrainer::resume(&ck, &dev)
            .with_context(|| format!("cannot resume from {}", ck.display()))?;
        eprintln!("resuming at step {} of {}", tr.step, tr.total_steps());
        let tok = tr.tokenizer.clone();
        (Start::Resumed(Box::new(tr)), tok)
    } else {
        let (p, t) = open(&a.model)?;
        (Start::New(Box::new(p)), t)
    };
    let (loss, template, max_length, pad, sp_cfg) = match &start {
        Start::Resumed(tr) => (
            tr.opts.loss,
            tr.opts.template,
            tr.opts.max_length,
            tr.opts.pad_id,
            tr.policy.config().clone(),
        ),
        Start::New(p) => {
            let (l, t) = a.loss.resolve()?;
            (
                l,
                t,
                a.loss.max_length,
                p.config().pad_token_id.unwrap_or(0),
                p.config().clone(),
            )
        }
    };
    let sp = Specials {
        eos_id: sp_cfg.eos_token_id,
        eos_text: sp_cfg.eos_token_id.and_then(|i| tok.id_to_token(i)),
        bos_id: sp_cfg.bos_token_id,
    };
    let load = |path: &PathBuf| -> Result<Vec<caracal_align::template::CompletionPair>> {
        let (cp, stats) = tokenize(&read_pairs(path)?, &tok, template, &sp, max_length)?;
        for w in stats.warnings(&path.display().to_string()) {
            eprintln!("warning: {w}");
        }
        Ok(cp)
    };
    let pairs = load(&a.pairs)?;
    let eval_pairs = a.eval_pairs.as_ref().map(load).transpose()?;
    // The reference: computed once, cached next to the pairs file.
    let ref_path = a.ref_model.clone().unwrap_or_else(|| a.model.clone());
    let mut ref_model: Option<Llama> = None;
    let reference = if loss.needs_reference() {
        let key = reference_key(&ref_path, &pairs)?;
        let cache = reference_cache_path(&a.pairs, &key);
        let (r, hit) = cached_reference_logps(&cache, &key, || {
            let (m, _) = load_model(&ref_path, GgufWeights::Dequantized, &dev)?;
            if m.config().vocab_size != sp_cfg.vocab_size {
                caracal_core::bail!(
                    "the reference model has a vocabulary of {} tokens and the policy {}; they must share one tokenizer",
                    m.config().vocab_size,
                    sp_cfg.vocab_size
                );
            }
            let r = reference_logps(&m, &pairs, a.batch_size, pad, key.clone());
            ref_model = Some(m);
            r
        })?;
        eprintln!(
            "reference log-probs of {} pairs {} {}",
            pairs.len(),
            if hit { "read from" } else { "written to" },
            cache.display()
        );
        Some(r)
    } else {
        None
    };
    let resumed = matches!(start, Start::Resumed(_));
    let mut tr = match start {
        Start::Resumed(mut tr) => {
            tr.set_reference(reference)?;
            *tr
        }
        Start::New(p) => {
            let p = *p;
            let o = DirectTrainOptions {
                loss,
                template,
                max_length,
                pad_id: pad,
                train: PairTraining {
                    epochs: a.epochs,
                    batch_size: a.batch_size,
                    grad_accum: a.grad_accum,
                    lr: a.lr,
                    warmup_ratio: a.warmup_ratio,
                    clip: (a.clip > 0.0).then_some(a.clip),
                    seed: a.seed,
                    eval_every: a.eval_every,
                    ckpt_every: a.ckpt_every,
                    ..PairTraining::default()
                },
            };
            DirectTrainer::new(p, tok.clone(), o, pairs.len(), reference)?
        }
    };
    if eval_pairs.is_some() && loss.needs_reference() && ref_model.is_none() {
        ref_model = Some(open(&ref_path)?.0);
    }
    eprintln!(
        "training {:?} on {} pairs ({:?} template): {} steps, micro-batch {} pairs, lr {}{}",
        tr.opts.loss,
        pairs.len(),
        template,
        tr.total_steps(),
        tr.opts.train.batch_size,
        tr.opts.train.lr,
        if resumed { ", resumed" } else { "" }
    );
    let eval = eval_pairs.as_deref().map(|e| (e, ref_model.as_ref()));
    let last = tr.run(&pairs, eval, &a.out, a.stop_after, |_, ev| {
        if let Some(e) = ev {
            eprintln!(
                "eval: loss {:.4}, accuracy {:.3}, margin {:.4}",
                e.loss, e.rewards_accuracies, e.rewards_margins
            );
        }
    })?;
    if tr.step == tr.total_steps() {
        println!(
            "trained {} steps; policy saved to {}{}",
            tr.step,
            a.out.display(),
            last.map(|e| format!(
                "; eval loss {:.4}, accuracy {:.3}",
                e.loss, e.rewards_accuracies
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

fn kto(a: KtoArgs) -> Result<()> {
    if a.out.is_some() {
        return kto_train(a);
    }
    use caracal_align::direct::KtoOptions;
    let opts = KtoOptions {
        beta: a.beta,
        desirable_weight: a.desirable_weight,
        undesirable_weight: a.undesirable_weight,
    };
    let (policy, tok) = open(&a.model)?;
    let reference = open_reference(&a.ref_model, policy.config().vocab_size)?;
    let seqs = kto_examples(&a, &policy, &tok, a.max_length)?;
    let pad = policy.config().pad_token_id.unwrap_or(0);
    print_kto(&policy, &reference, &seqs, &opts, a.batch_size, pad, a.json)
}

/// The reference model, which must share the policy's vocabulary.
fn open_reference(path: &std::path::Path, vocab: usize) -> Result<Llama> {
    let (r, _) = open(path)?;
    if r.config().vocab_size != vocab {
        anyhow::bail!(
            "the reference model has a vocabulary of {} tokens and the policy {}; they must share one tokenizer",
            r.config().vocab_size,
            vocab
        );
    }
    Ok(r)
}

/// The examples of `--examples` tokenized for `policy`, dropped ones counted.
fn kto_examples(
    a: &KtoArgs,
    policy: &Llama,
    tok: &caracal_models::Tokenizer,
    max_length: usize,
) -> Result<Vec<caracal_align::kto::KtoSeq>> {
    use caracal_align::kto::{read_examples, tokenize as kto_tokenize};
    let eos = policy
        .config()
        .eos_token_id
        .and_then(|i| tok.id_to_token(i));
    let ex = read_examples(&a.examples)?;
    let (seqs, dropped) = kto_tokenize(&ex, tok, eos.as_deref(), max_length)?;
    if dropped > 0 {
        eprintln!(
            "warning: {dropped} of {} examples are longer than --max-length and were dropped",
            ex.len()
        );
    }
    Ok(seqs)
}

/// Evaluate KTO and print the metrics.
fn print_kto(
    policy: &Llama,
    reference: &Llama,
    seqs: &[caracal_align::kto::KtoSeq],
    opts: &caracal_align::direct::KtoOptions,
    batch: usize,
    pad: u32,
    json: bool,
) -> Result<()> {
    let m = caracal_align::kto::evaluate_kto(policy, reference, seqs, opts, batch, pad)?;
    if json {
        let mut v = m.to_trl_json();
        v["examples"] = seqs.len().into();
        println!("{v}");
    } else {
        println!(
            "{} examples: loss {:.6}, KL {:.4}, rewards chosen {:.4} rejected {:.4} (margin {:.4}), logps chosen {:.4} rejected {:.4}",
            seqs.len(), m.loss, m.kl, m.rewards_chosen, m.rewards_rejected, m.rewards_margins, m.logps_chosen, m.logps_rejected
        );
    }
    Ok(())
}

/// `align kto --out`: train with KTO, then evaluate on the training examples.
fn kto_train(a: KtoArgs) -> Result<()> {
    use caracal_align::direct::KtoOptions;
    use caracal_align::direct_train::{cached_reference_logps, reference_cache_path};
    use caracal_align::kto_train::{
        kl_dataset, kto_reference_key, kto_reference_logps, KtoTrainOptions, KtoTrainer,
    };
    use caracal_align::PairTraining;
    let dev = Device::Cpu;
    let out = a.out.clone().expect("--out is given");
    let ck = out.join("checkpoint.safetensors");
    // The policy and its tokenizer: new, or from the checkpoint.
    enum Start {
        Resumed(Box<KtoTrainer>),
        New(Box<Llama>, caracal_models::Tokenizer),
    }
    let start = if a.resume {
        let tr = KtoTrainer::resume(&ck, &dev)
            .with_context(|| format!("cannot resume from {}", ck.display()))?;
        eprintln!("resuming at step {} of {}", tr.step, tr.total_steps());
        Start::Resumed(Box::new(tr))
    } else {
        let (p, tok) = open(&a.model)?;
        Start::New(Box::new(p), tok)
    };
    // The options of a new run, or those of the checkpoint.
    let (opts, policy_ref, tok) = match &start {
        Start::Resumed(t) => (t.opts.clone(), &t.policy, &t.tokenizer),
        Start::New(p, tok) => (
            KtoTrainOptions {
                kto: KtoOptions {
                    beta: a.beta,
                    desirable_weight: a.desirable_weight,
                    undesirable_weight: a.undesirable_weight,
                },
                max_length: a.max_length,
                pad_id: p.config().pad_token_id.unwrap_or(0),
                train: PairTraining {
                    epochs: a.epochs,
                    batch_size: a.batch_size,
                    grad_accum: a.grad_accum,
                    lr: a.lr,
                    warmup_ratio: a.warmup_ratio,
                    clip: (a.clip > 0.0).then_some(a.clip),
                    seed: a.seed,
                    ckpt_every: a.ckpt_every,
                    ..PairTraining::default()
                },
            },
            &**p,
            tok,
        ),
    };
    let vocab = policy_ref.config().vocab_size;
    let seqs = kto_examples(&a, policy_ref, tok, opts.max_length)?;
    let (batch, pad) = (opts.train.batch_size, opts.pad_id);
    let kl = kl_dataset(&seqs, batch);
    // The reference: computed once, cached next to the examples file.
    let key = kto_reference_key(&a.ref_model, &seqs, &kl)?;
    let cache = reference_cache_path(&a.examples, &key);
    let mut ref_model: Option<Llama> = None;
    let (reference, hit) = cached_reference_logps(&cache, &key, || {
        let m = open_reference(&a.ref_model, vocab)
            .map_err(|e| caracal_core::Error::invalid(format!("{e:#}")))?;
        let r = kto_reference_logps(&m, &seqs, &kl, batch, pad, key.clone());
        ref_model = Some(m);
        r
    })?;
    eprintln!(
        "reference log-probs of {} examples {} {}",
        seqs.len(),
        if hit { "read from" } else { "written to" },
        cache.display()
    );
    let resumed = matches!(start, Start::Resumed(_));
    let mut tr = match start {
        Start::Resumed(t) => {
            let mut t = *t;
            t.set_reference(reference)?;
            t
        }
        Start::New(p, tok) => KtoTrainer::new(*p, tok, opts, seqs.len(), reference)?,
    };
    eprintln!(
        "training KTO (β {}) on {} examples: {} steps, micro-batch {} examples, lr {}{}",
        tr.opts.kto.beta,
        seqs.len(),
        tr.total_steps(),
        batch,
        tr.opts.train.lr,
        if resumed { ", resumed" } else { "" }
    );
    tr.run(&seqs, &kl, &out, a.stop_after, |_| {})?;
    if tr.step < tr.total_steps() {
        println!(
            "stopped at step {} of {}; continue with --resume",
            tr.step,
            tr.total_steps()
        );
        return Ok(());
    }
    let msg = format!(
        "trained {} steps; policy saved to {}",
        tr.step,
        out.display()
    );
    if a.json {
        eprintln!("{msg}");
    } else {
        println!("{msg}");
    }
    let reference = match ref_model {
        Some(m) => m,
        None => open_reference(&a.ref_model, vocab)?,
    };
    let o = tr.opts.kto;
    print_kto(&tr.policy, &reference, &seqs, &o, batch, pad, a.json)
}

fn study(a: StudyArgs) -> Result<()> {
    use caracal_align::alpha_study::{run_alpha_study, AlphaStudyConfig};
    let mut cfg = match a.scale.as_str() {
        "full" => AlphaStudyConfig::full(),
        "pilot" => AlphaStudyConfig::pilot(),
        "tour" => AlphaStudyConfig::tour(),
        other => anyhow::bail!("--scale {other} is unknown; use full, pilot or tour"),
    };
    if let Some(s) = a.seeds {
        cfg.seeds = s;
    }
    let r = run_alpha_study(&cfg, |m| eprintln!("{m}"))?;
    if let Some(p) = &a.out {
        caracal_core::write_json_atomic(p, &r)?;
    }
    println!(
        "SFT policy: gold {:.3}, length {:.1}; {} seed(s), {} evaluation prompts × {} samples",
        r.sft_gold,
        r.sft_length,
        cfg.seeds.len(),
        cfg.eval_prompts,
        cfg.eval_samples
    );
    print!("{}", r.table());
    println!(
        "claims: AlphaPO (α > 0) ≥ SimPO in win rate: {:?}; SimPO ≥ DPO: {:?}; AlphaPO (α > 0) displaces less than SimPO: {:?}",
        r.claims.alphapo_ge_simpo_win,
        r.claims.simpo_ge_dpo_win,
        r.claims.alphapo_less_displacement
    );
    println!("total {:.1} s", r.seconds);
    Ok(())
}
