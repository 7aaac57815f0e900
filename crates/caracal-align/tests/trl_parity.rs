//! Parity with TRL 1.16's `RewardTrainer`, both ways:
//! - `rm_tiny`: a tiny random `LlamaForSequenceClassification` that uses
//!   SmolLM2's tokenizer, written by transformers (`tools/make_rm_fixture.py`);
//! - `rm_export`: a reward model trained and saved by caracal
//!   (`caracal --threads 1 rm train --seed 7 --batch-size 8`), which transformers and TRL
//!   load with no missing or unexpected key (`tools/check_rm_export.py`).
//!
//! On each: the same token ids for every pair, the same rewards, and the
//! same `evaluate()` metrics with and without `center_rewards_coefficient`.

use candle_core::Device;
use caracal_align::{
    evaluate, read_pairs, tokenize_pairs, LoadOptions, PairLoss, RewardModel, RewardObjective,
};
use std::path::{Path, PathBuf};

fn fixture_of(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Each fixture with its pair files.
const CASES: [(&str, &[&str]); 2] = [
    ("rm_tiny", &["pairs.jsonl", "implicit.jsonl"]),
    ("rm_export", &["pairs.jsonl"]),
];

fn expected_of(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_of(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load_of(name: &str) -> RewardModel {
    RewardModel::load(
        &fixture_of(name).join("model"),
        &LoadOptions::default(),
        &Device::Cpu,
    )
    .unwrap()
}

fn load() -> RewardModel {
    load_of("rm_tiny")
}

/// Absolute tolerance: TRL's padded batch and one-at-a-time rewards differ
/// by ~1e-6 in f32 (the fixture script's own check).
const TOL: f64 = 1e-5;

#[test]
fn loads_the_transformers_classifier_with_its_pad_and_eos() {
    let rm = load();
    assert!(!rm.fresh_head);
    assert_eq!(rm.pad_id(), 0);
    assert_eq!(rm.eos_text.as_deref(), Some("<|im_end|>"));
    assert!(rm.notes.is_empty(), "{:?}", rm.notes);
}

#[test]
fn token_ids_and_rewards_match_trl() {
    for (case, files) in CASES {
        let rm = load_of(case);
        let exp = expected_of(case);
        for &file in files {
            check_ids_and_rewards(&rm, &exp, &fixture_of(case), file);
        }
    }
}

fn check_ids_and_rewards(rm: &RewardModel, exp: &serde_json::Value, dir: &Path, file: &str) {
    {
        let pairs = read_pairs(&dir.join(file)).unwrap();
        let (tp, stats) =
            tokenize_pairs(&pairs, &rm.tokenizer, rm.eos_text.as_deref(), 1024).unwrap();
        assert_eq!(stats.kept, pairs.len());
        let want = exp["files"][file]["pairs"].as_array().unwrap();
        assert_eq!(want.len(), tp.len());
        for (i, (p, w)) in tp.iter().zip(want).enumerate() {
            let ids = |k: &str| -> Vec<u32> {
                w[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            assert_eq!(p.chosen, ids("chosen_ids"), "{file} pair {i} chosen");
            assert_eq!(p.rejected, ids("rejected_ids"), "{file} pair {i} rejected");
            let r = rm.rewards(&[&p.chosen, &p.rejected], 2).unwrap();
            for (got, k) in r.iter().zip(["chosen_reward", "rejected_reward"]) {
                let want = w[k].as_f64().unwrap();
                assert!(
                    (got - want).abs() < TOL,
                    "{file} pair {i} {k}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn evaluate_matches_trl_with_and_without_centering() {
    for (case, files) in CASES {
        let rm = load_of(case);
        let exp = expected_of(case);
        for &file in files {
            check_metrics(&rm, &exp, &fixture_of(case), file);
        }
    }
}

fn check_metrics(rm: &RewardModel, exp: &serde_json::Value, dir: &Path, file: &str) {
    {
        let pairs = read_pairs(&dir.join(file)).unwrap();
        let (tp, _) = tokenize_pairs(&pairs, &rm.tokenizer, rm.eos_text.as_deref(), 1024).unwrap();
        for (key, center) in [("none", None), ("center_0.01", Some(0.01))] {
            let obj = RewardObjective {
                loss: PairLoss::Bt,
                bsr: None,
                center,
            };
            let got = evaluate(rm, &tp, tp.len(), &obj, false).unwrap().metrics;
            let want = &exp["files"][file]["metrics"][key];
            for (name, v) in [
                ("loss", got.loss),
                ("accuracy", got.accuracy),
                ("margin", got.margin),
                ("mean_reward", got.mean_reward),
                ("min_reward", got.min_reward),
                ("max_reward", got.max_reward),
            ] {
                let w = want[name].as_f64().unwrap();
                assert!((v - w).abs() < TOL, "{file} {key} {name}: {v} vs TRL {w}");
            }
        }
    }
}

#[test]
fn a_saved_classifier_reads_back_identically() {
    let rm = load();
    let dir = std::env::temp_dir().join(format!("caracal-rm-roundtrip-{}", std::process::id()));
    rm.save(&dir).unwrap();
    let back = RewardModel::load(&dir, &LoadOptions::default(), &Device::Cpu).unwrap();
    assert!(!back.fresh_head);
    assert_eq!(back.pad_id(), rm.pad_id());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(cfg["num_labels"], 1);
    assert_eq!(cfg["pad_token_id"], 0);
    let seqs: [&[u32]; 2] = [&[504, 3575, 282, 2], &[30, 2]];
    let (a, b) = (
        rm.rewards(&seqs, 2).unwrap(),
        back.rewards(&seqs, 2).unwrap(),
    );
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).ok();
}

/// The committed `rm_export` folder is byte for byte what caracal writes
/// today, so transformers' verdict on it (`tools/check_rm_export.py`) keeps
/// holding for caracal's writer.
#[test]
fn the_exported_folder_is_what_caracal_writes() {
    let rm = load_of("rm_export");
    let dir = std::env::temp_dir().join(format!("caracal-rm-export-{}", std::process::id()));
    rm.save(&dir).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let a = std::fs::read(dir.join(f)).unwrap();
        let b = std::fs::read(fixture_of("rm_export").join("model").join(f)).unwrap();
        assert!(
            a == b,
            "{f} differs from the committed export; rerun tools/check_rm_export.py"
        );
    }
    let exp = expected_of("rm_export");
    let info = &exp["loading_info"];
    for k in [
        "missing_keys",
        "unexpected_keys",
        "mismatched_keys",
        "error_msgs",
    ] {
        assert_eq!(
            info[k].as_array().map(Vec::len),
            Some(0),
            "transformers reported {k}: {info}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
