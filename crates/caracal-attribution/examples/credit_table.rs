//! Print the credit-error table of every method on the default simulation:
//! `cargo run -p caracal-attribution --example credit_table`.

use caracal_attribution::budget::back_evaluate;
use caracal_attribution::calibrate::{calibrate, CalibrationConfig};
use caracal_attribution::methods::mmm_targets;
use caracal_attribution::transformer::{fit_transformer, CreditMethod, TransformerConfig};
use caracal_attribution::{fit_methods, simulate, total_variation, Inputs, Method, SimConfig};
use caracal_core::knob;

fn main() -> caracal_core::Result<()> {
    let t0 = std::time::Instant::now();
    let mut cfg = SimConfig::default();
    cfg.seed = knob::env("SEED", cfg.seed)?;
    cfg.population_factor = knob::env("POP", cfg.population_factor)?;
    let sim = simulate(&cfg)?;
    eprintln!("simulated in {:.1}s", t0.elapsed().as_secs_f64());
    let inputs = Inputs {
        journeys: &sim.journeys,
        aggregates: Some(&sim.aggregates),
        macros: Some(&sim.macros),
    };
    let methods: Vec<Method> = match std::env::var("METHODS") {
        Ok(v) => v
            .split(',')
            .map(Method::parse)
            .collect::<caracal_core::Result<_>>()?,
        Err(_) => Method::all(),
    };
    let mut tcfg = TransformerConfig::default();
    tcfg.epochs = knob::env("EPOCHS", tcfg.epochs)?;
    tcfg.lr = knob::env("LR", tcfg.lr)?;
    let res = fit_methods(&methods, &inputs, &tcfg, 0, 1)?;
    eprintln!("fitted in {:.1}s", t0.elapsed().as_secs_f64());
    println!(
        "true shares: {:?}",
        sim.true_shares
            .iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "true incremental: {:?}",
        sim.true_incremental
            .iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
    );
    println!("| method | credit error (TV) | AUC | log-loss | back-eval lift |");
    println!("|---|---|---|---|---|");
    for r in &res {
        let tv = total_variation(&r.shares, &sim.true_shares)?;
        let be = back_evaluate(&sim, &r.shares)?;
        println!(
            "| {} | {:.3} | {} | {} | {:+.2}% | {:?}",
            r.method,
            tv,
            r.auc.map_or("".into(), |a| format!("{a:.3}")),
            r.log_loss.map_or("".into(), |a| format!("{a:.4}")),
            100.0 * be.lift,
            r.shares
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
        );
        if let Some(f) = &r.fit {
            eprintln!(
                "  loss {:?} calib {:?}",
                f.train_loss
                    .iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>(),
                f.calib_loss
                    .iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
            );
        }
    }
    // The experimental tied combination (`calibrate`): the uncalibrated
    // model's leave-one-out credit, with balanced channels tied to one MMM
    // scale. Off the default path; see the README's seed table.
    if std::env::var("NO_TIED").is_err() {
        let (model, _) = fit_transformer(&sim.journeys, &tcfg, None)?;
        let (per, _) = model.credit(&sim.journeys, CreditMethod::LeaveOneOut)?;
        let (mmm, _, _) = mmm_targets(&inputs)?;
        let cal = calibrate(&per, &sim.journeys, &mmm, &CalibrationConfig::default())?;
        let shares = caracal_attribution::data::normalize(&cal.combined);
        let tv = total_variation(&shares, &sim.true_shares)?;
        let be = back_evaluate(&sim, &shares)?;
        println!(
            "| transformer + tied MMM (experimental) | {tv:.3} | | | {:+.2}% | {:?}",
            100.0 * be.lift,
            shares.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>()
        );
        eprintln!(
            "  imbalance {:?} tied {:?} lr {:?}",
            cal.imbalance, cal.tied, cal.tie_statistic
        );
    }
    let be = back_evaluate(&sim, &sim.true_shares)?;
    println!("| (true shares) | 0 | | | {:+.2}% |", 100.0 * be.lift);
    eprintln!("total {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}
