//! `caracal rank`: LiGR transformer ranking (caracal-rank): simulate a feed,
//! train, evaluate, compare with DCNv2 and the ablations, scaling sweep.

use crate::report::{self, Report, Series};
use anyhow::{bail, Context, Result};
use caracal_rank::experiment::{compare, CompareConfig, CompareRow};
use caracal_rank::scaling::{sweep, ScalingReport, Sweep};
use caracal_rank::{
    evaluate, predict, simulate, train, CandidateAttention, Dcn, DcnConfig, EvalReport, Feed, Ligr,
    LigrConfig, LossKind, Scorer, SimConfig, TrainConfig, Vocabs,
};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Subcommands of `caracal rank`.
#[derive(clap::Subcommand)]
pub enum RankCmd {
    /// Simulate a feed with known ground truth and write it as CSV.
    Simulate(SimArgs),
    /// Train LiGR (or DCNv2) on a feed folder; writes model.json and train.jsonl.
    Train(TrainArgs),
    /// Evaluate a trained model: AUC per task, NDCG@k, diversity of the top k.
    Eval(EvalArgs),
    /// LiGR vs its ablations and DCNv2 on the simulator: one table.
    Compare(CompareArgs),
    /// Sweep layers, width and history length; fit AUC against log compute.
    Scaling(ScalingArgs),
}

/// Simulator sizes shared by several subcommands.
#[derive(clap::Args, Debug, Clone)]
pub struct SimOpts {
    /// Members to simulate.
    #[arg(long, default_value_t = 1500)]
    pub members: usize,
    /// Distinct posts.
    #[arg(long, default_value_t = 300)]
    pub items: usize,
    /// History events per member.
    #[arg(long, default_value_t = 20)]
    pub history: usize,
    /// Ranked sessions per member.
    #[arg(long, default_value_t = 3)]
    pub sessions: usize,
    /// Candidates per session.
    #[arg(long, default_value_t = 10)]
    pub candidates: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

impl SimOpts {
    fn config(&self) -> SimConfig {
        SimConfig {
            members: self.members,
            items: self.items,
            history_len: self.history,
            sessions_per_member: self.sessions,
            candidates: self.candidates,
            seed: self.seed,
            ..SimConfig::default()
        }
    }
}

/// Options of `caracal rank simulate`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Folder to write members.csv, history.csv and sessions.csv into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sim: SimOpts,
}

/// Options of `caracal rank train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Feed folder (history, sessions with label_* columns, optional members; each `.parquet` or `.csv`); default: a simulated feed.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Output folder for model.json (best checkpoint), train.jsonl and train_state.json.
    #[arg(long, value_name = "DIR", default_value = "rank-model")]
    pub out: PathBuf,
    /// Continue the run in --out from its last finished epoch (train_state.json); pass the same options.
    #[arg(long)]
    pub resume: bool,
    /// ligr or dcnv2.
    #[arg(long, default_value = "ligr")]
    pub model: String,
    /// Candidates see only themselves (no set-wise attention).
    #[arg(long)]
    pub pointwise: bool,
    /// Ignore the member history (ablation).
    #[arg(long)]
    pub no_history: bool,
    /// Loss: pointwise (BCE), listwise (softmax) or both.
    #[arg(long, default_value = "both")]
    pub loss: String,
    /// Model width.
    #[arg(long, default_value_t = 24)]
    pub d_model: usize,
    /// LiGR layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 2)]
    pub heads: usize,
    /// Longest history read.
    #[arg(long, default_value_t = 20)]
    pub max_history: usize,
    /// Most epochs.
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation AUC.
    #[arg(long, default_value_t = 4)]
    pub patience: usize,
    /// Probability of replacing a training token's item id by the unseen-id row.
    #[arg(long, default_value_t = 0.5)]
    pub item_dropout: f64,
    /// Sessions per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 5e-3)]
    pub lr: f64,
    /// Fraction of members held out for validation (early stopping).
    #[arg(long, default_value_t = 0.15)]
    pub valid: f64,
    /// Seed of initialization, the validation split and shuffling (`--seed`
    /// is the simulator's).
    #[arg(id = "train_seed", long = "train-seed", default_value_t = 1)]
    pub seed: u64,
    /// Simulator sizes when --data is absent.
    #[command(flatten)]
    pub sim: SimOpts,
}

