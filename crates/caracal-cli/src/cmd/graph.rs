//! `caracal graph`: fit dependency graphs (IGGL, glasso, neighbourhood
//! selection, nonparanormal and latent-correlation glasso), estimate the
//! latent correlation of mixed data, and simulate data with a known graph.

use crate::report::{line_chart, table, Report, Series};
use anyhow::{Context, Result};
use caracal_graph::{
    adjacency, edge_list_csv, edge_recovery, fit_graph, fit_path, latent::few_level_columns,
    latent_correlation, parse_edge_list, path_recovery, simulate, ColumnKind, DataKind, Dataset,
    Diagonal, FitOptions, GraphFit, GraphKind, LossChoice, Mat, Method, Rule, Selection,
    SimOptions,
};
use serde_json::json;
use std::path::PathBuf;

/// Subcommands of `caracal graph`.
#[derive(clap::Subcommand)]
pub enum GraphCmd {
    /// Fit a graph to a CSV of numeric columns (or to simulated mixed data).
    Fit {
        /// CSV with a header row; every column numeric, no missing values.
        /// Without it, a simulated mixed-type data set (n = 400, p = 20).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Estimator: iggl (per-column losses), glasso (raw covariance),
        /// mb (neighbourhood selection), npn-glasso (nonparanormal),
        /// latent-glasso (rank-based latent correlation of mixed binary and
        /// continuous columns, Fan et al. 2017).
        #[arg(long, default_value = "iggl")]
        method: String,
        /// Fixed penalty λ; without it a path is fitted and λ chosen.
        #[arg(long)]
        lambda: Option<f64>,
        /// Number of λ values on the path.
        #[arg(long, default_value_t = 20)]
        path: usize,
        /// IGGL loss for every column: auto, gaussian, logistic, poisson, huber.
        #[arg(long, default_value = "auto")]
        loss: String,
        /// IGGL loss weighting: auto (fisher when every column is binary,
        /// natural otherwise), natural (each loss as written) or fisher
        /// (binary and count losses divided by their curvature at the
        /// intercept-only fit, times τ_d² = 0.25).
        #[arg(long, default_value = "auto")]
        scale: String,
        /// λ selection on a path: auto (StARS for iggl, eBIC otherwise), ebic or stars.
        #[arg(long, default_value = "auto")]
        select: String,
        /// Glasso: leave the diagonal unpenalized (scikit-learn's convention).
        #[arg(long)]
        unpenalized_diagonal: bool,
        /// Neighbourhood selection: combine with the OR rule instead of AND.
        #[arg(long)]
        or_rule: bool,
        /// The true graph, as the edge list `caracal graph simulate` writes
        /// (`i,j` header, one `name,name` line per edge): report edge
        /// recovery along the λ path (TPR, FPR, F1, ROC AUC). Without
        /// `--data` the simulated data's own graph is used.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Print one JSON object (precision, edges, lambda, objective,
        /// iterations; `recovery` when the true graph is known).
        #[arg(long)]
        json: bool,
    },
    /// The rank-based latent correlation of mixed binary and continuous
    /// columns (Fan et al. 2017; what `latentcor` computes): CSV on stdout,
    /// or to `--out`, with a unit diagonal and the variables as header.
    Latent {
        /// CSV with a header row; every column numeric, no missing values.
        /// Without it, the simulated mixed-type data set of `graph fit`.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Shrinkage towards the identity after the nearest-correlation
        /// projection (latentcor's `nu`); the smallest eigenvalue is at least this.
        #[arg(long, default_value_t = caracal_graph::fit::LATENT_NU)]
        nu: f64,
        /// Write the matrix here (atomically) instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print one JSON object: variables, kinds, thresholds, tau (Kendall's
        /// tau-a), pointwise (bridge inverses), correlation (the final matrix).
        #[arg(long)]
        json: bool,
    },
    /// Simulate data on a known graph and write the CSV (and the true graph).
    Simulate {
        /// Observations.
        #[arg(long, default_value_t = 400)]
        n: usize,
        /// Variables.
        #[arg(long, default_value_t = 20)]
        p: usize,
        /// Graph: random, hub, cluster, band, scale-free.
        #[arg(long, default_value = "random")]
        graph: String,
        /// Data: gaussian, binary, counts, t, mixed.
        #[arg(long, default_value = "mixed")]
        data: String,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output CSV; the true edges go to the same name with `.graph.csv`.
        #[arg(long, default_value = "graph_sim.csv")]
        out: PathBuf,
    },
}

