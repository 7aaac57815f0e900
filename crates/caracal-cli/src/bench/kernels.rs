//! `caracal bench kernels`: each fused op against its candle-composed
//! reference, forward+backward, side by side in one run.
//!
//! The reference always runs through candle's autograd. The fused FLCE, CE,
//! RMSNorm, SwiGLU, GeGLU and RoPE run their forward and their own backward
//! through the functional API (`*_backward`, `*_with_grad(s)`), as Liger's
//! benchmark times its ops: candle's autograd would add a zero-filled buffer
//! and a sum for every gradient, which torch's autograd does not. LayerNorm,
//! JSD and KL divergence have no functional backward yet and go through
//! autograd on both sides.

use super::timing::{measure, Measured};
use crate::report::{self, Report};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor, Var};
use caracal_kernels::testing::randn;
use serde::Serialize;

/// Shape scale for the kernel benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// The CPU shapes (Liger's benchmark shapes scaled to CPU). The
    /// candle reference for CE and FLCE needs about 20 GB here.
    Full,
    /// The full shapes, but CE and FLCE at BT=1024 so that their candle
    /// reference fits beside other work on a 24 GB machine.
    Medium,
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
    /// Device to run on: `cpu`, or `cuda` in a build with the `cuda` feature
    /// (which runs Liger's H100 benchmark shapes; `--scale` does not apply).
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

/// An all-ones upstream gradient of `shape` (what `backward()` seeds).
fn ones(shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::ones(shape, DType::F32, &candle_core::Device::Cpu)?)
}

/// Forward then backward through candle's autograd, seeding the output
/// gradient with ones.
fn fwd_bwd(y: Tensor) -> Result<()> {
    let g = y.backward()?;
    std::hint::black_box(g);
    Ok(())
}

fn targets(seed: u64, n: usize, v: usize) -> Result<Tensor> {
    let mut rng = caracal_core::Rng::new(seed);
    let t: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
    Ok(Tensor::from_vec(t, n, &candle_core::Device::Cpu)?)
}

fn glu_case(scale: Scale, op: &'static str) -> Result<Case> {
    let shape = match scale {
        Scale::Full | Scale::Medium => [8192, 11008],
        Scale::Small => [1024, 2816],
    };
    let (a, b) = (var(1, &shape)?, var(2, &shape)?);
    let (a2, b2) = (a.clone(), b.clone());
    let gelu = op == "geglu";
    let dc = ones(&shape)?;
    Ok(Case {
        op,
        shape: format!("{shape:?}"),
        // The forward and the op's own backward (as Liger's benchmark times
        // it), without candle's per-gradient zero-fill and add.
        fused: Box::new(move || {
            let (a, b) = (a.as_tensor().detach(), b.as_tensor().detach());
            let out = if gelu {
                (
                    caracal_kernels::geglu(&a, &b)?,
                    caracal_kernels::geglu_backward(&a, &b, &dc)?,
                )
            } else {
                (
                    caracal_kernels::swiglu(&a, &b)?,
                    caracal_kernels::swiglu_backward(&a, &b, &dc)?,
                )
            };
            std::hint::black_box(out);
            Ok(())
        }),
        reference: Box::new(move || {
            use caracal_kernels::glu::reference as r;
            let y = if gelu {
                r::geglu(&a2, &b2)?
            } else {
                r::swiglu(&a2, &b2)?
            };
            fwd_bwd(y)
        }),
    })
}

fn swiglu_case(scale: Scale) -> Result<Case> {
    glu_case(scale, "swiglu")
}

fn geglu_case(scale: Scale) -> Result<Case> {
    glu_case(scale, "geglu")
}

fn norm_shape(scale: Scale) -> [usize; 2] {
    match scale {
        Scale::Full | Scale::Medium => [8192, 4096],
        Scale::Small => [1024, 1024],
    }
}

fn rms_norm_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::rms_norm::{reference, rms_norm, rms_norm_backward, CastingMode};
    let shape = norm_shape(scale);
    let (x, w) = (var(1, &shape)?, var(2, &shape[1..])?);
    let (x2, w2) = (x.clone(), w.clone());
    let dy = ones(&shape)?;
    let m = CastingMode::Llama;
    Ok(Case {
        op: "rms_norm",
        shape: format!("{shape:?}"),
        fused: Box::new(move || {
            let (x, w) = (x.as_tensor().detach(), w.as_tensor().detach());
            let y = rms_norm(&x, &w, 1e-6, 0.0, m)?;
            let g = rms_norm_backward(&x, &w, &dy, 1e-6, 0.0, m)?;
            std::hint::black_box((y, g));
            Ok(())
        }),
        reference: Box::new(move || {
            fwd_bwd(reference::rms_norm(
                &x2,
                &w2,
                1e-6,
                0.0,
                CastingMode::Llama,
            )?)
        }),
    })
}