/// Options of `caracal rank eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Feed folder with labels.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// A model.json written by `caracal rank train`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Cut-off of NDCG and diversity.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `caracal rank compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Most epochs per model.
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sim: SimOpts,
}

/// Options of `caracal rank scaling`.
#[derive(clap::Args, Debug)]
pub struct ScalingArgs {
    /// Most epochs per configuration.
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    /// Write the chart and points here (index.html, summary.json).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sim: SimOpts,
}

fn loss_kind(s: &str) -> Result<LossKind> {
    Ok(match s {
        "pointwise" | "bce" => LossKind::Pointwise,
        "listwise" | "softmax" => LossKind::Listwise,
        "both" => LossKind::Both {
            listwise_weight: 1.0,
        },
        _ => bail!("--loss must be pointwise, listwise or both, not `{s}`"),
    })
}

fn load_model(path: &PathBuf) -> Result<Box<dyn Scorer>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(match v["model"].as_str() {
        Some("ligr") => Box::new(Ligr::from_checkpoint(&v)?),
        Some("dcnv2") => Box::new(Dcn::from_checkpoint(&v)?),
        _ => bail!(
            "{} is not a model written by `caracal rank train`",
            path.display()
        ),
    })
}

fn eval_json(e: &EvalReport) -> Value {
    let auc: serde_json::Map<String, Value> = e
        .tasks
        .iter()
        .zip(&e.auc)
        .map(|(t, a)| (t.clone(), json!(a)))
        .collect();
    json!({
        "auc": auc,
        "ndcg_at_k": e.ndcg,
        "k": e.k,
        "distinct_actors_at_k": e.distinct_actors,
        "distinct_topics_at_k": e.distinct_topics,
        "intra_list_similarity_at_k": e.ils,
        "sessions": e.sessions,
    })
}

fn print_eval(e: &EvalReport) {
    for (t, a) in e.tasks.iter().zip(&e.auc) {
        println!("AUC {t:<12} {a:.4}");
    }
    println!("NDCG@{}          {:.4}", e.k, e.ndcg);
    println!(
        "distinct actors@{} {:.2} (of {})",
        e.k, e.distinct_actors, e.k
    );
    println!(
        "distinct topics@{} {:.2} (of {})",
        e.k, e.distinct_topics, e.k
    );
    println!(
        "intra-list sim@{} {:.3} (lower is more diverse)",
        e.k, e.ils
    );
}

/// Run `caracal rank ...`.
pub fn run(c: RankCmd) -> Result<()> {
    match c {
        RankCmd::Simulate(a) => {
            let feed = simulate(&a.sim.config())?;
            feed.write_csv(&a.out)?;
            let cands: usize = feed.sessions.iter().map(|s| s.candidates.len()).sum();
            println!(
                "wrote {} members, {} history events, {} sessions ({} candidates) to {}",
                feed.members.len(),
                feed.history.values().map(Vec::len).sum::<usize>(),
                feed.sessions.len(),
                cands,
                a.out.display()
            );
            Ok(())
        }
        RankCmd::Train(a) => run_train(a),
        RankCmd::Eval(a) => {
            let feed = Feed::read_csv(&a.data)?;
            let m = load_model(&a.model)?;
            let e = evaluate(&feed, &predict(m.as_ref(), &feed, 256)?, a.k)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&eval_json(&e))?);
            } else {
                println!("{} on {} sessions", m.name(), e.sessions);
                print_eval(&e);
            }
            Ok(())
        }
        RankCmd::Compare(a) => {
            let base = CompareConfig::default();
            let sim = a.sim.config();
            let rows = compare(&CompareConfig {
                ligr: LigrConfig {
                    max_history: sim.history_len,
                    ..base.ligr.clone()
                },
                dcn: DcnConfig {
                    max_history: sim.history_len,
                    ..base.dcn.clone()
                },
                train: TrainConfig {
                    epochs: a.epochs,
                    ..base.train.clone()
                },
                sim,
                ..base
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", markdown_table(&rows));
            }
            Ok(())
        }
        RankCmd::Scaling(a) => {
            let rep = run_scaling(&a.sim.config(), a.epochs, !a.json)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                println!(
                    "AUC = {:.4} + {:.4} · log10(FLOPs)",
                    rep.intercept, rep.slope_per_decade
                );
            }
            if let Some(dir) = a.report {
                let mut r = Report::new(&dir);
                let html = scaling_html(&rep)?;
                r.add("rank", "LiGR scaling", html, serde_json::to_value(&rep)?);
                r.write()?;
                println!("wrote {}", dir.join("index.html").display());
            }
            Ok(())
        }
    }
}

