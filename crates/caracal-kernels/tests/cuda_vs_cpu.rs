//! Every fused op on the GPU against the same op on the CPU, same inputs,
//! forward and gradients (through candle's autograd, seeded with fixed
//! random output weights), with per-dtype tolerances. Built only with the
//! `cuda` feature; run by tools/gpu_check.sh on a GPU machine. Without a GPU
//! each test says so and passes, unless `CARACAL_REQUIRE_GPU` is set.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::testing::{check_close, randn};
use caracal_kernels::{
    cross_entropy, cross_entropy_in_place, fused_linear_cross_entropy, fused_linear_jsd, geglu,
    jsd, kl_div, layer_norm, rms_norm, rope, swiglu, CastingMode, CeOptions, FlceOptions,
    FljsdOptions, KlReduction, Reduction,
};

type R<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn gpu() -> Option<Device> {
    match caracal_kernels::cuda::device(0) {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var_os("CARACAL_REQUIRE_GPU").is_some() {
                panic!("{e}");
            }
            eprintln!("skipped (no GPU): {e}");
            None
        }
    }
}

/// `(atol, rtol)` for outputs and gradients computed on two devices in the
/// same dtype: f32 kernels differ only in summation order; bf16/f16 results
/// may land one rounding step apart.
fn tol(dt: DType) -> (f64, f64) {
    match dt {
        DType::F32 => (1e-5, 1e-4),
        DType::F64 => (1e-10, 1e-9),
        DType::F16 => (2e-3, 1e-2),
        _ => (2e-2, 2e-2),
    }
}

/// Run `f` on CPU and GPU copies of `inputs` (the first `n_grad` become
/// `Var`s), backpropagate `Σ_k Σ out_k·r_k` with fixed random `r_k`, and
/// compare every output and gradient.
fn compare(
    name: &str,
    gpu: &Device,
    inputs: &[Tensor],
    n_grad: usize,
    f: &dyn Fn(&[Tensor]) -> R<Vec<Tensor>>,
    (atol, rtol): (f64, f64),
) -> R<()> {
    let run = |dev: &Device| -> R<(Vec<Tensor>, Vec<Tensor>)> {
        let mut ts = Vec::new();
        let mut vars = Vec::new();
        for (i, t) in inputs.iter().enumerate() {
            let t = t.to_device(dev)?;
            if i < n_grad {
                let v = Var::from_tensor(&t)?;
                ts.push(v.as_tensor().clone());
                vars.push(v);
            } else {
                ts.push(t);
            }
        }
        let outs = f(&ts)?;
        let mut loss = Tensor::zeros((), DType::F32, dev)?;
        for (k, o) in outs.iter().enumerate() {
            let r = randn(1000 + k as u64, o.dims(), 1.0, DType::F32)?.to_device(dev)?;
            loss = (loss + (o.to_dtype(DType::F32)? * r)?.sum_all()?)?;
        }
        let grads = loss.backward()?;
        let mut gs = Vec::new();
        for v in &vars {
            let g = grads
                .get(v.as_tensor())
                .ok_or_else(|| format!("{name}: no gradient for an input"))?;
            gs.push(g.to_device(&Device::Cpu)?);
        }
        let outs = outs
            .iter()
            .map(|o| o.to_device(&Device::Cpu))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok((outs, gs))
    };
    let (co, cg) = run(&Device::Cpu)?;
    let (go, gg) = run(gpu)?;
    for (k, (g, c)) in go.iter().zip(&co).enumerate() {
        check_close(&format!("{name} output {k}"), g, c, atol, rtol)?;
    }
    for (k, (g, c)) in gg.iter().zip(&cg).enumerate() {
        check_close(&format!("{name} gradient {k}"), g, c, atol, rtol)?;
    }
    eprintln!("{name}: ok");
    Ok(())
}

fn rnd(seed: u64, shape: &[usize], dt: DType) -> R<Tensor> {
    Ok(randn(seed, shape, 1.0, DType::F32)?.to_dtype(dt)?)
}

fn targets(seed: u64, n: usize, v: usize, ignored_every: usize) -> R<Tensor> {
    let mut rng = caracal_core::Rng::new(seed);
    let t: Vec<i64> = (0..n)
        .map(|i| {
            if ignored_every > 0 && i % ignored_every == 1 {
                -100
            } else {
                rng.below(v) as i64
            }
        })
        .collect();
    Ok(Tensor::from_vec(t, n, &Device::Cpu)?)
}

const DTYPES: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

