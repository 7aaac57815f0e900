//! Scaled dot-product attention (Vaswani et al., "Attention Is All You
//! Need", 2017, eq. 1): `softmax(QKᵀ/√d + M)·V`, with grouped-query
//! attention (Ainslie et al., 2023) by repeating K/V heads.
//!
//! Built from candle ops, so candle's autograd differentiates it.

use candle_core::{DType, Tensor, D};
use caracal_core::{Error, Result};

/// Repeat each of the `Hk` key/value heads `n_rep` times: `[B, Hk, T, D]` →
/// `[B, Hk·n_rep, T, D]` (GQA).
pub fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, hk, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, hk, n_rep, t, d))?
        .reshape((b, hk * n_rep, t, d))?)
}

/// Shared by both attention forms: check the shapes, repeat K/V heads for
/// GQA and widen to the compute dtype (f32, or f64 for f64 inputs).
/// Returns `(q·kᵀ, v)` in the compute dtype.
fn scores_and_values(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, hq, _tq, d) = q.dims4()?;
    let (bk, hk, _tk, dk) = k.dims4()?;
    if bk != b || dk != d || v.dims() != k.dims() || hk == 0 || hq % hk != 0 {
        return Err(Error::invalid(format!(
            "attention: q is {:?}, k is {:?}, v is {:?}; expected q [B,Hq,Tq,D] and k, v [B,Hk,Tk,D] with Hq a multiple of Hk",
            q.dims(),
            k.dims(),
            v.dims()
        )));
    }
    let n_rep = hq / hk;
    let up = |t: Tensor| -> Result<Tensor> {
        Ok(if q.dtype() == DType::F64 {
            t
        } else {
            t.to_dtype(DType::F32)?
        })
    };
    let k = up(repeat_kv(k, n_rep)?.contiguous()?)?;
    let v = up(repeat_kv(v, n_rep)?.contiguous()?)?;
    let scores = up(q.contiguous()?)?.matmul(&k.t()?)?;
    Ok((scores, v))
}

/// `softmax(q·kᵀ·scale + mask)·v`.
///
/// - `q`: `[B, Hq, Tq, D]`; `k`, `v`: `[B, Hk, Tk, D]` with `Hq` a multiple
///   of `Hk`.
/// - `mask`: optional additive mask broadcastable to `[B, Hq, Tq, Tk]`
///   (0 where allowed, `-inf` or a large negative number where not).
/// - `scale`: usually `1/√D`.
///
/// The softmax runs in f32 for low-precision inputs; a row whose keys are
/// all masked gives zeros rather than NaN.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (scores, v) = scores_and_values(q, k, v)?;
    let mut att = (scores * scale)?;
    if let Some(m) = mask {
        att = att.broadcast_add(&m.to_dtype(att.dtype())?)?;
    }
    // Softmax with a guard for fully masked rows.
    let max = att.max_keepdim(D::Minus1)?;
    let max = max.maximum(&max.ones_like()?.affine(0.0, -1e30)?)?;
    let e = att.broadcast_sub(&max)?.exp()?;
    let denom = e.sum_keepdim(D::Minus1)?;
    let denom = denom.maximum(&denom.ones_like()?.affine(0.0, 1e-30)?)?;
    let p = e.broadcast_div(&denom)?;
    Ok(p.matmul(&v)?.to_dtype(q.dtype())?)
}

/// Causal attention `softmax(q·kᵀ·scale + M)·v` with the fused causal
/// softmax of `caracal_kernels::softmax` (one score-sized tensor kept for
/// the backward instead of five). The queries are the last `Tq` of the `Tk`
/// positions: query `i` sees keys `0..=Tk − Tq + i` (a KV cache, or none
/// when `Tk = Tq`). Shapes as in [`scaled_dot_product_attention`]; CPU only.
pub fn causal_attention_fused(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (tq, tk) = (q.dim(2)?, k.dim(2)?);
    if tk < tq {
        return Err(Error::invalid(format!(
            "attention: q has {tq} positions but k has {tk}; causal attention needs Tk ≥ Tq"
        )));
    }
    let (scores, v) = scores_and_values(q, k, v)?;
    let p = caracal_kernels::causal_softmax(&scores, scale, tk - tq)?;
    Ok(p.matmul(&v)?.to_dtype(q.dtype())?)
}

/// Attention in the op order of candle-transformers' `quantized_llama`
/// (inference only, for [`KernelMode::Candle`](crate::KernelMode)):
/// repeated K/V heads, `(q·kᵀ)/√D`, the additive mask (0 or `-inf`, the same
/// values as its `masked_fill`), candle-nn's `softmax_last_dim`, then `·v`.
/// Shapes as in [`scaled_dot_product_attention`]; computes in the inputs'
/// dtype.
pub fn candle_order_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (_b, hq, _tq, d) = q.dims4()?;
    let hk = k.dim(1)?;
    if hk == 0 || hq % hk != 0 || k.dim(3)? != d || v.dims() != k.dims() {
        return Err(Error::invalid(format!(
            "attention: q is {:?}, k is {:?}, v is {:?}; expected q [B,Hq,Tq,D] and k, v [B,Hk,Tk,D] with Hq a multiple of Hk",
            q.dims(),
            k.dims(),
            v.dims()
        )));
    }
    let k = repeat_kv(k, hq / hk)?.contiguous()?;
    let v = repeat_kv(v, hq / hk)?.contiguous()?;
    let mut att = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
    if let Some(m) = mask {
        att = att.broadcast_add(&m.to_dtype(att.dtype())?)?;
    }
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    Ok(att.matmul(&v)?)
}

