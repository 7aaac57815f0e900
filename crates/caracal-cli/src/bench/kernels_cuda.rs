//! `caracal bench kernels --device cuda`: the fused ops on a GPU at Liger's
//! benchmark shapes (Llama-3-8B sizes, bf16; CE in fp32), each beside the
//! same op composed of plain candle ops on the same GPU, and beside the
//! PyTorch-eager and Liger-Kernel figures of the H100 anchor
//! (`shared/reference/kernels-gpu-anchor.md`, reproduced by
//! `liger_anchor.py`).
//!
//! "fwd+bwd" is what Liger's benchmark times: the forward and the op's own
//! backward for a given upstream gradient (here through the ops' functional
//! backwards, since candle's autograd adds a zero-fill and an add per
//! gradient that torch's does not). Median of `reps` timed calls after 3
//! warm-ups, each bracketed by a device synchronize; peak = the memory
//! pool's high-water mark of allocated bytes during the first call,
//! inputs included (as `torch.cuda.max_memory_allocated`). Freed memory
//! stays in the pool between steps (as with torch's caching allocator).

use super::kernels::Row;
use super::timing::median;
use anyhow::{bail, Context, Result};
use candle_core::cuda_backend::CudaDevice;
use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::cuda::memory;
use std::time::Instant;

type Step = Box<dyn FnMut() -> Result<()>>;

struct Case {
    op: &'static str,
    shape: String,
    fused: Step,
    reference: Step,
}

/// The anchor's (PyTorch eager ms, MiB; Liger ms, MiB) for an op.
fn anchor(op: &str) -> Option<((f64, f64), (f64, f64))> {
    Some(match op {
        "flce" | "flce_c512" => ((51.5, 13154.0), (64.0, 2227.0)),
        "ce" => ((12.6, 16032.0), (4.86, 4008.0)),
        "rms_norm" => ((3.45, 1920.0), (0.56, 386.0)),
        "swiglu" => ((2.19, 3136.0), (1.35, 1792.0)),
        "rope" => ((2.35, 899.0), (1.12, 771.0)),
        _ => return None,
    })
}

/// Normal samples drawn on the GPU (cuRAND; the CPU would take seconds per
/// gigabyte), seeded per call.
fn randn_on(dev: &Device, seed: u64, shape: &[usize], std: f32, dt: DType) -> Result<Tensor> {
    dev.set_seed(seed)?;
    Ok(Tensor::randn(0f32, std, shape, dev)?.to_dtype(dt)?)
}

fn targets(dev: &Device, n: usize, v: usize) -> Result<Tensor> {
    let mut rng = caracal_core::Rng::new(3);
    let t: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
    Ok(Tensor::from_vec(t, n, &Device::Cpu)?.to_device(dev)?)
}

/// Autograd fwd+bwd of a reference with upstream gradient `dy`.
fn ref_bwd(y: &Tensor, dy: &Tensor) -> Result<()> {
    let g = (y.to_dtype(DType::F32)? * dy.to_dtype(DType::F32)?)?
        .sum_all()?
        .backward()?;
    std::hint::black_box(g);
    Ok(())
}

fn flce_case(dev: &Device) -> Result<Case> {
    flce_with_chunk(dev, "flce", None)
}

/// FLCE with 512-row chunks: half the passes over dW for one more
/// `[256, V]` logits chunk of memory.
fn flce_c512_case(dev: &Device) -> Result<Case> {
    flce_with_chunk(dev, "flce_c512", Some(512))
}

