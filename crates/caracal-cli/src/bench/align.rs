//! `caracal bench align`: one DPO step (policy forward and backward, the
//! reference's log-probs cached) with the chunked per-token log-prob op
//! (the fused linear cross-entropy, no `[B·T, V]` logits) against the same
//! loss on the full logits, side by side in one run: median time and peak
//! heap bytes (a counting allocator, the CPU analogue of
//! `torch.cuda.max_memory_allocated`).

use crate::bench::timing::{measure, Measured};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use caracal_align::direct::{direct_loss, DirectLoss, PairLogps, SideLogps};
use caracal_align::logps::{batch_targets, Completion, IGNORE};
use caracal_core::Rng;
use caracal_models::{Llama, LlamaConfig};
use serde_json::json;

/// Options of `caracal bench align`.
#[derive(clap::Args)]
pub struct AlignBenchArgs {
    /// Preference pairs per step (2 sequences each).
    #[arg(long, default_value_t = 4)]
    pub pairs: usize,
    /// Tokens per sequence (a quarter prompt, the rest completion).
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Hidden size (4 query heads, 2 key/value heads).
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 32000)]
    pub vocab: usize,
    /// Timed repetitions after one warm-up (which measures the peak).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a step computes the per-token log-probs.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// `Llama::token_logps`: the chunked fused linear CE.
    Chunked,
    /// Logits for every position (TRL's default).
    Full,
    /// Logits from the first completion position on only (TRL's
    /// `use_logits_to_keep=True`).
    FullKeep,
}

/// Per-token log-probs `[B, T']` from materialized logits of positions
/// `from..T` (the earlier targets must all be ignored).
fn logps_full_from(m: &Llama, ids: &Tensor, tgt: &Tensor, from: usize) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let hidden = m.forward_hidden(ids, None)?.narrow(1, from, t - from)?;
    let h = hidden.dim(2)?;
    let logits = m.project(&hidden.reshape((b * (t - from), h))?)?;
    let ce = caracal_kernels::CeOptions {
        ignore_index: IGNORE,
        reduction: caracal_kernels::Reduction::None,
        ..Default::default()
    };
    let y = tgt
        .narrow(1, from, t - from)?
        .flatten_all()?
        .to_dtype(DType::I64)?;
    let nll = caracal_kernels::cross_entropy(&logits, &y, &ce)?.loss;
    Ok(nll.neg()?.reshape((b, t - from))?)
}