/// An additive causal mask `[T, T]`: 0 on and below the diagonal, `-inf` above.
pub fn causal_mask(t: usize, dt: DType, device: &candle_core::Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(m, (t, t), device)?.to_dtype(dt)?)
}

/// An additive causal mask `[T, P + T]` for `T` new queries after `P`
/// cached positions: query `i` sees keys `0..=P + i`.
pub fn causal_mask_offset(
    t: usize,
    past: usize,
    dt: DType,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let n = past + t;
    let m: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..n).map(move |j| {
                if j <= past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(m, (t, n), device)?.to_dtype(dt)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Direct loops over one head: the textbook formula.
    fn naive(
        q: &[f64],
        k: &[f64],
        v: &[f64],
        tq: usize,
        tk: usize,
        d: usize,
        causal: bool,
    ) -> Vec<f64> {
        let mut out = vec![0.0; tq * d];
        for i in 0..tq {
            let s: Vec<f64> = (0..tk)
                .map(|j| {
                    if causal && j > i {
                        f64::NEG_INFINITY
                    } else {
                        (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() / (d as f64).sqrt()
                    }
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for j in 0..tk {
                let p = (s[j] - m).exp() / z;
                for c in 0..d {
                    out[i * d + c] += p * v[j * d + c];
                }
            }
        }
        out
    }

    #[test]
    fn matches_textbook_loops_with_gqa_and_causal_mask() {
        let dev = Device::Cpu;
        let (t, d) = (5, 4);
        let mut rng = caracal_core::Rng::new(3);
        let mut r = |n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f64>>();
        let (qv, kv, vv) = (r(2 * t * d), r(t * d), r(t * d));
        let q = Tensor::from_vec(qv.clone(), (1, 2, t, d), &dev).unwrap();
        let k = Tensor::from_vec(kv.clone(), (1, 1, t, d), &dev).unwrap();
        let v = Tensor::from_vec(vv.clone(), (1, 1, t, d), &dev).unwrap();
        let mask = causal_mask(t, DType::F64, &dev).unwrap();
        let out =
            scaled_dot_product_attention(&q, &k, &v, Some(&mask), 1.0 / (d as f64).sqrt()).unwrap();
        let out: Vec<f64> = out.flatten_all().unwrap().to_vec1().unwrap();
        for h in 0..2 {
            let want = naive(&qv[h * t * d..(h + 1) * t * d], &kv, &vv, t, t, d, true);
            for (a, b) in out[h * t * d..(h + 1) * t * d].iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn fully_masked_rows_give_zeros_and_bad_shapes_error() {
        let dev = Device::Cpu;
        let q = Tensor::ones((1, 1, 2, 2), DType::F32, &dev).unwrap();
        let mask =
            Tensor::new(&[[f32::NEG_INFINITY, f32::NEG_INFINITY], [0.0, 0.0]], &dev).unwrap();
        let out = scaled_dot_product_attention(&q, &q, &q, Some(&mask), 1.0).unwrap();
        let v: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&v[..2], &[0.0, 0.0]);
        assert!(v.iter().all(|x| x.is_finite()));
        let k = Tensor::ones((1, 3, 2, 2), DType::F32, &dev).unwrap();
        let q2 = Tensor::ones((1, 2, 2, 2), DType::F32, &dev).unwrap();
        assert!(scaled_dot_product_attention(&q2, &k, &k, None, 1.0).is_err());
    }
    #[test]
    fn fused_causal_attention_matches_the_masked_reference() {
        let dev = Device::Cpu;
        // GQA (4 query heads on 2 KV heads), a training shape (Tk = Tq) and a
        // KV-cache shape (3 new queries after 5 cached keys), forward and
        // gradients of q, k and v.
        for (tq, past) in [(6usize, 0usize), (3, 5)] {
            let tk = tq + past;
            let mk = |seed: u64, h: usize, t: usize| {
                candle_core::Var::from_tensor(
                    &caracal_kernels::testing::randn(seed, &[2, h, t, 8], 1.0, DType::F32).unwrap(),
                )
                .unwrap()
            };
            let (q, k, v) = (mk(1, 4, tq), mk(2, 2, tk), mk(3, 2, tk));
            let w = caracal_kernels::testing::randn(4, &[2, 4, tq, 8], 1.0, DType::F32).unwrap();
            let mask = causal_mask_offset(tq, past, DType::F32, &dev).unwrap();
            let a = causal_attention_fused(&q, &k, &v, 0.35).unwrap();
            let b = scaled_dot_product_attention(&q, &k, &v, Some(&mask), 0.35).unwrap();
            let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
            let ga = (a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for t in [&q, &k, &v] {
                caracal_kernels::testing::check_close(
                    "attention gradient",
                    ga.get(t).unwrap(),
                    gb.get(t).unwrap(),
                    1e-5,
                    1e-4,
                )
                .unwrap();
            }
        }
    }
}
