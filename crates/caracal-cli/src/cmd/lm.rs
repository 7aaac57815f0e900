//! `caracal lm`: train, evaluate and sample from Llama-family language
//! models (caracal-models).

use crate::report::{self, Report, Series};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use caracal_models::train::{grammar_corpus, TokenData, TrainOptions, Trainer};
use caracal_models::{
    generate, hf, load_model, GenerateOptions, GgufWeights, KernelMode, Llama, LlamaConfig,
    Sampling, Tokenizer,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Subcommands of `caracal lm`.
#[derive(clap::Subcommand)]
pub enum LmCmd {
    /// Train a causal language model on a text file or folder (default: the
    /// embedded grammar corpus, byte-level).
    Train(TrainArgs),
    /// Perplexity of a model on held-out text.
    Eval(EvalArgs),
    /// Continue a prompt (greedy, temperature or top-p sampling, KV cache).
    Generate(GenerateArgs),
}

/// Options of `caracal lm train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Text file, or folder of .txt/.md files (default: 400 kB from the embedded seeded grammar).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Hugging Face tokenizer.json (default: bytes, vocabulary 256).
    #[arg(long, value_name = "tokenizer.json")]
    pub tokenizer: Option<PathBuf>,
    /// Output folder: checkpoint.safetensors, metrics.jsonl and, at the end, a Hugging Face folder `hf/`.
    #[arg(long, default_value = "runs/lm")]
    pub out: PathBuf,
    /// Continue from `<out>/checkpoint.safetensors` with the options and the --data stored with it.
    #[arg(long)]
    pub resume: bool,
    /// Model shape from a Hugging Face config.json (default: a small model sized by --hidden/--layers).
    #[arg(long, value_name = "config.json")]
    pub config: Option<PathBuf>,
    /// Start from the weights of a Hugging Face folder instead of random weights.
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub init: Option<PathBuf>,
    /// Hidden size of the default model (4 query heads, 2 key/value heads).
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Layers of the default model.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Kernels: fused (caracal-kernels, FLCE loss) or reference (candle ops, full logits).
    #[arg(long, default_value = "fused")]
    pub mode: String,
    /// Optimizer steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 3e-4)]
    pub min_lr: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 30)]
    pub warmup: usize,
    /// Decoupled weight decay (matrices only).
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Seed for the initialization and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate held-out perplexity every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Write a checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub ckpt_every: usize,
    /// Stop after this many steps in total, as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// Options of `caracal lm eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A caracal checkpoint (.safetensors), a Hugging Face folder, or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// Text to score (default: the held-out tenth of the embedded grammar corpus).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// tokenizer.json overriding the model's own.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens per window.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Most windows scored.
    #[arg(long, default_value_t = 16)]
    pub max_windows: usize,
    /// GGUF only: keep weights quantized (QMatMul) instead of dequantizing to f32.
    #[arg(long)]
    pub quantized: bool,
    /// Kernels: fused, reference, or candle (candle-nn's inference ops in candle-transformers' op order).
    #[arg(long, default_value = "fused")]
    pub mode: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `caracal lm generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// A caracal checkpoint (.safetensors), a Hugging Face folder, or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt.
    #[arg(long, default_value = "The ")]
    pub prompt: String,
    /// Most new tokens.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus (top-p) mass kept when sampling.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// tokenizer.json overriding the model's own.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// GGUF only: keep weights quantized (QMatMul).
    #[arg(long)]
    pub quantized: bool,
    /// Kernels: fused, reference, or candle (candle-nn's inference ops in candle-transformers' op order).
    #[arg(long, default_value = "fused")]
    pub mode: String,
}

pub fn run(c: LmCmd) -> Result<()> {
    match c {
        LmCmd::Train(a) => train(a),
        LmCmd::Eval(a) => eval(a),
        LmCmd::Generate(a) => gen(a),
    }
}

fn mode(s: &str) -> Result<KernelMode> {
    Ok(s.parse::<KernelMode>()?)
}

/// The embedded default corpus (400 kB, seed 0).
fn default_text() -> String {
    grammar_corpus(0, 400_000)
}

fn read_text(data: &Option<PathBuf>) -> Result<String> {
    Ok(match data {
        Some(p) => TokenData::read_text(p)?,
        None => default_text(),
    })
}

/// `<out>/run.json`: the run's data source, so that `--resume` needs no
/// `--data` and refuses a different one.
fn run_file(out: &Path) -> PathBuf {
    out.join("run.json")
}

/// The data of a run: `--data` (absolute), or the embedded corpus.
fn data_source(data: &Option<PathBuf>) -> Result<Option<PathBuf>> {
    data.as_ref()
        .map(|p| {
            p.canonicalize()
                .with_context(|| format!("--data {}: cannot open it", p.display()))
        })
        .transpose()
}

/// On `--resume`, the data to train on: the stored source, which a given
/// `--data` must match (a different corpus would silently change the run).
fn resumed_data(out: &Path, given: &Option<PathBuf>) -> Result<Option<PathBuf>> {
    let given = data_source(given)?;
    let f = run_file(out);
    if !f.exists() {
        // A run from before run.json existed: trust --data.
        return Ok(given);
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f)?)
        .with_context(|| format!("{}: not valid JSON", f.display()))?;
    let stored = v.get("data").and_then(|d| d.as_str()).map(PathBuf::from);
    match (&given, &stored) {
        (Some(g), s) if s.as_ref() != Some(g) => anyhow::bail!(
            "--resume: this run trained on {}, not --data {}; resume with the same data or start a new --out",
            s.as_ref()
                .map_or("the embedded corpus".to_string(), |s| s.display().to_string()),
            g.display()
        ),
        _ => Ok(stored),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let dev = Device::Cpu;
    let ckpt = a.out.join("checkpoint.safetensors");
    let data_path = if a.resume {
        resumed_data(&a.out, &a.data)?
    } else {
        let d = data_source(&a.data)?;
        std::fs::create_dir_all(&a.out)?;
        caracal_core::write_json_atomic(run_file(&a.out), &json!({ "data": d }))?;
        d
    };
    let mut trainer = if a.resume {
        if !ckpt.exists() {
            anyhow::bail!(
                "--resume: {} does not exist; start without --resume",
                ckpt.display()
            );
        }
        let t = Trainer::resume(&ckpt, &dev)?;
        eprintln!("resuming at step {} of {}", t.step, t.opts.steps);
        t
    } else {
        let tok_desc = match &a.tokenizer {
            Some(p) => p
                .canonicalize()
                .with_context(|| format!("{}", p.display()))?
                .display()
                .to_string(),
            None => "bytes".to_string(),
        };
        let tok = tokenizer(&a.tokenizer)?;
        let model = match (&a.init, &a.config) {
            (Some(dir), _) => hf::load_dir(dir, DType::F32, &dev)?,
            (None, Some(c)) => {
                Llama::random(&LlamaConfig::from_file(c)?, a.seed, DType::F32, &dev)?
            }
            (None, None) => {
                let mut c = LlamaConfig::tiny(tok.vocab_size(), a.hidden, a.layers);
                c.max_position_embeddings = a.seq_len.max(c.max_position_embeddings);
                c.validate()?;
                Llama::random(&c, a.seed, DType::F32, &dev)?
            }
        };
        if model.config().vocab_size < tok.vocab_size() {
            anyhow::bail!(
                "the model's vocab_size {} is smaller than the tokenizer's {}",
                model.config().vocab_size,
                tok.vocab_size()
            );
        }
        let opts = TrainOptions {
            steps: a.steps,
            batch_size: a.batch_size,
            seq_len: a.seq_len,
            grad_accum: a.grad_accum,
            lr: a.lr,
            min_lr: a.min_lr,
            warmup: a.warmup,
            adamw: caracal_models::train::AdamWConfig {
                weight_decay: a.weight_decay,
                ..Default::default()
            },
            clip: (a.clip > 0.0).then_some(a.clip),
            seed: a.seed,
            eval_every: a.eval_every,
            ckpt_every: a.ckpt_every,
            ..TrainOptions::default()
        };
        if a.out.join("metrics.jsonl").exists() {
            std::fs::remove_file(a.out.join("metrics.jsonl"))?;
        }
        Trainer::new(model.with_mode(mode(&a.mode)?), opts, tok_desc)?
    };
    let tok = match trainer.tokenizer.as_str() {
        "bytes" => Tokenizer::Bytes,
        p => Tokenizer::from_file(p)?,
    };
    let data = TokenData::from_text(&read_text(&data_path)?, &tok, 0.1)?;
    let cfg = trainer.model.config().clone();
    eprintln!(
        "training {:.2} M parameters ({} mode) on {} tokens; {} steps of {}×{}×{} tokens",
        cfg.n_params() as f64 / 1e6,
        trainer.model.mode.name(),
        data.train.len(),
        trainer.opts.steps,
        trainer.opts.grad_accum,
        trainer.opts.batch_size,
        trainer.opts.seq_len
    );
    let t0 = Instant::now();
    let mut last = None;
    let ev = trainer.run(&data, Some(&a.out), a.stop_after, |s, e| {
        last = Some(s.clone());
        if let Some(e) = e {
            eprintln!(
                "step {:>5}  loss {:.4} nats/token  eval ppl {:.3}",
                s.step, s.loss, e.ppl
            );
        }
    })?;
    let secs = t0.elapsed().as_secs_f64();
    if trainer.step == trainer.opts.steps {
        hf::save_dir(&trainer.model, a.out.join("hf"))?;
    }
    let out = json!({
        "steps_done": trainer.step,
        "final_loss_nats_per_token": last.as_ref().map(|s| s.loss),
        "eval_loss_nats_per_token": ev.map(|e| e.loss),
        "eval_perplexity": ev.map(|e| e.ppl),
        "seconds": secs,
        "checkpoint": ckpt.display().to_string(),
        "metrics": a.out.join("metrics.jsonl").display().to_string(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn tokenizer(p: &Option<PathBuf>) -> Result<Tokenizer> {
    Ok(match p {
        Some(p) => Tokenizer::from_file(p)?,
        None => Tokenizer::Bytes,
    })
}

fn open(model: &Path, quantized: bool, tok: &Option<PathBuf>) -> Result<(Llama, Tokenizer)> {
    let how = if quantized {
        GgufWeights::Quantized
    } else {
        GgufWeights::Dequantized
    };
    let (m, t) = load_model(model, how, &Device::Cpu)?;
    let t = match tok {
        Some(p) => Tokenizer::from_file(p)?,
        None => t,
    };
    Ok((m, t))
}

fn eval(a: EvalArgs) -> Result<()> {
    let (m, tok) = open(&a.model, a.quantized, &a.tokenizer)?;
    let m = m.with_mode(mode(&a.mode)?);
    let tokens = match &a.data {
        Some(p) => tok.encode(&TokenData::read_text(p)?)?,
        None => TokenData::from_text(&default_text(), &tok, 0.1)?.val,
    };
    let t0 = Instant::now();
    let e = caracal_models::train::evaluate(&m, &tokens, 1, a.seq_len, a.max_windows)?;
    let out = json!({
        "model": a.model.display().to_string(),
        "tokens": e.tokens,
        "loss_nats_per_token": e.loss,
        "perplexity": e.ppl,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "perplexity {:.4} ({:.4} nats/token over {} tokens)",
            e.ppl, e.loss, e.tokens
        );
    }
    Ok(())
}

fn gen(a: GenerateArgs) -> Result<()> {
    let (m, tok) = open(&a.model, a.quantized, &a.tokenizer)?;
    let m = m.with_mode(mode(&a.mode)?);
    let prompt = tok.encode(&a.prompt)?;
    let sampling = if a.temperature <= 0.0 {
        Sampling::Greedy
    } else {
        Sampling::Sample {
            temperature: a.temperature,
            top_p: a.top_p,
        }
    };
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling,
        seed: a.seed,
        stop: m.config().eos_token_id.into_iter().collect(),
    };
    let t0 = Instant::now();
    let out = generate(&m, &prompt, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    println!("{}{}", a.prompt, tok.decode(&out)?);
    eprintln!(
        "{} tokens in {:.2} s ({:.1} tokens/s)",
        out.len(),
        secs,
        out.len() as f64 / secs
    );
    Ok(())
}

/// The tour's models section: a small byte-level model trained for a few
/// dozen steps on the embedded corpus with fused and reference kernels.
pub fn tour(r: &mut Report) -> Result<()> {
    let dev = Device::Cpu;
    let tok = Tokenizer::Bytes;
    let data = TokenData::from_text(&grammar_corpus(0, 120_000), &tok, 0.1)?;
    let cfg = LlamaConfig::tiny(256, 64, 2);
    let opts = TrainOptions {
        steps: 40,
        batch_size: 8,
        seq_len: 64,
        warmup: 5,
        eval_every: 0,
        eval_batches: 4,
        ckpt_every: 0,
        ..TrainOptions::default()
    };
    let mut curves = Vec::new();
    let mut rows = Vec::new();
    let mut summary = serde_json::Map::new();
    for m in [KernelMode::Fused, KernelMode::Reference] {
        let model = Llama::random(&cfg, 0, DType::F32, &dev)?.with_mode(m);
        let mut t = Trainer::new(model, opts.clone(), "bytes")?;
        let mut pts = Vec::new();
        let mut toks = 0usize;
        let t0 = Instant::now();
        let ev = t.run(&data, None, None, |s, _| {
            pts.push((s.step as f64, s.loss));
            toks += s.tokens;
        })?;
        let secs = t0.elapsed().as_secs_f64();
        let ev = ev.context("the run ended without an evaluation")?;
        rows.push(vec![
            m.name().to_string(),
            format!("{:.4}", pts.last().map_or(f64::NAN, |p| p.1)),
            format!("{:.3}", ev.ppl),
            format!("{:.0}", toks as f64 / secs),
        ]);
        summary.insert(
            m.name().to_string(),
            json!({
                "final_train_loss_nats_per_token": pts.last().map(|p| p.1),
                "eval_perplexity": ev.ppl,
                "train_tokens_per_s": toks as f64 / secs,
            }),
        );
        curves.push((m.name(), pts));
    }
    let max_diff = curves[0]
        .1
        .iter()
        .zip(&curves[1].1)
        .map(|(a, b)| (a.1 - b.1).abs())
        .fold(0.0, f64::max);
    summary.insert(
        "max_abs_loss_diff_fused_vs_reference_nats".into(),
        json!(max_diff),
    );
    summary.insert("params".into(), json!(cfg.n_params()));
    summary.insert("steps".into(), json!(opts.steps));
    let series: Vec<Series> = curves
        .iter()
        .map(|(n, p)| Series {
            name: n,
            points: p.clone(),
        })
        .collect();
    let chart = report::line_chart(
        "Byte-level Llama on the grammar corpus",
        "step",
        "train loss (nats/token)",
        &series,
        false,
    )?;
    let html = format!(
        "<p>A {:.2} M-parameter Llama (RMSNorm, RoPE, GQA 4/2, SwiGLU, tied embeddings) trained for {} steps \
         of {}×{} bytes with AdamW, once with caracal's fused kernels (FLCE loss, no logits held) and once with \
         candle-composed references. Largest loss difference between the two: {:.2e} nats.</p>{}{}",
        cfg.n_params() as f64 / 1e6,
        opts.steps,
        opts.batch_size,
        opts.seq_len,
        max_diff,
        chart,
        report::table(&["kernels", "final loss (nats)", "eval ppl", "tokens/s"], &rows)
    );
    r.add(
        "models",
        "Language model training (caracal-models)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
