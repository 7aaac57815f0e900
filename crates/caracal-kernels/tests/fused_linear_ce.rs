//! Fused linear cross-entropy against the candle-composed reference
//! (`x·Wᵀ + b` then the CE reference, computed in f64 from the same inputs)
//! and finite differences. Tolerances: reference/kernels.md §2, Liger's
//! test_fused_linear_cross_entropy: mean fp32 1e-5/5e-4, bf16 5e-3/5e-2;
//! sum fp32 1e-3/5e-2, bf16 5/50. Liger's shapes (8,128,1024,4096) and
//! (4,47,31,123) as (B,T,H,V); the first is scaled down to (2,64,256,4096).

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::cross_entropy::{CeOptions, Reduction};
use caracal_kernels::fused_linear_ce::{fused_linear_cross_entropy, reference, FlceOptions};
use caracal_kernels::testing::{
    ce_single_options, check_close, class_weights, finite_difference, randn,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and their peak, for the memory comparison.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MEAN_FP32: (f64, f64) = (1e-5, 5e-4);
const MEAN_BF16: (f64, f64) = (5e-3, 5e-2);
const SUM_FP32: (f64, f64) = (1e-3, 5e-2);
const SUM_BF16: (f64, f64) = (5.0, 50.0);

fn tol(dt: DType, r: Reduction) -> (f64, f64) {
    match (dt, r) {
        (DType::F32 | DType::F64, Reduction::Mean) => MEAN_FP32,
        (DType::F32 | DType::F64, _) => SUM_FP32,
        (_, Reduction::Mean) => MEAN_BF16,
        _ => SUM_BF16,
    }
}

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

struct Case {
    bt: usize,
    h: usize,
    v: usize,
    dt: DType,
    bias: bool,
    opts: FlceOptions,
    /// grad_output: `[BT]` for none, a scalar otherwise; `None` = 1.
    go: Option<Tensor>,
    tol: (f64, f64),
}

fn f64v(t: &Tensor) -> Var {
    Var::from_tensor(&t.to_dtype(DType::F64).unwrap()).unwrap()
}

/// Loss, z-loss, dx, dW and db vs the f64 reference on the same inputs.
fn compare(c: Case, seed: u64) {
    let Case {
        bt,
        h,
        v,
        dt,
        bias,
        opts,
        go,
        tol: (atol, rtol),
    } = c;
    let x = Var::from_tensor(&randn(seed, &[bt, h], 1.0, dt).unwrap()).unwrap();
    let w =
        Var::from_tensor(&randn(seed + 1, &[v, h], 1.0 / (h as f32).sqrt(), dt).unwrap()).unwrap();
    let b = bias.then(|| Var::from_tensor(&randn(seed + 2, &[v], 0.1, dt).unwrap()).unwrap());
    let target = targets(seed + 3, bt, v, opts.ce.ignore_index, 0.1);
    let (xr, wr, br) = (f64v(&x), f64v(&w), b.as_ref().map(|b| f64v(b)));
    let mut opts_ref = opts.clone();
    opts_ref.ce.class_weights = opts
        .ce
        .class_weights
        .as_ref()
        .map(|w| w.to_dtype(DType::F64).unwrap());

    let out = fused_linear_cross_entropy(
        x.as_tensor(),
        w.as_tensor(),
        b.as_ref().map(|b| b.as_tensor()),
        &target,
        &opts,
    )
    .unwrap();
    let out_ref = reference::fused_linear_cross_entropy(
        xr.as_tensor(),
        wr.as_tensor(),
        br.as_ref().map(|b| b.as_tensor()),
        &target,
        &opts_ref,
    )
    .unwrap();
    check_close("loss", &out.loss, &out_ref.loss, atol, rtol).unwrap();
    match (&out.z_loss, &out_ref.z_loss) {
        (Some(z), Some(zr)) => check_close("z_loss", z, zr, atol, rtol).unwrap(),
        (None, None) => {}
        _ => panic!("z_loss presence differs"),
    }
    let (l, l_ref) = match &go {
        Some(g) => (
            out.loss
                .broadcast_mul(&g.to_dtype(out.loss.dtype()).unwrap())
                .unwrap(),
            out_ref
                .loss
                .broadcast_mul(&g.to_dtype(DType::F64).unwrap())
                .unwrap(),
        ),
        None => (out.loss.clone(), out_ref.loss.clone()),
    };
    let g = l.sum_all().unwrap().backward().unwrap();
    let g_ref = l_ref.sum_all().unwrap().backward().unwrap();
    let dx = g.get(&x).unwrap();
    assert_eq!(dx.dtype(), dt);
    check_close("dx", dx, g_ref.get(&xr).unwrap(), atol, rtol).unwrap();
    check_close(
        "dW",
        g.get(&w).unwrap(),
        g_ref.get(&wr).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    if let (Some(b), Some(br)) = (&b, &br) {
        check_close("db", g.get(b).unwrap(), g_ref.get(br).unwrap(), atol, rtol).unwrap();
    }
}

fn case(bt: usize, h: usize, v: usize, dt: DType, bias: bool, opts: FlceOptions) -> Case {
    let tol = tol(dt, opts.ce.reduction);
    Case {
        bt,
        h,
        v,
        dt,
        bias,
        opts,
        go: None,
        tol,
    }
}

fn everything(v: usize, reduction: Reduction) -> FlceOptions {
    FlceOptions {
        ce: CeOptions {
            ignore_index: 42,
            label_smoothing: 0.1,
            lse_square_scale: 1e-4,
            softcap: Some(30.0),
            class_weights: Some(class_weights(v)),
            reduction,
        },
        accum_f32: true,
        chunk_rows: None,
    }
}

/// Liger's shapes (the large one scaled down), as (BT, H, V).
const SHAPES: [(usize, usize, usize); 2] = [(2 * 64, 256, 4096), (4 * 47, 31, 123)];

#[test]
fn default_options_match_reference_liger_shapes() {
    for (i, &(bt, h, v)) in SHAPES.iter().enumerate() {
        for dt in [DType::F32, DType::BF16] {
            for bias in [false, true] {
                compare(
                    case(bt, h, v, dt, bias, FlceOptions::default()),
                    10 * i as u64,
                );
            }
        }
    }
    compare(
        case(4 * 47, 31, 123, DType::F16, true, FlceOptions::default()),
        3,
    );
}

#[test]
fn each_option_alone_matches_reference() {
    let (bt, h, v) = (4 * 47, 31, 123);
    let cases = ce_single_options(v);
    for (name, ce) in cases {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            eprintln!("{name} {reduction:?}");
            let opts = FlceOptions {
                ce: CeOptions {
                    reduction,
                    ..ce.clone()
                },
                ..Default::default()
            };
            compare(case(bt, h, v, DType::F32, true, opts.clone()), 20);
            compare(case(bt, h, v, DType::BF16, true, opts), 21);
        }
    }
}

#[test]
fn everything_on_all_reductions() {
    // Liger's "everything" case: class weights, ls=0.1, ignore_index=42,
    // λ=1e-4, softcap=30, fp32 accumulation.
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for (bt, h, v) in SHAPES {
            for dt in [DType::F32, DType::BF16] {
                compare(case(bt, h, v, dt, true, everything(v, reduction)), 30);
            }
        }
    }
}

