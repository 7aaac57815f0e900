//! A folder written by `caracal prune --structured` (2 query heads of
//! dimension 16 on a hidden size of 64, FFN 80) gives transformers' logits
//! when caracal reads it back: `tools/check_pruned_hf.py` loaded it with
//! `LlamaForCausalLM.from_pretrained` (no missing or unexpected key) and
//! recorded transformers' logits.

use candle_core::{DType, Device, Tensor};
use caracal_models::hf;
use std::path::PathBuf;

#[test]
fn transformers_and_caracal_read_the_pruned_folder_alike() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pruned_tiny");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let m = hf::load_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    let c = m.config();
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (2, 1, 16)
    );
    let n: usize = m.named_vars().iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(n as u64, exp["params_after"].as_u64().unwrap());
    let ids: Vec<u32> = exp["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let t = ids.len();
    let got = m
        .logits(&Tensor::from_vec(ids, (1, t), &Device::Cpu).unwrap())
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .reshape((t, c.vocab_size))
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let want = exp["logits"].as_array().unwrap();
    assert_eq!(want.len(), t);
    assert!(want
        .iter()
        .all(|r| r.as_array().unwrap().len() == c.vocab_size));
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w.as_array().unwrap()) {
            worst = worst.max((a - b.as_f64().unwrap()).abs());
        }
    }
    assert!(worst < 1e-4, "largest logit difference {worst}");
}
