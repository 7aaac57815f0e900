//! Every backbone caracal-models loads becomes a reward model: a Hugging
//! Face causal-LM folder (no `score.weight`: a fresh head, the LM head
//! ignored and not saved), with either head initialization.

use candle_core::Device;
use caracal_align::{LoadOptions, RewardModel};
use caracal_models::HeadInit;
use std::path::PathBuf;

fn tiny_llama() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../caracal-models/tests/fixtures/tiny_llama")
}

fn head_std(rm: &RewardModel) -> f64 {
    let w = rm.head_vector().unwrap();
    let n = w.len() as f64;
    (w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn a_causal_lm_folder_gets_a_fresh_head_of_the_chosen_scale() {
    // transformers' LlamaForCausalLM, hidden 64, byte vocabulary, no tokenizer.json.
    let paper = RewardModel::load(&tiny_llama(), &LoadOptions::default(), &Device::Cpu).unwrap();
    assert!(paper.fresh_head);
    assert_eq!(paper.clf.num_labels(), 1);
    // N(0, 1/H), H = 64: std 0.125; N(0, 0.02²): std 0.02 (64 draws: ±25%).
    let s = head_std(&paper);
    assert!((s - 0.125).abs() < 0.03, "paper init std {s}");
    let hf = RewardModel::load(
        &tiny_llama(),
        &LoadOptions {
            head_init: HeadInit::HuggingFace,
            ..LoadOptions::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    let s = head_std(&hf);
    assert!((s - 0.02).abs() < 0.005, "hf init std {s}");
    let r = paper
        .rewards(&[&[72, 105, 33], &[1, 2, 3, 4, 5]], 2)
        .unwrap();
    assert!(r.iter().all(|x| x.is_finite()));
    // Saved as a classifier: score.weight in, lm_head.weight out.
    let dir = std::env::temp_dir().join(format!("caracal-rm-backbone-{}", std::process::id()));
    paper.save(&dir).unwrap();
    let (ts, _) = caracal_models::st::read(&dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(ts.contains_key("score.weight") && !ts.contains_key("lm_head.weight"));
    let back = RewardModel::load(&dir, &LoadOptions::default(), &Device::Cpu).unwrap();
    assert!(!back.fresh_head);
    assert_eq!(
        back.rewards(&[&[72, 105, 33], &[1, 2, 3, 4, 5]], 2)
            .unwrap(),
        r
    );
    std::fs::remove_dir_all(&dir).ok();
}
