//! `caracal bench kernels`: each fused op against its candle-composed
//! reference, forward+backward, side by side in one run.

use super::timing::{measure, Measured};
use crate::report::{self, Report};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor, Var};
use caracal_kernels::testing::randn;
use serde::Serialize;

/// Shape scale for the kernel benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// The CPU shapes (Liger's benchmark shapes scaled to CPU).
    Full,
    /// Small shapes for a quick look (what `caracal tour` runs).
    Small,
}

/// Options of `caracal bench kernels`.
#[derive(clap::Args)]
pub struct KernelBenchArgs {
    /// Print JSON rows (`op, shape, impl, ms_median, peak_bytes`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed repetitions per implementation, after one warm-up call.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Shape scale.
    #[arg(long, value_enum, default_value_t = Scale::Full)]
    pub scale: Scale,
    /// Only these ops, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub ops: Vec<String>,
    /// Device to run on: `cpu`, or `cuda` in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// One measured (op, implementation) pair.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub op: String,
    pub shape: String,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub ms_median: f64,
    pub peak_bytes: usize,
}

type Step = Box<dyn FnMut() -> Result<()>>;

/// A benchmark case: the fused and the reference forward+backward.
struct Case {
    op: &'static str,
    shape: String,
    fused: Step,
    reference: Step,
}

fn var(seed: u64, shape: &[usize]) -> Result<Var> {
    Ok(Var::from_tensor(&randn(seed, shape, 1.0, DType::F32)?)?)
}

/// Forward then backward, seeding the output gradient with ones.
fn fwd_bwd(y: Tensor) -> Result<()> {
    let g = y.backward()?;
    std::hint::black_box(g);
    Ok(())
}

fn swiglu_case(scale: Scale) -> Result<Case> {
    let shape = match scale {
        Scale::Full => [8192, 11008],
        Scale::Small => [1024, 2816],
    };
    let (a, b) = (var(1, &shape)?, var(2, &shape)?);
    let (a2, b2) = (a.clone(), b.clone());
    Ok(Case {
        op: "swiglu",
        shape: format!("{shape:?}"),
        fused: Box::new(move || fwd_bwd(caracal_kernels::swiglu(&a, &b)?)),
        reference: Box::new(move || {
            fwd_bwd(caracal_kernels::glu::reference::swiglu(&a2, &b2)?)
        }),
    })
}

type CaseFn = fn(Scale) -> Result<Case>;

const CASES: &[(&str, CaseFn)] = &[("swiglu", swiglu_case)];

/// Measure the selected cases; rows come in (fused, reference) pairs.
pub fn measure_cases(scale: Scale, reps: usize, only: &[String]) -> Result<Vec<Row>> {
    for o in only {
        if !CASES.iter().any(|(n, _)| n == o) {
            let names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
            bail!("unknown op `{o}`; expected one of: {}", names.join(", "));
        }
    }
    let mut rows = Vec::new();
    for (name, make) in CASES {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("bench kernels: {name} ...");
        let mut case = make(scale)?;
        let mut push = |implementation: &str, m: Measured| {
            rows.push(Row {
                op: case.op.to_string(),
                shape: case.shape.clone(),
                implementation: implementation.to_string(),
                ms_median: m.ms_median,
                peak_bytes: m.peak_bytes,
            })
        };
        let fused = measure(reps, &mut case.fused)?;
        push("fused", fused);
        let reference = measure(reps, &mut case.reference)?;
        push("candle-reference", reference);
    }
    Ok(rows)
}

/// `caracal bench kernels`.
pub fn run(a: KernelBenchArgs) -> Result<()> {
    match a.device.as_str() {
        "cpu" => {}
        "cuda" => bail!(
            "--device cuda needs a build with the `cuda` feature: \
             cargo build --release -p caracal-cli --features cuda"
        ),
        other => bail!("unknown device `{other}`; expected cpu or cuda"),
    }
    let rows = measure_cases(a.scale, a.reps, &a.ops)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<10} {:<28} {:<17} {:>12} {:>14}",
            "op", "shape", "impl", "ms (median)", "peak MiB"
        );
        for r in &rows {
            println!(
                "{:<10} {:<28} {:<17} {:>12.2} {:>14.1}",
                r.op,
                r.shape,
                r.implementation,
                r.ms_median,
                r.peak_bytes as f64 / (1 << 20) as f64
            );
        }
        for p in rows.chunks(2) {
            if let [f, r] = p {
                println!(
                    "{}: fused is {:.2}x faster and uses {:.0}% of the reference's peak memory",
                    f.op,
                    r.ms_median / f.ms_median,
                    100.0 * f.peak_bytes as f64 / r.peak_bytes.max(1) as f64
                );
            }
        }
    }
    Ok(())
}

/// The tour's kernels section: small shapes, speed-up and memory ratios.
pub fn tour(report: &mut Report) -> Result<()> {
    let rows = measure_cases(Scale::Small, 3, &[])?;
    let mut table = Vec::new();
    let mut bars = Vec::new();
    let mut summary = serde_json::Map::new();
    for p in rows.chunks(2) {
        if let [f, r] = p {
            let speedup = r.ms_median / f.ms_median;
            let mem = f.peak_bytes as f64 / r.peak_bytes.max(1) as f64;
            table.push(vec![
                f.op.clone(),
                f.shape.clone(),
                format!("{:.2}", f.ms_median),
                format!("{:.2}", r.ms_median),
                format!("{speedup:.2}x"),
                format!("{:.0}%", 100.0 * mem),
            ]);
            bars.push((f.op.clone(), speedup));
            summary.insert(
                f.op.clone(),
                serde_json::json!({
                    "shape": f.shape,
                    "fused_ms_median": f.ms_median,
                    "reference_ms_median": r.ms_median,
                    "speedup_x": speedup,
                    "fused_peak_bytes": f.peak_bytes,
                    "reference_peak_bytes": r.peak_bytes,
                    "memory_ratio": mem,
                }),
            );
        }
    }
    let mut html = String::from(
        "<p>Forward+backward of each fused op against the same op composed of plain candle \
         ops, small shapes, median of 3 runs. Full shapes: <code>caracal bench kernels</code>.</p>",
    );
    html.push_str(&report::table(
        &["op", "shape", "fused ms", "reference ms", "speed-up", "fused peak / reference peak"],
        &table,
    ));
    html.push_str(&report::bar_chart("Speed-up over the candle reference", "x faster", &bars)?);
    report.add(
        "kernels",
        "Fused training kernels (Liger-Kernel)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
