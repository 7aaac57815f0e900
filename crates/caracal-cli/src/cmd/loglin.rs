//! `caracal loglin`: fit log-linear / log-affine models (caracal-loglinear).

use crate::report::{self, Report, Series};
use anyhow::{bail, Context, Result};
use caracal_core::table::Table;
use caracal_loglinear::{
    datasets, fit, fit_path, fit_penalized, parse_model, stats, Algorithm, ContingencyTable,
    Convergence, Design, FitOptions, Penalty, PenaltyOptions, Problem, Sampling, ZeroMargins,
};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Subcommands of `caracal loglin`.
#[derive(clap::Subcommand)]
pub enum LoglinCmd {
    /// Fit a model to a long-format table (or to UCBAdmissions when no input
    /// is given), or to a design matrix with counts.
    Fit(FitArgs),
}

/// Options of `caracal loglin fit`.
#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Long-format CSV: factor columns plus a count column (default: the embedded UCBAdmissions).
    #[arg(long, value_name = "FILE.csv", conflicts_with = "design")]
    pub table: Option<PathBuf>,
    /// The count column of --table (or of --response).
    #[arg(long, value_name = "COL", default_value = "Freq")]
    pub counts: String,
    /// Optional column of --table with the base measure `start`; 0 marks a structural zero.
    #[arg(long, value_name = "COL")]
    pub start: Option<String>,
    /// Hierarchical model: `[AG][AD][GD]` or `A*G + A*D + G*D` (default for UCBAdmissions: `[AG][AD][GD]`).
    #[arg(long)]
    pub model: Option<String>,
    /// Design-matrix mode: CSV of real-valued features, one column per coefficient (add a column of 1s for an intercept).
    #[arg(long, value_name = "X.csv", requires = "response")]
    pub design: Option<PathBuf>,
    /// Design-matrix mode: CSV of counts (its --counts column, or its only column).
    #[arg(long, value_name = "y.csv", requires = "design")]
    pub response: Option<PathBuf>,
    /// ipf, ips, mm, block, random, random-replace, random-importance, momentum, newton (default: ipf for tables, mm for designs).
    #[arg(long)]
    pub algorithm: Option<String>,
    /// Stopping rule: `deviation` (R loglin: largest |observed − fitted| margin) or `objective` (relative change).
    #[arg(long, default_value = "deviation")]
    pub rule: String,
    /// Tolerance of the stopping rule.
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f64,
    /// Most sweeps (Newton: iterations).
    #[arg(long, default_value_t = 10_000)]
    pub max_iter: usize,
    /// Zero margins: `error` (the MLE does not exist) or `structural` (fit the extended MLE).
    #[arg(long, default_value = "error")]
    pub zero_margins: String,
    /// Sampling scheme for the likelihood, AIC and BIC: poisson or multinomial.
    #[arg(long, default_value = "poisson")]
    pub sampling: String,
    /// Seed of the randomized algorithms.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// L1-penalized fit at this λ (count units; the intercept is not penalized).
    #[arg(long, conflicts_with = "path")]
    pub lambda: Option<f64>,
    /// Fit a penalized path of this many λ values from λ_max down to λ_max/1000.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "20")]
    pub path: Option<usize>,
    /// Penalty of --lambda / --path: l1 or group (one group per model term).
    #[arg(long, default_value = "l1")]
    pub penalty: String,
    /// Print one JSON object: deviance, pearson, df, iterations, converged, coefficients, fitted.
    #[arg(long)]
    pub json: bool,
}

/// Run `caracal loglin ...`.
pub fn run(c: LoglinCmd) -> Result<()> {
    match c {
        LoglinCmd::Fit(a) => run_fit(a),
    }
}

/// A problem and how to map its cells back to input rows.
struct Loaded {
    problem: Problem,
    row_cells: Vec<usize>,
    label: String,
}