/// One DPO step; returns the loss and the squared gradient norm.
fn step(m: &Llama, seqs: &[Completion], reference: &PairLogps, path: Path) -> Result<(f64, f64)> {
    let refs: Vec<&Completion> = seqs.iter().collect();
    let (ids, tgt, lens) = batch_targets(&refs, 0, m.device())?;
    let lp = match path {
        Path::Chunked => m.token_logps(&ids, &tgt, IGNORE)?,
        Path::Full => m.token_logps_full(&ids, &tgt, IGNORE)?,
        Path::FullKeep => {
            // The first scored target position: each target t predicts ids[t + 1].
            let from = seqs.iter().map(|s| s.start).min().unwrap_or(1).max(1) - 1;
            logps_full_from(m, &ids, &tgt, from)?
        }
    };
    let sum = lp.sum(1)?;
    let b = seqs.len() / 2;
    let len = Tensor::from_vec(lens, seqs.len(), m.device())?;
    let side = |o: usize| -> Result<SideLogps> {
        Ok(SideLogps {
            sum: sum.narrow(0, o, b)?,
            len: len.narrow(0, o, b)?,
        })
    };
    let policy = PairLogps {
        chosen: side(0)?,
        rejected: side(b)?,
    };
    let loss = DirectLoss::Dpo {
        beta: 0.1,
        label_smoothing: 0.0,
    };
    let out = direct_loss(&loss, &policy, Some(reference), None)?;
    let g = out.loss.backward()?;
    let mut sq = 0.0;
    for (_, v) in m.named_vars() {
        if let Some(t) = g.get(v.as_tensor()) {
            sq += t
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    Ok((out.loss.to_scalar::<f64>()?, sq))
}

pub fn run(a: AlignBenchArgs) -> Result<()> {
    if a.pairs == 0 || a.seq_len < 4 {
        anyhow::bail!("--pairs must be at least 1 and --seq-len at least 4");
    }
    let cfg = LlamaConfig::tiny(a.vocab, a.hidden, a.layers);
    let m = Llama::random(&cfg, 0, DType::F32, &Device::Cpu)?;
    let mut rng = Rng::new(1);
    let seqs: Vec<Completion> = (0..2 * a.pairs)
        .map(|_| Completion {
            ids: (0..a.seq_len).map(|_| rng.below(a.vocab) as u32).collect(),
            start: a.seq_len / 4,
        })
        .collect();
    let n = (a.seq_len - a.seq_len / 4) as f64;
    let r: Vec<f64> = (0..a.pairs).map(|_| -n * 10.0 + rng.normal()).collect();
    let reference =
        PairLogps::from_vecs(&r, &r, &vec![n; a.pairs], &vec![n; a.pairs], &Device::Cpu)?;
    let mut last = [(0.0, 0.0); 3];
    let mut run_one = |path: Path| -> Result<Measured> {
        measure(a.reps, || {
            last[path as usize] = step(&m, &seqs, &reference, path)?;
            Ok(())
        })
    };
    let chunked = run_one(Path::Chunked)?;
    let full = run_one(Path::Full)?;
    let keep = run_one(Path::FullKeep)?;
    let (lc, lf, lk) = (last[0], last[1], last[2]);
    let peak_ratio = chunked.peak_bytes as f64 / full.peak_bytes.max(1) as f64;
    let speed = full.ms_median / chunked.ms_median;
    let speed_keep = keep.ms_median / chunked.ms_median;
    let v = json!({
        "shape": {"pairs": a.pairs, "seq_len": a.seq_len, "hidden": a.hidden, "layers": a.layers, "vocab": a.vocab},
        "chunked": chunked,
        "full_logits": full,
        "full_logits_to_keep": keep,
        "loss_chunked": lc.0,
        "loss_full": lf.0,
        "loss_full_to_keep": lk.0,
        "grad_norm_chunked": lc.1.sqrt(),
        "grad_norm_full": lf.1.sqrt(),
        "grad_norm_full_to_keep": lk.1.sqrt(),
        "peak_ratio": peak_ratio,
        "peak_ratio_vs_to_keep": chunked.peak_bytes as f64 / keep.peak_bytes.max(1) as f64,
        "speedup": speed,
        "speedup_vs_to_keep": speed_keep,
        "threads": rayon::current_num_threads(),
    });
    if a.json {
        println!("{v}");
        return Ok(());
    }
    let mib = |b: usize| b as f64 / (1u64 << 20) as f64;
    println!(
        "one DPO step, {} pairs × {} tokens, H {}, {} layers, V {} ({} threads):",
        a.pairs,
        a.seq_len,
        a.hidden,
        a.layers,
        a.vocab,
        rayon::current_num_threads()
    );
    println!(
        "  chunked log-probs:             {:.1} ms median, peak {:.0} MiB\n  full logits:                   {:.1} ms median, peak {:.0} MiB\n  full logits, completion only:  {:.1} ms median, peak {:.0} MiB",
        chunked.ms_median,
        mib(chunked.peak_bytes),
        full.ms_median,
        mib(full.peak_bytes),
        keep.ms_median,
        mib(keep.peak_bytes)
    );
    println!(
        "  chunked peak = {:.1}% of full; {:.2}× the full-logits speed; loss {:.6} vs {:.6}, gradient norm {:.6} vs {:.6}",
        100.0 * peak_ratio,
        speed,
        lc.0,
        lf.0,
        lc.1.sqrt(),
        lf.1.sqrt()
    );
    println!(
        "  against logits for the completion only (TRL's use_logits_to_keep): peak {:.1}%, {:.2}× its speed",
        100.0 * chunked.peak_bytes as f64 / keep.peak_bytes.max(1) as f64,
        speed_keep
    );
    Ok(())
}