fn run_train(a: TrainArgs) -> Result<()> {
    let feed = match &a.data {
        Some(d) => Feed::read_csv(d)?,
        None => simulate(&a.sim.config())?,
    };
    feed.ensure_labeled()?;
    let (tr, va, _) = feed.split_by_member(1.0 - a.valid, a.valid, a.seed)?;
    let vocabs = Vocabs::from_feed(&tr);
    let tcfg = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        loss: loss_kind(&a.loss)?,
        patience: a.patience,
        item_dropout: a.item_dropout,
        seed: a.seed,
        checkpoint: Some(a.out.join("model.json")),
        log: Some(a.out.join("train.jsonl")),
        state: Some(a.out.join("train_state.json")),
        resume: a.resume,
        ..TrainConfig::default()
    };
    let model: Box<dyn Scorer> = match a.model.as_str() {
        "ligr" => Box::new(Ligr::new(
            LigrConfig {
                d_model: a.d_model,
                n_layers: a.layers,
                n_heads: a.heads,
                ffn_hidden: 2 * a.d_model,
                max_history: a.max_history,
                n_tasks: feed.tasks.len(),
                mode: if a.pointwise {
                    CandidateAttention::Pointwise
                } else {
                    CandidateAttention::SetWise
                },
                use_history: !a.no_history,
                seed: a.seed,
            },
            vocabs,
        )?),
        "dcnv2" | "dcn" => Box::new(Dcn::new(
            DcnConfig {
                max_history: a.max_history,
                n_tasks: feed.tasks.len(),
                seed: a.seed,
                ..DcnConfig::default()
            },
            vocabs,
        )?),
        m => bail!("--model must be ligr or dcnv2, not `{m}`"),
    };
    if !a.resume {
        // A new run: the log and the state of an earlier one go.
        for f in ["train.jsonl", "train_state.json"] {
            let p = a.out.join(f);
            if p.exists() {
                std::fs::remove_file(&p)?;
            }
        }
    }
    let rep = train(model.as_ref(), &tr, &va, &tcfg)?;
    for e in &rep.epochs {
        println!(
            "epoch {:>2}  loss {:.4}  valid AUC {:.4}  ({:.1} s)",
            e.epoch, e.train_loss, e.valid_auc, e.seconds
        );
    }
    println!(
        "{}: best epoch {} (valid AUC {:.4}); wrote {}",
        rep.model,
        rep.best_epoch,
        rep.best_valid_auc,
        a.out.join("model.json").display()
    );
    Ok(())
}

fn run_scaling(sim: &SimConfig, epochs: usize, verbose: bool) -> Result<ScalingReport> {
    let base = LigrConfig {
        d_model: 16,
        ffn_hidden: 32,
        n_layers: 2,
        max_history: 12,
        ..LigrConfig::default()
    };
    let tcfg = TrainConfig {
        epochs,
        patience: 2,
        ..TrainConfig::default()
    };
    Ok(sweep(sim, &base, &tcfg, &Sweep::default(), |p| {
        if verbose {
            println!(
                "{:<8} layers {} width {:>2} history {:>2}  dense params {:>6}  FLOPs {:.2e}  AUC {:.4}  ({:.1} s)",
                p.axis, p.n_layers, p.d_model, p.max_history, p.dense_params, p.flops, p.auc, p.seconds
            );
        }
    })?)
}