fn options(
    method: &str,
    lambda: Option<f64>,
    path: usize,
    loss: &str,
    select: &str,
    unpen: bool,
    or: bool,
) -> Result<FitOptions> {
    Ok(FitOptions {
        method: method.parse()?,
        lambda,
        path,
        losses: if loss == "auto" {
            LossChoice::Auto
        } else {
            LossChoice::All(loss.parse()?)
        },
        selection: match select {
            "ebic" => Selection::Ebic,
            "stars" => Selection::Stars,
            "auto" => Selection::Auto,
            s => anyhow::bail!("unknown --select `{s}`; expected auto, ebic or stars"),
        },
        diagonal: if unpen {
            Diagonal::Unpenalized
        } else {
            Diagonal::Penalized
        },
        rule: if or { Rule::Or } else { Rule::And },
        ..FitOptions::default()
    })
}

/// The default data set (simulated, mixed types) and its true graph.
fn default_data() -> Result<(Dataset, Vec<bool>)> {
    let sim = simulate(&SimOptions {
        data: DataKind::Mixed,
        ..SimOptions::new(400, 20)
    })?;
    Ok((sim.data, sim.truth))
}

/// Edge recovery of the fits along a path (sparse to dense) against
/// `truth`, with the point `selected` singled out.
fn recovery_json(fits: &[GraphFit], selected: usize, truth: &[bool]) -> Result<serde_json::Value> {
    let path: Vec<Vec<bool>> = fits.iter().map(|f| adjacency(&f.precision)).collect();
    let r = edge_recovery(truth, &path)?;
    Ok(json!({
        "auc": r.auc,
        "best_f1": r.best_f1,
        "best_lambda": fits[r.best_index].lambda,
        "lambdas": fits.iter().map(|f| f.lambda).collect::<Vec<_>>(),
        "tpr": r.tpr,
        "fpr": r.fpr,
        "f1": r.f1,
        "selected": { "lambda": fits[selected].lambda, "tpr": r.tpr[selected], "fpr": r.fpr[selected], "f1": r.f1[selected] },
    }))
}

fn fit_json(f: &GraphFit, names: &[String]) -> serde_json::Value {
    json!({
        "method": f.method.name(),
        "variables": names,
        "losses": f.losses.iter().map(|l| l.name()).collect::<Vec<_>>(),
        "precision": matrix_rows(&f.precision),
        "edges": f.edges.iter().map(|e| json!([e.i, e.j, e.weight])).collect::<Vec<_>>(),
        "lambda": f.lambda,
        "objective": if f.objective.is_finite() { json!(f.objective) } else { json!(null) },
        "iterations": f.iterations,
        "ebic": f.ebic,
    })
}

