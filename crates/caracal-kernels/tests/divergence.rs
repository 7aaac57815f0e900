//! KL divergence (PyTorch KLDivLoss semantics) and TVD against the
//! candle-composed references and finite differences.
//!
//! Tolerances (reference/kernels.md §2, Liger's test_kl_div): f32 atol 1e-8,
//! rtol 1e-6; bf16 atol 1e-8, rtol 5e-2. TVD has no row in §2; it uses the
//! same. Finite differences in f64: atol 1e-8, rtol 1e-6.

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::divergence::{kl_div, reference, tvd, tvd_with_labels, KlReduction};
use caracal_kernels::fused_linear_jsd::reference::log_softmax;
use caracal_kernels::testing::{check_close, finite_difference, randn};

const REDUCTIONS: [KlReduction; 4] = [
    KlReduction::None,
    KlReduction::Sum,
    KlReduction::Mean,
    KlReduction::Batchmean,
];
const F32_TOL: (f64, f64) = (1e-8, 1e-6);
const BF16_TOL: (f64, f64) = (1e-8, 5e-2);

/// Log-probabilities (or probabilities when `prob`) of random logits along
/// the last dimension, made in f32 and cast to `dt`.
fn dist(seed: u64, shape: &[usize], prob: bool, dt: DType) -> Tensor {
    let c = if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let l = log_softmax(&randn(seed, shape, 1.0, c).unwrap()).unwrap();
    let l = if prob { l.exp().unwrap() } else { l };
    l.to_dtype(dt).unwrap()
}

/// Backpropagate a random upstream gradient for `None`, 2.5 otherwise.
fn upstream(loss: &Tensor, seed: u64) -> Tensor {
    if loss.rank() == 0 {
        (loss * 2.5).unwrap()
    } else {
        let dc = randn(seed, loss.dims(), 1.0, loss.dtype()).unwrap();
        (loss * dc).unwrap().sum_all().unwrap()
    }
}

