//! The AlphaPO study's tour section (`caracal align study --scale tour`).

use anyhow::Result;
use caracal_align::alpha_study::{run_alpha_study, AlphaStudyConfig};
use serde_json::json;

/// DPO, SimPO and AlphaPO (α = 0.25) on on-policy pairs in the synthetic
/// world, one seed, scored by the gold reward.
pub fn tour(r: &mut crate::report::Report) -> Result<()> {
    use crate::report::table;
    let cfg = AlphaStudyConfig::tour();
    let rep = run_alpha_study(&cfg, |m| eprintln!("  {m}"))?;
    let mut rows = Vec::new();
    let mut summary = serde_json::Map::new();
    for m in &rep.summary {
        rows.push(vec![
            m.method.clone(),
            format!("{:.3}", m.win_rate.mean),
            format!("{:.3}", m.gold.mean),
            format!("{:.2}", m.kl.mean),
            format!("{:+.3}", m.chosen_change.mean),
            format!("{:+.3}", m.rejected_change.mean),
        ]);
        summary.insert(format!("{}_win_rate", m.method), json!(m.win_rate.mean));
        summary.insert(
            format!("{}_chosen_loglik_change", m.method),
            json!(m.chosen_change.mean),
        );
    }
    let header = [
        "method",
        "gold win rate vs SFT",
        "mean gold reward",
        "KL to SFT (nats/sequence)",
        "Δ log-lik/token, chosen",
        "Δ log-lik/token, rejected",
    ];
    let pairs = rep.pairs.first().map_or(0, |p| p.train);
    let html = format!(
        "<p>Direct alignment on on-policy pairs (SimPO's protocol, as in the AlphaPO paper): a {h}×{l} Llama \
         pretrained on the synthetic world's text is the SFT policy (gold reward {g:.3}); {k} samples for each of \
         {n} training prompts, the best and worst by the gold reward form {pairs} pairs; one epoch of each loss \
         (DPO β = 0.1; SimPO and AlphaPO β = 2.5, γ = 0.25), one seed. Win rate: the policy's sample against the \
         SFT policy's on {e} held-out prompts × {s} (gold reward, ties ½). Δ log-lik: change of the mean per-token \
         log-likelihood of held-out chosen and rejected responses over training (negative: likelihood \
         displacement). Study time {t:.1} s. The full study (5 methods × 5 seeds): <code>caracal align study</code>; \
         this setting: <code>caracal align study --scale tour</code>.</p>{tab}",
        h = cfg.study.hidden,
        l = cfg.study.layers,
        g = rep.sft_gold,
        k = cfg.k,
        n = cfg.train_prompts,
        e = cfg.eval_prompts,
        s = cfg.eval_samples,
        t = rep.seconds,
        tab = table(&header, &rows)
    );
    summary.insert("sft_gold".into(), json!(rep.sft_gold));
    summary.insert("seconds".into(), json!(rep.seconds));
    r.add(
        "alphapo",
        "DPO, SimPO and AlphaPO on on-policy pairs (caracal-align)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
