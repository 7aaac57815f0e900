//! Cross-entropy against the candle-composed reference (computed in f64 from
//! the same, possibly bf16/f16-rounded, logits) and finite differences.
//! Tolerances: reference/kernels.md §2, Liger's test_cross_entropy:
//! fp32 atol 1e-8 / rtol 1e-6, bf16 atol 1e-8 / rtol 5e-2 (f16 uses bf16's).
//! Liger's shapes (2,4096,32000) and (3,423,32000) are scaled down in rows.

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::cross_entropy::{cross_entropy, reference, CeOptions, Reduction};
use caracal_kernels::testing::{
    ce_single_options, check_close, class_weights, finite_difference, randn,
};

const FP32: (f64, f64) = (1e-8, 1e-6);
const BF16: (f64, f64) = (1e-8, 5e-2);
/// f16 (not in Liger's CE test): bf16's rtol, and atol = f16's smallest
/// subnormal, since gradients of order 1/(N·V) fall in f16's subnormal range.
const F16: (f64, f64) = (6e-8, 5e-2);

fn tol(dt: DType) -> (f64, f64) {
    match dt {
        DType::F32 | DType::F64 => FP32,
        DType::F16 => F16,
        _ => BF16,
    }
}

/// `n` targets in `[0, v)`, with about `ignore_frac` of them set to `ignore`.
fn targets(seed: u64, n: usize, v: usize, ignore: i64, ignore_frac: f64) -> Tensor {
    let mut rng = caracal_core::Rng::new(seed);
    let t: Vec<i64> = (0..n)
        .map(|_| {
            if rng.bernoulli(ignore_frac) {
                ignore
            } else {
                rng.below(v) as i64
            }
        })
        .collect();
    Tensor::new(t.as_slice(), &Device::Cpu).unwrap()
}

/// Loss, z-loss and dlogits of the op vs the f64 reference. `go` is the
/// grad_output: a scalar for sum/mean, `[N]` (non-uniform) for none.
fn compare_with(
    logits: &Tensor,
    target: &Tensor,
    opts: &CeOptions,
    go: Option<&Tensor>,
    (atol, rtol): (f64, f64),
) {
    let x = Var::from_tensor(logits).unwrap();
    let x_ref = Var::from_tensor(&logits.to_dtype(DType::F64).unwrap()).unwrap();
    let mut opts_ref = opts.clone();
    opts_ref.class_weights = opts
        .class_weights
        .as_ref()
        .map(|w| w.to_dtype(DType::F64).unwrap());
    let out = cross_entropy(x.as_tensor(), target, opts).unwrap();
    let out_ref = reference::cross_entropy(x_ref.as_tensor(), target, &opts_ref).unwrap();
    // The loss is computed in f32 for every input dtype: fp32 tolerance.
    check_close(
        "loss",
        &out.loss,
        &out_ref.loss,
        FP32.0,
        FP32.1.max(rtol.min(1e-5)),
    )
    .unwrap();
    match (&out.z_loss, &out_ref.z_loss) {
        (Some(z), Some(zr)) => check_close("z_loss", z, zr, 1e-8, 1e-5).unwrap(),
        (None, None) => {}
        _ => panic!("z_loss presence differs"),
    }
    let go_ref = go.map(|g| g.to_dtype(DType::F64).unwrap());
    let l = match go {
        Some(g) => out
            .loss
            .broadcast_mul(&g.to_dtype(out.loss.dtype()).unwrap())
            .unwrap(),
        None => out.loss.clone(),
    };
    let l_ref = match &go_ref {
        Some(g) => out_ref.loss.broadcast_mul(g).unwrap(),
        None => out_ref.loss.clone(),
    };
    let g = l.sum_all().unwrap().backward().unwrap();
    let g_ref = l_ref.sum_all().unwrap().backward().unwrap();
    let dx = g.get(&x).unwrap();
    assert_eq!(dx.dtype(), logits.dtype());
    check_close("dlogits", dx, g_ref.get(&x_ref).unwrap(), atol, rtol).unwrap();
}

fn compare(n: usize, v: usize, dt: DType, opts: &CeOptions, seed: u64) {
    let logits = randn(seed, &[n, v], 2.0, dt).unwrap();
    let target = targets(seed + 100, n, v, opts.ignore_index, 0.1);
    compare_with(&logits, &target, opts, None, tol(dt));
}

/// Liger's two shapes with fewer rows, plus an odd small one.
const SHAPES: [(usize, usize); 3] = [(2 * 64, 32000), (3 * 23, 32000), (5 * 7, 123)];

#[test]
fn default_options_match_reference_all_dtypes() {
    for (i, &(n, v)) in SHAPES.iter().enumerate() {
        for dt in [DType::F32, DType::BF16, DType::F16] {
            compare(n, v, dt, &CeOptions::default(), i as u64);
        }
    }
}