fn flce_with_chunk(dev: &Device, op: &'static str, chunk_rows: Option<usize>) -> Result<Case> {
    use caracal_kernels::fused_linear_ce::{reference, FlceOptions};
    let (bt, h, v) = (8192, 4096, 128256);
    let x = Var::from_tensor(&randn_on(dev, 1, &[bt, h], 1.0, DType::BF16)?)?;
    let w = Var::from_tensor(&randn_on(dev, 2, &[v, h], 0.02, DType::BF16)?)?;
    let y = targets(dev, bt, v)?;
    // Liger's default: dW accumulated in W's dtype (bf16).
    let o = FlceOptions {
        accum_f32: false,
        chunk_rows,
        ..Default::default()
    };
    let (x2, w2, y2, o2) = (x.clone(), w.clone(), y.clone(), o.clone());
    Ok(Case {
        op,
        shape: format!(
            "x[{bt},{h}] W[{v},{h}] bf16, chunk {}",
            chunk_rows.unwrap_or(caracal_kernels::chunk::liger_chunk_rows(bt, h, v))
        ),
        fused: Box::new(move || {
            let r = caracal_kernels::fused_linear_cross_entropy_with_grads(
                x.as_tensor(),
                w.as_tensor(),
                None,
                &y,
                &o,
            )?;
            std::hint::black_box(r);
            Ok(())
        }),
        reference: Box::new(move || {
            let l = reference::fused_linear_cross_entropy(&x2, &w2, None, &y2, &o2)?;
            std::hint::black_box(l.loss.backward()?);
            Ok(())
        }),
    })
}

fn ce_case(dev: &Device) -> Result<Case> {
    use caracal_kernels::cross_entropy::{reference, CeOptions};
    let (n, v) = (8192, 128256);
    let z = randn_on(dev, 1, &[n, v], 1.0, DType::F32)?;
    let y = targets(dev, n, v)?;
    let (z2, y2) = (z.clone(), y.clone());
    // The reference's Var (a copy) exists only while the reference runs, so
    // that it does not count in the fused op's peak.
    let mut zv: Option<Var> = None;
    Ok(Case {
        op: "ce",
        shape: format!("logits[{n},{v}] fp32"),
        // In place, as Liger: the gradient overwrites the logits.
        fused: Box::new(move || {
            let r = caracal_kernels::cross_entropy_with_grad(&z, &y, &CeOptions::default(), true)?;
            std::hint::black_box(r);
            Ok(())
        }),
        reference: Box::new(move || {
            if zv.is_none() {
                zv = Some(Var::from_tensor(&z2)?);
            }
            let zt = zv
                .as_ref()
                .map(|v| v.as_tensor().clone())
                .unwrap_or_else(|| z2.clone());
            let l = reference::cross_entropy(&zt, &y2, &CeOptions::default())?;
            std::hint::black_box(l.loss.backward()?);
            Ok(())
        }),
    })
}

fn rms_norm_case(dev: &Device) -> Result<Case> {
    use caracal_kernels::rms_norm::{reference, rms_norm, rms_norm_backward, CastingMode};
    let (rows, n) = (16384, 4096);
    let x = Var::from_tensor(&randn_on(dev, 1, &[rows, n], 1.0, DType::BF16)?)?;
    let w = Var::from_tensor(&randn_on(dev, 2, &[n], 1.0, DType::BF16)?)?;
    let dy = randn_on(dev, 3, &[rows, n], 1.0, DType::BF16)?;
    let (x2, w2, dy2) = (x.clone(), w.clone(), dy.clone());
    let m = CastingMode::Llama;
    Ok(Case {
        op: "rms_norm",
        shape: format!("[{rows},{n}] bf16"),
        fused: Box::new(move || {
            let (xt, wt) = (x.as_tensor().detach(), w.as_tensor().detach());
            let y = rms_norm(&xt, &wt, 1e-6, 0.0, m)?;
            let g = rms_norm_backward(&xt, &wt, &dy, 1e-6, 0.0, m)?;
            std::hint::black_box((y, g));
            Ok(())
        }),
        reference: Box::new(move || ref_bwd(&reference::rms_norm(&x2, &w2, 1e-6, 0.0, m)?, &dy2)),
    })
}

