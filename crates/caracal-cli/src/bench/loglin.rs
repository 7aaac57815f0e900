//! `caracal bench loglin`: every fitting algorithm on a generated table
//! (default 6 factors × 10 levels = 10⁶ cells, all two-way terms).
//! `bench/loglin_anchor.py` times statsmodels GLM and R `loglin` on the same
//! table, written with `--write-table`.

use super::timing::median;
use anyhow::{Context, Result};
use caracal_loglinear::{
    datasets, fit, parse_model, stats, Algorithm, Convergence, FitOptions, Problem, Sampling,
    ZeroMargins,
};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `caracal bench loglin`.
#[derive(clap::Args)]
pub struct LoglinBenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Factors of the generated table.
    #[arg(long, default_value_t = 6)]
    pub factors: usize,
    /// Levels of every factor.
    #[arg(long, default_value_t = 10)]
    pub levels: usize,
    /// Mean count per cell of the generating model.
    #[arg(long, default_value_t = 5.0)]
    pub mean: f64,
    /// Seed of the generated table (recipe: `caracal_loglinear::datasets::generated`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Timed repetitions after one warm-up (algorithms slower than 2 s are timed once).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Algorithms to time, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ipf,block,momentum,ips,newton"
    )]
    pub algorithms: Vec<String>,
    /// Stop at a largest marginal deviation below this many counts.
    #[arg(long, default_value_t = 1e-3)]
    pub eps: f64,
    /// Most sweeps per algorithm (unconverged runs are reported as such).
    #[arg(long, default_value_t = 300)]
    pub max_sweeps: usize,
    /// Write the generated table as long-format CSV (factor columns A.., then Freq) to PATH and exit.
    #[arg(long, value_name = "PATH")]
    pub write_table: Option<PathBuf>,
}

/// Run `caracal bench loglin`.
pub fn run(a: LoglinBenchArgs) -> Result<()> {
    let t0 = Instant::now();
    let table = datasets::generated(a.factors, a.levels, a.mean, a.seed);
    let names = table.factor_names();
    if let Some(path) = &a.write_table {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        writeln!(w, "{},Freq", names.join(","))?;
        let dims = table.dims();
        for (i, c) in table.counts.iter().enumerate() {
            let l = caracal_loglinear::contingency::cell_levels(&dims, i);
            let lv: Vec<&str> = l
                .iter()
                .enumerate()
                .map(|(k, &x)| table.factors[k].levels[x].as_str())
                .collect();
            writeln!(w, "{},{}", lv.join(","), c)?;
        }
        w.flush()?;
        eprintln!("wrote {} cells to {}", table.n_cells(), path.display());
        return Ok(());
    }
    let spec = format!("({})^2", names.join("+"));
    let model = parse_model(&spec, &names)?;
    let problem = Problem::from_table(&table, &model, Sampling::Poisson, ZeroMargins::Error)?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    let mut reference: Option<f64> = None;
    for name in &a.algorithms {
        let alg = Algorithm::parse(name)?;
        let opts = FitOptions {
            algorithm: alg,
            convergence: Convergence::MaxDeviation(a.eps),
            max_sweeps: a.max_sweeps,
            seed: 0,
            allow_unconverged: true,
        };
        let t = Instant::now();
        let f = fit(&problem, &opts)?;
        let first = t.elapsed().as_secs_f64() * 1e3;
        let mut all = vec![first];
        if first < 2000.0 {
            all.clear();
            for _ in 0..a.reps.max(1) {
                let t = Instant::now();
                fit(&problem, &opts)?;
                all.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let g = stats::goodness_of_fit(&problem, &f);
        let r = *reference.get_or_insert(g.deviance);
        rows.push(json!({
            "algorithm": alg.name(),
            "ms_median": median(&all),
            "ms_all": all,
            "sweeps": f.iterations,
            "converged": f.converged,
            "deviance": g.deviance,
            "deviance_minus_first": g.deviance - r,
            "df": g.df,
        }));
    }
    let out = json!({
        "cells": table.n_cells(),
        "params": problem.n_params(),
        "model": spec,
        "threads": rayon::current_num_threads(),
        "eps_counts": a.eps,
        "setup_ms": setup_ms,
        "rows": rows,
    });
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "generated table: {} cells, model {} ({} parameters), {} threads, setup {:.0} ms",
        table.n_cells(),
        spec,
        problem.n_params(),
        rayon::current_num_threads(),
        setup_ms
    );
    println!(
        "{:<12} {:>12} {:>8} {:>10} {:>20} {:>12}",
        "algorithm", "ms (median)", "sweeps", "converged", "deviance G²", "Δ vs first"
    );
    for r in &rows {
        println!(
            "{:<12} {:>12.1} {:>8} {:>10} {:>20.6} {:>12.2e}",
            r["algorithm"].as_str().unwrap_or(""),
            r["ms_median"].as_f64().unwrap_or(f64::NAN),
            r["sweeps"].as_u64().unwrap_or(0),
            r["converged"].as_bool().unwrap_or(false),
            r["deviance"].as_f64().unwrap_or(f64::NAN),
            r["deviance_minus_first"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