pub fn run(c: GraphCmd) -> Result<()> {
    match c {
        GraphCmd::Fit {
            data,
            method,
            lambda,
            path,
            loss,
            scale,
            select,
            unpenalized_diagonal,
            or_rule,
            truth,
            json,
        } => {
            let o = FitOptions {
                scale: scale.parse()?,
                ..options(
                    &method,
                    lambda,
                    path,
                    &loss,
                    &select,
                    unpenalized_diagonal,
                    or_rule,
                )?
            };
            let (d, known) = match &data {
                Some(p) => (Dataset::read_csv(p)?, None),
                None => {
                    let (d, t) = default_data()?;
                    (d, Some(t))
                }
            };
            if o.method == Method::LatentGlasso {
                warn_few_levels(&d);
            }
            let truth = match &truth {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the true graph {}", path.display()))?;
                    Some(
                        parse_edge_list(&text, &d.names)
                            .with_context(|| format!("in {}", path.display()))?,
                    )
                }
                None => known,
            };
            // With a true graph, keep the whole path to score it.
            let (f, recovery) = match (&truth, o.lambda) {
                (Some(t), None) => {
                    let pf = fit_path(&d, &o)?;
                    let r = recovery_json(&pf.fits, pf.selected, t)?;
                    (pf.fits[pf.selected].clone(), Some(r))
                }
                (Some(t), Some(_)) => {
                    let f = fit_graph(&d, &o)?;
                    let r = recovery_json(std::slice::from_ref(&f), 0, t)?;
                    (f, Some(r))
                }
                (None, _) => (fit_graph(&d, &o)?, None),
            };
            // The loss scale IGGL used (`auto` resolved on these columns).
            let scale_used = (f.method == Method::Iggl).then(|| o.scale.resolve(&f.losses).name());
            if json {
                let mut v = fit_json(&f, &d.names);
                if let Some(s) = scale_used {
                    v["loss_scale"] = json!(s);
                }
                if let Some(r) = recovery {
                    v["recovery"] = r;
                }
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!(
                    "{} on {} rows × {} columns: λ = {:.4}, {} edges, objective {:.6}, {} iterations{}",
                    f.method.name(),
                    d.n(),
                    d.p(),
                    f.lambda,
                    f.edges.len(),
                    f.objective,
                    f.iterations,
                    scale_used
                        .map(|s| format!(", {s} loss scale"))
                        .unwrap_or_default()
                );
                for e in &f.edges {
                    println!("  {} — {}  {:+.4}", d.names[e.i], d.names[e.j], e.weight);
                }
                if let Some(r) = recovery {
                    let sel = &r["selected"];
                    println!(
                        "against the true graph{}: selected λ has TPR {:.3}, FPR {:.3}, F1 {:.3}; along the path ROC AUC {:.3}, best F1 {:.3} at λ = {:.4}",
                        if data.is_none() { " of the simulated data" } else { "" },
                        sel["tpr"].as_f64().unwrap_or(f64::NAN),
                        sel["fpr"].as_f64().unwrap_or(f64::NAN),
                        sel["f1"].as_f64().unwrap_or(f64::NAN),
                        r["auc"].as_f64().unwrap_or(f64::NAN),
                        r["best_f1"].as_f64().unwrap_or(f64::NAN),
                        r["best_lambda"].as_f64().unwrap_or(f64::NAN),
                    );
                }
            }
            Ok(())
        }
        GraphCmd::Latent {
            data,
            nu,
            out,
            json,
        } => latent(data, nu, out, json),
        GraphCmd::Simulate {
            n,
            p,
            graph,
            data,
            seed,
            out,
        } => {
            let g: GraphKind = graph.parse()?;
            let k: DataKind = data.parse()?;
            let sim = simulate(&SimOptions {
                graph: g,
                data: k,
                seed,
                ..SimOptions::new(n, p)
            })?;
            caracal_core::write_atomic(&out, sim.data.to_csv().as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            let gpath = out.with_extension("graph.csv");
            let s = edge_list_csv(&sim.data.names, &sim.truth);
            caracal_core::write_atomic(&gpath, s.as_bytes())
                .with_context(|| format!("writing {}", gpath.display()))?;
            println!(
                "wrote {} ({n} × {p}, {data} on a {graph} graph) and {}",
                out.display(),
                gpath.display()
            );
            Ok(())
        }
    }
}

fn matrix_rows(m: &Mat<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|a| (0..m.ncols()).map(|b| m[(a, b)]).collect())
        .collect()
}

/// Tell the user which columns the latent correlation reads as continuous
/// although they have few levels (their ties shrink the correlations).
fn warn_few_levels(d: &Dataset) {
    let cols: Vec<String> = few_level_columns(d)
        .iter()
        .map(|&(j, levels)| format!("{} ({levels})", d.names[j]))
        .collect();
    if !cols.is_empty() {
        eprintln!(
            "note: {} column(s) with 3 to 9 distinct values are read as continuous, and their ties \
             shrink their latent correlations towards 0: {}",
            cols.len(),
            cols.join(", ")
        );
    }
}