#[test]
fn bf16_accumulation_in_w_dtype_stays_within_liger_tolerance() {
    let (bt, h, v) = (2 * 64, 256, 4096);
    let opts = FlceOptions {
        accum_f32: false,
        ..Default::default()
    };
    compare(case(bt, h, v, DType::BF16, true, opts), 31);
}

#[test]
fn chunking_does_not_change_the_result() {
    // Chunks of 1, 7 (uneven) and all rows.
    let (bt, h, v) = (4 * 47, 31, 123);
    for chunk in [1, 7, bt] {
        let opts = FlceOptions {
            chunk_rows: Some(chunk),
            ..everything(v, Reduction::Mean)
        };
        compare(case(bt, h, v, DType::F32, true, opts), 32);
    }
}

#[test]
fn reduction_none_with_non_uniform_grad_output() {
    let (bt, h, v) = (4 * 47, 31, 123);
    for opts in [
        FlceOptions {
            ce: CeOptions {
                reduction: Reduction::None,
                ..Default::default()
            },
            chunk_rows: Some(16),
            ..Default::default()
        },
        FlceOptions {
            chunk_rows: Some(16),
            ..everything(v, Reduction::None)
        },
    ] {
        let go = randn(33, &[bt], 1.0, DType::F32).unwrap();
        let c = Case {
            go: Some(go.clone()),
            ..case(bt, h, v, DType::F32, true, opts.clone())
        };
        compare(c, 34);
        // A preference batch: grad_output 0 on a prompt block and on
        // scattered rows (the backward skips those rows; the gradients must
        // be the reference's, and exactly 0 on the skipped rows of dx).
        let mask: Vec<f32> = (0..bt)
            .map(|i| if i < 40 || i % 7 == 3 { 0.0 } else { 1.0 })
            .collect();
        let go = (go * Tensor::new(mask, &Device::Cpu).unwrap()).unwrap();
        let c = Case {
            go: Some(go),
            ..case(bt, h, v, DType::F32, true, opts)
        };
        compare(c, 35);
    }
    // Scalar grad_output for sum and mean.
    for reduction in [Reduction::Sum, Reduction::Mean] {
        let go = Tensor::new(-1.75f32, &Device::Cpu).unwrap();
        let c = Case {
            go: Some(go),
            ..case(bt, h, v, DType::F32, true, everything(v, reduction))
        };
        compare(c, 35);
    }
}

