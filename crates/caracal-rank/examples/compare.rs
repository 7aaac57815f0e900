//! Print the comparison table on the simulator:
//! `cargo run -p caracal-rank --example compare`.
//!
//! Every model is trained with the same recipe (`CompareConfig::default()`:
//! AdamW 1e-2, batch 32, at most 12 epochs, early stopping with patience 4,
//! item-ID dropout 0.5) on the same members and evaluated on held-out
//! members. DCNv2 reads the candidate's ID features and age plus order-free
//! pooled history features; LiGR reads the history as a sequence.

fn main() -> caracal_core::Result<()> {
    let cfg = caracal_rank::experiment::CompareConfig::default();
    let rows = caracal_rank::experiment::compare(&cfg)?;
    println!(
        "simulator: {} members, {} items, {} topics, history {}, {} sessions × {} candidates, seed {}",
        cfg.sim.members,
        cfg.sim.items,
        cfg.sim.topics,
        cfg.sim.history_len,
        cfg.sim.sessions_per_member,
        cfg.sim.candidates,
        cfg.sim.seed
    );
    println!("| model | params | AUC dwell | AUC contribute | NDCG@5 | distinct actors@5 | distinct topics@5 | ILS@5 | train s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let e = &r.eval;
        println!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} | {:.3} | {} |",
            r.model,
            r.params,
            e.auc[0],
            e.auc[1],
            e.ndcg,
            e.distinct_actors,
            e.distinct_topics,
            e.ils,
            r.train.as_ref().map_or("-".into(), |t| format!(
                "{:.1} ({} ep)",
                t.seconds,
                t.epochs.len()
            ))
        );
    }
    Ok(())
}