#[test]
fn each_option_alone_matches_reference() {
    let v = 4000;
    let cases = ce_single_options(v);
    for (name, opts) in cases {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let opts = CeOptions {
                reduction,
                ..opts.clone()
            };
            eprintln!("{name} {reduction:?}");
            compare(37, v, DType::F32, &opts, 7);
            compare(37, v, DType::BF16, &opts, 8);
        }
    }
}

fn everything(v: usize, reduction: Reduction) -> CeOptions {
    CeOptions {
        ignore_index: 42,
        label_smoothing: 0.1,
        lse_square_scale: 1e-4,
        softcap: Some(30.0),
        class_weights: Some(class_weights(v)),
        reduction,
    }
}

#[test]
fn everything_on_all_reductions_and_dtypes() {
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for dt in [DType::F32, DType::BF16, DType::F16] {
            // Logits with std 30 so the softcap bites.
            let logits = randn(11, &[32, 32000], 30.0, dt).unwrap();
            let target = targets(12, 32, 32000, 42, 0.2);
            // fp32 rtol 1e-5 (not 1e-6): with |z| near the cap, 1 − tanh²
            // amplifies the f32 rounding of tanh (the reference is f64).
            let t = if dt == DType::F32 {
                (1e-8, 1e-5)
            } else {
                tol(dt)
            };
            compare_with(&logits, &target, &everything(32000, reduction), None, t);
        }
    }
}

#[test]
fn non_unit_grad_output_scales_the_gradient() {
    let (n, v) = (33, 1000);
    let logits = randn(13, &[n, v], 1.0, DType::F32).unwrap();
    let target = targets(14, n, v, 42, 0.2);
    // reduction = none with a non-uniform grad_output.
    let go = randn(15, &[n], 1.0, DType::F32).unwrap();
    for opts in [
        CeOptions {
            reduction: Reduction::None,
            ignore_index: 42,
            ..Default::default()
        },
        everything(v, Reduction::None),
    ] {
        compare_with(&logits, &target, &opts, Some(&go), FP32);
    }
    // A scalar grad_output for sum and mean.
    let two = Tensor::new(2.5f32, &Device::Cpu).unwrap();
    for reduction in [Reduction::Sum, Reduction::Mean] {
        compare_with(
            &logits,
            &target,
            &everything(v, reduction),
            Some(&two),
            FP32,
        );
    }
}

#[test]
fn ignored_rows_have_zero_loss_and_zero_grad() {
    let (n, v) = (6, 50);
    let logits = Var::from_tensor(&randn(16, &[n, v], 1.0, DType::F32).unwrap()).unwrap();
    let target = Tensor::new(&[3i64, -100, 7, -100, 0, 49], &Device::Cpu).unwrap();
    let opts = CeOptions {
        reduction: Reduction::None,
        label_smoothing: 0.2,
        lse_square_scale: 1e-2,
        ..Default::default()
    };
    let out = cross_entropy(logits.as_tensor(), &target, &opts).unwrap();
    let loss = out.loss.to_vec1::<f32>().unwrap();
    assert_eq!(loss[1], 0.0);
    assert_eq!(loss[3], 0.0);
    assert!(loss[0] > 0.0);
    let g = out.loss.sum_all().unwrap().backward().unwrap();
    let d = g.get(&logits).unwrap().to_vec2::<f32>().unwrap();
    assert!(d[1].iter().chain(&d[3]).all(|&x| x == 0.0));
    // And against the reference (which masks instead of skipping).
    compare_with(logits.as_tensor(), &target, &opts, None, FP32);
}

#[test]
fn all_ignored_batch_gives_zero_not_nan() {
    let (n, v) = (4, 30);
    let target = Tensor::new(&[-100i64; 4], &Device::Cpu).unwrap();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for opts in [
            CeOptions {
                reduction,
                ..Default::default()
            },
            CeOptions {
                ignore_index: -100,
                ..everything(v, reduction)
            },
        ] {
            let logits = Var::from_tensor(&randn(17, &[n, v], 1.0, DType::F32).unwrap()).unwrap();
            let out = cross_entropy(logits.as_tensor(), &target, &opts).unwrap();
            let loss = out.loss.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(loss.iter().all(|&x| x == 0.0), "{loss:?}");
            let g = out.loss.sum_all().unwrap().backward().unwrap();
            let d = g
                .get(&logits)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(d.iter().all(|&x| x == 0.0));
            let r = reference::cross_entropy(logits.as_tensor(), &target, &opts).unwrap();
            check_close("all-ignored vs reference", &out.loss, &r.loss, 0.0, 0.0).unwrap();
        }
    }
}

