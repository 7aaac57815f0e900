//! Rotary position embedding tables (Su et al., "RoFormer", 2021, eq. 34):
//! `θ_i = base^(−2i/D)`, with the Llama-3 frequency scaling (Hugging Face
//! `_compute_llama3_parameters`): wavelengths longer than
//! `L/low_freq_factor` are divided by `factor`, those shorter than
//! `L/high_freq_factor` kept, and the band between interpolated smoothly.

use crate::config::LlamaConfig;
use candle_core::{DType, Device, Tensor};
use caracal_core::Result;

/// The inverse frequencies `θ_i` for `i < D/2`, scaled as the config says.
pub fn inv_freq(cfg: &LlamaConfig) -> Vec<f64> {
    let d = cfg.head_dim;
    let mut f: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / d as f64))
        .collect();
    if let Some(s) = &cfg.rope_scaling {
        let l = s.original_max_position_embeddings as f64;
        let low_wavelen = l / s.low_freq_factor;
        let high_wavelen = l / s.high_freq_factor;
        for x in &mut f {
            let wavelen = 2.0 * std::f64::consts::PI / *x;
            if wavelen > low_wavelen {
                *x /= s.factor;
            } else if wavelen >= high_wavelen {
                let smooth =
                    (l / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                *x = (1.0 - smooth) * *x / s.factor + smooth * *x;
            }
        }
    }
    f
}

/// `cos` and `sin` tables `[T, D]` for positions `start..start+t`, in the
/// rotate-half layout (`[θ, θ]` concatenated), as `dt`.
pub fn cos_sin(
    inv_freq: &[f64],
    start: usize,
    t: usize,
    dt: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let d = 2 * inv_freq.len();
    let mut cs = Vec::with_capacity(t * d);
    for p in start..start + t {
        for _ in 0..2 {
            for &f in inv_freq {
                // Hugging Face forms the angle in f32.
                let a = (p as f32 * f as f32) as f64;
                cs.push((a.cos() as f32, a.sin() as f32));
            }
        }
    }
    tables(cs, (t, d), dt, device)
}

/// `(cos, sin)` pairs, row-major, as two tensors of `shape` in `dt`.
fn tables(
    cs: Vec<(f32, f32)>,
    shape: (usize, usize),
    dt: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let (c, s): (Vec<f32>, Vec<f32>) = cs.into_iter().unzip();
    let c = Tensor::from_vec(c, shape, device)?.to_dtype(dt)?;
    let s = Tensor::from_vec(s, shape, device)?.to_dtype(dt)?;
    Ok((c, s))
}

/// `cos` and `sin` tables `[T, D/2]` for positions `start..start+t`, formed
/// in f32 as candle-transformers' `quantized_llama` forms them
/// (`θ_i = 1 / base^(2i/D)` by `f32::powf`, angle `p·θ_i`, `f32` cos/sin),
/// for [`KernelMode::Candle`](crate::KernelMode) and candle-nn's
/// `rope`/`rope_i`. With Llama-3 scaling, `θ_i` is [`inv_freq`]'s, rounded.
pub fn cos_sin_half_f32(
    cfg: &LlamaConfig,
    inv_freq: &[f64],
    start: usize,
    t: usize,
    dt: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let d = cfg.head_dim;
    let theta: Vec<f32> = if cfg.rope_scaling.is_some() {
        inv_freq.iter().map(|&f| f as f32).collect()
    } else {
        let base = cfg.rope_theta as f32;
        (0..d)
            .step_by(2)
            .map(|i| 1f32 / base.powf(i as f32 / d as f32))
            .collect()
    };
    let cs = (start..start + t)
        .flat_map(|p| {
            theta.iter().map(move |&th| {
                let a = p as f32 * th;
                (a.cos(), a.sin())
            })
        })
        .collect();
    tables(cs, (t, d / 2), dt, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Llama3Scaling;

    #[test]
    fn llama3_scaling_divides_low_frequencies_only() {
        let mut cfg = LlamaConfig::tiny(256, 64, 1);
        let plain = inv_freq(&cfg);
        cfg.rope_scaling = Some(Llama3Scaling {
            factor: 4.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        });
        let scaled = inv_freq(&cfg);
        assert_eq!(plain[0], scaled[0]);
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 4.0).abs() < 1e-15);
        let (c, s) = cos_sin(&plain, 3, 2, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(c.dims(), &[2, 16]);
        let c: Vec<Vec<f32>> = c.to_vec2().unwrap();
        let s: Vec<Vec<f32>> = s.to_vec2().unwrap();
        assert!((c[0][0] - 3f32.cos()).abs() < 1e-6 && (s[1][8] - 4f32.sin()).abs() < 1e-6);
    }
}
