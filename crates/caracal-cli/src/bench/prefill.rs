//! `caracal bench prefill`: prompt-processing throughput of several models
//! side by side in one run, as a server prefills: the forward pass over each
//! window and the logits of its last position only (the next-token
//! distribution), no loss. Models alternate within each repetition, so
//! machine noise falls on all of them alike.

use crate::bench::timing::median;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use caracal_models::{load_model, GgufWeights};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `caracal bench prefill`.
#[derive(clap::Args)]
pub struct PrefillBenchArgs {
    /// Models (comma-separated): Hugging Face folders, .gguf files (dequantized) or checkpoints; the first is the baseline.
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<PathBuf>,
    /// Text whose first windows are prefilled.
    #[arg(long)]
    pub data: PathBuf,
    /// Tokens per window (one prompt).
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Windows per repetition.
    #[arg(long, default_value_t = 8)]
    pub windows: usize,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PrefillBenchArgs) -> Result<()> {
    if a.seq_len == 0 || a.windows == 0 || a.reps == 0 {
        anyhow::bail!("--seq-len, --windows and --reps must each be at least 1");
    }
    let text = std::fs::read_to_string(&a.data)
        .with_context(|| format!("cannot read {} as UTF-8 text", a.data.display()))?;
    let mut models = Vec::new();
    for p in &a.models {
        let (m, tok) = load_model(p, GgufWeights::Dequantized, &Device::Cpu)
            .with_context(|| format!("cannot open model {}", p.display()))?;
        let ids = tok.encode(&text)?;
        let need = a.seq_len * a.windows;
        if ids.len() < need {
            anyhow::bail!(
                "{} has {} tokens under {}'s tokenizer; {} windows of {} need {need}",
                a.data.display(),
                ids.len(),
                p.display(),
                a.windows,
                a.seq_len
            );
        }
        let params: usize = m.named_vars().iter().map(|(_, v)| v.elem_count()).sum();
        models.push((m, ids, params));
    }
    let prefill = |m: &caracal_models::Llama, ids: &[u32]| -> Result<f64> {
        let t0 = Instant::now();
        for w in 0..a.windows {
            let x = Tensor::from_vec(
                ids[w * a.seq_len..(w + 1) * a.seq_len].to_vec(),
                (1, a.seq_len),
                &Device::Cpu,
            )?;
            let h = m.forward_hidden(&x, None)?;
            let last = m.project(&h.narrow(1, a.seq_len - 1, 1)?)?;
            std::hint::black_box(
                last.to_dtype(candle_core::DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()?,
            );
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    let mut times = vec![Vec::new(); models.len()];
    for rep in 0..=a.reps {
        for (i, (m, ids, _)) in models.iter().enumerate() {
            let s = prefill(m, ids)?;
            if rep > 0 {
                times[i].push(s);
            }
        }
    }
    let tokens = (a.seq_len * a.windows) as f64;
    let base = tokens / median(&times[0]);
    let rows: Vec<serde_json::Value> = models
        .iter()
        .zip(&a.models)
        .zip(&times)
        .map(|(((_, _, params), path), t)| {
            let tps = tokens / median(t);
            json!({
                "model": path.display().to_string(),
                "params": params,
                "tokens_per_s_median": tps,
                "seconds": t,
                "speedup_vs_first": tps / base,
            })
        })
        .collect();
    let v = json!({
        "seq_len": a.seq_len,
        "windows": a.windows,
        "reps": a.reps,
        "threads": rayon::current_num_threads(),
        "models": rows,
    });
    if a.json {
        println!("{v}");
        return Ok(());
    }
    println!(
        "prefill of {} windows × {} tokens, last-position logits, {} threads, median of {}:",
        a.windows,
        a.seq_len,
        rayon::current_num_threads(),
        a.reps
    );
    for r in &rows {
        println!(
            "  {:<60} {:>6.1} M parameters {:>8.1} tokens/s  {:.2}×",
            r["model"].as_str().unwrap_or(""),
            r["params"].as_f64().unwrap_or(0.0) / 1e6,
            r["tokens_per_s_median"].as_f64().unwrap_or(0.0),
            r["speedup_vs_first"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
