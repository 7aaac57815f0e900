//! The fused causal softmax against the candle-composed reference (forward
//! and gradient) and central finite differences.

use candle_core::{DType, Tensor, Var};
use caracal_kernels::softmax::{causal_softmax, reference};
use caracal_kernels::testing::{check_close, finite_difference, randn};

fn compare(shape: &[usize], past: usize, dt: DType, atol: f64, rtol: f64) {
    let s = Var::from_tensor(&randn(1, shape, 2.0, dt).unwrap()).unwrap();
    let g = randn(2, shape, 1.0, dt).unwrap();
    let scale = 0.37;
    let p = causal_softmax(s.as_tensor(), scale, past).unwrap();
    let p_ref = reference::causal_softmax(s.as_tensor(), scale, past).unwrap();
    check_close("forward", &p, &p_ref, atol, rtol).unwrap();
    let gs = (p.to_dtype(DType::F64).unwrap() * g.to_dtype(DType::F64).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gs_ref = (p_ref.to_dtype(DType::F64).unwrap() * g.to_dtype(DType::F64).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    check_close(
        "dscores",
        gs.get(s.as_tensor()).unwrap(),
        gs_ref.get(s.as_tensor()).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
}

#[test]
fn matches_the_reference() {
    // Training shape (Tk = Tq), a KV-cache shape (Tk = past + Tq) and odd sizes.
    for (shape, past) in [
        (vec![2usize, 3, 17, 17], 0usize),
        (vec![1, 2, 5, 12], 7),
        (vec![4, 9, 9], 0),
    ] {
        compare(&shape, past, DType::F32, 1e-6, 1e-5);
        compare(&shape, past, DType::F64, 1e-12, 1e-10);
        compare(&shape, past, DType::BF16, 1e-2, 2e-2);
    }
}

#[test]
fn rows_sum_to_one_and_masked_entries_are_zero() {
    let s = randn(3, &[2, 6, 9], 3.0, DType::F32).unwrap();
    let p = causal_softmax(&s, 1.0, 3).unwrap();
    let v = p.to_vec3::<f32>().unwrap();
    for b in &v {
        for (i, row) in b.iter().enumerate() {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "row {i} sums to {sum}");
            for (j, &x) in row.iter().enumerate() {
                if j > 3 + i {
                    assert_eq!(x, 0.0, "masked entry ({i}, {j}) is {x}");
                }
            }
        }
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let s = randn(4, &[1, 3, 4], 1.0, DType::F64).unwrap();
    let w = randn(5, &[1, 3, 4], 1.0, DType::F64).unwrap();
    let f = |x: &Tensor| -> candle_core::Result<f64> {
        let p = causal_softmax(x, 0.8, 1).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        (p * &w)?.sum_all()?.to_scalar::<f64>()
    };
    let fd = finite_difference(&s, 1e-6, f).unwrap();
    let v = Var::from_tensor(&s).unwrap();
    let g = (causal_softmax(v.as_tensor(), 0.8, 1).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    check_close(
        "finite differences",
        g.get(v.as_tensor()).unwrap(),
        &fd,
        1e-8,
        1e-6,
    )
    .unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let s = Tensor::zeros(5, DType::F32, &candle_core::Device::Cpu).unwrap();
    let e = causal_softmax(&s, 1.0, 0).unwrap_err().to_string();
    assert!(e.contains("expected [.., Tq, Tk]"), "{e}");
    let s = Tensor::zeros((2, 2), DType::U32, &candle_core::Device::Cpu).unwrap();
    assert!(causal_softmax(&s, 1.0, 0).is_err());
    let s = Tensor::zeros((2, 2), DType::F32, &candle_core::Device::Cpu).unwrap();
    let e = causal_softmax(&s, f64::NAN, 0).unwrap_err().to_string();
    assert!(e.contains("scale"), "{e}");
}