fn compare_kl(
    shape: &[usize],
    dt: DType,
    log_target: bool,
    red: KlReduction,
    (atol, rtol): (f64, f64),
) {
    let x = Var::from_tensor(&dist(1, shape, false, dt)).unwrap();
    let y = Var::from_tensor(&dist(2, shape, !log_target, dt)).unwrap();
    let what = format!("kl {shape:?} {dt:?} log_target {log_target} {red:?}");
    let got = kl_div(x.as_tensor(), y.as_tensor(), log_target, red).unwrap();
    let want = reference::kl_div(x.as_tensor(), y.as_tensor(), log_target, red).unwrap();
    check_close(&format!("loss {what}"), &got, &want, atol, rtol).unwrap();
    let g = upstream(&got, 3).backward().unwrap();
    let g_ref = upstream(&want, 3).backward().unwrap();
    check_close(
        &format!("dx {what}"),
        g.get(&x).unwrap(),
        g_ref.get(&x).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    assert!(g.get(&y).is_none(), "the target must get no gradient");
}

#[test]
fn kl_matches_reference_all_reductions_and_targets() {
    // Liger test_kl_div: (1, 4096, 32000), scaled down; plus an odd shape.
    for shape in [[1usize, 64, 3200], [3, 41, 123]] {
        for red in REDUCTIONS {
            for log_target in [false, true] {
                compare_kl(&shape, DType::F32, log_target, red, F32_TOL);
                compare_kl(&shape, DType::BF16, log_target, red, BF16_TOL);
            }
        }
    }
}

#[test]
fn kl_zero_targets_give_zero_not_nan() {
    // Where y = 0 the pointwise loss and gradient are 0, even for x = −∞.
    let y = Tensor::new(&[[0.0f32, 0.5, 0.5], [0.2, 0.0, 0.8]], &Device::Cpu).unwrap();
    let ninf = f32::NEG_INFINITY;
    let x_inf = Tensor::new(&[[ninf, -0.7, -0.6], [-1.5, ninf, -0.3]], &Device::Cpu).unwrap();
    let x_fin = Tensor::new(&[[0.0f32, -0.7, -0.6], [-1.5, 0.0, -0.3]], &Device::Cpu).unwrap();
    for red in REDUCTIONS {
        let xv = Var::from_tensor(&x_inf).unwrap();
        let got = kl_div(xv.as_tensor(), &y, false, red).unwrap();
        let xf = Var::from_tensor(&x_fin).unwrap();
        let want = reference::kl_div(xf.as_tensor(), &y, false, red).unwrap();
        check_close(&format!("zero targets {red:?}"), &got, &want, 1e-8, 1e-6).unwrap();
        let g = upstream(&got, 4).backward().unwrap();
        let g_ref = upstream(&want, 4).backward().unwrap();
        check_close(
            "zero targets dx",
            g.get(&xv).unwrap(),
            g_ref.get(&xf).unwrap(),
            1e-8,
            1e-6,
        )
        .unwrap();
    }
    // log_target with y = −∞ (eʸ = 0).
    let ly = y.log().unwrap();
    let got = kl_div(&x_fin, &ly, true, KlReduction::Sum).unwrap();
    let want = reference::kl_div(&x_fin, &y, false, KlReduction::Sum).unwrap();
    check_close("log_target −∞", &got, &want, 1e-7, 1e-6).unwrap();
}

#[test]
fn kl_any_rank_and_strided() {
    compare_kl(&[7], DType::F32, false, KlReduction::Batchmean, F32_TOL);
    compare_kl(
        &[2, 3, 4, 5],
        DType::F32,
        true,
        KlReduction::Batchmean,
        F32_TOL,
    );
    let base = dist(5, &[6, 2, 33], false, DType::F32);
    let x = base.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    let y = base.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
    assert!(!x.is_contiguous());
    for red in REDUCTIONS {
        let got = kl_div(&x, &y, true, red).unwrap();
        let want = reference::kl_div(
            &x.contiguous().unwrap(),
            &y.contiguous().unwrap(),
            true,
            red,
        )
        .unwrap();
        check_close("strided kl", &got, &want, 1e-8, 1e-6).unwrap();
    }
}

fn compare_tvd(
    rows: usize,
    vocab: usize,
    dt: DType,
    red: KlReduction,
    labels: Option<&Tensor>,
    (atol, rtol): (f64, f64),
) {
    let p = Var::from_tensor(&dist(6, &[rows, vocab], true, dt)).unwrap();
    // Break ties (frequent after rounding to bf16), where the subgradients
    // differ by design (tvd_ties_get_zero_gradient); halving is exact.
    let q = dist(7, &[rows, vocab], true, dt);
    let q = p
        .as_tensor()
        .eq(&q)
        .unwrap()
        .where_cond(&(&q * 0.5).unwrap(), &q)
        .unwrap();
    let q = Var::from_tensor(&q).unwrap();
    let what = format!(
        "tvd [{rows},{vocab}] {dt:?} {red:?} labels {}",
        labels.is_some()
    );
    let got = match labels {
        Some(l) => tvd_with_labels(p.as_tensor(), q.as_tensor(), red, -100, l).unwrap(),
        None => tvd(p.as_tensor(), q.as_tensor(), red).unwrap(),
    };
    let want = reference::tvd(p.as_tensor(), q.as_tensor(), red, -100, labels).unwrap();
    check_close(&format!("loss {what}"), &got, &want, atol, rtol).unwrap();
    let g = upstream(&got, 8).backward().unwrap();
    let g_ref = upstream(&want, 8).backward().unwrap();
    check_close(
        &format!("dp {what}"),
        g.get(&p).unwrap(),
        g_ref.get(&p).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    assert!(g.get(&q).is_none(), "q must get no gradient");
}

#[test]
fn tvd_matches_reference_all_reductions() {
    // Liger test_tvd shapes (B·T, V) scaled down; plus an odd shape.
    let labels: Vec<i64> = (0..123)
        .map(|i| if i % 4 == 1 { -100 } else { i })
        .collect();
    let labels = Tensor::new(labels, &Device::Cpu).unwrap();
    for red in REDUCTIONS {
        for (rows, vocab) in [(128usize, 1000usize), (123, 421)] {
            compare_tvd(rows, vocab, DType::F32, red, None, F32_TOL);
            compare_tvd(rows, vocab, DType::BF16, red, None, BF16_TOL);
        }
        compare_tvd(123, 421, DType::F32, red, Some(&labels), F32_TOL);
        compare_tvd(123, 421, DType::BF16, red, Some(&labels), BF16_TOL);
    }
}

#[test]
fn tvd_all_rows_ignored_gives_zero_without_nan() {
    let labels = Tensor::new(&[-100i64; 5], &Device::Cpu).unwrap();
    for red in REDUCTIONS {
        let p = Var::from_tensor(&dist(9, &[5, 30], true, DType::F32)).unwrap();
        let q = dist(10, &[5, 30], true, DType::F32);
        let loss = tvd_with_labels(p.as_tensor(), &q, red, -100, &labels).unwrap();
        let lv = loss.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(lv.iter().all(|&v| v == 0.0), "{red:?}: {lv:?}");
        let g = upstream(&loss, 11).backward().unwrap();
        let dp = g
            .get(&p)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(dp.iter().all(|&v| v == 0.0), "{red:?}");
    }
}

#[test]
fn tvd_ties_get_zero_gradient() {
    // Row 1 of q equals row 1 of p: the subgradient there is 0 (Liger gives
    // −½); the other rows match the reference.
    let p = dist(12, &[3, 8], true, DType::F32);
    let q0 = dist(13, &[3, 8], true, DType::F32);
    let q = Tensor::cat(
        &[
            &q0.narrow(0, 0, 1).unwrap(),
            &p.narrow(0, 1, 1).unwrap(),
            &q0.narrow(0, 2, 1).unwrap(),
        ],
        0,
    )
    .unwrap();
    let pv = Var::from_tensor(&p).unwrap();
    let g = tvd(pv.as_tensor(), &q, KlReduction::Sum)
        .unwrap()
        .backward()
        .unwrap();
    let dp = g.get(&pv).unwrap();
    let zero = Tensor::zeros((1, 8), DType::F32, &Device::Cpu).unwrap();
    check_close("tie row", &dp.narrow(0, 1, 1).unwrap(), &zero, 0.0, 0.0).unwrap();
    let g_ref = reference::tvd(pv.as_tensor(), &q, KlReduction::Sum, -100, None)
        .unwrap()
        .backward()
        .unwrap();
    let r = g_ref.get(&pv).unwrap();
    for row in [0, 2] {
        check_close(
            "other rows",
            &dp.narrow(0, row, 1).unwrap(),
            &r.narrow(0, row, 1).unwrap(),
            0.0,
            0.0,
        )
        .unwrap();
    }
}

#[test]
fn tvd_strided() {
    let base = dist(14, &[6, 2, 33], true, DType::F32);
    let p = base.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    let q = base.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
    assert!(!p.is_contiguous());
    for red in REDUCTIONS {
        let got = tvd(&p, &q, red).unwrap();
        let want = reference::tvd(
            &p.contiguous().unwrap(),
            &q.contiguous().unwrap(),
            red,
            -100,
            None,
        )
        .unwrap();
        check_close("strided tvd", &got, &want, 1e-8, 1e-6).unwrap();
    }
}

#[test]
fn finite_differences_f64() {
    let w = randn(15, &[3, 5], 1.0, DType::F64).unwrap();
    let scalarize = |t: Tensor| -> candle_core::Result<f64> {
        if t.rank() == 0 {
            t.to_scalar::<f64>()
        } else {
            (t * &w)?.sum_all()?.to_scalar::<f64>()
        }
    };
    for red in REDUCTIONS {
        for log_target in [false, true] {
            let x = dist(16, &[3, 5], false, DType::F64);
            let y = dist(17, &[3, 5], !log_target, DType::F64);
            let xv = Var::from_tensor(&x).unwrap();
            let loss = kl_div(xv.as_tensor(), &y, log_target, red).unwrap();
            let g = if loss.rank() == 0 {
                loss
            } else {
                (loss * &w).unwrap().sum_all().unwrap()
            }
            .backward()
            .unwrap();
            let fd = finite_difference(&x, 1e-6, |x| {
                scalarize(kl_div(x, &y, log_target, red).unwrap())
            })
            .unwrap();
            check_close(
                &format!("fd kl {red:?} {log_target}"),
                g.get(&xv).unwrap(),
                &fd,
                1e-8,
                1e-6,
            )
            .unwrap();
        }
        // TVD away from ties (|p − q| ≫ h).
        let p = dist(18, &[3, 5], true, DType::F64);
        let q = dist(19, &[3, 5], true, DType::F64);
        let labels = Tensor::new(&[0u32, 9, 1], &Device::Cpu).unwrap();
        let pv = Var::from_tensor(&p).unwrap();
        let loss = tvd_with_labels(pv.as_tensor(), &q, red, 9, &labels).unwrap();
        let g = if loss.rank() == 0 {
            loss
        } else {
            (loss * &w).unwrap().sum_all().unwrap()
        }
        .backward()
        .unwrap();
        let fd = finite_difference(&p, 1e-7, |p| {
            scalarize(tvd_with_labels(p, &q, red, 9, &labels).unwrap())
        })
        .unwrap();
        check_close(
            &format!("fd tvd {red:?}"),
            g.get(&pv).unwrap(),
            &fd,
            1e-8,
            1e-6,
        )
        .unwrap();
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let a = dist(1, &[2, 3], false, DType::F32);
    let b = dist(1, &[2, 4], false, DType::F32);
    let e = kl_div(&a, &b, false, KlReduction::Sum)
        .unwrap_err()
        .to_string();
    assert!(e.contains("same shape"), "{e}");
    let e = kl_div(
        &a,
        &a.to_dtype(DType::BF16).unwrap(),
        false,
        KlReduction::Sum,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("dtype"), "{e}");
    let i = Tensor::zeros((2, 3), DType::I64, &Device::Cpu).unwrap();
    let e = kl_div(&i, &i, false, KlReduction::Sum)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dtype"), "{e}");
    let e = tvd(&a, &b, KlReduction::Sum).unwrap_err().to_string();
    assert!(e.contains("same shape"), "{e}");
    let v = a.flatten_all().unwrap();
    let e = tvd(&v, &v, KlReduction::Sum).unwrap_err().to_string();
    assert!(e.contains("2 dimensions"), "{e}");
    let l = Tensor::new(&[1i64, 2, 3], &Device::Cpu).unwrap();
    let e = tvd_with_labels(&a, &a, KlReduction::Sum, -100, &l)
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels"), "{e}");
}

/// `kl_div_backward` gives autograd's gradient for every reduction (a
/// random upstream gradient for `None`, 2.5 otherwise), and rejects an
/// upstream gradient of the wrong shape.
#[test]
fn functional_backward_matches_autograd() {
    use caracal_kernels::kl_div_backward;
    for log_target in [false, true] {
        for r in REDUCTIONS {
            let x = Var::from_tensor(&dist(1, &[4, 19], false, DType::F32)).unwrap();
            let y = dist(2, &[4, 19], !log_target, DType::F32);
            let loss = kl_div(x.as_tensor(), &y, log_target, r).unwrap();
            let up = upstream(&loss, 3);
            let g = up.backward().unwrap();
            let dloss = if loss.rank() == 0 {
                Tensor::new(2.5f32, &Device::Cpu).unwrap()
            } else {
                randn(3, loss.dims(), 1.0, DType::F32).unwrap()
            };
            let dx = kl_div_backward(x.as_tensor(), &y, log_target, r, &dloss).unwrap();
            let what = format!("{r:?} log_target {log_target}");
            check_close(&what, &dx, g.get(&x).unwrap(), 0.0, 0.0).unwrap();
        }
    }
    let x = dist(1, &[4, 19], false, DType::F32);
    let y = dist(2, &[4, 19], true, DType::F32);
    let bad = randn(3, &[4, 18], 1.0, DType::F32).unwrap();
    assert!(kl_div_backward(&x, &y, false, KlReduction::None, &bad).is_err());
    let err = kl_div_backward(&x, &y, false, KlReduction::Sum, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("scalar upstream gradient"), "{err}");
}
