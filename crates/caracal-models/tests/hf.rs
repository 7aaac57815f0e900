//! Hugging Face parity and bad-input errors for the loaders.
//!
//! The fixture under `tests/fixtures/tiny_llama` is written by
//! `tools/make_tiny_llama.py` (transformers, f32): a random Llama with
//! hidden 64, 2 layers, 4/2 heads, vocab 256 and Llama-3 RoPE scaling, and
//! its logits on fixed ids.

use candle_core::{DType, Device, Tensor};
use caracal_models::{hf, KernelMode, LlamaConfig};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_llama")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal-models-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Tolerance: f32 end to end, 1e-4 absolute on logits of order 0.1–1.
#[test]
fn logits_match_transformers_in_both_modes() {
    let dev = Device::Cpu;
    let exp = candle_core::safetensors::load(fixture().join("expected.safetensors"), &dev).unwrap();
    let ids = &exp["ids"];
    let want = &exp["logits"];
    let model = hf::load_dir(fixture(), DType::F32, &dev).unwrap();
    assert!(model.config().rope_scaling.is_some());
    for mode in [KernelMode::Fused, KernelMode::Reference, KernelMode::Candle] {
        let got = model.clone().with_mode(mode).logits(ids).unwrap();
        let d = max_abs(&got, want);
        assert!(d < 1e-4, "{mode:?}: max |Δlogit| = {d}");
    }
    for mode in [KernelMode::Fused, KernelMode::Candle] {
        cached_decoding_matches(&model.clone().with_mode(mode), ids, want);
    }
}

/// Incremental decoding with the KV cache gives the same last logits.
fn cached_decoding_matches(model: &caracal_models::Llama, ids: &Tensor, want: &Tensor) {
    let mut cache = model.new_cache();
    let (_, t) = ids.dims2().unwrap();
    let first = model
        .logits_cached(&ids.narrow(1, 0, t - 3).unwrap(), &mut cache)
        .unwrap();
    let mut lasts = vec![first.narrow(1, t - 4, 1).unwrap()];
    for i in t - 3..t {
        lasts.push(
            model
                .logits_cached(&ids.narrow(1, i, 1).unwrap(), &mut cache)
                .unwrap(),
        );
    }
    let got = Tensor::cat(&lasts, 1).unwrap();
    let d = max_abs(&got, &want.narrow(1, t - 4, 4).unwrap());
    assert!(
        d < 1e-4,
        "{:?} cached decoding: max |Δlogit| = {d}",
        model.mode
    );
}

#[test]
fn save_and_reload_round_trips() {
    let dev = Device::Cpu;
    let model = hf::load_dir(fixture(), DType::F32, &dev).unwrap();
    let d = tmp("roundtrip");
    hf::save_dir(&model, &d).unwrap();
    let back = hf::load_dir(&d, DType::F32, &dev).unwrap();
    let ids = Tensor::new(&[[5u32, 9, 200, 3]], &dev).unwrap();
    assert_eq!(
        max_abs(&model.logits(&ids).unwrap(), &back.logits(&ids).unwrap()),
        0.0
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn sharded_checkpoints_load() {
    let dev = Device::Cpu;
    let model = hf::load_dir(fixture(), DType::F32, &dev).unwrap();
    let d = tmp("sharded");
    std::fs::copy(fixture().join("config.json"), d.join("config.json")).unwrap();
    let vars = model.named_vars();
    let (a, b) = vars.split_at(vars.len() / 2);
    let mut map = serde_json::Map::new();
    for (i, part) in [a, b].iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let ts: Vec<(String, Tensor)> = part
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        for (n, _) in &ts {
            map.insert(n.clone(), serde_json::Value::String(file.clone()));
        }
        let bytes = caracal_models::st::to_bytes(&ts, Default::default()).unwrap();
        std::fs::write(d.join(&file), bytes).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(d.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let back = hf::load_dir(&d, DType::F32, &dev).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 3]], &dev).unwrap();
    assert_eq!(
        max_abs(&model.logits(&ids).unwrap(), &back.logits(&ids).unwrap()),
        0.0
    );
    std::fs::remove_dir_all(d).unwrap();
}

fn err_of(dir: &Path) -> String {
    match hf::load_dir(dir, DType::F32, &Device::Cpu) {
        Ok(_) => panic!("loading {dir:?} should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_name_the_file_and_the_field() {
    let src = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    let weights = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let d = tmp("bad");
    std::fs::write(d.join("model.safetensors"), &weights).unwrap();

    // Missing field.
    let mut v: serde_json::Value = serde_json::from_str(&src).unwrap();
    v.as_object_mut().unwrap().remove("intermediate_size");
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("config.json") && e.contains("`intermediate_size`") && e.contains("missing"),
        "{e}"
    );

    // Invalid field.
    let mut v: serde_json::Value = serde_json::from_str(&src).unwrap();
    v["num_attention_heads"] = serde_json::json!(-4);
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("config.json") && e.contains("`num_attention_heads`"),
        "{e}"
    );

    // Shapes that do not match the config.
    let mut v: serde_json::Value = serde_json::from_str(&src).unwrap();
    v["intermediate_size"] = serde_json::json!(128);
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("gate_proj") && e.contains("[128, 64]"),
        "{e}"
    );

    // Truncated and corrupted weights.
    std::fs::write(d.join("config.json"), &src).unwrap();
    std::fs::write(d.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated or corrupted"),
        "{e}"
    );
    let mut bad = weights.clone();
    bad[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(d.join("model.safetensors"), &bad).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated or corrupted"),
        "{e}"
    );

    // No weights at all.
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    let e = err_of(&d);
    assert!(e.contains("neither model.safetensors"), "{e}");
    std::fs::remove_dir_all(d).unwrap();

    // A missing tensor.
    let cfg = LlamaConfig::from_json_str(&src, Path::new("config.json")).unwrap();
    let mut map = hf::TensorMap::new(PathBuf::from("weights.safetensors"), DType::F32);
    let e = caracal_models::Llama::from_source(&cfg, &mut map, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("weights.safetensors") && e.contains("model.embed_tokens.weight"),
        "{e}"
    );
}

#[test]
fn token_ids_outside_the_vocabulary_are_an_error() {
    let model = hf::load_dir(fixture(), DType::F32, &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1u32, 256]], &Device::Cpu).unwrap();
    let e = model.logits(&ids).unwrap_err().to_string();
    assert!(e.contains("256") && e.contains("vocabulary"), "{e}");
}