fn load(a: &FitArgs) -> Result<Loaded> {
    let sampling = match a.sampling.as_str() {
        "poisson" => Sampling::Poisson,
        "multinomial" => Sampling::Multinomial,
        s => bail!("unknown sampling `{s}`; choose poisson or multinomial"),
    };
    let zm = match a.zero_margins.as_str() {
        "error" => ZeroMargins::Error,
        "structural" => ZeroMargins::Structural,
        s => bail!("unknown --zero-margins `{s}`; choose error or structural"),
    };
    if let (Some(x), Some(yp)) = (&a.design, &a.response) {
        let xt = Table::read(x)?;
        let cols: Vec<Vec<f64>> = xt
            .names
            .iter()
            .map(|n| xt.f64s(n))
            .collect::<caracal_core::Result<_>>()?;
        let d = Design::from_columns(xt.n_rows(), &cols, xt.names.clone())?;
        let yt = Table::read(yp)?;
        let ycol = if yt.names.len() == 1 {
            yt.names[0].clone()
        } else {
            a.counts.clone()
        };
        let y = yt.f64s(&ycol)?;
        let n = y.len();
        let problem = Problem::from_design(d, &y, None, sampling)?;
        return Ok(Loaded {
            problem,
            row_cells: (0..n).collect(),
            label: format!("design {} ({} rows)", x.display(), n),
        });
    }
    let (table, spec, label) = match &a.table {
        Some(path) => {
            let t = Table::read(path)?;
            let tab = ContingencyTable::from_long(&t, &a.counts, a.start.as_deref(), None)?;
            let Some(spec) = a.model.clone() else {
                bail!(
                    "give the model with --model, e.g. --model \"[{}]\" for the saturated model",
                    tab.factor_names().join(",")
                );
            };
            (tab, spec, path.display().to_string())
        }
        None => (
            datasets::ucb_admissions(),
            a.model.clone().unwrap_or_else(|| "[AG][AD][GD]".into()),
            "UCBAdmissions (embedded)".to_string(),
        ),
    };
    let model = parse_model(&spec, &table.factor_names())?;
    let problem = Problem::from_table(&table, &model, sampling, zm)?;
    let row_cells = table
        .row_cells
        .clone()
        .unwrap_or_else(|| (0..table.n_cells()).collect());
    let label = format!("{label}, model {}", model.describe(&table.factor_names()));
    Ok(Loaded {
        problem,
        row_cells,
        label,
    })
}

