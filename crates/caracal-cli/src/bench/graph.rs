//! `caracal bench graph`: the graphical lasso at several p on the same
//! simulated correlation matrices that `bench/graph_anchor.py` hands to R
//! `glasso` and scikit-learn (`--write-s DIR` writes them).

use super::timing::{measure, median};
use anyhow::{Context, Result};
use caracal_graph::{correlation, glasso, simulate, Diagonal, GlassoOptions, SimOptions};
use serde_json::json;
use std::path::PathBuf;

/// Options of `caracal bench graph`.
#[derive(clap::Args)]
pub struct GraphBenchArgs {
    /// Comma-separated numbers of variables.
    #[arg(long, default_value = "200,500,1000")]
    pub sizes: String,
    /// Penalty λ on the correlation matrix.
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// R's `thr` (relative tolerance), the same for every implementation.
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Timed repetitions per size (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Write each S as `DIR/S_<p>.csv` (no header) for bench/graph_anchor.py.
    #[arg(long)]
    pub write_s: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark's S at `p`: correlation of n = p/2 + 200 rows on a random graph.
pub fn bench_s(p: usize) -> Result<caracal_graph::Mat<f64>> {
    let sim = simulate(&SimOptions {
        seed: 7,
        ..SimOptions::new(p / 2 + 200, p)
    })?;
    Ok(correlation(&sim.data))
}

pub fn run(a: GraphBenchArgs) -> Result<()> {
    let sizes: Vec<usize> = a
        .sizes
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("--sizes: give numbers like 200,500")
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for &p in &sizes {
        let s = bench_s(p)?;
        if let Some(dir) = &a.write_s {
            std::fs::create_dir_all(dir)?;
            let mut txt = String::new();
            for i in 0..p {
                let row: Vec<String> = (0..p).map(|j| format!("{:.17e}", s[(i, j)])).collect();
                txt.push_str(&row.join(","));
                txt.push('\n');
            }
            caracal_core::write_atomic(dir.join(format!("S_{p}.csv")), txt.as_bytes())?;
        }
        for (label, diag, screen) in [
            ("penalized", Diagonal::Penalized, false),
            ("unpenalized", Diagonal::Unpenalized, false),
            ("penalized+screen", Diagonal::Penalized, true),
        ] {
            let o = GlassoOptions {
                screen,
                ..GlassoOptions::new(a.lambda).diagonal(diag).tol(a.tol)
            };
            let mut edges = 0;
            let mut iters = 0;
            let m = measure(a.reps, || {
                let f = glasso(&s, &o)?;
                edges = caracal_graph::edges(&f.precision).len();
                iters = f.iterations;
                Ok(())
            })?;
            out.push(json!({"p": p, "variant": label, "ms_median": median(&m.ms_all), "ms_all": m.ms_all,
                "peak_bytes": m.peak_bytes, "edges": edges, "iterations": iters, "lambda": a.lambda, "tol": a.tol,
                "threads": rayon::current_num_threads()}));
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&json!({"bench": "graph", "results": out}))?
        );
    } else {
        println!(
            "{:>6} {:>18} {:>12} {:>8} {:>6}",
            "p", "variant", "median ms", "edges", "iters"
        );
        for r in &out {
            println!(
                "{:>6} {:>18} {:>12.1} {:>8} {:>6}",
                r["p"],
                r["variant"].as_str().unwrap_or(""),
                r["ms_median"].as_f64().unwrap_or(f64::NAN),
                r["edges"],
                r["iterations"]
            );
        }
    }
    Ok(())
}