fn layer_norm_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::layer_norm::{layer_norm, layer_norm_backward, reference};
    let shape = norm_shape(scale);
    let (x, w, b) = (var(1, &shape)?, var(2, &shape[1..])?, var(3, &shape[1..])?);
    let (x2, w2, b2) = (x.clone(), w.clone(), b.clone());
    let dy = ones(&shape)?;
    Ok(Case {
        op: "layer_norm",
        shape: format!("{shape:?}"),
        fused: Box::new(move || {
            let (x, w, b) = (
                x.as_tensor().detach(),
                w.as_tensor().detach(),
                b.as_tensor().detach(),
            );
            let y = layer_norm(&x, &w, &b, 1e-5)?;
            let g = layer_norm_backward(&x, &w, &dy, 1e-5)?;
            std::hint::black_box((y, g));
            Ok(())
        }),
        reference: Box::new(move || fwd_bwd(reference::layer_norm(&x2, &w2, &b2, 1e-5)?)),
    })
}

/// HF rotary tables for `t` positions and head dim `d` (theta 10000).
fn rope_tables(t: usize, d: usize) -> Result<(Tensor, Tensor)> {
    let half = d / 2;
    let mut ang = Vec::with_capacity(t * d);
    for p in 0..t {
        for j in 0..d {
            let inv = 1.0 / 10000f64.powf(2.0 * (j % half) as f64 / d as f64);
            ang.push((p as f64 * inv) as f32);
        }
    }
    let ang = Tensor::from_vec(ang, (t, d), &candle_core::Device::Cpu)?;
    Ok((ang.cos()?, ang.sin()?))
}

fn rope_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::rope::{reference, rope};
    let (b, hq, hk, t, d) = match scale {
        Scale::Full | Scale::Medium => (4, 32, 8, 1024, 128),
        Scale::Small => (1, 8, 2, 256, 64),
    };
    let (q, k) = (var(1, &[b, hq, t, d])?, var(2, &[b, hk, t, d])?);
    let (cos, sin) = rope_tables(t, d)?;
    let (q2, k2, cos2, sin2) = (q.clone(), k.clone(), cos.clone(), sin.clone());
    let (dq, dk) = (ones(&[b, hq, t, d])?, ones(&[b, hk, t, d])?);
    let both = |(q, k): (Tensor, Tensor)| -> Result<()> {
        let g = (q.sum_all()? + k.sum_all()?)?.backward()?;
        std::hint::black_box(g);
        Ok(())
    };
    Ok(Case {
        op: "rope",
        shape: format!("q[{b},{hq},{t},{d}] k[{b},{hk},{t},{d}]"),
        fused: Box::new(move || {
            let (q, k) = (q.as_tensor().detach(), k.as_tensor().detach());
            let out = rope(&q, &k, &cos, &sin)?;
            let g = caracal_kernels::rope_backward(&dq, &dk, &cos, &sin)?;
            std::hint::black_box((out, g));
            Ok(())
        }),
        reference: Box::new(move || both(reference::rope(&q2, &k2, &cos2, &sin2)?)),
    })
}

fn ce_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::cross_entropy::{reference, CeOptions};
    let (n, v) = match scale {
        Scale::Full => (4096, 128256),
        Scale::Medium => (1024, 128256),
        Scale::Small => (512, 32000),
    };
    let z = var(1, &[n, v])?;
    let y = targets(2, n, v)?;
    let (z2, y2) = (z.clone(), y.clone());
    let o = CeOptions::default();
    let o2 = o.clone();
    Ok(Case {
        op: "ce",
        shape: format!("[{n}, {v}]"),
        fused: Box::new(move || {
            let r =
                caracal_kernels::cross_entropy_with_grad(&z.as_tensor().detach(), &y, &o, false)?;
            std::hint::black_box(r);
            Ok(())
        }),
        reference: Box::new(move || fwd_bwd(reference::cross_entropy(&z2, &y2, &o2)?.loss)),
    })
}

