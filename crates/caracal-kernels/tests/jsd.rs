//! Generalized JSD against the candle-composed reference (Liger's formula as
//! written, autograd through candle) and finite differences.
//!
//! Tolerances (reference/kernels.md §2, Liger's test_jsd): bf16 atol 1e-7,
//! rtol 5e-2; f32 atol 1e-8, rtol 1e-6 (Liger's fp32 row for JSD/KLDiv). The
//! f64 finite-difference check uses atol 1e-8, rtol 1e-6.

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::fused_linear_jsd::reference::log_softmax;
use caracal_kernels::jsd::{jsd, reference};
use caracal_kernels::testing::{check_close, finite_difference, randn};

const BETAS: [f64; 5] = [0.0, 0.1, 0.5, 0.9, 1.0];

/// Log-probabilities of random logits, made in f32 and cast to `dt`.
fn log_probs(seed: u64, rows: usize, vocab: usize, dt: DType) -> Tensor {
    let z = randn(seed, &[rows, vocab], 1.0, DType::F32).unwrap();
    let c = if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    log_softmax(&z.to_dtype(c).unwrap())
        .unwrap()
        .to_dtype(dt)
        .unwrap()
}

/// Loss and `d(2.5·loss)/dlog_q` against the reference; the teacher gets none.
fn compare(
    rows: usize,
    vocab: usize,
    dt: DType,
    beta: f64,
    labels: Option<&Tensor>,
    atol: f64,
    rtol: f64,
) {
    let x = Var::from_tensor(&log_probs(1, rows, vocab, dt)).unwrap();
    let y = Var::from_tensor(&log_probs(2, rows, vocab, dt)).unwrap();
    let what = format!("[{rows},{vocab}] {dt:?} beta {beta}");
    let loss = jsd(x.as_tensor(), y.as_tensor(), beta, -100, labels).unwrap();
    let want = reference::jsd(x.as_tensor(), y.as_tensor(), beta, -100, labels).unwrap();
    assert_eq!(loss.dims(), &[] as &[usize]);
    check_close(&format!("loss {what}"), &loss, &want, atol, rtol).unwrap();
    let g = (loss * 2.5).unwrap().backward().unwrap();
    let g_ref = (want * 2.5).unwrap().backward().unwrap();
    check_close(
        &format!("dX {what}"),
        g.get(&x).unwrap(),
        g_ref.get(&x).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    assert!(g.get(&y).is_none(), "the teacher must get no gradient");
}

#[test]
fn matches_reference_liger_shapes_all_betas() {
    // Liger test_jsd: (2·1024, 3200) and (41·401, 1271), scaled down in rows.
    for (rows, vocab) in [(2 * 64, 3200), (41 * 3, 1271)] {
        for beta in BETAS {
            compare(rows, vocab, DType::F32, beta, None, 1e-8, 1e-6);
            compare(rows, vocab, DType::BF16, beta, None, 1e-7, 5e-2);
        }
    }
}

#[test]
fn ignored_rows_drop_out_of_loss_and_mean() {
    let rows = 37;
    let labels: Vec<i64> = (0..rows as i64)
        .map(|i| if i % 3 == 0 { -100 } else { i % 11 })
        .collect();
    let labels = Tensor::new(labels, &Device::Cpu).unwrap();
    for beta in BETAS {
        compare(rows, 301, DType::F32, beta, Some(&labels), 1e-8, 1e-6);
        compare(rows, 301, DType::BF16, beta, Some(&labels), 1e-7, 5e-2);
    }
    // u32 labels work too.
    let l32 = Tensor::new(
        (0..rows as u32).map(|i| i % 4).collect::<Vec<_>>(),
        &Device::Cpu,
    )
    .unwrap();
    let x = log_probs(3, rows, 50, DType::F32);
    let y = log_probs(4, rows, 50, DType::F32);
    let got = jsd(&x, &y, 0.5, 2, Some(&l32)).unwrap();
    let want = reference::jsd(&x, &y, 0.5, 2, Some(&l32)).unwrap();
    check_close("u32 labels", &got, &want, 1e-8, 1e-6).unwrap();
}

#[test]
fn all_rows_ignored_gives_zero_without_nan() {
    let labels = Tensor::new(&[-100i64; 6], &Device::Cpu).unwrap();
    for beta in BETAS {
        let x = Var::from_tensor(&log_probs(5, 6, 40, DType::F32)).unwrap();
        let y = log_probs(6, 6, 40, DType::F32);
        let loss = jsd(x.as_tensor(), &y, beta, -100, Some(&labels)).unwrap();
        assert_eq!(loss.to_scalar::<f32>().unwrap(), 0.0);
        let g = loss.backward().unwrap();
        let dx = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(dx.iter().all(|&v| v == 0.0), "beta {beta}: {dx:?}");
    }
}

#[test]
fn zero_probabilities_give_no_nan() {
    // Columns 0..3 are −∞ in both student and teacher: they contribute
    // nothing, so the loss equals the reference on the remaining columns and
    // their gradient is 0.
    let (rows, vocab, dead) = (4, 12, 3);
    let ninf = Tensor::full(f32::NEG_INFINITY, (rows, dead), &Device::Cpu).unwrap();
    let xr = log_probs(7, rows, vocab - dead, DType::F32);
    let yr = log_probs(8, rows, vocab - dead, DType::F32);
    let x = Tensor::cat(&[&ninf, &xr], 1).unwrap();
    let y = Tensor::cat(&[&ninf, &yr], 1).unwrap();
    for beta in BETAS {
        let xv = Var::from_tensor(&x).unwrap();
        let loss = jsd(xv.as_tensor(), &y, beta, -100, None).unwrap();
        let xrv = Var::from_tensor(&xr).unwrap();
        let want = reference::jsd(xrv.as_tensor(), &yr, beta, -100, None).unwrap();
        check_close(&format!("loss beta {beta}"), &loss, &want, 1e-8, 1e-6).unwrap();
        let g = loss.backward().unwrap();
        let dx = g.get(&xv).unwrap();
        let zeros = Tensor::zeros((rows, dead), DType::F32, &Device::Cpu).unwrap();
        check_close(
            "dead columns",
            &dx.narrow(1, 0, dead).unwrap(),
            &zeros,
            0.0,
            0.0,
        )
        .unwrap();
        let g_ref = want.backward().unwrap();
        check_close(
            "live columns",
            &dx.narrow(1, dead, vocab - dead).unwrap(),
            g_ref.get(&xrv).unwrap(),
            1e-8,
            1e-6,
        )
        .unwrap();
    }
    // Teacher-only zeros (P = 0 where Q > 0) for β < 1: the reference gets a
    // finite −1e4 whose exp underflows to exactly 0.
    let mask = Tensor::new(&[1u8, 0, 0, 1, 0, 0, 0, 0, 1], &Device::Cpu)
        .unwrap()
        .broadcast_as((rows, 9))
        .unwrap();
    let x = log_probs(9, rows, 9, DType::F32);
    let y0 = log_probs(10, rows, 9, DType::F32);
    let y_inf = mask
        .where_cond(
            &Tensor::full(f32::NEG_INFINITY, (rows, 9), &Device::Cpu).unwrap(),
            &y0,
        )
        .unwrap();
    let y_big = mask
        .where_cond(
            &Tensor::full(-1e4f32, (rows, 9), &Device::Cpu).unwrap(),
            &y0,
        )
        .unwrap();
    for beta in [0.0, 0.1, 0.5, 0.9] {
        let xv = Var::from_tensor(&x).unwrap();
        let loss = jsd(xv.as_tensor(), &y_inf, beta, -100, None).unwrap();
        let want = reference::jsd(xv.as_tensor(), &y_big, beta, -100, None).unwrap();
        check_close(
            &format!("teacher zeros beta {beta}"),
            &loss,
            &want,
            1e-8,
            1e-6,
        )
        .unwrap();
        let (g, g_ref) = (loss.backward().unwrap(), want.backward().unwrap());
        check_close(
            "teacher zeros dX",
            g.get(&xv).unwrap(),
            g_ref.get(&xv).unwrap(),
            1e-8,
            1e-6,
        )
        .unwrap();
    }
}

#[test]
fn strided_inputs_give_the_same_result() {
    let base = log_probs(11, 2 * 9, 70, DType::F32)
        .reshape((9, 2, 70))
        .unwrap();
    let x = base.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    let y = base.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
    assert!(!x.is_contiguous());
    for beta in [0.0, 0.5, 1.0] {
        let got = jsd(&x, &y, beta, -100, None).unwrap();
        let want = reference::jsd(
            &x.contiguous().unwrap(),
            &y.contiguous().unwrap(),
            beta,
            -100,
            None,
        )
        .unwrap();
        check_close("strided", &got, &want, 1e-8, 1e-6).unwrap();
    }
}

#[test]
fn finite_differences_f64() {
    let labels = Tensor::new(&[1i64, -100, 2], &Device::Cpu).unwrap();
    for beta in [0.0, 0.3, 0.5, 1.0] {
        for labels in [None, Some(&labels)] {
            // Free log-inputs (not normalized): the gradient is w.r.t. X itself.
            let x = randn(12, &[3, 5], 1.0, DType::F64).unwrap();
            let y = log_probs(13, 3, 5, DType::F64);
            let xv = Var::from_tensor(&x).unwrap();
            let g = jsd(xv.as_tensor(), &y, beta, -100, labels)
                .unwrap()
                .backward()
                .unwrap();
            let fd = finite_difference(&x, 1e-6, |x| {
                jsd(x, &y, beta, -100, labels).unwrap().to_scalar::<f64>()
            })
            .unwrap();
            check_close(
                &format!("fd beta {beta}"),
                g.get(&xv).unwrap(),
                &fd,
                1e-8,
                1e-6,
            )
            .unwrap();
        }
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = log_probs(1, 4, 6, DType::F32);
    let e = jsd(&x, &log_probs(1, 4, 7, DType::F32), 0.5, -100, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("same shape"), "{e}");
    let e = jsd(&x, &x.to_dtype(DType::BF16).unwrap(), 0.5, -100, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dtype"), "{e}");
    for beta in [-0.1, 1.5, f64::NAN] {
        let e = jsd(&x, &x, beta, -100, None).unwrap_err().to_string();
        assert!(e.contains("beta"), "{e}");
    }
    let v = x.flatten_all().unwrap();
    let e = jsd(&v, &v, 0.5, -100, None).unwrap_err().to_string();
    assert!(e.contains("2 dimensions"), "{e}");
    let bad = Tensor::new(&[1i64, 2, 3], &Device::Cpu).unwrap();
    let e = jsd(&x, &x, 0.5, -100, Some(&bad)).unwrap_err().to_string();
    assert!(e.contains("labels"), "{e}");
    let fl = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap();
    let e = jsd(&x, &x, 0.5, -100, Some(&fl)).unwrap_err().to_string();
    assert!(e.contains("integer"), "{e}");
    let i = Tensor::zeros((4, 6), DType::U32, &Device::Cpu).unwrap();
    let e = jsd(&i, &i, 0.5, -100, None).unwrap_err().to_string();
    assert!(e.contains("dtype"), "{e}");
}

/// `jsd_with_grad` returns the loss of `jsd` and autograd's gradient of it,
/// with and without ignored rows.
#[test]
fn with_grad_matches_autograd() {
    use caracal_kernels::jsd_with_grad;
    let labels = Tensor::new(&[3i64, -100, 0, 7, -100], &Device::Cpu).unwrap();
    for labels in [None, Some(&labels)] {
        for beta in [0.0, 0.5, 1.0] {
            let x = Var::from_tensor(&log_probs(5, 5, 33, DType::F32)).unwrap();
            let y = log_probs(6, 5, 33, DType::F32);
            let loss = jsd(x.as_tensor(), &y, beta, -100, labels).unwrap();
            let g = loss.backward().unwrap();
            let (l2, dx) = jsd_with_grad(x.as_tensor(), &y, beta, -100, labels).unwrap();
            let what = format!("beta {beta} labels {}", labels.is_some());
            check_close(&format!("loss {what}"), &l2, &loss, 0.0, 0.0).unwrap();
            check_close(&format!("dx {what}"), &dx, g.get(&x).unwrap(), 0.0, 0.0).unwrap();
        }
    }
}