#[test]
fn extreme_logits_stay_finite() {
    let (n, v) = (8, 500);
    let base = randn(18, &[n, v], 1.0, DType::F32).unwrap();
    // Entries of ±1e4.
    let logits = (base.sign().unwrap() * 1e4).unwrap();
    let target = targets(19, n, v, -100, 0.0);
    for opts in [
        CeOptions::default(),
        CeOptions {
            label_smoothing: 0.1,
            lse_square_scale: 1e-4,
            ..Default::default()
        },
        CeOptions {
            ignore_index: 42,
            ..everything(v, Reduction::Sum)
        },
    ] {
        let x = Var::from_tensor(&logits).unwrap();
        let out = cross_entropy(x.as_tensor(), &target, &opts).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        assert!(l.is_finite(), "{l}");
        let g = out.loss.backward().unwrap();
        let d = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(d.iter().all(|x| x.is_finite()));
        // The loss is O(1e4·ls·…): relative tolerance; gradients are exact-ish.
        compare_with(&logits, &target, &opts, None, (1e-6, 1e-5));
    }
}

#[test]
fn nan_logits_propagate_to_their_row() {
    // Documented choice: NaN propagates (loss and gradient of that row are
    // NaN), as in torch and the reference; other rows are untouched.
    let (n, v) = (3, 20);
    let mut data = randn(20, &[n, v], 1.0, DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    data[v + 5] = f32::NAN;
    let logits = Var::from_tensor(&Tensor::from_vec(data, (n, v), &Device::Cpu).unwrap()).unwrap();
    let target = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
    let opts = CeOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    let out = cross_entropy(logits.as_tensor(), &target, &opts).unwrap();
    let r = reference::cross_entropy(logits.as_tensor(), &target, &opts).unwrap();
    let loss = out.loss.to_vec1::<f32>().unwrap();
    assert!(loss[1].is_nan() && loss[0].is_finite() && loss[2].is_finite());
    check_close("nan rows", &out.loss, &r.loss, 1e-6, 1e-6).unwrap();
    let g = out.loss.sum_all().unwrap().backward().unwrap();
    let d = g.get(&logits).unwrap().to_vec2::<f32>().unwrap();
    assert!(d[1].iter().all(|x| x.is_nan()));
    assert!(d[0].iter().chain(&d[2]).all(|x| x.is_finite()));
    let mean = cross_entropy(logits.as_tensor(), &target, &CeOptions::default()).unwrap();
    assert!(mean.loss.to_scalar::<f32>().unwrap().is_nan());
}

#[test]
fn finite_differences_f64() {
    let (n, v) = (5, 7);
    let logits = randn(21, &[n, v], 3.0, DType::F64).unwrap();
    let target = Tensor::new(&[0i64, 42, 6, 3, 42], &Device::Cpu).unwrap();
    let mut w: Vec<f64> = (0..v).map(|j| 0.5 + j as f64 * 0.2).collect();
    w[2] = 2.0;
    let cases = [
        CeOptions {
            ignore_index: 42,
            ..Default::default()
        },
        CeOptions {
            ignore_index: 42,
            label_smoothing: 0.1,
            lse_square_scale: 1e-2,
            softcap: Some(4.0),
            class_weights: Some(Tensor::new(w.as_slice(), &Device::Cpu).unwrap()),
            reduction: Reduction::Mean,
        },
    ];
    for opts in cases {
        let x = Var::from_tensor(&logits).unwrap();
        let g = cross_entropy(x.as_tensor(), &target, &opts)
            .unwrap()
            .loss
            .backward()
            .unwrap();
        let fd = finite_difference(&logits, 1e-6, |z| {
            cross_entropy(z, &target, &opts)
                .unwrap()
                .loss
                .to_scalar::<f64>()
        })
        .unwrap();
        check_close("fd dlogits", g.get(&x).unwrap(), &fd, 1e-8, 1e-6).unwrap();
    }
}

#[test]
fn strided_logits_give_the_same_result() {
    // [V, N] transposed to [N, V]: non-contiguous rows.
    let base = randn(22, &[300, 9], 1.0, DType::F32).unwrap();
    let logits = base.t().unwrap();
    assert!(!logits.is_contiguous());
    let target = targets(23, 9, 300, -100, 0.0);
    let opts = CeOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    compare_with(&logits, &target, &opts, None, FP32);
    let a = cross_entropy(&logits, &target, &opts).unwrap().loss;
    let b = cross_entropy(&logits.contiguous().unwrap(), &target, &opts)
        .unwrap()
        .loss;
    check_close("strided vs contiguous", &a, &b, 0.0, 0.0).unwrap();
}

#[test]
fn untracked_logits_compute_the_loss_only() {
    let logits = randn(24, &[10, 40], 1.0, DType::F32).unwrap();
    let target = targets(25, 10, 40, -100, 0.0);
    let out = cross_entropy(&logits, &target, &CeOptions::default()).unwrap();
    let r = reference::cross_entropy(
        &logits.to_dtype(DType::F64).unwrap(),
        &target,
        &CeOptions::default(),
    )
    .unwrap();
    check_close("loss", &out.loss, &r.loss, 1e-8, 1e-6).unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dev = &Device::Cpu;
    let logits = randn(26, &[4, 10], 1.0, DType::F32).unwrap();
    let t = Tensor::new(&[1i64, 2, 3, 4], dev).unwrap();
    let err =
        |l: &Tensor, t: &Tensor, o: &CeOptions| cross_entropy(l, t, o).unwrap_err().to_string();

    let e = err(
        &logits,
        &Tensor::new(&[1i64, 2, 3], dev).unwrap(),
        &CeOptions::default(),
    );
    assert!(e.contains("target has shape"), "{e}");
    let e = err(
        &logits,
        &Tensor::new(&[1f32, 2., 3., 4.], dev).unwrap(),
        &CeOptions::default(),
    );
    assert!(e.contains("integer dtype"), "{e}");
    let e = err(&logits.flatten_all().unwrap(), &t, &CeOptions::default());
    assert!(e.contains("expected [N, V]"), "{e}");
    let e = err(
        &Tensor::zeros((4, 10), DType::U32, dev).unwrap(),
        &t,
        &CeOptions::default(),
    );
    assert!(e.contains("dtype"), "{e}");
    let e = err(
        &logits,
        &Tensor::new(&[1i64, 10, 3, 4], dev).unwrap(),
        &CeOptions::default(),
    );
    assert!(e.contains("target 10 at row 1 is outside [0, 10)"), "{e}");
    let e = err(
        &logits,
        &Tensor::new(&[1i64, -1, 3, 4], dev).unwrap(),
        &CeOptions::default(),
    );
    assert!(e.contains("outside"), "{e}");
    let o = CeOptions {
        class_weights: Some(Tensor::ones(9, DType::F32, dev).unwrap()),
        ..Default::default()
    };
    let e = err(&logits, &t, &o);
    assert!(
        e.contains("class_weights") && e.contains("length V = 10"),
        "{e}"
    );
    let e = err(
        &logits,
        &t,
        &CeOptions {
            label_smoothing: 1.5,
            ..Default::default()
        },
    );
    assert!(e.contains("label_smoothing"), "{e}");
    let e = err(
        &logits,
        &t,
        &CeOptions {
            softcap: Some(0.0),
            ..Default::default()
        },
    );
    assert!(e.contains("softcap"), "{e}");
}

#[test]
#[ignore = "timing; run with --ignored --nocapture"]
fn timing_fused_vs_reference() {
    use std::time::Instant;
    let (n, v) = (1024, 32000);
    let logits = randn(27, &[n, v], 2.0, DType::F32).unwrap();
    let target = targets(28, n, v, -100, 0.05);
    let opts = CeOptions::default();
    let time = |f: &dyn Fn()| {
        f();
        let reps = 3;
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    };
    let fused = time(&|| {
        let x = Var::from_tensor(&logits).unwrap();
        let l = cross_entropy(x.as_tensor(), &target, &opts).unwrap().loss;
        let g = l.backward().unwrap();
        g.get(&x).unwrap();
    });
    let refr = time(&|| {
        let x = Var::from_tensor(&logits).unwrap();
        let l = reference::cross_entropy(x.as_tensor(), &target, &opts)
            .unwrap()
            .loss;
        let g = l.backward().unwrap();
        g.get(&x).unwrap();
    });
    let fused_fwd = time(&|| {
        let x = Var::from_tensor(&logits).unwrap();
        cross_entropy(x.as_tensor(), &target, &opts).unwrap();
    });
    let ref_fwd = time(&|| {
        let x = Var::from_tensor(&logits).unwrap();
        reference::cross_entropy(x.as_tensor(), &target, &opts).unwrap();
    });
    // The row kernel alone: untracked logits, loss only / loss and gradient.
    let loss_only = time(&|| {
        cross_entropy(&logits, &target, &opts).unwrap();
    });
    eprintln!(
        "CE [{n}, {v}] f32: loss-only kernel {loss_only:.1} ms ({:.2} ns/element)",
        loss_only * 1e6 / (n * v) as f64
    );
    eprintln!(
        "CE [{n}, {v}] f32: fwd+bwd fused {fused:.1} ms vs reference {refr:.1} ms (speed-up {:.2}x); fwd alone fused {fused_fwd:.1} ms vs reference {ref_fwd:.1} ms",
        refr / fused
    );
}
