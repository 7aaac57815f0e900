//! RMSNorm against the candle-composed reference (forward, dx, dw) and
//! finite differences. Tolerances (atol/rtol, Liger's rule
//! `|a − b| ≤ atol + rtol·|b|`): reference/kernels.md §2, Liger's
//! test_rms_norm: fp32 1e-4/1e-6, bf16 2e-1/2e-2. Liger has no fp16 case;
//! we use 2e-2/2e-2 (f16 has 3 more mantissa bits than bf16).

use candle_core::{DType, Tensor, Var};
use caracal_kernels::rms_norm::{reference, rms_norm, CastingMode};
use caracal_kernels::testing::{check_close, finite_difference, randn};

const EPS: f64 = 1e-6;

/// Forward and both gradients of the fused op against the reference.
fn compare(shape: &[usize], dt: DType, offset: f64, mode: CastingMode, atol: f64, rtol: f64) {
    let n = *shape.last().unwrap();
    let x = Var::from_tensor(&randn(1, shape, 1.0, dt).unwrap()).unwrap();
    let w = Var::from_tensor(&randn(2, &[n], 1.0, dt).unwrap()).unwrap();
    let dy = randn(3, shape, 1.0, dt).unwrap();
    let y = rms_norm(x.as_tensor(), w.as_tensor(), EPS, offset, mode).unwrap();
    let y_ref = reference::rms_norm(x.as_tensor(), w.as_tensor(), EPS, offset, mode).unwrap();
    assert_eq!(y.dtype(), dt);
    let what = format!("{shape:?} {dt:?} {mode:?} offset {offset}");
    check_close(&format!("y {what}"), &y, &y_ref, atol, rtol).unwrap();
    let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = (y_ref * &dy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (dx, dx_ref) = (g.get(&x).unwrap(), g_ref.get(&x).unwrap());
    let (dw, dw_ref) = (g.get(&w).unwrap(), g_ref.get(&w).unwrap());
    assert_eq!((dx.dtype(), dw.dtype()), (dt, dt));
    check_close(&format!("dx {what}"), dx, dx_ref, atol, rtol).unwrap();
    check_close(&format!("dw {what}"), dw, dw_ref, atol, rtol).unwrap();
}

const MODES: [(f64, CastingMode); 4] = [
    (0.0, CastingMode::Llama),
    (1.0, CastingMode::Gemma),
    (1.0, CastingMode::Llama),
    (0.0, CastingMode::Gemma),
];

#[test]
fn f32_matches_reference_liger_shapes() {
    // fp32: atol 1e-4, rtol 1e-6 (Liger).
    for shape in [[2usize, 128, 512], [5, 123, 123]] {
        for (offset, mode) in MODES {
            compare(&shape, DType::F32, offset, mode, 1e-4, 1e-6);
        }
    }
}

#[test]
fn bf16_matches_reference_liger_shapes() {
    // bf16: atol 2e-1, rtol 2e-2 (Liger).
    for shape in [[2usize, 128, 512], [5, 123, 123]] {
        for (offset, mode) in MODES {
            compare(&shape, DType::BF16, offset, mode, 2e-1, 2e-2);
        }
        compare(&shape, DType::BF16, 0.0, CastingMode::None, 2e-1, 2e-2);
    }
}

#[test]
fn f16_matches_reference() {
    // fp16: atol 2e-2, rtol 2e-2 (ours; Liger has no fp16 RMSNorm case).
    for (offset, mode) in MODES {
        compare(&[5, 123, 123], DType::F16, offset, mode, 2e-2, 2e-2);
    }
    compare(&[3, 17, 64], DType::F16, 0.0, CastingMode::None, 2e-2, 2e-2);
}

#[test]
fn casting_modes_round_where_documented() {
    // In bf16, Llama rounds x·rstd before ×w, Gemma does not: with w = 1/3
    // the two differ, and each matches its reference.
    let x = randn(11, &[4, 32], 1.0, DType::BF16).unwrap();
    let w = Tensor::full(1.0f32 / 3.0, 32, &candle_core::Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let ll = rms_norm(&x, &w, EPS, 0.0, CastingMode::Llama).unwrap();
    let ge = rms_norm(&x, &w, EPS, 0.0, CastingMode::Gemma).unwrap();
    let ll_ref = reference::rms_norm(&x, &w, EPS, 0.0, CastingMode::Llama).unwrap();
    let ge_ref = reference::rms_norm(&x, &w, EPS, 0.0, CastingMode::Gemma).unwrap();
    check_close("llama", &ll, &ll_ref, 0.0, 0.0).unwrap();
    check_close("gemma", &ge, &ge_ref, 0.0, 0.0).unwrap();
    assert!(check_close("llama vs gemma", &ll, &ge, 0.0, 0.0).is_err());
}

#[test]
fn strided_input_forward_and_backward() {
    // x = baseᵀ is not contiguous; gradients flow back to `base`.
    for dt in [DType::F32, DType::BF16] {
        let base = Var::from_tensor(&randn(4, &[33, 8], 1.0, dt).unwrap()).unwrap();
        let x = base.as_tensor().t().unwrap();
        assert!(!x.is_contiguous());
        let w = Var::from_tensor(&randn(5, &[33], 1.0, dt).unwrap()).unwrap();
        let dy = randn(6, &[8, 33], 1.0, dt).unwrap();
        let (atol, rtol) = if dt == DType::F32 {
            (1e-4, 1e-6)
        } else {
            (2e-1, 2e-2)
        };
        let y = rms_norm(&x, w.as_tensor(), EPS, 0.0, CastingMode::Llama).unwrap();
        let y_ref = reference::rms_norm(&x, w.as_tensor(), EPS, 0.0, CastingMode::Llama).unwrap();
        check_close("strided y", &y, &y_ref, atol, rtol).unwrap();
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
            atol,
            rtol,
        )
        .unwrap();
        check_close(
            "strided dw",
            g.get(&w).unwrap(),
            g_ref.get(&w).unwrap(),
            atol,
            rtol,
        )
        .unwrap();
    }
}

#[test]
fn one_dimensional_and_single_row_inputs() {
    let x = randn(7, &[40], 1.0, DType::F32).unwrap();
    let w = randn(8, &[40], 1.0, DType::F32).unwrap();
    let y = rms_norm(&x, &w, EPS, 0.0, CastingMode::Llama).unwrap();
    let y_ref = reference::rms_norm(&x, &w, EPS, 0.0, CastingMode::Llama).unwrap();
    check_close("1-d", &y, &y_ref, 1e-4, 1e-6).unwrap();
}

#[test]
fn finite_differences_f64() {
    // f64 central differences, h = 1e-6: atol 1e-7, rtol 1e-6.
    for (offset, mode) in [(0.0, CastingMode::Llama), (1.0, CastingMode::Gemma)] {
        let x = randn(9, &[3, 5], 1.0, DType::F64).unwrap();
        let w = randn(10, &[5], 1.0, DType::F64).unwrap();
        let dy = randn(11, &[3, 5], 1.0, DType::F64).unwrap();
        let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
        let y = rms_norm(xv.as_tensor(), wv.as_tensor(), EPS, offset, mode).unwrap();
        let g = (y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let loss = |x: &Tensor, w: &Tensor| -> candle_core::Result<f64> {
            (rms_norm(x, w, EPS, offset, mode).unwrap() * &dy)?
                .sum_all()?
                .to_scalar::<f64>()
        };
        let fd_x = finite_difference(&x, 1e-6, |t| loss(t, &w)).unwrap();
        let fd_w = finite_difference(&w, 1e-6, |t| loss(&x, t)).unwrap();
        check_close("fd dx", g.get(&xv).unwrap(), &fd_x, 1e-7, 1e-6).unwrap();
        check_close("fd dw", g.get(&wv).unwrap(), &fd_w, 1e-7, 1e-6).unwrap();
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = randn(1, &[2, 3], 1.0, DType::F32).unwrap();
    let w4 = randn(1, &[4], 1.0, DType::F32).unwrap();
    let e = rms_norm(&x, &w4, EPS, 0.0, CastingMode::Llama)
        .unwrap_err()
        .to_string();
    assert!(e.contains("w must have shape [3]"), "{e}");
    let w2d = randn(1, &[1, 3], 1.0, DType::F32).unwrap();
    assert!(rms_norm(&x, &w2d, EPS, 0.0, CastingMode::Llama).is_err());
    let wb = randn(1, &[3], 1.0, DType::BF16).unwrap();
    let e = rms_norm(&x, &wb, EPS, 0.0, CastingMode::Gemma)
        .unwrap_err()
        .to_string();
    assert!(e.contains("same dtype"), "{e}");
    let i = Tensor::zeros((2, 3), DType::U32, &candle_core::Device::Cpu).unwrap();
    let e = rms_norm(&i, &i, EPS, 0.0, CastingMode::Llama)
        .unwrap_err()
        .to_string();
    assert!(e.contains("dtype"), "{e}");
    let s = Tensor::new(1.0f32, &candle_core::Device::Cpu).unwrap();
    let e = rms_norm(&s, &w4, EPS, 0.0, CastingMode::Llama)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one dimension"), "{e}");
    let w3 = randn(1, &[3], 1.0, DType::F32).unwrap();
    let e = rms_norm(&x, &w3, -1.0, 0.0, CastingMode::Llama)
        .unwrap_err()
        .to_string();
    assert!(e.contains("eps"), "{e}");
}

/// Forward+backward timing of the fused op against the reference at
/// Liger's benchmark size; run with
/// `RAYON_NUM_THREADS=2 cargo test -p caracal-kernels --test rms_norm -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_fused_vs_reference() {
    let (rows, n) = (8192, 4096);
    let x = Var::from_tensor(&randn(1, &[rows, n], 1.0, DType::F32).unwrap()).unwrap();
    let w = Var::from_tensor(&randn(2, &[n], 1.0, DType::F32).unwrap()).unwrap();
    type F = fn(&Tensor, &Tensor) -> Tensor;
    let fused: F = |x, w| rms_norm(x, w, EPS, 0.0, CastingMode::Llama).unwrap();
    let refr: F = |x, w| reference::rms_norm(x, w, EPS, 0.0, CastingMode::Llama).unwrap();
    let mut best = [f64::INFINITY; 2];
    for _ in 0..3 {
        for (i, f) in [fused, refr].iter().enumerate() {
            let t0 = std::time::Instant::now();
            let g = f(x.as_tensor(), w.as_tensor()).backward().unwrap();
            assert!(g.get(&x).is_some() && g.get(&w).is_some());
            best[i] = best[i].min(t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "rms_norm [{rows}, {n}] f32 fwd+bwd, {} threads: fused {:.1} ms, reference {:.1} ms, speedup {:.2}x",
        rayon::current_num_threads(),
        best[0] * 1e3,
        best[1] * 1e3,
        best[1] / best[0]
    );
}
