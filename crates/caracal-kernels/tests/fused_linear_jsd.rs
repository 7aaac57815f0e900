//! Fused linear JSD against the candle-composed reference (full logits,
//! log-softmax from max/exp/sum/log, Liger's JSD formula; autograd through
//! candle) and finite differences.
//!
//! Tolerances (reference/kernels.md §2; FLJSD has no row of its own, so the
//! FLCE `mean` row is used): f32 atol 1e-5, rtol 5e-4; bf16 atol 5e-3,
//! rtol 5e-2. Finite differences in f64: atol 1e-8, rtol 1e-6.

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::fused_linear_jsd::{fused_linear_jsd, reference, FljsdOptions};
use caracal_kernels::testing::{check_close, finite_difference, randn};

const BETAS: [f64; 5] = [0.0, 0.1, 0.5, 0.9, 1.0];
const F32_TOL: (f64, f64) = (1e-5, 5e-4);
const BF16_TOL: (f64, f64) = (5e-3, 5e-2);

struct Case {
    xs: Var,
    ws: Var,
    xt: Var,
    wt: Var,
}

fn case(bt: usize, hs: usize, ht: usize, v: usize, dt: DType) -> Case {
    let var = |seed, shape: &[usize], std| {
        Var::from_tensor(&randn(seed, shape, std, dt).unwrap()).unwrap()
    };
    Case {
        xs: var(1, &[bt, hs], 1.0),
        ws: var(2, &[v, hs], 1.0 / (hs as f32).sqrt()),
        xt: var(3, &[bt, ht], 1.0),
        wt: var(4, &[v, ht], 1.5 / (ht as f32).sqrt()),
    }
}

