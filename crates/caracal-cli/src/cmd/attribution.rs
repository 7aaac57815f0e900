//! `caracal attribution`: simulate journeys with known credit, fit
//! attribution methods (caracal-attribution), Markov removal effects.

use crate::report::{bar_chart, table, Report};
use anyhow::{Context, Result};
use caracal_attribution::budget::back_evaluate;
use caracal_attribution::markov::markov_attribution;
use caracal_attribution::read::{
    read_aggregates, read_journeys, read_macro, read_paths, JourneyOptions,
};
use caracal_attribution::transformer::TransformerConfig;
use caracal_attribution::{
    fit_methods, simulate, total_variation, Inputs, Method, MethodResult, SimConfig, Simulation,
};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Subcommands of `caracal attribution`.
#[derive(clap::Subcommand)]
pub enum AttributionCmd {
    /// Simulate journeys, aggregates and macro factors with known true
    /// channel credit, and write them as CSV (plus truth.json).
    Simulate {
        /// Output folder (created if missing).
        #[arg(long, default_value = "attribution-sim")]
        out: PathBuf,
        /// Tracked members (journeys); the aggregates cover 40× as many.
        #[arg(long, default_value_t = 4000)]
        members: usize,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print the true shares as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fit an attribution method to journeys (or to a simulated data set
    /// when no --journeys is given, then also report the credit error).
    Fit {
        /// Touches, CSV or Parquet (`.parquet`): member, ts (days or `YYYY-MM-DD[THH:MM:SS]`), channel,
        /// optional campaign, other numeric columns as member features.
        /// (Parquet is not supported yet.)
        #[arg(long, requires = "conversions")]
        journeys: Option<PathBuf>,
        /// Conversions, CSV or Parquet: member, ts, optional value.
        #[arg(long)]
        conversions: Option<PathBuf>,
        /// Daily channel aggregates, CSV or Parquet: day, channel, spend.
        #[arg(long, requires = "macro_file")]
        aggregates: Option<PathBuf>,
        /// Daily macro factors, CSV or Parquet: day, covariates...; a `conversions`
        /// column is the daily KPI the MMM models.
        #[arg(long = "macro")]
        macro_file: Option<PathBuf>,
        /// transformer, transformer-attention, transformer-calibrated,
        /// transformer-calibrated-attention, mmm, markov-1/2/3, shapley,
        /// ordered-shapley, logistic, first-touch, last-touch, linear,
        /// time-decay, u-shaped, or `all` (default: transformer-calibrated
        /// when aggregates are given or simulated, else transformer).
        #[arg(long)]
        method: Option<String>,
        /// Bootstrap replicates for 95% intervals on the shares (0: none).
        #[arg(long, default_value_t = 100)]
        bootstrap: usize,
        /// Transformer methods: retrain the model (the whole calibration
        /// pipeline) on every bootstrap replicate, instead of resampling the
        /// fitted model's per-journey credit. Slow: one full fit per replicate.
        #[arg(long)]
        bootstrap_refit: bool,
        /// Training epochs of the transformer.
        #[arg(long, default_value_t = 8)]
        epochs: usize,
        /// Weight β of the calibration loss.
        #[arg(long, default_value_t = 1.0)]
        beta: f64,
        /// Seed (simulation, training, bootstrap).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Markov removal effects (closed form) on aggregated paths
    /// `path;total_conversions;total_conversion_value;total_null`
    /// (or on simulated paths when no --paths is given).
    Markov {
        /// Paths CSV (`;` or `,` separated, steps separated by `>`).
        #[arg(long)]
        paths: Option<PathBuf>,
        /// Order of the chain (1 to 3 are typical).
        #[arg(long, default_value_t = 1)]
        order: usize,
        /// Print JSON: per channel removal_effect, conversions, value.
        #[arg(long)]
        json: bool,
    },
}

/// Run `caracal attribution ...`.
pub fn run(c: AttributionCmd) -> Result<()> {
    match c {
        AttributionCmd::Simulate {
            out,
            members,
            seed,
            json,
        } => {
            let sim = simulate(&SimConfig {
                n_members: members,
                seed,
                ..Default::default()
            })?;
            write_simulation(&sim, &out)?;
            let truth = truth_json(&sim);
            if json {
                println!("{}", serde_json::to_string_pretty(&truth)?);
            } else {
                println!(
                    "wrote {} journeys ({} conversions) to {}",
                    sim.journeys.journeys.len(),
                    sim.journeys.n_conversions(),
                    out.display()
                );
                for (c, s) in sim.journeys.channels.iter().zip(&sim.true_shares) {
                    println!("  true share {c:>10}: {s:.3}");
                }
            }
            Ok(())
        }
        AttributionCmd::Fit {
            journeys,
            conversions,
            aggregates,
            macro_file,
            method,
            bootstrap,
            bootstrap_refit,
            epochs,
            beta,
            seed,
            json,
        } => fit(FitArgs {
            journeys,
            conversions,
            aggregates,
            macro_file,
            method,
            bootstrap,
            bootstrap_refit,
            epochs,
            beta,
            seed,
            json,
        }),
        AttributionCmd::Markov { paths, order, json } => {
            let p = match &paths {
                Some(f) => read_paths(f)?,
                None => simulate(&SimConfig::default())?.journeys.to_paths(),
            };
            let m = markov_attribution(&p, order)?;
            if json {
                let chans: Vec<Value> = p
                    .channels
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        json!({"channel": c, "removal_effect": m.removal_effect[i],
                               "conversions": m.credit.conversions[i], "value": m.credit.value[i]})
                    })
                    .collect();
                let o = json!({"order": order, "states": m.n_states, "p_conversion": m.p_conversion,
                               "total_conversions": p.total_conversions(), "total_value": p.total_value(),
                               "channels": chans});
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                println!(
                    "order-{order} Markov chain: {} states, P(conversion) = {:.4}",
                    m.n_states, m.p_conversion
                );
                println!(
                    "{:>12} {:>14} {:>12} {:>12}",
                    "channel", "removal effect", "conversions", "value"
                );
                for (i, c) in p.channels.iter().enumerate() {
                    println!(
                        "{c:>12} {:>14.4} {:>12.2} {:>12.2}",
                        m.removal_effect[i], m.credit.conversions[i], m.credit.value[i]
                    );
                }
            }
            Ok(())
        }
    }
}

struct FitArgs {
    journeys: Option<PathBuf>,
    conversions: Option<PathBuf>,
    aggregates: Option<PathBuf>,
    macro_file: Option<PathBuf>,
    method: Option<String>,
    bootstrap: usize,
    bootstrap_refit: bool,
    epochs: usize,
    beta: f64,
    seed: u64,
    json: bool,
}

fn fit(a: FitArgs) -> Result<()> {
    let tcfg = TransformerConfig {
        epochs: a.epochs,
        beta: a.beta,
        seed: a.seed,
        bootstrap_refit: a.bootstrap_refit,
        ..Default::default()
    };
    let (sim, data, aggr, mac, warnings) = match (&a.journeys, &a.conversions) {
        (Some(j), Some(c)) => {
            let (data, rep) = read_journeys(j, c, &JourneyOptions::default())?;
            let aggr = a.aggregates.as_ref().map(read_aggregates).transpose()?;
            let mac = a.macro_file.as_ref().map(read_macro).transpose()?;
            (None, data, aggr, mac, rep.warnings())
        }
        _ => {
            let sim = simulate(&SimConfig {
                seed: a.seed,
                ..Default::default()
            })?;
            let (d, g, m) = (
                sim.journeys.clone(),
                sim.aggregates.clone(),
                sim.macros.clone(),
            );
            (Some(sim), d, Some(g), Some(m), Vec::new())
        }
    };
    let has_aggr = aggr.is_some() && mac.is_some();
    let methods: Vec<Method> = match a.method.as_deref() {
        Some("all") => Method::all()
            .into_iter()
            .filter(|m| {
                has_aggr || !matches!(m.name().as_str(), "mmm") && !m.name().contains("calibrated")
            })
            .collect(),
        Some(s) => vec![Method::parse(s)?],
        None if has_aggr => vec![Method::parse("transformer-calibrated")?],
        None => vec![Method::parse("transformer")?],
    };
    let inputs = Inputs {
        journeys: &data,
        aggregates: aggr.as_ref(),
        macros: mac.as_ref(),
    };
    let mut notes = warnings;
    if let Some(g) = &aggr {
        let extra: Vec<&String> = g
            .channels
            .iter()
            .filter(|c| !data.channels.contains(c))
            .collect();
        if !extra.is_empty() {
            notes.push(format!(
                "aggregate channels absent from the journeys (modelled by the MMM, not calibrated against): {}",
                extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let res = fit_methods(&methods, &inputs, &tcfg, a.bootstrap, a.seed)?;
    if a.json {
        let rows: Vec<Value> = res.iter().map(|r| result_json(r, sim.as_ref())).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"channels": data.channels, "warnings": notes, "methods": rows})
            )?
        );
        return Ok(());
    }
    for n in &notes {
        eprintln!("warning: {n}");
    }
    for r in &res {
        println!("{}:", r.method);
        if let (Some(auc), Some(ll)) = (r.auc, r.log_loss) {
            println!("  held-out conversion AUC {auc:.3}, log-loss {ll:.4} nats");
        }
        for (i, c) in data.channels.iter().enumerate() {
            let iv = r
                .intervals
                .as_ref()
                .map(|v| format!(" [{:.3}, {:.3}]", v.lower[i], v.upper[i]))
                .unwrap_or_default();
            println!(
                "  {c:>12}: share {:.3}{iv}, conversions {:.1}, value {:.1}",
                r.shares[i], r.credit.conversions[i], r.credit.value[i]
            );
        }
        if let Some(s) = &sim {
            println!(
                "  credit error vs true shares (TV): {:.3}",
                total_variation(&r.shares, &s.true_shares)?
            );
        }
    }
    Ok(())
}

fn result_json(r: &MethodResult, sim: Option<&Simulation>) -> Value {
    let tv = sim.and_then(|s| total_variation(&r.shares, &s.true_shares).ok());
    json!({"method": r.method, "shares": r.shares, "conversions": r.credit.conversions,
           "value": r.credit.value, "intervals": r.intervals, "auc": r.auc,
           "log_loss_nats": r.log_loss, "credit_error_tv": tv})
}

fn truth_json(sim: &Simulation) -> Value {
    json!({"channels": sim.journeys.channels, "true_shares": sim.true_shares,
           "true_incremental_conversions": sim.true_incremental,
           "expected_conversions": sim.expected_conversions, "config": sim.config})
}

fn write_simulation(sim: &Simulation, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let j = &sim.journeys;
    let mut touches = String::from("member,ts,channel,campaign,propensity_proxy\n");
    let mut conv = String::from("member,ts,value\n");
    let mut paths = String::from("path;total_conversions;total_conversion_value;total_null\n");
    for m in &j.journeys {
        for t in &m.touches {
            writeln!(
                touches,
                "{},{:.4},{},{},{}",
                m.member, t.time, j.channels[t.channel], j.campaigns[t.campaign], m.features[0]
            )?;
        }
        if m.converted {
            writeln!(conv, "{},{},{}", m.member, m.end, m.value)?;
        }
    }
    for r in &j.to_paths().rows {
        let p: Vec<&str> = r.steps.iter().map(|&c| j.channels[c].as_str()).collect();
        writeln!(
            paths,
            "{};{};{};{}",
            p.join(" > "),
            r.conversions,
            r.value,
            r.nulls
        )?;
    }
    let mut aggr = String::from("day,channel,spend\n");
    for (c, s) in sim.aggregates.spend.iter().enumerate() {
        for (d, v) in s.iter().enumerate() {
            writeln!(aggr, "{},{},{}", d, sim.aggregates.channels[c], v)?;
        }
    }
    let mut mac = String::from("day,conversions,consumer_index\n");
    let kpi = sim.macros.conversions.clone().unwrap_or_default();
    for (d, (k, m)) in kpi.iter().zip(&sim.macros.values[0]).enumerate() {
        writeln!(mac, "{d},{k},{m}")?;
    }
    for (name, text) in [
        ("journeys.csv", touches),
        ("conversions.csv", conv),
        ("paths.csv", paths),
        ("aggregates.csv", aggr),
        ("macro.csv", mac),
        (
            "truth.json",
            serde_json::to_string_pretty(&truth_json(sim))?,
        ),
    ] {
        caracal_core::write_atomic(out.join(name), text.as_bytes())
            .with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

/// The tour's attribution section: simulate, fit every method, tabulate
/// the credit error against the known truth and back-evaluate budgets.
pub fn tour(r: &mut Report) -> Result<()> {
    let t0 = Instant::now();
    let sim = simulate(&SimConfig::default())?;
    let inputs = Inputs {
        journeys: &sim.journeys,
        aggregates: Some(&sim.aggregates),
        macros: Some(&sim.macros),
    };
    let res = fit_methods(&Method::all(), &inputs, &TransformerConfig::default(), 0, 1)?;
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    let mut summary = serde_json::Map::new();
    for m in &res {
        let tv = total_variation(&m.shares, &sim.true_shares)?;
        let be = back_evaluate(&sim, &m.shares)?;
        rows.push(vec![
            m.method.clone(),
            format!("{tv:.3}"),
            m.auc.map_or(String::new(), |a| format!("{a:.3}")),
            m.log_loss.map_or(String::new(), |a| format!("{a:.4}")),
            format!("{:+.1}%", 100.0 * be.lift),
        ]);
        bars.push((m.method.clone(), tv));
        summary.insert(m.method.clone(), json!(tv));
    }
    let best = bars
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let truth: Vec<String> = sim
        .journeys
        .channels
        .iter()
        .zip(&sim.true_shares)
        .map(|(c, s)| format!("{c} {s:.3}"))
        .collect();
    let html = format!(
        "<p>Simulated {} journeys ({} conversions) with confounded targeting; true channel shares: {}. \
         Credit error is the total-variation distance between estimated and true shares (lower is better); \
         back-evaluation moves the spend in proportion to each method's credit and counts expected conversions.</p>{}{}",
        sim.journeys.journeys.len(),
        sim.journeys.n_conversions(),
        truth.join(", "),
        table(&["method", "credit error (TV)", "AUC", "log-loss (nats)", "back-eval lift"], &rows),
        bar_chart("Credit error by method", "total variation", &bars)?,
    );
    r.add(
        "attribution",
        "Data-driven attribution (LiDDA)",
        html,
        json!({
            "credit_error_tv": summary,
            "best_method": best,
            "seconds": t0.elapsed().as_secs_f64(),
            "units": {"credit_error_tv": "total variation distance (0–1)", "seconds": "seconds"}
        }),
    );
    Ok(())
}