#[test]
fn rms_norm_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in DTYPES {
        for (rows, n) in [(7, 300), (33, 4096)] {
            for (mode, offset) in [
                (CastingMode::Llama, 0.0),
                (CastingMode::Gemma, 1.0),
                (CastingMode::None, 0.0),
            ] {
                let ins = [rnd(1, &[rows, n], dt)?, rnd(2, &[n], dt)?];
                compare(
                    &format!("rms_norm {dt:?} [{rows},{n}] {mode:?}"),
                    &g,
                    &ins,
                    2,
                    &|t| Ok(vec![rms_norm(&t[0], &t[1], 1e-6, offset, mode)?]),
                    tol(dt),
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn layer_norm_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in DTYPES {
        for (rows, n) in [(9, 1500), (64, 64)] {
            let ins = [
                rnd(1, &[rows, n], dt)?,
                rnd(2, &[n], dt)?,
                rnd(3, &[n], dt)?,
            ];
            compare(
                &format!("layer_norm {dt:?} [{rows},{n}]"),
                &g,
                &ins,
                3,
                &|t| Ok(vec![layer_norm(&t[0], &t[1], &t[2], 1e-5)?]),
                tol(dt),
            )?;
        }
    }
    Ok(())
}

#[test]
fn rope_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in DTYPES {
        for cos_batch in [0usize, 2] {
            let (b, t, d) = (2, 33, 64);
            let cs = if cos_batch == 0 {
                vec![t, d]
            } else {
                vec![cos_batch, t, d]
            };
            let ins = [
                rnd(1, &[b, 4, t, d], dt)?,
                rnd(2, &[b, 2, t, d], dt)?,
                rnd(3, &cs, DType::F32)?,
                rnd(4, &cs, DType::F32)?,
            ];
            compare(
                &format!("rope {dt:?} cos {cs:?}"),
                &g,
                &ins,
                2,
                &|x| {
                    let (q, k) = rope(&x[0], &x[1], &x[2], &x[3])?;
                    Ok(vec![q, k])
                },
                tol(dt),
            )?;
        }
    }
    Ok(())
}

#[test]
fn glu_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in DTYPES {
        // [37, 123] takes the scalar path, [16, 256] the 16-byte vector path.
        for shape in [[37usize, 123], [16, 256]] {
            let ins = [rnd(1, &shape, dt)?, rnd(2, &shape, dt)?];
            compare(
                &format!("swiglu {dt:?} {shape:?}"),
                &g,
                &ins,
                2,
                &|t| Ok(vec![swiglu(&t[0], &t[1])?]),
                tol(dt),
            )?;
            compare(
                &format!("geglu {dt:?} {shape:?}"),
                &g,
                &ins,
                2,
                &|t| Ok(vec![geglu(&t[0], &t[1])?]),
                tol(dt),
            )?;
        }
    }
    Ok(())
}

fn ce_cases(v: usize) -> R<Vec<(&'static str, CeOptions)>> {
    Ok(vec![
        ("mean", CeOptions::default()),
        (
            "sum",
            CeOptions {
                reduction: Reduction::Sum,
                ..Default::default()
            },
        ),
        (
            "none",
            CeOptions {
                reduction: Reduction::None,
                ..Default::default()
            },
        ),
        (
            "everything",
            CeOptions {
                label_smoothing: 0.1,
                lse_square_scale: 1e-4,
                softcap: Some(30.0),
                class_weights: Some(caracal_kernels::testing::class_weights(v)),
                ..Default::default()
            },
        ),
    ])
}

#[test]
fn cross_entropy_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in [DType::F32, DType::BF16] {
        // V = 1003 takes the general kernel, V = 1024 the vectorized one.
        for v in [1003usize, 1024] {
            let y = targets(5, 13, v, 4)?;
            for (name, o) in ce_cases(v)? {
                let ins = [rnd(1, &[13, v], dt)?.affine(3.0, 0.0)?];
                let yc = y.clone();
                compare(
                    &format!("cross_entropy {dt:?} V={v} {name}"),
                    &g,
                    &ins,
                    1,
                    &|t| {
                        let yd = yc.to_device(t[0].device())?;
                        let mut o = o.clone();
                        o.class_weights = match &o.class_weights {
                            Some(w) => Some(w.to_device(t[0].device())?),
                            None => None,
                        };
                        let out = cross_entropy(&t[0], &yd, &o)?;
                        Ok(match out.z_loss {
                            Some(z) => vec![out.loss, z],
                            None => vec![out.loss],
                        })
                    },
                    tol(dt),
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn cross_entropy_in_place_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in [DType::F32, DType::BF16] {
        let v = 1024;
        let y = targets(5, 13, v, 4)?;
        let ins = [rnd(1, &[13, v], dt)?];
        compare(
            &format!("cross_entropy_in_place {dt:?}"),
            &g,
            &ins,
            1,
            &|t| {
                let yd = y.to_device(t[0].device())?;
                let o = CeOptions::default();
                // In place on the GPU; the CPU has no in-place variant.
                let out = if t[0].device().is_cpu() {
                    cross_entropy(&t[0], &yd, &o)?
                } else {
                    cross_entropy_in_place(&t[0], &yd, &o)?
                };
                Ok(vec![out.loss])
            },
            tol(dt),
        )?;
    }
    Ok(())
}

#[test]
fn fused_linear_cross_entropy_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in [DType::F32, DType::BF16] {
        let (bt, h, v) = (37, 64, 515);
        let y = targets(7, bt, v, 5)?;
        for (name, ce) in ce_cases(v)? {
            for with_bias in [false, true] {
                for accum_f32 in [true, false] {
                    let opts = FlceOptions {
                        ce: ce.clone(),
                        accum_f32,
                        chunk_rows: Some(8),
                    };
                    let mut ins = vec![
                        rnd(1, &[bt, h], dt)?,
                        randn(2, &[v, h], 0.1, DType::F32)?.to_dtype(dt)?,
                    ];
                    if with_bias {
                        ins.push(randn(3, &[v], 0.1, DType::F32)?.to_dtype(dt)?);
                    }
                    let n_grad = ins.len();
                    let yc = y.clone();
                    // bf16: dW rounds per chunk when accum_f32 is off, and
                    // the logits themselves are rounded; allow Liger's FLCE
                    // bf16 tolerance.
                    let tl = if dt == DType::BF16 {
                        (5e-2, 5e-2)
                    } else {
                        (1e-4, 1e-3)
                    };
                    compare(
                        &format!("flce {dt:?} {name} bias={with_bias} accum_f32={accum_f32}"),
                        &g,
                        &ins,
                        n_grad,
                        &|t| {
                            let yd = yc.to_device(t[0].device())?;
                            let mut o = opts.clone();
                            o.ce.class_weights = match &o.ce.class_weights {
                                Some(w) => Some(w.to_device(t[0].device())?),
                                None => None,
                            };
                            let out = fused_linear_cross_entropy(&t[0], &t[1], t.get(2), &yd, &o)?;
                            Ok(match out.z_loss {
                                Some(z) => vec![out.loss, z],
                                None => vec![out.loss],
                            })
                        },
                        tl,
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn log_softmax(t: &Tensor) -> R<Tensor> {
    Ok(caracal_kernels::fused_linear_jsd::reference::log_softmax(
        t,
    )?)
}

#[test]
fn jsd_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in [DType::F32, DType::BF16] {
        let (n, v) = (11, 333);
        let labels = targets(9, n, v, 3)?;
        for beta in [0.0, 0.5, 1.0] {
            for use_labels in [false, true] {
                let ins = [
                    log_softmax(&rnd(1, &[n, v], DType::F32)?)?.to_dtype(dt)?,
                    log_softmax(&rnd(2, &[n, v], DType::F32)?)?.to_dtype(dt)?,
                ];
                let lab = labels.clone();
                compare(
                    &format!("jsd {dt:?} beta={beta} labels={use_labels}"),
                    &g,
                    &ins,
                    1,
                    &|t| {
                        let l = lab.to_device(t[0].device())?;
                        let l = use_labels.then_some(&l);
                        Ok(vec![jsd(&t[0], &t[1], beta, -100, l)?])
                    },
                    tol(dt),
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn fused_linear_jsd_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in [DType::F32, DType::BF16] {
        let (bt, hs, ht, v) = (19, 32, 48, 301);
        let labels = targets(11, bt, v, 4)?;
        for beta in [0.0, 0.5, 1.0] {
            let ins = [
                rnd(1, &[bt, hs], dt)?,
                randn(2, &[v, hs], 0.2, DType::F32)?.to_dtype(dt)?,
                rnd(3, &[bt, ht], dt)?,
                randn(4, &[v, ht], 0.2, DType::F32)?.to_dtype(dt)?,
            ];
            let lab = labels.clone();
            let tl = if dt == DType::BF16 {
                (5e-2, 5e-2)
            } else {
                (1e-5, 1e-4)
            };
            compare(
                &format!("fused_linear_jsd {dt:?} beta={beta}"),
                &g,
                &ins,
                2,
                &|t| {
                    let opts = FljsdOptions {
                        beta,
                        temperature: 2.0,
                        labels: Some(lab.to_device(t[0].device())?),
                        chunk_rows: Some(8),
                        ..Default::default()
                    };
                    Ok(vec![fused_linear_jsd(&t[0], &t[1], &t[2], &t[3], opts)?])
                },
                tl,
            )?;
        }
    }
    Ok(())
}

#[test]
fn kl_div_matches_cpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for dt in [DType::F32, DType::BF16] {
        let (n, v) = (11, 333);
        for log_target in [false, true] {
            for red in [
                KlReduction::None,
                KlReduction::Sum,
                KlReduction::Mean,
                KlReduction::Batchmean,
            ] {
                let x = log_softmax(&rnd(1, &[n, v], DType::F32)?)?;
                let y = log_softmax(&rnd(2, &[n, v], DType::F32)?)?;
                let y = if log_target { y } else { y.exp()? };
                let ins = [x.to_dtype(dt)?, y.to_dtype(dt)?];
                compare(
                    &format!("kl_div {dt:?} log_target={log_target} {red:?}"),
                    &g,
                    &ins,
                    1,
                    &|t| Ok(vec![kl_div(&t[0], &t[1], log_target, red)?]),
                    tol(dt),
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn functional_backwards_match_autograd_on_gpu() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let dt = DType::BF16;
    let x = rnd(1, &[16, 512], dt)?.to_device(&g)?;
    let w = rnd(2, &[512], dt)?.to_device(&g)?;
    let dy = rnd(3, &[16, 512], dt)?.to_device(&g)?;
    let xv = Var::from_tensor(&x)?;
    let wv = Var::from_tensor(&w)?;
    let y = rms_norm(
        xv.as_tensor(),
        wv.as_tensor(),
        1e-6,
        0.0,
        CastingMode::Llama,
    )?;
    let grads = (y.to_dtype(DType::F32)? * dy.to_dtype(DType::F32)?)?
        .sum_all()?
        .backward()?;
    let (dx, dw) = caracal_kernels::rms_norm_backward(&x, &w, &dy, 1e-6, 0.0, CastingMode::Llama)?;
    let t = tol(dt);
    check_close(
        "rms_norm_backward dx",
        &dx,
        grads.get(xv.as_tensor()).unwrap(),
        t.0,
        t.1,
    )?;
    check_close(
        "rms_norm_backward dw",
        &dw,
        grads.get(wv.as_tensor()).unwrap(),
        t.0,
        t.1,
    )?;
    // LayerNorm: the same kernel as autograd's, so the gradients agree exactly.
    let b = rnd(4, &[512], dt)?.to_device(&g)?;
    let bv = Var::from_tensor(&b)?;
    let y = layer_norm(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), 1e-5)?;
    let grads = (y * &dy)?.sum_all()?.backward()?;
    let (dx, dw, db) = caracal_kernels::layer_norm_backward(&x, &w, &dy, 1e-5)?;
    for (name, got, v) in [("dx", &dx, &xv), ("dw", &dw, &wv), ("db", &db, &bv)] {
        let want = grads.get(v.as_tensor()).unwrap();
        check_close(&format!("layer_norm_backward {name}"), got, want, 0.0, 0.0)?;
    }
    // JSD and KL, f32.
    let q = log_softmax(&rnd(5, &[8, 257], DType::F32)?)?.to_device(&g)?;
    let p = log_softmax(&rnd(6, &[8, 257], DType::F32)?)?.to_device(&g)?;
    let qv = Var::from_tensor(&q)?;
    let grads = jsd(qv.as_tensor(), &p, 0.5, -100, None)?.backward()?;
    let (_, dq) = caracal_kernels::jsd_with_grad(&q, &p, 0.5, -100, None)?;
    check_close(
        "jsd_with_grad",
        &dq,
        grads.get(qv.as_tensor()).unwrap(),
        0.0,
        0.0,
    )?;
    let grads = kl_div(qv.as_tensor(), &p, true, KlReduction::Batchmean)?.backward()?;
    let one = Tensor::new(1f32, &g)?;
    let dq = caracal_kernels::kl_div_backward(&q, &p, true, KlReduction::Batchmean, &one)?;
    check_close(
        "kl_div_backward",
        &dq,
        grads.get(qv.as_tensor()).unwrap(),
        0.0,
        0.0,
    )?;
    Ok(())
}

#[test]
fn unsupported_ops_and_out_of_memory_give_clear_errors() -> R<()> {
    let Some(g) = gpu() else { return Ok(()) };
    // TVD has no CUDA kernel: a clear error, not a panic.
    let p = rnd(1, &[4, 8], DType::F32)?.to_device(&g)?;
    let e = caracal_kernels::tvd(&p, &p, KlReduction::Sum).unwrap_err();
    assert!(e.to_string().contains("only has a CPU kernel"), "{e}");
    // Out of memory names the op and the shape: inputs that take ~80% of the
    // free memory leave no room for the output.
    let Device::Cuda(cd) = &g else { unreachable!() };
    let (free, _) = cd.cuda_stream().context().mem_get_info()?;
    let n = free / 4 * 2 / 5; // f32 elements in 40% of the free memory
    let a = Tensor::zeros(n, DType::F32, &g)?;
    let b = Tensor::zeros(n, DType::F32, &g)?;
    let e = swiglu(&a, &b).unwrap_err().to_string();
    assert!(
        e.contains("CUDA out of memory") && e.contains(&format!("[{n}]")),
        "{e}"
    );
    Ok(())
}