/// Loss and the gradients of `2.5·loss` against the reference.
fn compare(c: &Case, opts: FljsdOptions, (atol, rtol): (f64, f64), what: &str) {
    let what = format!(
        "{what} {:?} beta {} T {}",
        c.xs.dtype(),
        opts.beta,
        opts.temperature
    );
    let (xs, ws, xt, wt) = (
        c.xs.as_tensor(),
        c.ws.as_tensor(),
        c.xt.as_tensor(),
        c.wt.as_tensor(),
    );
    let got = fused_linear_jsd(xs, ws, xt, wt, opts.clone()).unwrap();
    let want = reference::fused_linear_jsd(xs, ws, xt, wt, &opts).unwrap();
    assert_eq!(got.dims(), &[] as &[usize]);
    check_close(&format!("loss {what}"), &got, &want, atol, rtol).unwrap();
    let g = (got * 2.5).unwrap().backward().unwrap();
    let g_ref = (want * 2.5).unwrap().backward().unwrap();
    check_close(
        &format!("dx {what}"),
        g.get(&c.xs).unwrap(),
        g_ref.get(&c.xs).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    check_close(
        &format!("dW {what}"),
        g.get(&c.ws).unwrap(),
        g_ref.get(&c.ws).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    assert!(
        g.get(&c.xt).is_none() && g.get(&c.wt).is_none(),
        "the teacher must get no gradient"
    );
}

#[test]
fn matches_reference_liger_shapes_all_betas() {
    // Liger test_fused_linear_jsd: (B·T, H, V) = (2·4, 1024, 1600) and
    // (4·423, 167, 1423), scaled down; the odd case also gives the teacher
    // its own hidden size and forces several uneven chunks.
    for dt in [DType::F32, DType::BF16] {
        let tol = if dt == DType::F32 { F32_TOL } else { BF16_TOL };
        let even = case(16, 128, 128, 400, dt);
        let odd = case(41, 67, 45, 301, dt);
        for beta in BETAS {
            for temperature in [1.0, 2.0] {
                let o = FljsdOptions {
                    beta,
                    temperature,
                    ..Default::default()
                };
                compare(&even, o.clone(), tol, "even");
                compare(
                    &odd,
                    FljsdOptions {
                        chunk_rows: Some(7),
                        ..o
                    },
                    tol,
                    "odd",
                );
            }
        }
    }
}

#[test]
fn chunking_does_not_change_the_result() {
    let c = case(29, 24, 20, 250, DType::F32);
    for chunk_rows in [None, Some(1), Some(4), Some(29), Some(1000)] {
        compare(
            &c,
            FljsdOptions {
                chunk_rows,
                ..Default::default()
            },
            F32_TOL,
            &format!("chunk {chunk_rows:?}"),
        );
    }
}

#[test]
fn ignored_rows_drop_out_and_all_ignored_is_zero() {
    let bt = 23;
    // Rows 4..=11 are ignored, so with 4-row chunks one chunk is skipped whole.
    let l: Vec<i64> = (0..bt as i64)
        .map(|i| {
            if (4..12).contains(&i) || i % 5 == 0 {
                -100
            } else {
                i
            }
        })
        .collect();
    let labels = Tensor::new(l, &Device::Cpu).unwrap();
    for dt in [DType::F32, DType::BF16] {
        let tol = if dt == DType::F32 { F32_TOL } else { BF16_TOL };
        let c = case(bt, 32, 16, 130, dt);
        for beta in BETAS {
            let o = FljsdOptions {
                beta,
                labels: Some(labels.clone()),
                chunk_rows: Some(4),
                ..Default::default()
            };
            compare(&c, o, tol, "labels");
        }
    }
    let c = case(6, 8, 8, 20, DType::F32);
    let all = Tensor::new(&[-100i64; 6], &Device::Cpu).unwrap();
    for beta in BETAS {
        let o = FljsdOptions {
            beta,
            labels: Some(all.clone()),
            ..Default::default()
        };
        let loss = fused_linear_jsd(
            c.xs.as_tensor(),
            c.ws.as_tensor(),
            c.xt.as_tensor(),
            c.wt.as_tensor(),
            o,
        )
        .unwrap();
        assert_eq!(loss.to_scalar::<f32>().unwrap(), 0.0);
        let g = loss.backward().unwrap();
        for v in [&c.xs, &c.ws] {
            let d = g
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(d.iter().all(|&x| x == 0.0), "beta {beta}");
        }
    }
}

#[test]
fn strided_inputs_give_the_same_result() {
    // student_w arrives as the transpose of a [Hs, V] matrix, student_x as a
    // column slice.
    let wt_base = randn(5, &[16, 90], 0.3, DType::F32).unwrap();
    let ws = wt_base.t().unwrap();
    let xs = randn(6, &[10, 20], 1.0, DType::F32)
        .unwrap()
        .narrow(1, 2, 16)
        .unwrap();
    assert!(!ws.is_contiguous() && !xs.is_contiguous());
    let xt = randn(7, &[10, 12], 1.0, DType::F32).unwrap();
    let wt = randn(8, &[90, 12], 0.3, DType::F32).unwrap();
    let o = FljsdOptions {
        chunk_rows: Some(3),
        ..Default::default()
    };
    let got = fused_linear_jsd(&xs, &ws, &xt, &wt, o.clone()).unwrap();
    let want = reference::fused_linear_jsd(
        &xs.contiguous().unwrap(),
        &ws.contiguous().unwrap(),
        &xt,
        &wt,
        &o,
    )
    .unwrap();
    check_close("strided", &got, &want, F32_TOL.0, F32_TOL.1).unwrap();
}

#[test]
fn finite_differences_f64() {
    let labels = Tensor::new(&[3i64, -100, 1, 0], &Device::Cpu).unwrap();
    for beta in [0.0, 0.4, 1.0] {
        let c = case(4, 3, 2, 5, DType::F64);
        let (xs, ws, xt, wt) = (
            c.xs.as_tensor(),
            c.ws.as_tensor(),
            c.xt.as_tensor(),
            c.wt.as_tensor(),
        );
        let o = FljsdOptions {
            beta,
            temperature: 1.7,
            labels: Some(labels.clone()),
            chunk_rows: Some(3),
            ..Default::default()
        };
        let g = fused_linear_jsd(xs, ws, xt, wt, o.clone())
            .unwrap()
            .backward()
            .unwrap();
        let fdx = finite_difference(xs, 1e-6, |x| {
            fused_linear_jsd(x, ws, xt, wt, o.clone())
                .unwrap()
                .to_scalar::<f64>()
        })
        .unwrap();
        check_close(
            &format!("fd dx beta {beta}"),
            g.get(&c.xs).unwrap(),
            &fdx,
            1e-8,
            1e-6,
        )
        .unwrap();
        let fdw = finite_difference(ws, 1e-6, |w| {
            fused_linear_jsd(xs, w, xt, wt, o.clone())
                .unwrap()
                .to_scalar::<f64>()
        })
        .unwrap();
        check_close(
            &format!("fd dW beta {beta}"),
            g.get(&c.ws).unwrap(),
            &fdw,
            1e-8,
            1e-6,
        )
        .unwrap();
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let c = case(4, 6, 5, 10, DType::F32);
    let (xs, ws, xt, wt) = (
        c.xs.as_tensor(),
        c.ws.as_tensor(),
        c.xt.as_tensor(),
        c.wt.as_tensor(),
    );
    let run = |xs: &Tensor, ws: &Tensor, xt: &Tensor, wt: &Tensor, o: FljsdOptions| {
        fused_linear_jsd(xs, ws, xt, wt, o).unwrap_err().to_string()
    };
    let d = FljsdOptions::default;
    let wt_small = randn(9, &[9, 5], 1.0, DType::F32).unwrap();
    let e = run(xs, ws, xt, &wt_small, d());
    assert!(e.contains("vocabulary"), "{e}");
    for temperature in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = run(xs, ws, xt, wt, FljsdOptions { temperature, ..d() });
        assert!(e.contains("temperature"), "{e}");
    }
    for beta in [-0.5, 1.01] {
        let e = run(xs, ws, xt, wt, FljsdOptions { beta, ..d() });
        assert!(e.contains("beta"), "{e}");
    }
    let e = run(xs, &ws.to_dtype(DType::BF16).unwrap(), xt, wt, d());
    assert!(e.contains("dtype"), "{e}");
    let e = run(xs, &ws.narrow(1, 0, 5).unwrap(), xt, wt, d());
    assert!(e.contains("hidden size"), "{e}");
    let e = run(xs, ws, &xt.narrow(0, 0, 3).unwrap(), wt, d());
    assert!(e.contains("rows"), "{e}");
    let e = run(&xs.flatten_all().unwrap(), ws, xt, wt, d());
    assert!(e.contains("2 dimensions"), "{e}");
    let e = run(
        xs,
        ws,
        xt,
        wt,
        FljsdOptions {
            chunk_rows: Some(0),
            ..d()
        },
    );
    assert!(e.contains("chunk_rows"), "{e}");
    let bad = Tensor::new(&[1i64, 2], &Device::Cpu).unwrap();
    let e = run(
        xs,
        ws,
        xt,
        wt,
        FljsdOptions {
            labels: Some(bad),
            ..d()
        },
    );
    assert!(e.contains("labels"), "{e}");
}