fn run_fit(a: FitArgs) -> Result<()> {
    let l = load(&a)?;
    let p = &l.problem;
    if a.lambda.is_some() || a.path.is_some() {
        return run_penalized(&a, &l);
    }
    let alg = match &a.algorithm {
        Some(s) => Algorithm::parse(s)?,
        None if p.table.is_some() => Algorithm::Ipf,
        None => Algorithm::Mm,
    };
    let convergence = match a.rule.as_str() {
        "deviation" => Convergence::MaxDeviation(a.eps),
        "objective" => Convergence::RelativeObjective(a.eps),
        s => bail!("unknown --rule `{s}`; choose deviation or objective"),
    };
    let opts = FitOptions {
        algorithm: alg,
        convergence,
        max_sweeps: a.max_iter,
        seed: a.seed,
        allow_unconverged: false,
    };
    let t0 = Instant::now();
    let f = fit(p, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    let g = stats::goodness_of_fit(p, &f);
    let fitted: Vec<f64> = l.row_cells.iter().map(|&c| f.fitted[c]).collect();
    if a.json {
        let mut coef = Map::new();
        for (n, v) in f.names.iter().zip(&f.theta) {
            coef.insert(n.clone(), json!(v));
        }
        let out = json!({
            "data": l.label,
            "algorithm": alg.name(),
            "coding": format!("{:?}", f.coding).to_lowercase(),
            "deviance": g.deviance,
            "pearson": g.pearson,
            "df": g.df,
            "aic": g.aic,
            "bic": g.bic,
            "iterations": f.iterations,
            "converged": f.converged,
            "seconds": secs,
            "coefficients": Value::Object(coef),
            "dropped": p.dropped,
            "fitted": fitted,
            "objective": f.objective,
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!("{}", l.label);
    println!(
        "algorithm {} ({} sweeps, converged: {}, {:.3} ms)",
        alg.name(),
        f.iterations,
        f.converged,
        secs * 1e3
    );
    println!(
        "deviance G² = {:.6}   Pearson X² = {:.6}   df = {}",
        g.deviance, g.pearson, g.df
    );
    println!(
        "log-likelihood = {:.4}   AIC = {:.4}   BIC = {:.4}   ({} estimable cells, {} identifiable parameters)",
        g.loglik, g.aic, g.bic, g.cells, g.rank
    );
    if !p.dropped.is_empty() {
        println!(
            "not estimable (no cell left to carry them): {}",
            p.dropped.join(", ")
        );
    }
    let rows = if p.n_params() <= 200 {
        stats::coefficient_table(p, &f)
    } else {
        Vec::new()
    };
    println!(
        "\n{:<36} {:>14} {:>12} {:>9}",
        "coefficient (treatment coding)", "estimate", "std. error", "z"
    );
    for (j, n) in f.names.iter().enumerate().take(60) {
        let (se, z) = rows
            .get(j)
            .map_or((f64::NAN, f64::NAN), |r| (r.std_error, r.z));
        println!("{n:<36} {:>14.8} {se:>12.6} {z:>9.3}", f.theta[j]);
    }
    if f.names.len() > 60 {
        println!("... {} more (use --json)", f.names.len() - 60);
    }
    Ok(())
}

fn run_penalized(a: &FitArgs, l: &Loaded) -> Result<()> {
    let p = &l.problem;
    let penalty = match a.penalty.as_str() {
        "l1" => Penalty::L1,
        "group" => Penalty::GroupL1,
        s => bail!("unknown --penalty `{s}`; choose l1 or group"),
    };
    let opts = PenaltyOptions {
        penalty,
        kkt_tol: a.eps.max(1e-10),
        max_sweeps: a.max_iter.max(1000),
    };
    let fits = match (a.lambda, a.path) {
        (Some(lam), _) => vec![fit_penalized(p, lam, &opts, None)?],
        (None, Some(n)) => fit_path(p, &opts, n, 1e-3)?,
        _ => unreachable!("checked by the caller"),
    };
    let rows: Vec<Value> = fits
        .iter()
        .map(|f| {
            let mut coef = Map::new();
            for (n, v) in p.design.names.iter().zip(&f.theta) {
                coef.insert(n.clone(), json!(v));
            }
            let full = p.expand(&f.mu);
            let fitted: Vec<f64> = l.row_cells.iter().map(|&c| full[c]).collect();
            let unpen = p.penalized.iter().filter(|b| !**b).count();
            json!({
                "lambda": f.lambda,
                "deviance": f.deviance,
                "pearson": caracal_loglinear::objective::pearson(&p.y, &f.mu),
                "df": p.y.len().saturating_sub(f.n_nonzero + unpen),
                "nonzero": f.n_nonzero,
                "kkt": f.kkt,
                "iterations": f.sweeps,
                "converged": true,
                "coefficients": Value::Object(coef),
                "fitted": fitted,
            })
        })
        .collect();
    if a.json {
        let out = if a.lambda.is_some() {
            rows[0].clone()
        } else {
            json!({ "path": rows })
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!("{} — {:?} penalty", l.label, penalty);
    println!(
        "{:>12} {:>14} {:>8} {:>10} {:>7}",
        "lambda", "deviance", "nonzero", "KKT", "sweeps"
    );
    for f in &fits {
        println!(
            "{:>12.4} {:>14.6} {:>8} {:>10.2e} {:>7}",
            f.lambda, f.deviance, f.n_nonzero, f.kkt, f.sweeps
        );
    }
    Ok(())
}

/// The tour's loglin section: every algorithm on UCBAdmissions (objective per
/// sweep), and the fast ones on a generated 5-way table.
pub fn tour(r: &mut Report) -> Result<()> {
    let ucb = datasets::ucb_admissions();
    let model = parse_model("[AG][AD][GD]", &ucb.factor_names())?;
    let p = Problem::from_table(&ucb, &model, Sampling::Poisson, ZeroMargins::Error)?;
    let algs = ["ipf", "ips", "block", "random", "momentum", "newton"];
    let mut rows = Vec::new();
    let mut series = Vec::new();
    let mut g_ucb = 0.0;
    let mut df_ucb = 0;
    for name in algs {
        let mut o = FitOptions::with(Algorithm::parse(name)?);
        o.convergence = Convergence::MaxDeviation(1e-8);
        let t0 = Instant::now();
        let f = fit(&p, &o).with_context(|| format!("fitting UCBAdmissions with {name}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let g = stats::goodness_of_fit(&p, &f);
        g_ucb = g.deviance;
        df_ucb = g.df;
        let best = 20.204275 / 2.0;
        series.push((
            name,
            f.objective
                .iter()
                .enumerate()
                .map(|(k, o)| (k as f64, (o - best).max(1e-12)))
                .collect::<Vec<_>>(),
        ));
        rows.push(vec![
            name.to_string(),
            f.iterations.to_string(),
            format!("{:.6}", g.deviance),
            format!("{:.6}", g.pearson),
            g.df.to_string(),
            format!("{ms:.3}"),
        ]);
    }
    let s: Vec<Series> = series
        .iter()
        .map(|(n, pts)| Series {
            name: n,
            points: pts.clone(),
        })
        .collect();
    let chart = report::line_chart(
        "UCBAdmissions [AG][AD][GD]: objective gap per sweep",
        "sweep",
        "ℓ(θ) − ℓ(θ̂)",
        &s,
        true,
    )?;
    // A mid-size generated table.
    let gen = datasets::generated(5, 6, 8.0, 7);
    let gm = parse_model("(A+B+C+D+E)^2", &gen.factor_names())?;
    let gp = Problem::from_table(&gen, &gm, Sampling::Poisson, ZeroMargins::Error)?;
    let mut grows = Vec::new();
    let mut fastest = f64::INFINITY;
    for name in ["ipf", "block", "momentum", "newton"] {
        let mut o = FitOptions::with(Algorithm::parse(name)?);
        o.convergence = Convergence::MaxDeviation(1e-6);
        let t0 = Instant::now();
        let f = fit(&gp, &o)?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        fastest = fastest.min(ms);
        let g = stats::goodness_of_fit(&gp, &f);
        grows.push(vec![
            name.to_string(),
            f.iterations.to_string(),
            format!("{:.6}", g.deviance),
            g.df.to_string(),
            format!("{ms:.2}"),
        ]);
    }
    let html = format!(
        "<p>Iterative proportional scaling as coordinate descent (She &amp; Tang, arXiv:1610.02588). \
         UCBAdmissions, no-three-way model, every algorithm to a largest marginal deviation of 1e-8 counts \
         (R: G² = 20.204275, df = 5).</p>{}{}<p>Generated 5-way table, 6 levels each ({} cells), all two-way terms, \
         deviation 1e-6:</p>{}",
        report::table(&["algorithm", "sweeps", "G²", "X²", "df", "ms"], &rows),
        chart,
        gen.n_cells(),
        report::table(&["algorithm", "sweeps", "G²", "df", "ms"], &grows),
    );
    r.add(
        "loglinear",
        "Log-linear models (IPS)",
        html,
        json!({
            "ucb_deviance_g2": g_ucb,
            "ucb_df": df_ucb,
            "generated_cells": gen.n_cells(),
            "generated_fastest_ms": fastest,
            "units": {"ucb_deviance_g2": "G² (chi-square units)", "generated_fastest_ms": "milliseconds"}
        }),
    );
    Ok(())
}