#[test]
fn ignored_rows_and_all_ignored_batches() {
    let (bt, h, v) = (6, 5, 11);
    let x = Var::from_tensor(&randn(40, &[bt, h], 1.0, DType::F32).unwrap()).unwrap();
    let w = Var::from_tensor(&randn(41, &[v, h], 1.0, DType::F32).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(42, &[v], 1.0, DType::F32).unwrap()).unwrap();
    let some = Tensor::new(&[3i64, -100, 7, -100, 0, 10], &Device::Cpu).unwrap();
    let none = Tensor::new(&[-100i64; 6], &Device::Cpu).unwrap();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let opts = FlceOptions {
            ce: CeOptions {
                reduction,
                label_smoothing: 0.1,
                ..Default::default()
            },
            ..Default::default()
        };
        // Ignored rows: zero loss, zero dx.
        let out = fused_linear_cross_entropy(
            x.as_tensor(),
            w.as_tensor(),
            Some(b.as_tensor()),
            &some,
            &opts,
        )
        .unwrap();
        let g = out.loss.sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().to_vec2::<f32>().unwrap();
        assert!(dx[1].iter().chain(&dx[3]).all(|&d| d == 0.0));
        if reduction == Reduction::None {
            let l = out.loss.to_vec1::<f32>().unwrap();
            assert!(l[1] == 0.0 && l[3] == 0.0 && l[0] > 0.0);
        }
        // All ignored: loss 0 and every gradient 0, no NaN.
        let out = fused_linear_cross_entropy(
            x.as_tensor(),
            w.as_tensor(),
            Some(b.as_tensor()),
            &none,
            &opts,
        )
        .unwrap();
        let l = out.loss.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(l.iter().all(|&x| x == 0.0), "{l:?}");
        let g = out.loss.sum_all().unwrap().backward().unwrap();
        for t in [g.get(&x).unwrap(), g.get(&w).unwrap(), g.get(&b).unwrap()] {
            let d = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(d.iter().all(|&x| x == 0.0));
        }
    }
}

