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

/// One DPO step; returns the loss and the squared gradient norm.
fn step(m: &Llama, seqs: &[Completion], reference: &PairLogps, full: bool) -> Result<(f64, f64)> {
    let refs: Vec<&Completion> = seqs.iter().collect();
    let (ids, tgt, lens) = batch_targets(&refs, 0, m.device())?;
    let lp = if full {
        m.token_logps_full(&ids, &tgt, IGNORE)?
    } else {
        m.token_logps(&ids, &tgt, IGNORE)?
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
    let mut last = [(0.0, 0.0); 2];
    let mut run_one = |full: bool| -> Result<Measured> {
        measure(a.reps, || {
            last[full as usize] = step(&m, &seqs, &reference, full)?;
            Ok(())
        })
    };
    let chunked = run_one(false)?;
    let full = run_one(true)?;
    let (lc, lf) = (last[0], last[1]);
    let peak_ratio = chunked.peak_bytes as f64 / full.peak_bytes.max(1) as f64;
    let speed = full.ms_median / chunked.ms_median;
    let v = json!({
        "shape": {"pairs": a.pairs, "seq_len": a.seq_len, "hidden": a.hidden, "layers": a.layers, "vocab": a.vocab},
        "chunked": chunked,
        "full_logits": full,
        "loss_chunked": lc.0,
        "loss_full": lf.0,
        "grad_norm_chunked": lc.1.sqrt(),
        "grad_norm_full": lf.1.sqrt(),
        "peak_ratio": peak_ratio,
        "speedup": speed,
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
        "  chunked log-probs: {:.1} ms median, peak {:.0} MiB\n  full logits:       {:.1} ms median, peak {:.0} MiB",
        chunked.ms_median,
        mib(chunked.peak_bytes),
        full.ms_median,
        mib(full.peak_bytes)
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
    Ok(())
}