fn flce_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::fused_linear_ce::{reference, FlceOptions};
    let (bt, h, v) = match scale {
        Scale::Full => (4096, 2048, 128256),
        Scale::Medium => (1024, 2048, 128256),
        Scale::Small => (512, 512, 32000),
    };
    let x = var(1, &[bt, h])?;
    let w = Var::from_tensor(&randn(2, &[v, h], 0.02, DType::F32)?)?;
    let y = targets(3, bt, v)?;
    let (x2, w2, y2) = (x.clone(), w.clone(), y.clone());
    let o = FlceOptions::default();
    let o2 = o.clone();
    Ok(Case {
        op: "flce",
        shape: format!("BT={bt} H={h} V={v}"),
        fused: Box::new(move || {
            let r = caracal_kernels::fused_linear_cross_entropy_with_grads(
                &x.as_tensor().detach(),
                &w.as_tensor().detach(),
                None,
                &y,
                &o,
            )?;
            std::hint::black_box(r);
            Ok(())
        }),
        reference: Box::new(move || {
            fwd_bwd(reference::fused_linear_cross_entropy(&x2, &w2, None, &y2, &o2)?.loss)
        }),
    })
}

fn log_probs(seed: u64, n: usize, v: usize) -> Result<Tensor> {
    let z = randn(seed, &[n, v], 1.0, DType::F32)?;
    Ok(caracal_kernels::fused_linear_jsd::reference::log_softmax(
        &z,
    )?)
}

fn jsd_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::jsd::{jsd_with_grad, reference};
    let (n, v) = match scale {
        Scale::Full | Scale::Medium => (4096, 32000),
        Scale::Small => (512, 8000),
    };
    let q = Var::from_tensor(&log_probs(1, n, v)?)?;
    let p = log_probs(2, n, v)?;
    let (q2, p2) = (q.clone(), p.clone());
    Ok(Case {
        op: "jsd",
        shape: format!("[{n}, {v}]"),
        fused: Box::new(move || {
            let out = jsd_with_grad(&q.as_tensor().detach(), &p, 0.5, -100, None)?;
            std::hint::black_box(out);
            Ok(())
        }),
        reference: Box::new(move || fwd_bwd(reference::jsd(&q2, &p2, 0.5, -100, None)?)),
    })
}

fn kl_div_case(scale: Scale) -> Result<Case> {
    use caracal_kernels::divergence::{kl_div, kl_div_backward, reference, KlReduction};
    let (n, v) = match scale {
        Scale::Full | Scale::Medium => (4096, 32000),
        Scale::Small => (512, 8000),
    };
    let x = Var::from_tensor(&log_probs(1, n, v)?)?;
    let y = log_probs(2, n, v)?.exp()?;
    let (x2, y2) = (x.clone(), y.clone());
    let one = Tensor::new(1f32, &candle_core::Device::Cpu)?;
    Ok(Case {
        op: "kl_div",
        shape: format!("[{n}, {v}]"),
        fused: Box::new(move || {
            let x = x.as_tensor().detach();
            let loss = kl_div(&x, &y, false, KlReduction::Batchmean)?;
            let dx = kl_div_backward(&x, &y, false, KlReduction::Batchmean, &one)?;
            std::hint::black_box((loss, dx));
            Ok(())
        }),
        reference: Box::new(move || {
            fwd_bwd(reference::kl_div(&x2, &y2, false, KlReduction::Batchmean)?)
        }),
    })
}

type CaseFn = fn(Scale) -> Result<Case>;

const CASES: &[(&str, CaseFn)] = &[
    ("flce", flce_case),
    ("ce", ce_case),
    ("rms_norm", rms_norm_case),
    ("layer_norm", layer_norm_case),
    ("swiglu", swiglu_case),
    ("geglu", geglu_case),
    ("rope", rope_case),
    ("jsd", jsd_case),
    ("kl_div", kl_div_case),
];

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
        #[cfg(feature = "cuda")]
        "cuda" => {
            let rows = super::kernels_cuda::measure_cases(a.reps, &a.ops)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                super::kernels_cuda::print(&rows);
            }
            return Ok(());
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => bail!(
            "--device cuda needs a build with the `cuda` feature: \
             cargo build --release -p caracal-cli --features cuda \
             (tools/cuda_build.sh builds it on a machine without CUDA)"
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
        &[
            "op",
            "shape",
            "fused ms",
            "reference ms",
            "speed-up",
            "fused peak / reference peak",
        ],
        &table,
    ));
    html.push_str(&report::bar_chart(
        "Speed-up over the candle reference",
        "x faster",
        &bars,
    )?);
    report.add(
        "kernels",
        "Fused training kernels (Liger-Kernel)",
        html,
        serde_json::Value::Object(summary),
    );
    Ok(())
}
