//! SwiGLU and GeGLU against the candle-composed references and finite
//! differences. Tolerances: reference/kernels.md §2 (Liger's test_swiglu /
//! test_geglu), tightened where our f32 accumulation allows.

use candle_core::{DType, Tensor, Var};
use caracal_kernels::testing::{check_close, finite_difference, randn};
use caracal_kernels::{geglu, glu::reference, swiglu};

type Op = fn(&Tensor, &Tensor) -> caracal_core::Result<Tensor>;
type RefOp = fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;

fn compare(op: Op, rop: RefOp, shape: &[usize], dt: DType, atol: f64, rtol: f64) {
    let a = Var::from_tensor(&randn(1, shape, 1.0, dt).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(2, shape, 1.0, dt).unwrap()).unwrap();
    let dc = randn(3, shape, 1.0, dt).unwrap();
    let y = op(a.as_tensor(), b.as_tensor()).unwrap();
    let y_ref = rop(a.as_tensor(), b.as_tensor()).unwrap();
    // Reference in f32 for low-precision dtypes, as Liger's tests do.
    check_close("forward", &y, &y_ref, atol, rtol).unwrap();
    let g = (y * &dc).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (y_ref * &dc)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    check_close("da", g.get(&a).unwrap(), g_ref.get(&a).unwrap(), atol, rtol).unwrap();
    check_close("db", g.get(&b).unwrap(), g_ref.get(&b).unwrap(), atol, rtol).unwrap();
}

#[test]
fn swiglu_matches_reference_liger_shapes() {
    // Liger test_swiglu: (2,256,512) and (6,42,431); fp32 1e-5 rtol.
    for shape in [[2usize, 256, 512], [6, 42, 431]] {
        compare(swiglu, reference::swiglu, &shape, DType::F32, 1e-5, 1e-5);
        compare(swiglu, reference::swiglu, &shape, DType::BF16, 1e-1, 2e-2);
    }
    compare(swiglu, reference::swiglu, &[3, 7], DType::F16, 1e-2, 1e-2);
}

#[test]
fn geglu_matches_reference_liger_shapes() {
    for shape in [[2usize, 64, 256], [6, 42, 431]] {
        compare(geglu, reference::geglu, &shape, DType::F32, 1e-5, 2e-5);
        compare(geglu, reference::geglu, &shape, DType::BF16, 1e-1, 2e-2);
    }
}

#[test]
fn strided_inputs_give_the_same_result() {
    let base = randn(4, &[8, 2, 33], 1.0, DType::F32).unwrap();
    let a = base.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
    let b = base.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
    assert!(!a.is_contiguous());
    let y = swiglu(&a, &b).unwrap();
    let y_ref = reference::swiglu(&a.contiguous().unwrap(), &b.contiguous().unwrap()).unwrap();
    check_close("strided", &y, &y_ref, 1e-6, 1e-6).unwrap();
}

#[test]
fn finite_differences_f64() {
    for op in [swiglu as Op, geglu as Op] {
        let a = randn(5, &[3, 4], 1.0, DType::F64).unwrap();
        let b = randn(6, &[3, 4], 1.0, DType::F64).unwrap();
        let w = randn(7, &[3, 4], 1.0, DType::F64).unwrap();
        let av = Var::from_tensor(&a).unwrap();
        let g = (op(av.as_tensor(), &b).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let fd = finite_difference(&a, 1e-6, |x| {
            (op(x, &b).unwrap() * &w)?.sum_all()?.to_scalar::<f64>()
        })
        .unwrap();
        check_close("fd da", g.get(&av).unwrap(), &fd, 1e-8, 1e-6).unwrap();
    }
}

#[test]
fn mismatched_inputs_are_clear_errors() {
    let a = randn(1, &[2, 3], 1.0, DType::F32).unwrap();
    let b = randn(1, &[2, 4], 1.0, DType::F32).unwrap();
    let e = swiglu(&a, &b).unwrap_err().to_string();
    assert!(e.contains("same shape"), "{e}");
    let c = randn(1, &[2, 3], 1.0, DType::BF16).unwrap();
    assert!(swiglu(&a, &c).is_err());
    let i = Tensor::zeros((2, 3), DType::U32, &candle_core::Device::Cpu).unwrap();
    let e = geglu(&i, &i).unwrap_err().to_string();
    assert!(e.contains("dtype"), "{e}");
}
