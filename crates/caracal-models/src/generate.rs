//! Text generation with the KV cache: the prompt is run once, then one
//! token at a time. Sampling is greedy, temperature, or nucleus (top-p;
//! Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR
//! 2020, §3.1: sample from the smallest set of tokens whose probability
//! reaches `p`).

use crate::model::Llama;
use candle_core::{DType, Tensor, D};
use caracal_core::{Result, Rng};

/// How the next token is chosen from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// Sample from `softmax(z/temperature)`, restricted to the top-`p` nucleus
    /// (`top_p = 1` keeps every token).
    Sample { temperature: f64, top_p: f64 },
}

/// Options of [`generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Stop after emitting one of these tokens.
    pub stop: Vec<u32>,
}

/// Pick the next token from a logit row.
pub fn sample(logits: &[f32], sampling: Sampling, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv {
                    (i, v)
                } else {
                    (bi, bv)
                }
            })
            .0 as u32
    };
    match sampling {
        Sampling::Greedy => argmax(),
        Sampling::Sample { temperature, top_p } => {
            if temperature <= 0.0 {
                return argmax();
            }
            let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let mut p: Vec<(usize, f64)> = logits
                .iter()
                .enumerate()
                .map(|(i, &z)| (i, ((z as f64 - m) / temperature).exp()))
                .collect();
            p.sort_by(|a, b| b.1.total_cmp(&a.1));
            let total: f64 = p.iter().map(|x| x.1).sum();
            let mut keep = 0;
            let mut acc = 0.0;
            for (_, w) in &p {
                acc += w / total;
                keep += 1;
                if acc >= top_p {
                    break;
                }
            }
            p.truncate(keep.max(1));
            let mass: f64 = p.iter().map(|x| x.1).sum();
            let mut u = rng.uniform() * mass;
            for (i, w) in &p {
                if u < *w {
                    return *i as u32;
                }
                u -= w;
            }
            p[p.len() - 1].0 as u32
        }
    }
}

/// Continue `prompt` by up to `max_new_tokens` tokens; returns the new tokens.
pub fn generate(model: &Llama, prompt: &[u32], opts: &GenerateOptions) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        caracal_core::bail!("the prompt is empty; give at least one token");
    }
    if let Sampling::Sample { temperature, top_p } = opts.sampling {
        if !(temperature >= 0.0 && top_p > 0.0 && top_p <= 1.0) {
            caracal_core::bail!(
                "temperature {temperature} must be ≥ 0 and top_p {top_p} in (0, 1]"
            );
        }
    }
    let dev = model.device();
    let mut rng = Rng::new(opts.seed);
    let mut cache = model.new_cache();
    let mut out = Vec::with_capacity(opts.max_new_tokens);
    let mut input = Tensor::new(prompt, dev)?.unsqueeze(0)?;
    for _ in 0..opts.max_new_tokens {
        let logits = model.logits_cached(&input, &mut cache)?;
        let last = logits
            .narrow(1, logits.dim(1)? - 1, 1)?
            .flatten_all()?
            .to_dtype(DType::F32)?;
        let row: Vec<f32> = last.to_vec1()?;
        let next = sample(&row, opts.sampling, &mut rng);
        out.push(next);
        if opts.stop.contains(&next) {
            break;
        }
        input = Tensor::new(&[next], dev)?.unsqueeze(0)?;
    }
    Ok(out)
}

/// Greedy continuation without the cache (the whole sequence each step),
/// for checking the cached path.
pub fn generate_uncached_greedy(model: &Llama, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let ids = Tensor::new(seq.as_slice(), model.device())?.unsqueeze(0)?;
        let z = model.logits(&ids)?;
        let next = z
            .narrow(1, seq.len() - 1, 1)?
            .flatten_all()?
            .argmax(D::Minus1)?
            .to_scalar::<u32>()?;
        seq.push(next);
    }
    Ok(seq[prompt.len()..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use candle_core::Device;

    #[test]
    fn cached_greedy_equals_uncached_and_top_p_restricts() {
        let m = Llama::random(&LlamaConfig::tiny(64, 32, 2), 3, DType::F32, &Device::Cpu).unwrap();
        let prompt = [1u32, 5, 9, 2];
        let opts = GenerateOptions {
            max_new_tokens: 6,
            sampling: Sampling::Greedy,
            seed: 0,
            stop: vec![],
        };
        assert_eq!(
            generate(&m, &prompt, &opts).unwrap(),
            generate_uncached_greedy(&m, &prompt, 6).unwrap()
        );
        let mut rng = Rng::new(1);
        let z = [0.0f32, 5.0, 4.9, -3.0];
        for _ in 0..50 {
            let t = sample(
                &z,
                Sampling::Sample {
                    temperature: 1.0,
                    top_p: 0.5,
                },
                &mut rng,
            );
            assert_eq!(t, 1);
            let t = sample(
                &z,
                Sampling::Sample {
                    temperature: 1.0,
                    top_p: 0.9,
                },
                &mut rng,
            );
            assert!(t == 1 || t == 2);
        }
        let e = generate(&m, &[], &opts).unwrap_err().to_string();
        assert!(e.contains("empty"));
    }
}