#[test]
fn finite_differences_f64() {
    let (bt, h, v) = (5, 3, 7);
    let x = randn(50, &[bt, h], 1.0, DType::F64).unwrap();
    let w = randn(51, &[v, h], 1.0, DType::F64).unwrap();
    let b = randn(52, &[v], 1.0, DType::F64).unwrap();
    let target = Tensor::new(&[0i64, 6, 42, 3, 1], &Device::Cpu).unwrap();
    let wts: Vec<f64> = (0..v).map(|j| 0.5 + j as f64 * 0.2).collect();
    let opts = FlceOptions {
        ce: CeOptions {
            ignore_index: 42,
            label_smoothing: 0.1,
            lse_square_scale: 1e-2,
            softcap: Some(3.0),
            class_weights: Some(Tensor::new(wts.as_slice(), &Device::Cpu).unwrap()),
            reduction: Reduction::Mean,
        },
        accum_f32: true,
        chunk_rows: Some(2),
    };
    let (xv, wv, bv) = (
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&w).unwrap(),
        Var::from_tensor(&b).unwrap(),
    );
    let g = fused_linear_cross_entropy(
        xv.as_tensor(),
        wv.as_tensor(),
        Some(bv.as_tensor()),
        &target,
        &opts,
    )
    .unwrap()
    .loss
    .backward()
    .unwrap();
    let f = |x: &Tensor, w: &Tensor, b: &Tensor| {
        fused_linear_cross_entropy(x, w, Some(b), &target, &opts)
            .unwrap()
            .loss
            .to_scalar::<f64>()
    };
    let fd_x = finite_difference(&x, 1e-6, |t| f(t, &w, &b)).unwrap();
    let fd_w = finite_difference(&w, 1e-6, |t| f(&x, t, &b)).unwrap();
    let fd_b = finite_difference(&b, 1e-6, |t| f(&x, &w, t)).unwrap();
    check_close("fd dx", g.get(&xv).unwrap(), &fd_x, 1e-8, 1e-6).unwrap();
    check_close("fd dW", g.get(&wv).unwrap(), &fd_w, 1e-8, 1e-6).unwrap();
    check_close("fd db", g.get(&bv).unwrap(), &fd_b, 1e-8, 1e-6).unwrap();
}

#[test]
fn strided_inputs_give_the_same_result() {
    let (bt, h, v) = (9, 16, 40);
    // x as the transpose of [H, BT], W as a column slice of [V, 2H].
    let x = randn(60, &[h, bt], 1.0, DType::F32).unwrap().t().unwrap();
    let w = randn(61, &[v, 2 * h], 0.3, DType::F32)
        .unwrap()
        .narrow(1, 3, h)
        .unwrap();
    assert!(!x.is_contiguous() && !w.is_contiguous());
    let target = targets(62, bt, v, -100, 0.0);
    let opts = FlceOptions {
        chunk_rows: Some(4),
        ..everything(v, Reduction::Mean)
    };
    let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
    let (xr, wr) = (f64v(&x), f64v(&w));
    let mut opts_ref = opts.clone();
    opts_ref.ce.class_weights = opts
        .ce
        .class_weights
        .as_ref()
        .map(|w| w.to_dtype(DType::F64).unwrap());
    let out =
        fused_linear_cross_entropy(xv.as_tensor(), wv.as_tensor(), None, &target, &opts).unwrap();
    let out_ref = reference::fused_linear_cross_entropy(
        xr.as_tensor(),
        wr.as_tensor(),
        None,
        &target,
        &opts_ref,
    )
    .unwrap();
    check_close("loss", &out.loss, &out_ref.loss, MEAN_FP32.0, MEAN_FP32.1).unwrap();
    let g = out.loss.backward().unwrap();
    let g_ref = out_ref.loss.backward().unwrap();
    check_close(
        "dx",
        g.get(&xv).unwrap(),
        g_ref.get(&xr).unwrap(),
        MEAN_FP32.0,
        MEAN_FP32.1,
    )
    .unwrap();
    check_close(
        "dW",
        g.get(&wv).unwrap(),
        g_ref.get(&wr).unwrap(),
        MEAN_FP32.0,
        MEAN_FP32.1,
    )
    .unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dev = &Device::Cpu;
    let x = randn(70, &[4, 8], 1.0, DType::F32).unwrap();
    let w = randn(71, &[10, 8], 1.0, DType::F32).unwrap();
    let t = Tensor::new(&[1i64, 2, 3, 4], dev).unwrap();
    let o = FlceOptions::default();
    let err = |x: &Tensor, w: &Tensor, b: Option<&Tensor>, t: &Tensor, o: &FlceOptions| {
        fused_linear_cross_entropy(x, w, b, t, o)
            .unwrap_err()
            .to_string()
    };
    let e = err(
        &x,
        &randn(72, &[10, 7], 1.0, DType::F32).unwrap(),
        None,
        &t,
        &o,
    );
    assert!(e.contains("same H"), "{e}");
    let e = err(&x, &w.to_dtype(DType::BF16).unwrap(), None, &t, &o);
    assert!(e.contains("same dtype"), "{e}");
    let e = err(
        &x,
        &w,
        Some(&Tensor::zeros(9, DType::F32, dev).unwrap()),
        &t,
        &o,
    );
    assert!(e.contains("bias has shape"), "{e}");
    let e = err(&x, &w, None, &Tensor::new(&[1i64, 2, 3], dev).unwrap(), &o);
    assert!(e.contains("target has shape"), "{e}");
    let e = err(
        &x,
        &w,
        None,
        &Tensor::new(&[1i64, 2, 30, 4], dev).unwrap(),
        &o,
    );
    assert!(e.contains("target 30 at row 2 is outside [0, 10)"), "{e}");
    let bad_w = FlceOptions {
        ce: CeOptions {
            class_weights: Some(Tensor::ones(11, DType::F32, dev).unwrap()),
            ..Default::default()
        },
        ..o.clone()
    };
    let e = err(&x, &w, None, &t, &bad_w);
    assert!(e.contains("length V = 10"), "{e}");
    let e = err(
        &x,
        &w,
        None,
        &t,
        &FlceOptions {
            chunk_rows: Some(0),
            ..o.clone()
        },
    );
    assert!(e.contains("chunk_rows"), "{e}");
    let e = err(
        &Tensor::zeros((4, 8), DType::I64, dev).unwrap(),
        &w,
        None,
        &t,
        &o,
    );
    assert!(e.contains("dtype"), "{e}");
}