/// `caracal graph latent`.
fn latent(data: Option<PathBuf>, nu: f64, out: Option<PathBuf>, json: bool) -> Result<()> {
    let d = match &data {
        Some(p) => Dataset::read_csv(p)?,
        None => default_data()?.0,
    };
    let t0 = std::time::Instant::now();
    let l = latent_correlation(&d, nu)?;
    let secs = t0.elapsed().as_secs_f64();
    let projected = l.projected;
    let n_bin = l.kinds.iter().filter(|k| k.name() == "binary").count();
    warn_few_levels(&d);
    if json {
        let v = json!({
            "variables": d.names,
            "kinds": l.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "thresholds": l.kinds.iter().map(|k| match k {
                ColumnKind::Binary { threshold } => json!(threshold),
                ColumnKind::Continuous => json!(null),
            }).collect::<Vec<_>>(),
            "nu": nu,
            "projected": projected,
            "seconds": secs,
            "tau": matrix_rows(&l.tau),
            "pointwise": matrix_rows(&l.pointwise),
            "correlation": matrix_rows(&l.correlation),
        });
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    let mut csv = String::from("variable,");
    csv.push_str(&d.names.join(","));
    csv.push('\n');
    for (a, name) in d.names.iter().enumerate() {
        csv.push_str(name);
        for b in 0..d.p() {
            csv.push_str(&format!(",{}", l.correlation[(a, b)]));
        }
        csv.push('\n');
    }
    let summary = format!(
        "latent correlation of {} rows × {} columns ({n_bin} binary, {} continuous) in {secs:.3} s; {}",
        d.n(),
        d.p(),
        d.p() - n_bin,
        if projected {
            "the pointwise estimate was indefinite and was projected to the nearest correlation matrix"
        } else {
            "the pointwise estimate was positive definite"
        }
    );
    match out {
        Some(path) => {
            caracal_core::write_atomic(&path, csv.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            println!("{summary}; wrote {}", path.display());
        }
        None => {
            eprintln!("{summary}");
            print!("{csv}");
        }
    }
    Ok(())
}

/// The tour's graph section: ROC of IGGL vs glasso on simulated counts and binary data.
pub fn tour(r: &mut Report) -> Result<()> {
    let mut rows = Vec::new();
    let mut series_pts: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut summary = serde_json::Map::new();
    for (data, label) in [(DataKind::Counts, "counts"), (DataKind::Binary, "binary")] {
        let sim = simulate(&SimOptions {
            data,
            ..SimOptions::new(400, 50)
        })?;
        let mut cells = vec![label.to_string()];
        for method in [
            Method::Iggl,
            Method::Glasso,
            Method::NpnGlasso,
            Method::LatentGlasso,
        ] {
            let o = FitOptions {
                method,
                path: 30,
                ratio: 0.05,
                ..FitOptions::default()
            };
            let rec = path_recovery(&sim.data, &sim.truth, &o)?;
            cells.push(format!("{:.3}", rec.auc));
            summary.insert(
                format!("{label}_{}_roc_auc", method.name().replace('-', "_")),
                json!(rec.auc),
            );
            if data == DataKind::Counts {
                let mut pts: Vec<(f64, f64)> = vec![(0.0, 0.0)];
                pts.extend(rec.fpr.iter().copied().zip(rec.tpr.iter().copied()));
                pts.push((1.0, 1.0));
                series_pts.push((method.name().to_string(), pts));
            }
        }
        rows.push(cells);
    }
    let series: Vec<Series> = series_pts
        .iter()
        .map(|(n, p)| Series {
            name: n,
            points: p.clone(),
        })
        .collect();
    let chart = line_chart(
        "ROC along the λ path, counts (p = 50, n = 400)",
        "FPR",
        "TPR",
        &series,
        false,
    )?;
    let html = format!(
        "<p>Edge recovery on simulated data (random graph, p = 50, n = 400): ROC AUC along a 30-point λ path.</p>{}{}",
        table(
            &["data", "IGGL", "glasso (raw)", "npn-glasso", "latent-glasso"],
            &rows
        ),
        chart
    );
    summary.insert("unit".into(), json!("ROC AUC (fraction), p = 50, n = 400"));
    r.add(
        "graph",
        "Dependency graphs (caracal-graph)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
