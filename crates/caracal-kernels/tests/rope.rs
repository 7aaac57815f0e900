//! RoPE against the candle-composed reference (forward, dq, dk) and finite
//! differences. Tolerances (atol/rtol, Liger's rule
//! `|a − b| ≤ atol + rtol·|b|`): reference/kernels.md §2, Liger's test_rope:
//! fp32 1e-5 (atol = rtol), bf16 1e-1/1e-5, fp16 1e-2 (atol = rtol).

use candle_core::{DType, Device, Tensor, Var};
use caracal_kernels::rope::{reference, rope};
use caracal_kernels::testing::{check_close, finite_difference, randn};

/// Hugging Face's `cos`/`sin` for positions `pos` (base 10000): `[T, D]`,
/// the two halves duplicated.
fn hf_cos_sin_rows(pos: &[usize], d: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut c, mut s) = (Vec::new(), Vec::new());
    for &p in pos {
        for j in 0..d {
            let i = j % (d / 2);
            let inv_freq = 1.0 / 10000f64.powf(2.0 * i as f64 / d as f64);
            let a = p as f64 * inv_freq;
            c.push(a.cos() as f32);
            s.push(a.sin() as f32);
        }
    }
    (c, s)
}

/// `cos`/`sin` of shape `[T, D]`, or `[B, T, D]` with batch `b` starting at
/// position `3b` (as with left padding).
fn hf_cos_sin(batch: Option<usize>, t: usize, d: usize, dt: DType) -> (Tensor, Tensor) {
    let (c, s, shape) = match batch {
        None => {
            let (c, s) = hf_cos_sin_rows(&(0..t).collect::<Vec<_>>(), d);
            (c, s, vec![t, d])
        }
        Some(b) => {
            let (mut c, mut s) = (Vec::new(), Vec::new());
            for bi in 0..b {
                let (ci, si) = hf_cos_sin_rows(&(3 * bi..3 * bi + t).collect::<Vec<_>>(), d);
                c.extend(ci);
                s.extend(si);
            }
            (c, s, vec![b, t, d])
        }
    };
    let mk = |v: Vec<f32>| {
        Tensor::from_vec(v, shape.as_slice(), &Device::Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap()
    };
    (mk(c), mk(s))
}

/// Forward and both gradients of the fused op against the reference, with
/// the given `cos`/`sin`.
fn compare_with(q: &Var, k: &Var, cos: &Tensor, sin: &Tensor, atol: f64, rtol: f64, what: &str) {
    let dt = q.dtype();
    let dq_out = randn(3, q.dims(), 1.0, dt).unwrap();
    let dk_out = randn(4, k.dims(), 1.0, dt).unwrap();
    let (yq, yk) = rope(q.as_tensor(), k.as_tensor(), cos, sin).unwrap();
    let (yq_ref, yk_ref) = reference::rope(q.as_tensor(), k.as_tensor(), cos, sin).unwrap();
    assert_eq!((yq.dtype(), yk.dtype()), (dt, dt));
    check_close(&format!("q {what}"), &yq, &yq_ref, atol, rtol).unwrap();
    check_close(&format!("k {what}"), &yk, &yk_ref, atol, rtol).unwrap();
    let loss = |a: Tensor, b: Tensor| {
        ((a * &dq_out).unwrap().sum_all().unwrap() + (b * &dk_out).unwrap().sum_all().unwrap())
            .unwrap()
    };
    let g = loss(yq, yk).backward().unwrap();
    let g_ref = loss(yq_ref, yk_ref).backward().unwrap();
    check_close(
        &format!("dq {what}"),
        g.get(q).unwrap(),
        g_ref.get(q).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
    check_close(
        &format!("dk {what}"),
        g.get(k).unwrap(),
        g_ref.get(k).unwrap(),
        atol,
        rtol,
    )
    .unwrap();
}

/// `(batch, seq, q heads, kv heads, head dim)` as in Liger's test_rope.
fn compare(
    sz: (usize, usize, usize, usize, usize),
    dt: DType,
    batched: bool,
    atol: f64,
    rtol: f64,
) {
    let (b, t, hq, hk, d) = sz;
    let q = Var::from_tensor(&randn(1, &[b, hq, t, d], 1.0, dt).unwrap()).unwrap();
    let k = Var::from_tensor(&randn(2, &[b, hk, t, d], 1.0, dt).unwrap()).unwrap();
    let (cos, sin) = hf_cos_sin(batched.then_some(b), t, d, dt);
    compare_with(
        &q,
        &k,
        &cos,
        &sin,
        atol,
        rtol,
        &format!("{sz:?} {dt:?} batched {batched}"),
    );
}

// Liger's shapes are up to (1, 8192, 32, 8, 128) and the odd
// (3, 423, 73, 213, 92); scaled down in T and heads to keep this file fast in
// the dev profile, keeping GQA, the odd head counts and head dims.
const SHAPES: [(usize, usize, usize, usize, usize); 3] =
    [(1, 256, 32, 8, 128), (2, 128, 8, 2, 64), (3, 47, 7, 21, 92)];

#[test]
fn f32_matches_reference_liger_shapes() {
    // fp32: atol = rtol = 1e-5 (Liger).
    for sz in SHAPES {
        compare(sz, DType::F32, false, 1e-5, 1e-5);
        compare(sz, DType::F32, true, 1e-5, 1e-5);
    }
}

#[test]
fn bf16_and_f16_match_reference() {
    // bf16: atol 1e-1, rtol 1e-5; fp16: atol = rtol = 1e-2 (Liger).
    for sz in SHAPES {
        compare(sz, DType::BF16, false, 1e-1, 1e-5);
        compare(sz, DType::F16, true, 1e-2, 1e-2);
    }
}

#[test]
fn odd_liger_shape_full_sequence() {
    // Liger's odd case (3, 423, 73, 213, 92) with the heads scaled down.
    compare((3, 423, 5, 11, 92), DType::F32, true, 1e-5, 1e-5);
}

#[test]
fn general_cos_sin_and_broadcast_batch() {
    // Random cos/sin (halves not duplicated) check the exact gradient; a
    // leading batch of 1 broadcasts.
    let (b, t, d) = (2, 5, 6);
    let q = Var::from_tensor(&randn(1, &[b, 3, t, d], 1.0, DType::F32).unwrap()).unwrap();
    let k = Var::from_tensor(&randn(2, &[b, 1, t, d], 1.0, DType::F32).unwrap()).unwrap();
    let cos = randn(5, &[b, t, d], 1.0, DType::F32).unwrap();
    let sin = randn(6, &[b, t, d], 1.0, DType::F32).unwrap();
    compare_with(&q, &k, &cos, &sin, 1e-5, 1e-5, "random cos/sin");
    let cos1 = randn(7, &[1, t, d], 1.0, DType::F32).unwrap();
    let sin1 = randn(8, &[1, t, d], 1.0, DType::F32).unwrap();
    compare_with(&q, &k, &cos1, &sin1, 1e-5, 1e-5, "cos/sin batch 1");
}

#[test]
fn strided_inputs_forward_and_backward() {
    // q and k laid out [B, T, H, D] and transposed to [B, H, T, D], as in
    // attention; cos/sin strided too. Gradients flow back to the bases.
    let (b, t, hq, hk, d) = (2, 9, 4, 2, 16);
    let qb = Var::from_tensor(&randn(1, &[b, t, hq, d], 1.0, DType::F32).unwrap()).unwrap();
    let kb = Var::from_tensor(&randn(2, &[b, t, hk, d], 1.0, DType::F32).unwrap()).unwrap();
    let q = qb.as_tensor().transpose(1, 2).unwrap();
    let k = kb.as_tensor().transpose(1, 2).unwrap();
    assert!(!q.is_contiguous() && !k.is_contiguous());
    let (cos, sin) = hf_cos_sin(None, t, d, DType::F32);
    let cos_t = cos.t().unwrap().contiguous().unwrap().t().unwrap();
    assert!(!cos_t.is_contiguous());
    let dq_out = randn(3, &[b, hq, t, d], 1.0, DType::F32).unwrap();
    let dk_out = randn(4, &[b, hk, t, d], 1.0, DType::F32).unwrap();
    let loss = |a: Tensor, c: Tensor| {
        ((a * &dq_out).unwrap().sum_all().unwrap() + (c * &dk_out).unwrap().sum_all().unwrap())
            .unwrap()
    };
    let (yq, yk) = rope(&q, &k, &cos_t, &sin).unwrap();
    let (yq_ref, yk_ref) = reference::rope(&q, &k, &cos, &sin).unwrap();
    check_close("strided q", &yq, &yq_ref, 1e-5, 1e-5).unwrap();
    check_close("strided k", &yk, &yk_ref, 1e-5, 1e-5).unwrap();
    let g = loss(yq, yk).backward().unwrap();
    let g_ref = loss(yq_ref, yk_ref).backward().unwrap();
    check_close(
        "strided dq",
        g.get(&qb).unwrap(),
        g_ref.get(&qb).unwrap(),
        1e-5,
        1e-5,
    )
    .unwrap();
    check_close(
        "strided dk",
        g.get(&kb).unwrap(),
        g_ref.get(&kb).unwrap(),
        1e-5,
        1e-5,
    )
    .unwrap();
}

#[test]
fn finite_differences_f64() {
    // f64 central differences, h = 1e-6: atol 1e-8, rtol 1e-6; random
    // cos/sin so that both halves of each table matter.
    let q = randn(1, &[1, 2, 3, 4], 1.0, DType::F64).unwrap();
    let k = randn(2, &[1, 1, 3, 4], 1.0, DType::F64).unwrap();
    let cos = randn(3, &[3, 4], 1.0, DType::F64).unwrap();
    let sin = randn(4, &[3, 4], 1.0, DType::F64).unwrap();
    let wq = randn(5, &[1, 2, 3, 4], 1.0, DType::F64).unwrap();
    let wk = randn(6, &[1, 1, 3, 4], 1.0, DType::F64).unwrap();
    let (qv, kv) = (Var::from_tensor(&q).unwrap(), Var::from_tensor(&k).unwrap());
    let loss = |q: &Tensor, k: &Tensor| -> candle_core::Result<Tensor> {
        let (a, b) = rope(q, k, &cos, &sin).unwrap();
        (a * &wq)?.sum_all()? + (b * &wk)?.sum_all()?
    };
    let g = loss(qv.as_tensor(), kv.as_tensor())
        .unwrap()
        .backward()
        .unwrap();
    let fd_q = finite_difference(&q, 1e-6, |t| loss(t, &k)?.to_scalar::<f64>()).unwrap();
    let fd_k = finite_difference(&k, 1e-6, |t| loss(&q, t)?.to_scalar::<f64>()).unwrap();
    check_close("fd dq", g.get(&qv).unwrap(), &fd_q, 1e-8, 1e-6).unwrap();
    check_close("fd dk", g.get(&kv).unwrap(), &fd_k, 1e-8, 1e-6).unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let f = DType::F32;
    let q = randn(1, &[2, 4, 5, 8], 1.0, f).unwrap();
    let k = randn(1, &[2, 2, 5, 8], 1.0, f).unwrap();
    let (cos, sin) = hf_cos_sin(None, 5, 8, f);
    assert!(rope(&q, &k, &cos, &sin).is_ok());
    // Odd head dim.
    let q7 = randn(1, &[2, 4, 5, 7], 1.0, f).unwrap();
    let k7 = randn(1, &[2, 2, 5, 7], 1.0, f).unwrap();
    let c7 = randn(1, &[5, 7], 1.0, f).unwrap();
    let e = rope(&q7, &k7, &c7, &c7).unwrap_err().to_string();
    assert!(e.contains("even"), "{e}");
    // cos/sin of the wrong shape, or differing from each other.
    let c_bad = randn(1, &[6, 8], 1.0, f).unwrap();
    let e = rope(&q, &k, &c_bad, &c_bad).unwrap_err().to_string();
    assert!(e.contains("cos is [6, 8]"), "{e}");
    let c_b3 = randn(1, &[3, 5, 8], 1.0, f).unwrap();
    assert!(rope(&q, &k, &c_b3, &c_b3).is_err());
    let e = rope(&q, &k, &cos, &c_b3).unwrap_err().to_string();
    assert!(e.contains("sin is [3, 5, 8]"), "{e}");
    // q and k that disagree in batch, seq, head dim or dtype.
    let k_t = randn(1, &[2, 2, 6, 8], 1.0, f).unwrap();
    let e = rope(&q, &k_t, &cos, &sin).unwrap_err().to_string();
    assert!(e.contains("must share"), "{e}");
    let k_bf = k.to_dtype(DType::BF16).unwrap();
    assert!(rope(&q, &k_bf, &cos, &sin).is_err());
    // Wrong rank and non-float dtype.
    let q3 = randn(1, &[4, 5, 8], 1.0, f).unwrap();
    let e = rope(&q3, &k, &cos, &sin).unwrap_err().to_string();
    assert!(e.contains("[batch, heads, seq, head_dim]"), "{e}");
    let qi = Tensor::zeros((2, 4, 5, 8), DType::U8, &Device::Cpu).unwrap();
    let e = rope(&qi, &qi, &cos, &sin).unwrap_err().to_string();
    assert!(e.contains("dtype"), "{e}");
}

/// Forward+backward timing of the fused op against the reference at
/// Liger's benchmark size (q [4, 32, 1024, 128], k with 8 heads); run with
/// `RAYON_NUM_THREADS=2 cargo test -p caracal-kernels --test rope -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_fused_vs_reference() {
    let (b, t, hq, hk, d) = (4, 1024, 32, 8, 128);
    let q = Var::from_tensor(&randn(1, &[b, hq, t, d], 1.0, DType::F32).unwrap()).unwrap();
    let k = Var::from_tensor(&randn(2, &[b, hk, t, d], 1.0, DType::F32).unwrap()).unwrap();
    let (cos, sin) = hf_cos_sin(None, t, d, DType::F32);
    type F = fn(&Tensor, &Tensor, &Tensor, &Tensor) -> (Tensor, Tensor);
    let fused: F = |q, k, c, s| rope(q, k, c, s).unwrap();
    let refr: F = |q, k, c, s| reference::rope(q, k, c, s).unwrap();
    let mut best = [f64::INFINITY; 2];
    for _ in 0..3 {
        for (i, f) in [fused, refr].iter().enumerate() {
            let t0 = std::time::Instant::now();
            let (yq, yk) = f(q.as_tensor(), k.as_tensor(), &cos, &sin);
            let loss = (yq.sum_all().unwrap() + yk.sum_all().unwrap()).unwrap();
            let g = loss.backward().unwrap();
            assert!(g.get(&q).is_some() && g.get(&k).is_some());
            best[i] = best[i].min(t0.elapsed().as_secs_f64());
        }
    }
    println!(
        "rope q {:?} k {:?} f32 fwd+bwd, {} threads: fused {:.1} ms, reference {:.1} ms, speedup {:.2}x",
        [b, hq, t, d],
        [b, hk, t, d],
        rayon::current_num_threads(),
        best[0] * 1e3,
        best[1] * 1e3,
        best[1] / best[0]
    );
}

/// Forward timing for q/k in the transposed `[B, T, H, D]` layout against
/// the same data made contiguous first (the strided read path).
#[test]
#[ignore]
fn timing_strided_forward() {
    let (b, t, hq, hk, d) = (4, 1024, 32, 8, 128);
    let qb = randn(1, &[b, t, hq, d], 1.0, DType::F32).unwrap();
    let kb = randn(2, &[b, t, hk, d], 1.0, DType::F32).unwrap();
    let (cos, sin) = hf_cos_sin(None, t, d, DType::F32);
    for strided in [false, true] {
        let (q, k) = if strided {
            (qb.transpose(1, 2).unwrap(), kb.transpose(1, 2).unwrap())
        } else {
            (
                qb.transpose(1, 2).unwrap().contiguous().unwrap(),
                kb.transpose(1, 2).unwrap().contiguous().unwrap(),
            )
        };
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let _ = rope(&q, &k, &cos, &sin).unwrap();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        let t0 = std::time::Instant::now();
        let _ = q.contiguous().unwrap();
        println!(
            "strided {strided}: fwd {:.1} ms; candle contiguous() of q {:.1} ms",
            best * 1e3,
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
}
