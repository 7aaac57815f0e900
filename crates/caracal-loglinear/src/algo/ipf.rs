//! Classic IPF (Deming & Stephan 1940; Haberman's AS 51, which R `loglin` runs).
//!
//! For each margin `C` of the generating class, `μ_i ← μ_i · m_C(b(i)) / μ̂_C(b(i))`,
//! cycling over the margins. She & Tang (§2) read this as exact block
//! coordinate descent: one margin's indicators are mutually exclusive, so the
//! whole block is updated jointly and exactly. The start is `start` rescaled to
//! the table total, as in `loglin`; the deviation is the largest
//! |observed − fitted| marginal count before each adjustment.
//!
//! Each adjustment is fused with the next margin's sum, so a sweep over `K`
//! margins reads the cells `K` times (plus once for the objective).

use crate::fit::Trace;
use crate::margins::MarginPlan;
use crate::objective::half_deviance;
use crate::options::{Convergence, FitOptions};
use crate::problem::Problem;
use caracal_core::{bail, ensure, Result};

/// Fit a table problem by IPF; returns `(θ, μ over active cells, trace)`.
pub(crate) fn fit(p: &Problem, opts: &FitOptions) -> Result<(Vec<f64>, Vec<f64>, Trace)> {
    let Some(info) = &p.table else {
        bail!("classic IPF needs a contingency table and a model spec; for a design matrix use --algorithm mm, block or newton");
    };
    let t = &info.table;
    let dims = t.dims();
    let total: f64 = t.counts.iter().sum();
    let stot: f64 = t.start.iter().sum();
    let seed: Vec<f64> = t.start.iter().map(|s| s * total / stot).collect();
    let targets: Vec<(Vec<usize>, Vec<f64>)> = info
        .model
        .generators
        .iter()
        .map(|g| {
            let plan = MarginPlan::new(&dims, g);
            let mut m = vec![0.0; plan.size()];
            plan.sum(&t.counts, &mut m);
            (g.clone(), m)
        })
        .collect();
    let (full, trace) = rake_traced(&dims, seed, &targets, Some(&t.counts), opts)?;
    let mu: Vec<f64> = p.active.iter().map(|&i| full[i]).collect();
    let theta = crate::params::treatment_from_fitted(p, &full, &mu);
    Ok((theta, mu, trace))
}

/// Raking: scale `seed` (row-major over `dims`) until its margins over each
/// factor set equal the given targets (the `ipfn` package's task).
pub fn raking(
    dims: &[usize],
    seed: &[f64],
    targets: &[(Vec<usize>, Vec<f64>)],
    convergence: Convergence,
    max_sweeps: usize,
) -> Result<Vec<f64>> {
    let n: usize = dims.iter().product();
    ensure!(
        seed.len() == n,
        "the seed has {} cells but dims give {n}",
        seed.len()
    );
    ensure!(
        seed.iter().all(|v| v.is_finite() && *v >= 0.0),
        "the seed has a negative or non-finite value"
    );
    let opts = FitOptions {
        convergence,
        max_sweeps,
        ..Default::default()
    };
    Ok(rake_traced(dims, seed.to_vec(), targets, None, &opts)?.0)
}

fn rake_traced(
    dims: &[usize],
    mut mu: Vec<f64>,
    targets: &[(Vec<usize>, Vec<f64>)],
    y: Option<&[f64]>,
    opts: &FitOptions,
) -> Result<(Vec<f64>, Trace)> {
    ensure!(!targets.is_empty(), "IPF needs at least one margin to fit");
    let plans: Vec<MarginPlan> = targets
        .iter()
        .map(|(f, _)| MarginPlan::new(dims, f))
        .collect();
    for ((f, m), plan) in targets.iter().zip(&plans) {
        ensure!(
            f.iter().all(|&k| k < dims.len()) && m.len() == plan.size(),
            "a target margin over factors {f:?} needs {} values, got {}",
            plan.size(),
            m.len()
        );
    }
    let k = plans.len();
    let mut fitted: Vec<Vec<f64>> = plans.iter().map(|p| vec![0.0; p.size()]).collect();
    let mut ratio: Vec<f64> = Vec::new();
    plans[0].sum(&mu, &mut fitted[0]);
    let objective = |mu: &[f64]| y.map_or(0.0, |y| half_deviance(y, mu));
    let start = objective(&mu);
    let trace = Trace::run(start, opts, |_| {
        let mut dev: f64 = 0.0;
        for c in 0..k {
            let target = &targets[c].1;
            ratio.clear();
            for (&m, &f) in target.iter().zip(&fitted[c]) {
                dev = dev.max((m - f).abs());
                if f > 0.0 {
                    ratio.push(m / f);
                } else if m > 0.0 {
                    bail!(
                        "a margin cell has observed total {m} but every cell under it is a structural zero; give those cells a positive start"
                    );
                } else {
                    ratio.push(0.0);
                }
            }
            let next = (c + 1) % k;
            let mut out = std::mem::take(&mut fitted[next]);
            plans[c].scale_then_sum(&mut mu, &ratio, &plans[next], &mut out);
            fitted[next] = out;
        }
        Ok((dev, objective(&mu)))
    })?;
    Ok((mu, trace))
}