fn glu_case(dev: &Device, gelu: bool) -> Result<Case> {
    use caracal_kernels::glu::reference;
    let (rows, n) = (16384, 14336);
    let a = Var::from_tensor(&randn_on(dev, 1, &[rows, n], 1.0, DType::BF16)?)?;
    let b = Var::from_tensor(&randn_on(dev, 2, &[rows, n], 1.0, DType::BF16)?)?;
    let dc = randn_on(dev, 3, &[rows, n], 1.0, DType::BF16)?;
    let (a2, b2, dc2) = (a.clone(), b.clone(), dc.clone());
    Ok(Case {
        op: if gelu { "geglu" } else { "swiglu" },
        shape: format!("[{rows},{n}] bf16"),
        fused: Box::new(move || {
            let (at, bt) = (a.as_tensor().detach(), b.as_tensor().detach());
            let (c, g) = if gelu {
                (
                    caracal_kernels::geglu(&at, &bt)?,
                    caracal_kernels::geglu_backward(&at, &bt, &dc)?,
                )
            } else {
                (
                    caracal_kernels::swiglu(&at, &bt)?,
                    caracal_kernels::swiglu_backward(&at, &bt, &dc)?,
                )
            };
            std::hint::black_box((c, g));
            Ok(())
        }),
        reference: Box::new(move || {
            let c = if gelu {
                reference::geglu(&a2, &b2)?
            } else {
                reference::swiglu(&a2, &b2)?
            };
            ref_bwd(&c, &dc2)
        }),
    })
}

fn rope_case(dev: &Device) -> Result<Case> {
    use caracal_kernels::rope::reference;
    let (b, hq, hk, t, d) = (8, 32, 8, 2048, 128);
    let q = Var::from_tensor(&randn_on(dev, 1, &[b, hq, t, d], 1.0, DType::BF16)?)?;
    let k = Var::from_tensor(&randn_on(dev, 2, &[b, hk, t, d], 1.0, DType::BF16)?)?;
    let mut ang = Vec::with_capacity(t * d);
    for p in 0..t {
        for i in 0..d {
            let f = 1.0 / 10000f64.powf((2 * (i % (d / 2))) as f64 / d as f64);
            ang.push((p as f64 * f) as f32);
        }
    }
    let ang = Tensor::from_vec(ang, (t, d), &Device::Cpu)?;
    let cos = ang.cos()?.to_dtype(DType::BF16)?.to_device(dev)?;
    let sin = ang.sin()?.to_dtype(DType::BF16)?.to_device(dev)?;
    let dq = randn_on(dev, 3, &[b, hq, t, d], 1.0, DType::BF16)?;
    let dk = randn_on(dev, 4, &[b, hk, t, d], 1.0, DType::BF16)?;
    let (q2, k2, c2, s2, dq2, dk2) = (
        q.clone(),
        k.clone(),
        cos.clone(),
        sin.clone(),
        dq.clone(),
        dk.clone(),
    );
    Ok(Case {
        op: "rope",
        shape: format!("q[{b},{hq},{t},{d}] k[{b},{hk},{t},{d}] bf16"),
        fused: Box::new(move || {
            let (qt, kt) = (q.as_tensor().detach(), k.as_tensor().detach());
            let out = caracal_kernels::rope(&qt, &kt, &cos, &sin)?;
            let g = caracal_kernels::rope_backward(&dq, &dk, &cos, &sin)?;
            std::hint::black_box((out, g));
            Ok(())
        }),
        reference: Box::new(move || {
            let (qo, ko) = reference::rope(&q2, &k2, &c2, &s2)?;
            let l = ((qo.to_dtype(DType::F32)? * dq2.to_dtype(DType::F32)?)?.sum_all()?
                + (ko.to_dtype(DType::F32)? * dk2.to_dtype(DType::F32)?)?.sum_all()?)?;
            std::hint::black_box(l.backward()?);
            Ok(())
        }),
    })
}

type CaseFn = fn(&Device) -> Result<Case>;

const CASES: &[(&str, CaseFn)] = &[
    ("flce", flce_case),
    ("flce_c512", flce_c512_case),
    ("ce", ce_case),
    ("rms_norm", rms_norm_case),
    ("swiglu", |d| glu_case(d, false)),
    ("geglu", |d| glu_case(d, true)),
    ("rope", rope_case),
];