fn scaling_html(rep: &ScalingReport) -> Result<String> {
    let mut series = Vec::new();
    for axis in ["layers", "width", "history"] {
        let mut pts: Vec<(f64, f64)> = rep
            .points
            .iter()
            .filter(|p| p.axis == axis)
            .map(|p| (p.flops.log10(), p.auc))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push((axis, pts));
    }
    let xs: Vec<f64> = rep.points.iter().map(|p| p.flops.log10()).collect();
    let (x0, x1) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let fit = vec![
        (x0, rep.intercept + rep.slope_per_decade * x0),
        (x1, rep.intercept + rep.slope_per_decade * x1),
    ];
    let mut s: Vec<Series> = series
        .iter()
        .map(|(n, p)| Series {
            name: n,
            points: p.clone(),
        })
        .collect();
    s.push(Series {
        name: "fit",
        points: fit,
    });
    let chart = report::line_chart(
        "LiGR test AUC vs training compute",
        "log10 FLOPs",
        "mean AUC",
        &s,
        false,
    )?;
    let rows: Vec<Vec<String>> = rep
        .points
        .iter()
        .map(|p| {
            vec![
                p.axis.clone(),
                p.n_layers.to_string(),
                p.d_model.to_string(),
                p.max_history.to_string(),
                p.dense_params.to_string(),
                format!("{:.2e}", p.flops),
                format!("{:.4}", p.auc),
            ]
        })
        .collect();
    Ok(format!(
        "<p>AUC = {:.4} + {:.4} · log10(FLOPs) ({:+.4} AUC per 10× compute; the paper reports ≈ +0.015).</p>{}{}",
        rep.intercept,
        rep.slope_per_decade,
        rep.slope_per_decade,
        chart,
        report::table(&["axis", "layers", "width", "history", "dense params", "FLOPs", "AUC"], &rows)
    ))
}

fn table_rows(rows: &[CompareRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            let e = &r.eval;
            vec![
                r.model.clone(),
                r.params.to_string(),
                format!("{:.4}", e.auc.first().copied().unwrap_or(f64::NAN)),
                format!("{:.4}", e.auc.get(1).copied().unwrap_or(f64::NAN)),
                format!("{:.4}", e.ndcg),
                format!("{:.2}", e.distinct_actors),
                format!("{:.2}", e.distinct_topics),
                format!("{:.3}", e.ils),
                r.train.as_ref().map_or("-".into(), |t| {
                    format!("{:.1} s, {} ep", t.seconds, t.epochs.len())
                }),
            ]
        })
        .collect()
}

const HEADER: [&str; 9] = [
    "model",
    "params",
    "AUC dwell",
    "AUC contribute",
    "NDCG@5",
    "distinct actors@5",
    "distinct topics@5",
    "ILS@5",
    "training",
];

fn markdown_table(rows: &[CompareRow]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for r in table_rows(rows) {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// The tour's rank section: a small simulated feed, LiGR (set-wise,
/// pointwise, no history) and DCNv2 trained briefly, one table.
pub fn tour(r: &mut Report) -> Result<()> {
    let cfg = CompareConfig {
        train: TrainConfig {
            epochs: 8,
            ..CompareConfig::default().train
        },
        ..CompareConfig::default()
    };
    let rows = compare(&cfg)?;
    let html = format!(
        "<p>Simulated feed: {} members, {} candidates per session, diminishing returns for repeated actors and topics \
         within a session; test = held-out members. AUC per task, NDCG@5 on dwell+contribution labels, diversity of the top 5 \
         (ILS: intra-list similarity, lower is more diverse).</p>{}",
        cfg.sim.members,
        cfg.sim.candidates,
        report::table(&HEADER, &table_rows(&rows))
    );
    let by = |name: &str| rows.iter().find(|r| r.model == name);
    let summary = json!({
        "models": rows.iter().map(|r| json!({
            "model": r.model,
            "auc_dwell": r.eval.auc.first(),
            "auc_contribute": r.eval.auc.get(1),
            "ndcg_at_5": r.eval.ndcg,
            "distinct_topics_at_5": r.eval.distinct_topics,
            "intra_list_similarity_at_5": r.eval.ils,
        })).collect::<Vec<_>>(),
        "ligr_minus_dcnv2_mean_auc": match (by("LiGR set-wise"), by("DCNv2")) {
            (Some(a), Some(b)) => json!(a.eval.mean_auc() - b.eval.mean_auc()),
            _ => Value::Null,
        },
        "units": "AUC and NDCG in [0, 1]; distinct counts out of 5",
    });
    r.add("rank", "LiGR ranking (caracal-rank)", html, summary);
    Ok(())
}
