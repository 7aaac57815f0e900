//! LayerNorm against the candle-composed reference (forward, dx, dw, db) and
//! finite differences. Tolerances (atol/rtol, Liger's rule
//! `|a − b| ≤ atol + rtol·|b|`): reference/kernels.md §2, Liger's
//! test_layer_norm: fp32 1e-5, bf16 2e-2 (atol = rtol). Liger has no fp16
//! case; we use 1e-2/1e-2.

use candle_core::{DType, Tensor, Var};
use caracal_kernels::layer_norm::{layer_norm, reference};
use caracal_kernels::testing::{check_close, finite_difference, randn};

const EPS: f64 = 1e-6;

fn compare(shape: &[usize], dt: DType, tol: f64) {
    let n = *shape.last().unwrap();
    let x = Var::from_tensor(&randn(1, shape, 1.0, dt).unwrap()).unwrap();
    let w = Var::from_tensor(&randn(2, &[n], 1.0, dt).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(3, &[n], 1.0, dt).unwrap()).unwrap();
    let dy = randn(4, shape, 1.0, dt).unwrap();
    let y = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), EPS).unwrap();
    let y_ref = reference::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), EPS).unwrap();
    assert_eq!(y.dtype(), dt);
    let what = format!("{shape:?} {dt:?}");
    check_close(&format!("y {what}"), &y, &y_ref, tol, tol).unwrap();
    let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (y_ref * &dy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, v) in [("dx", &x), ("dw", &w), ("db", &b)] {
        let (got, want) = (g.get(v).unwrap(), g_ref.get(v).unwrap());
        assert_eq!(got.dtype(), dt);
        check_close(&format!("{name} {what}"), got, want, tol, tol).unwrap();
    }
}

/// Liger's test_layer_norm shapes (batch, seq, hidden).
const SHAPES: [[usize; 3]; 5] = [
    [2, 8, 64],
    [4, 16, 128],
    [1, 1, 1023],
    [3, 7, 256],
    [1, 1, 1500],
];

#[test]
fn f32_matches_reference_liger_shapes() {
    // fp32: atol = rtol = 1e-5 (Liger).
    for shape in SHAPES {
        compare(&shape, DType::F32, 1e-5);
    }
    compare(&[5, 123, 123], DType::F32, 1e-5);
}

#[test]
fn bf16_matches_reference_liger_shapes() {
    // bf16: atol = rtol = 2e-2 (Liger).
    for shape in SHAPES {
        compare(&shape, DType::BF16, 2e-2);
    }
}

#[test]
fn f16_matches_reference() {
    // fp16: atol = rtol = 1e-2 (ours).
    compare(&[3, 7, 256], DType::F16, 1e-2);
    compare(&[5, 13, 123], DType::F16, 1e-2);
}

