//! `caracal bench train`: train the same model from the same seed with
//! fused and with reference kernels, side by side in one run, and report
//! tokens/s, peak heap bytes and the loss difference per step.

use crate::alloc;
use crate::bench::timing::median;
use anyhow::Result;
use candle_core::{DType, Device};
use caracal_core::Rng;
use caracal_models::train::{TokenData, TrainOptions, Trainer};
use caracal_models::{KernelMode, Llama, LlamaConfig};
use serde_json::json;
use std::path::PathBuf;

/// Options of `caracal bench train`.
#[derive(clap::Args)]
pub struct TrainBenchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Optimizer steps per mode (the first is a warm-up and is not timed).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Model shape from a Hugging Face config.json (default: SmolLM2-135M).
    #[arg(long, value_name = "config.json")]
    pub config: Option<PathBuf>,
    /// Use a small model (hidden 128, 4 layers, vocab 8192) for a quick run.
    #[arg(long, conflicts_with = "config")]
    pub small: bool,
    /// Seed for the initialization and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

struct ModeRun {
    mode: KernelMode,
    losses: Vec<f64>,
    step_s: Vec<f64>,
    tokens_per_step: usize,
    peak_bytes: usize,
}

fn run_mode(
    cfg: &LlamaConfig,
    data: &TokenData,
    opts: &TrainOptions,
    mode: KernelMode,
    seed: u64,
) -> Result<ModeRun> {
    let base = alloc::live();
    alloc::reset_peak();
    let model = Llama::random(cfg, seed, DType::F32, &Device::Cpu)?.with_mode(mode);
    let mut t = Trainer::new(model, opts.clone(), "random-tokens")?;
    let (mut losses, mut step_s, mut tokens) = (Vec::new(), Vec::new(), 0);
    for _ in 0..opts.steps {
        let s = t.train_step(data)?;
        losses.push(s.loss);
        step_s.push(s.seconds);
        tokens = s.tokens;
    }
    let peak_bytes = alloc::peak().saturating_sub(base);
    Ok(ModeRun {
        mode,
        losses,
        step_s,
        tokens_per_step: tokens,
        peak_bytes,
    })
}

pub fn run(a: TrainBenchArgs) -> Result<()> {
    let cfg = match (&a.config, a.small) {
        (Some(p), _) => LlamaConfig::from_file(p)?,
        (None, true) => {
            let mut c = LlamaConfig::tiny(8192, 128, 4);
            c.tie_word_embeddings = true;
            c
        }
        (None, false) => LlamaConfig::smollm2_135m(),
    };
    if a.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let mut rng = Rng::new(a.seed ^ 0x5eed);
    let n = (a.batch_size * (a.seq_len + 1) * 8).max(4096);
    let toks: Vec<u32> = (0..n).map(|_| rng.below(cfg.vocab_size) as u32).collect();
    let data = TokenData {
        train: toks.clone(),
        val: toks,
    };
    let opts = TrainOptions {
        steps: a.steps,
        batch_size: a.batch_size,
        seq_len: a.seq_len,
        lr: 1e-4,
        min_lr: 1e-5,
        warmup: 0,
        seed: a.seed,
        ..TrainOptions::default()
    };
    eprintln!(
        "bench train: {:.1} M parameters, B={} T={}, {} steps per mode (f32, CPU, {} threads)",
        cfg.n_params() as f64 / 1e6,
        a.batch_size,
        a.seq_len,
        a.steps,
        rayon::current_num_threads()
    );
    let mut runs = Vec::new();
    for mode in [KernelMode::Fused, KernelMode::Reference] {
        eprintln!("  {} ...", mode.name());
        runs.push(run_mode(&cfg, &data, &opts, mode, a.seed)?);
    }
    let timed = |r: &ModeRun| -> f64 {
        let s = if r.step_s.len() > 1 {
            &r.step_s[1..]
        } else {
            &r.step_s[..]
        };
        median(s)
    };
    let tps = |r: &ModeRun| r.tokens_per_step as f64 / timed(r);
    let (f, r) = (&runs[0], &runs[1]);
    let speedup = tps(f) / tps(r);
    let mem_ratio = f.peak_bytes as f64 / r.peak_bytes.max(1) as f64;
    let max_diff = f
        .losses
        .iter()
        .zip(&r.losses)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let per_mode: Vec<_> = runs
        .iter()
        .map(|m| {
            json!({
                "mode": m.mode.name(),
                "tokens_per_s": tps(m),
                "step_s_median": timed(m),
                "step_s_all": m.step_s,
                "peak_bytes": m.peak_bytes,
                "peak_mib": m.peak_bytes as f64 / (1 << 20) as f64,
                "losses": m.losses,
            })
        })
        .collect();
    let out = json!({
        "model": {"params": cfg.n_params(), "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers, "vocab": cfg.vocab_size},
        "batch_size": a.batch_size,
        "seq_len": a.seq_len,
        "steps": a.steps,
        "threads": rayon::current_num_threads(),
        "runs": per_mode,
        "fused_speedup": speedup,
        "fused_peak_fraction": mem_ratio,
        "max_abs_loss_diff": max_diff,
        "targets": {
            "speedup_ge_1_2": speedup >= 1.2,
            "peak_fraction_le_0_6": mem_ratio <= 0.6,
            "loss_diff_lt_1e_4": max_diff < 1e-4,
        },
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<10} {:>12} {:>12} {:>12} {:>14}",
            "kernels", "tokens/s", "step (s)", "peak MiB", "final loss"
        );
        for m in &runs {
            println!(
                "{:<10} {:>12.1} {:>12.3} {:>12.1} {:>14.6}",
                m.mode.name(),
                tps(m),
                timed(m),
                m.peak_bytes as f64 / (1 << 20) as f64,
                m.losses.last().copied().unwrap_or(f64::NAN)
            );
        }
        println!(
            "fused: {speedup:.2}× the reference tokens/s (target ≥ 1.2), {:.0}% of its peak memory (target ≤ 60%), max |Δloss| {max_diff:.2e} nats (target < 1e-4)",
            100.0 * mem_ratio
        );
    }
    Ok(())
}
