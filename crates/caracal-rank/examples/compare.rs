//! Print the comparison table on the simulator:
//! `cargo run -p caracal-rank --example compare`.

fn main() -> caracal_core::Result<()> {
    let cfg = caracal_rank::experiment::CompareConfig::default();
    let rows = caracal_rank::experiment::compare(&cfg)?;
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