/// Median ms over `reps` synchronized calls after 3 warm-ups, and the peak
/// allocated bytes of the first call (inputs included).
fn measure(dev: &CudaDevice, reps: usize, f: &mut Step) -> Result<(f64, usize)> {
    memory::reset_peak(dev)?;
    f()?;
    let peak = memory::peak_bytes(dev)? as usize;
    for _ in 0..2 {
        f()?;
    }
    memory::synchronize(dev)?;
    let mut ms = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        memory::synchronize(dev)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(&ms), peak))
}

/// Measure the selected GPU cases on CUDA device 0.
pub fn measure_cases(reps: usize, only: &[String]) -> Result<Vec<Row>> {
    for o in only {
        if !CASES.iter().any(|(n, _)| n == o) {
            let names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
            bail!(
                "unknown op `{o}` for --device cuda; expected one of: {}",
                names.join(", ")
            );
        }
    }
    let dev = memory::device(0)?;
    let Device::Cuda(cd) = &dev else {
        bail!("CUDA device 0 is not a CUDA device")
    };
    // Reuse freed memory across steps, as torch's caching allocator does.
    memory::retain_freed(cd)?;
    let mut rows = Vec::new();
    for (name, make) in CASES {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("bench kernels --device cuda: {name} ...");
        let mut case = make(&dev).with_context(|| format!("{name}: creating the inputs"))?;
        let (ms, peak) = measure(cd, reps, &mut case.fused)
            .with_context(|| format!("{name} (fused) at {}", case.shape))?;
        rows.push(Row {
            op: case.op.to_string(),
            shape: case.shape.clone(),
            implementation: "fused".into(),
            ms_median: ms,
            peak_bytes: peak,
        });
        match measure(cd, reps, &mut case.reference) {
            Ok((ms, peak)) => rows.push(Row {
                op: case.op.to_string(),
                shape: case.shape.clone(),
                implementation: "candle-reference".into(),
                ms_median: ms,
                peak_bytes: peak,
            }),
            // The composed reference can exhaust the card where the fused op
            // does not: report it and go on.
            Err(e) => eprintln!("{name} (candle reference) at {}: {e:#}", case.shape),
        }
        if let Some(((tms, tmib), (lms, lmib))) = anchor(name) {
            for (imp, ms, mib) in [
                ("anchor:pytorch-eager", tms, tmib),
                ("anchor:liger", lms, lmib),
            ] {
                rows.push(Row {
                    op: case.op.to_string(),
                    shape: case.shape.clone(),
                    implementation: imp.into(),
                    ms_median: ms,
                    peak_bytes: (mib * (1u64 << 20) as f64) as usize,
                });
            }
        }
        drop(case);
        memory::trim(cd)?;
    }
    Ok(rows)
}

/// Print the rows as a table with ratios against Liger and PyTorch.
pub fn print(rows: &[Row]) {
    println!(
        "{:<9} {:<40} {:<22} {:>10} {:>11}",
        "op", "shape", "impl", "ms (med)", "peak MiB"
    );
    for r in rows {
        println!(
            "{:<9} {:<40} {:<22} {:>10.3} {:>11.0}",
            r.op,
            r.shape,
            r.implementation,
            r.ms_median,
            r.peak_bytes as f64 / (1u64 << 20) as f64
        );
    }
    for r in rows.iter().filter(|r| r.implementation == "fused") {
        let find = |imp: &str| {
            rows.iter()
                .find(|o| o.op == r.op && o.implementation == imp)
        };
        let mut line = format!(
            "{}: {:.3} ms, {:.0} MiB",
            r.op,
            r.ms_median,
            r.peak_bytes as f64 / 1048576.0
        );
        for (label, imp) in [
            ("candle reference", "candle-reference"),
            ("PyTorch eager (anchor)", "anchor:pytorch-eager"),
            ("Liger (anchor)", "anchor:liger"),
        ] {
            if let Some(o) = find(imp) {
                line.push_str(&format!(
                    "; {:.2}x the speed of {label}",
                    o.ms_median / r.ms_median
                ));
            }
        }
        println!("{line}");
    }
}