/// Peak heap growth (bytes) while `f` runs.
fn peak_extra(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

#[test]
#[ignore = "memory and timing; run with --ignored --nocapture (FLCE_SHAPE=BT,H,V to override)"]
fn memory_and_time_vs_reference() {
    use std::time::Instant;
    let shape = caracal_core::knob::list::<usize>("FLCE_SHAPE", &[1024, 512, 32000]).unwrap();
    assert_eq!(shape.len(), 3, "FLCE_SHAPE=BT,H,V takes three sizes");
    let (bt, h, v) = (shape[0], shape[1], shape[2]);
    let x = randn(80, &[bt, h], 1.0, DType::F32).unwrap();
    let w = randn(81, &[v, h], 0.02, DType::F32).unwrap();
    let target = targets(82, bt, v, -100, 0.0);
    // FLCE_CHUNK=rows overrides Liger's chunk size (0: Liger's).
    let chunk = caracal_core::knob::env::<usize>("FLCE_CHUNK", 0).unwrap();
    let chunk_rows = (chunk > 0).then_some(chunk);
    let opts = FlceOptions {
        chunk_rows,
        ..Default::default()
    };
    let run = |fused: bool| {
        let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
        let t = Instant::now();
        let mut ms = 0.0;
        let peak = peak_extra(|| {
            let loss = if fused {
                fused_linear_cross_entropy(xv.as_tensor(), wv.as_tensor(), None, &target, &opts)
                    .unwrap()
                    .loss
            } else {
                reference::fused_linear_cross_entropy(
                    xv.as_tensor(),
                    wv.as_tensor(),
                    None,
                    &target,
                    &opts,
                )
                .unwrap()
                .loss
            };
            let g = loss.backward().unwrap();
            drop((g.get(&xv).unwrap().clone(), g.get(&wv).unwrap().clone()));
            ms = t.elapsed().as_secs_f64() * 1e3;
        });
        (peak, ms)
    };
    let (pf, tf) = run(true);
    let (pr, tr) = run(false);
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "FLCE fwd+bwd BT={bt} H={h} V={v} f32 chunk {chunk_rows:?}: fused {tf:.0} ms, peak extra {:.0} MiB; reference {tr:.0} ms, peak extra {:.0} MiB; memory ratio {:.3}, speed-up {:.2}x",
        mb(pf),
        mb(pr),
        pf as f64 / pr as f64,
        tr / tf
    );
}
