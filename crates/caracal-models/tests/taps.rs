//! Activation taps (`Llama::forward_hidden_with_taps`): the tapped tensors
//! are exactly what each block adds and multiplies, and tapping changes
//! nothing.

use candle_core::{DType, Device, Tensor, D};
use caracal_models::{KernelMode, Llama, LlamaConfig, Tap};
use std::collections::HashMap;

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// `x / √(mean(x²) + eps) · w`, written out.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    x.broadcast_div(&(ms + eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap()
}

/// `x · Wᵀ` for `x` `[B, T, in]`.
fn lin(x: &Tensor, w: &Tensor) -> Tensor {
    x.broadcast_matmul(&w.t().unwrap()).unwrap()
}

type Taps = Vec<(usize, Tap, Tensor)>;

fn tapped(m: &Llama, ids: &Tensor) -> (Tensor, Taps) {
    let mut seen = Vec::new();
    let h = m
        .forward_hidden_with_taps(ids, &mut |l, p, x| {
            seen.push((l, p, x.clone()));
            Ok(())
        })
        .unwrap();
    (h, seen)
}

/// Every mode: the taps come in layer order, three per block, and the
/// output equals `forward_hidden` bit for bit. Then, from the tapped
/// tensors alone and the weights, the residual stream is rebuilt
/// (`x_{l+1} = x_l + a_l·W_oᵀ + m_l·W_downᵀ`, the last one normed into the
/// output) and each SwiGLU input is recomputed
/// (`m_l = silu(gate·h) ⊙ up·h`, `h = RMSNorm(x_l + a_l·W_oᵀ)`).
/// Tolerance: f64 weights, 1e-10 absolute on activations of order 1.
#[test]
fn taps_are_what_the_blocks_multiply_and_change_nothing() {
    let dev = Device::Cpu;
    let cfg = LlamaConfig::tiny(64, 32, 3);
    let ids = Tensor::new(&[[1u32, 5, 9, 33, 2, 7], [4, 4, 60, 0, 13, 8]], &dev).unwrap();
    for mode in [KernelMode::Reference, KernelMode::Fused] {
        let m = Llama::random(&cfg, 7, DType::F32, &dev)
            .unwrap()
            .with_mode(mode);
        let plain = m.forward_hidden(&ids, None).unwrap();
        let (h, seen) = tapped(&m, &ids);
        assert_eq!(
            max_abs(&plain, &h),
            0.0,
            "{mode:?}: tapping changed the output"
        );
        let order: Vec<(usize, Tap)> = seen.iter().map(|(l, p, _)| (*l, *p)).collect();
        let want: Vec<(usize, Tap)> = (0..3)
            .flat_map(|l| [Tap::BlockInput, Tap::OProjInput, Tap::DownProjInput].map(|p| (l, p)))
            .collect();
        assert_eq!(order, want);
        let (b, t) = (2, 6);
        assert_eq!(seen[1].2.dims(), &[b, t, 4 * cfg.head_dim]);
        assert_eq!(seen[2].2.dims(), &[b, t, cfg.intermediate_size]);
    }

    let m = Llama::random(&cfg, 7, DType::F64, &dev)
        .unwrap()
        .with_mode(KernelMode::Reference);
    let w: HashMap<String, Tensor> = m
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let (h, seen) = tapped(&m, &ids);
    let eps = cfg.rms_norm_eps;
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let x = &seen[3 * l].2;
        let a = &seen[3 * l + 1].2;
        let mm = &seen[3 * l + 2].2;
        let x_mid = (x + lin(a, &w[&format!("{p}.self_attn.o_proj.weight")])).unwrap();
        let hn = rms_norm(
            &x_mid,
            &w[&format!("{p}.post_attention_layernorm.weight")],
            eps,
        );
        let g = lin(&hn, &w[&format!("{p}.mlp.gate_proj.weight")]);
        let u = lin(&hn, &w[&format!("{p}.mlp.up_proj.weight")]);
        let silu = (&g
            * candle_core::Tensor::ones_like(&g)
                .unwrap()
                .broadcast_div(&(g.neg().unwrap().exp().unwrap() + 1.0).unwrap()))
        .unwrap();
        let m_want = (silu * u).unwrap();
        assert!(max_abs(mm, &m_want) < 1e-10, "layer {l}: DownProjInput");
        let x_next = (x_mid + lin(mm, &w[&format!("{p}.mlp.down_proj.weight")])).unwrap();
        if l + 1 < cfg.num_hidden_layers {
            let d = max_abs(&seen[3 * (l + 1)].2, &x_next);
            assert!(
                d < 1e-10,
                "layer {l}: residual stream rebuilt from taps is off by {d}"
            );
        } else {
            let out = rms_norm(&x_next, &w["model.norm.weight"], eps);
            assert!(max_abs(&out, &h) < 1e-10, "final hidden states");
        }
    }
}

/// An error returned by the callback stops the pass and comes back.
#[test]
fn a_failing_tap_stops_the_pass() {
    let dev = Device::Cpu;
    let m = Llama::random(&LlamaConfig::tiny(64, 32, 2), 1, DType::F32, &dev).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 3]], &dev).unwrap();
    let mut calls = 0;
    let e = m
        .forward_hidden_with_taps(&ids, &mut |l, p, _| {
            calls += 1;
            if l == 0 && p == Tap::OProjInput {
                caracal_core::bail!("stop here");
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "stop here");
    assert_eq!(calls, 2);
}
