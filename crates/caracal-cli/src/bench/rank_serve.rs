//! `caracal bench rank-serve`: LiGR serving with the history's K/V computed
//! once per request and all candidates scored in one pass, against naive
//! per-candidate recomputation of the whole sequence; same scores to 1e-5.

use super::timing::{measure, median};
use anyhow::{bail, Result};
use caracal_core::Rng;
use caracal_rank::data::{action, Candidate, Event, Post};
use caracal_rank::{CandidateAttention, Ligr, LigrConfig, Ranker, Vocab, Vocabs};
use std::time::Instant;

/// Options of `caracal bench rank-serve`.
#[derive(clap::Args)]
pub struct RankServeBenchArgs {
    /// History events of the member.
    #[arg(long, default_value_t = 1000)]
    pub history: usize,
    /// Candidates to score.
    #[arg(long, default_value_t = 500)]
    pub candidates: usize,
    /// Model width.
    #[arg(long, default_value_t = 32)]
    pub d_model: usize,
    /// LiGR layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Candidate attention: setwise or pointwise.
    #[arg(long, default_value = "setwise")]
    pub mode: String,
    /// Timed repetitions of the cached scorer.
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Candidates recomputed by the naive scorer (evenly spaced; its time is
    /// the median per candidate × all candidates, since every candidate costs
    /// the same full pass); 0 = all of them.
    #[arg(long, default_value_t = 20)]
    pub naive_sample: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run the benchmark.
pub fn run(a: RankServeBenchArgs) -> Result<()> {
    let mode = match a.mode.as_str() {
        "setwise" | "set-wise" => CandidateAttention::SetWise,
        "pointwise" => CandidateAttention::Pointwise,
        m => bail!("--mode must be setwise or pointwise, not `{m}`"),
    };
    if a.candidates == 0 {
        bail!("--candidates must be at least 1");
    }
    let mut rng = Rng::new(11);
    let (items, actors, topics, kinds) = (5000u64, 300u64, 20u64, 3u64);
    let vocabs = Vocabs {
        item: Vocab::build(0..items),
        actor: Vocab::build(0..actors),
        topic: Vocab::build(0..topics),
        kind: Vocab::build(0..kinds),
    };
    let post = |rng: &mut Rng| Post {
        item: rng.below(items as usize) as u64,
        actor: rng.below(actors as usize) as u64,
        topic: rng.below(topics as usize) as u64,
        kind: rng.below(kinds as usize) as u64,
    };
    let history: Vec<Event> = (0..a.history)
        .map(|t| Event {
            post: post(&mut rng),
            action: rng.below(action::COUNT as usize) as u32,
            ts: t as i64,
        })
        .collect();
    let cands: Vec<Candidate> = (0..a.candidates)
        .map(|_| Candidate {
            post: post(&mut rng),
            age: 5.0 * rng.uniform() as f32,
        })
        .collect();
    let model = Ligr::new(
        LigrConfig {
            d_model: a.d_model,
            n_layers: a.layers,
            n_heads: 2,
            ffn_hidden: 2 * a.d_model,
            max_history: a.history.max(1),
            mode,
            ..LigrConfig::default()
        },
        vocabs,
    )?;
    let ranker = Ranker::new(model);
    let mut fast = Vec::new();
    let cached = measure(a.reps, || {
        fast = ranker.score(&history, &cands)?;
        Ok(())
    })?;
    // Naive: each sampled candidate recomputed from scratch.
    let n = a.candidates;
    let k = if a.naive_sample == 0 {
        n
    } else {
        a.naive_sample.min(n)
    };
    let picks: Vec<usize> = (0..k).map(|i| i * n / k).collect();
    let mut per_cand_ms = Vec::with_capacity(k);
    let mut max_abs_diff = 0.0f64;
    for &c in &picks {
        let t = Instant::now();
        let row = ranker.score_naive_at(&history, &cands, c)?;
        per_cand_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for (x, y) in row.iter().zip(&fast[c]) {
            max_abs_diff = max_abs_diff.max((x - y).abs() as f64);
        }
    }
    let naive_ms = per_cand_ms.clone();
    let naive_total = median(&naive_ms) * n as f64;
    let speedup = naive_total / cached.ms_median;
    let identical = max_abs_diff <= 1e-5;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "history": a.history,
                "candidates": a.candidates,
                "d_model": a.d_model,
                "layers": a.layers,
                "mode": a.mode,
                "cached_ms_median": cached.ms_median,
                "cached_ms_all": cached.ms_all,
                "cached_peak_bytes": cached.peak_bytes,
                "naive_ms_estimated": naive_total,
                "naive_ms_per_candidate": naive_ms,
                "naive_candidates_timed": k,
                "speedup": speedup,
                "max_abs_score_diff": max_abs_diff,
                "identical_to_1e-5": identical,
            }))?
        );
    } else {
        println!(
            "LiGR serving, {} history × {} candidates, d={} layers={} {}",
            a.history, a.candidates, a.d_model, a.layers, a.mode
        );
        println!(
            "history K/V cached, one pass   {:>10.2} ms (median of {})",
            cached.ms_median, a.reps
        );
        println!(
            "naive per-candidate recompute  {:>10.2} ms ({} × median of {} timed candidates)",
            naive_total, n, k
        );
        println!("speedup                        {:>10.1}×", speedup);
        println!(
            "max |score difference|         {:>10.2e} ({})",
            max_abs_diff,
            if identical {
                "identical to 1e-5"
            } else {
                "NOT identical to 1e-5"
            }
        );
    }
    if !identical {
        bail!("cached and naive scores differ by {max_abs_diff:.2e} (> 1e-5)");
    }
    Ok(())
}