#[test]
fn strided_input_forward_and_backward() {
    // x = baseᵀ is not contiguous; gradients flow back to `base`.
    let base = Var::from_tensor(&randn(5, &[37, 9], 1.0, DType::F32).unwrap()).unwrap();
    let x = base.as_tensor().t().unwrap();
    assert!(!x.is_contiguous());
    let w = randn(6, &[37], 1.0, DType::F32).unwrap();
    let b = randn(7, &[37], 1.0, DType::F32).unwrap();
    let dy = randn(8, &[9, 37], 1.0, DType::F32).unwrap();
    let y = layer_norm(&x, &w, &b, EPS).unwrap();
    let y_ref = reference::layer_norm(&x, &w, &b, EPS).unwrap();
    check_close("strided y", &y, &y_ref, 1e-5, 1e-5).unwrap();
    let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (y_ref * &dy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    check_close(
        "strided dx",
        g.get(&base).unwrap(),
        g_ref.get(&base).unwrap(),
        1e-5,
        1e-5,
    )
    .unwrap();
}

#[test]
fn finite_differences_f64() {
    // f64 central differences, h = 1e-6: atol 1e-7, rtol 1e-6.
    let x = randn(9, &[3, 5], 1.0, DType::F64).unwrap();
    let w = randn(10, &[5], 1.0, DType::F64).unwrap();
    let b = randn(11, &[5], 1.0, DType::F64).unwrap();
    let dy = randn(12, &[3, 5], 1.0, DType::F64).unwrap();
    let vars: Vec<Var> = [&x, &w, &b]
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let y = layer_norm(
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
        EPS,
    )
    .unwrap();
    let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
    let loss = |x: &Tensor, w: &Tensor, b: &Tensor| -> candle_core::Result<f64> {
        (layer_norm(x, w, b, EPS).unwrap() * &dy)?
            .sum_all()?
            .to_scalar::<f64>()
    };
    let fd_x = finite_difference(&x, 1e-6, |t| loss(t, &w, &b)).unwrap();
    let fd_w = finite_difference(&w, 1e-6, |t| loss(&x, t, &b)).unwrap();
    let fd_b = finite_difference(&b, 1e-6, |t| loss(&x, &w, t)).unwrap();
    check_close("fd dx", g.get(&vars[0]).unwrap(), &fd_x, 1e-7, 1e-6).unwrap();
    check_close("fd dw", g.get(&vars[1]).unwrap(), &fd_w, 1e-7, 1e-6).unwrap();
    check_close("fd db", g.get(&vars[2]).unwrap(), &fd_b, 1e-7, 1e-6).unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = randn(1, &[2, 3], 1.0, DType::F32).unwrap();
    let w = randn(1, &[3], 1.0, DType::F32).unwrap();
    let w4 = randn(1, &[4], 1.0, DType::F32).unwrap();
    let e = layer_norm(&x, &w4, &w, EPS).unwrap_err().to_string();
    assert!(e.contains("w must have shape [3]"), "{e}");
    let e = layer_norm(&x, &w, &w4, EPS).unwrap_err().to_string();
    assert!(e.contains("b must have shape [3]"), "{e}");
    let bb = randn(1, &[3], 1.0, DType::BF16).unwrap();
    let e = layer_norm(&x, &w, &bb, EPS).unwrap_err().to_string();
    assert!(e.contains("same dtype"), "{e}");
    let i = Tensor::zeros((2, 3), DType::I64, &candle_core::Device::Cpu).unwrap();
    let e = layer_norm(&i, &w, &w, EPS).unwrap_err().to_string();
    assert!(e.contains("dtype"), "{e}");
    let empty = Tensor::zeros((2, 0), DType::F32, &candle_core::Device::Cpu).unwrap();
    let e = layer_norm(&empty, &w, &w, EPS).unwrap_err().to_string();
    assert!(e.contains("non-empty last dimension"), "{e}");
    let e = layer_norm(&x, &w, &w, f64::NAN).unwrap_err().to_string();
    assert!(e.contains("eps"), "{e}");
}

/// The functional backward gives autograd's gradients (the same kernel),
/// and a `dy` of the wrong shape or a `w` of the wrong length is an error.
#[test]
fn functional_backward_matches_autograd() {
    use caracal_kernels::layer_norm_backward;
    let shape = [3, 7, 96];
    for dt in [DType::F32, DType::BF16] {
        let x = Var::from_tensor(&randn(11, &shape, 1.0, dt).unwrap()).unwrap();
        let w = Var::from_tensor(&randn(12, &[96], 1.0, dt).unwrap()).unwrap();
        let b = Var::from_tensor(&randn(13, &[96], 1.0, dt).unwrap()).unwrap();
        let dy = randn(14, &shape, 1.0, dt).unwrap();
        let y = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), EPS).unwrap();
        let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let (dx, dw, db) = layer_norm_backward(x.as_tensor(), w.as_tensor(), &dy, EPS).unwrap();
        for (name, got, v) in [("dx", &dx, &x), ("dw", &dw, &w), ("db", &db, &b)] {
            assert_eq!(got.dims(), v.dims(), "{name}");
            check_close(&format!("{name} {dt:?}"), got, g.get(v).unwrap(), 0.0, 0.0).unwrap();
        }
    }
    let x = randn(1, &[4, 8], 1.0, DType::F32).unwrap();
    let w = randn(2, &[8], 1.0, DType::F32).unwrap();
    let err = layer_norm_backward(&x, &w, &randn(3, &[4, 9], 1.0, DType::F32).unwrap(), EPS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dy is [4, 9]"), "{err}");
    let err = layer_norm_backward(&x, &randn(2, &[7], 1.0, DType::F32).unwrap(), &x, EPS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("w must have shape [8]"), "{err}");
}
