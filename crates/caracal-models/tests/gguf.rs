//! GGUF loading on a small file built from the Hugging Face fixture, and
//! bad-input errors (unknown architecture, truncated file).

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use caracal_models::gguf::{self as g, GgufWeights};
use caracal_models::{hf, KernelMode};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_llama")
}

/// llama.cpp's `permute`: rotate-half rows → interleaved rows per head.
fn to_interleaved(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    let d = out / heads;
    w.reshape((heads, 2, d / 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

/// The tiny fixture as an F32 GGUF (architecture `arch`).
fn tiny_gguf(arch: &str) -> Vec<u8> {
    let dev = Device::Cpu;
    let model = hf::load_dir(fixture(), DType::F32, &dev).unwrap();
    let c = model.config().clone();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, v) in model.named_vars() {
        let mut t = v.as_tensor().clone();
        if name.ends_with("q_proj.weight") {
            t = to_interleaved(&t, c.num_attention_heads);
        } else if name.ends_with("k_proj.weight") {
            t = to_interleaved(&t, c.num_key_value_heads);
        }
        tensors.push((
            g::gguf_name(&name),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    }
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String(arch.into())),
        ("llama.embedding_length", Value::U32(c.hidden_size as u32)),
        (
            "llama.feed_forward_length",
            Value::U32(c.intermediate_size as u32),
        ),
        ("llama.block_count", Value::U32(c.num_hidden_layers as u32)),
        (
            "llama.attention.head_count",
            Value::U32(c.num_attention_heads as u32),
        ),
        (
            "llama.attention.head_count_kv",
            Value::U32(c.num_key_value_heads as u32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(c.rms_norm_eps as f32),
        ),
        ("llama.rope.freq_base", Value::F32(c.rope_theta as f32)),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &md_refs, &t_refs).unwrap();
    buf.into_inner()
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("caracal-gguf-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The GGUF path (interleaved Q/K, llama.* metadata) reproduces the
/// fixture's transformers logits; the fixture's Llama-3 RoPE scaling is not
/// in GGUF metadata, so positions are kept below the scaled band's effect:
/// we compare against our own HF-loaded model with scaling removed.
#[test]
fn gguf_logits_match_the_safetensors_model() {
    let dev = Device::Cpu;
    let p = write_tmp("tiny.gguf", &tiny_gguf("llama"));
    let mut cfg = hf::load_dir(fixture(), DType::F32, &dev)
        .unwrap()
        .config()
        .clone();
    cfg.rope_scaling = None;
    let dir = std::env::temp_dir().join(format!("caracal-gguf-hf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), cfg.to_json().to_string()).unwrap();
    std::fs::copy(
        fixture().join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let want_model = hf::load_dir(&dir, DType::F32, &dev).unwrap();
    let ids = Tensor::new(&[[3u32, 100, 7, 255, 0, 42, 42, 9]], &dev).unwrap();
    let want = want_model.logits(&ids).unwrap();
    // Every kernel mode; Candle mode rotates GGUF's interleaved Q/K rows
    // with `rope_i` where the others first permute them to rotate-half.
    for how in [GgufWeights::Quantized, GgufWeights::Dequantized] {
        for mode in [KernelMode::Fused, KernelMode::Reference, KernelMode::Candle] {
            let (m, tok) = g::load(&p, how, &dev).unwrap();
            let m = m.with_mode(mode);
            assert_eq!(tok.vocab_size(), 256);
            let d = (m.logits(&ids).unwrap() - &want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert!(
                d.to_scalar::<f32>().unwrap() < 1e-4,
                "{how:?} {mode:?}: {d}"
            );
        }
    }
    std::fs::remove_file(p).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unknown_arch_and_truncated_files_are_named() {
    let dev = Device::Cpu;
    let p = write_tmp("gpt2.gguf", &tiny_gguf("gpt2"));
    let e = g::load(&p, GgufWeights::Dequantized, &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("gpt2.gguf") && e.contains("general.architecture") && e.contains("`gpt2`"),
        "{e}"
    );
    std::fs::remove_file(p).unwrap();

    let bytes = tiny_gguf("llama");
    for (name, cut) in [("head.gguf", 40), ("body.gguf", bytes.len() - 5000)] {
        let p = write_tmp(name, &bytes[..cut]);
        let e = g::load(&p, GgufWeights::Dequantized, &dev)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(name) && e.contains("truncated or corrupted"),
            "{e}"
        );
        std::fs::remove_file(p).unwrap();
    }
    let p = write_tmp("garbage.gguf", b"not a gguf file at all, just text");
    let e = g::load(&p, GgufWeights::Dequantized, &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("garbage.gguf"), "{e}");
    std::fs::remove_file(p).unwrap();
}

/// A GGUF loaded quantized runs but cannot train (one sentence, from every
/// trainer); loaded dequantized it can.
#[test]
fn a_quantized_model_is_refused_for_training() {
    let dev = Device::Cpu;
    let p = write_tmp("trainable.gguf", &tiny_gguf("llama"));
    let (q, _) = g::load(&p, GgufWeights::Quantized, &dev).unwrap();
    assert!(q.is_quantized());
    let e = q.ensure_trainable().unwrap_err().to_string();
    assert!(e.contains("a quantized model cannot be trained"), "{e}");
    let (d, _) = g::load(&p, GgufWeights::Dequantized, &dev).unwrap();
    assert!(!d.is_quantized());
    d.ensure_trainable().unwrap();
    let opts = caracal_models::train::TrainOptions::default();
    let e = caracal_models::train::Trainer::new(q, opts, "bytes")
        .err()
        .expect("a quantized model is refused")
        .to_string();
    assert!(e.contains("a quantized model cannot be trained"), "{e}");
}
