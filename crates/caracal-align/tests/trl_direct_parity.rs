//! Parity with TRL 1.16's `DPOTrainer.evaluate()` (sigmoid, IPO, robust) and
//! `trl.experimental.cpo.CPOTrainer.evaluate()` (sigmoid with its NLL term,
//! SimPO, AlphaPO) on tiny random Llama policy and reference models that use
//! SmolLM2's tokenizer (`tools/make_dpo_fixture.py` wrote the fixture): the
//! same token ids and completion boundaries under each trainer's template,
//! the same per-sequence log-probs, and every metric to 1e-5 relative (TRL
//! reports float32; summed log-probs here are near −116, where one f32 step
//! is about 1e-5).

use candle_core::{DType, Device};
use caracal_align::direct::DirectLoss;
use caracal_align::direct_eval::{evaluate_direct, pair_logps};
use caracal_align::read_pairs;
use caracal_align::template::{tokenize, Specials, Template};
use caracal_models::{hf, Tokenizer};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dpo_tiny")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

#[test]
fn dpo_and_cpo_metrics_match_trl() {
    let dir = fixture();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let dev = Device::Cpu;
    let policy = hf::load_dir(dir.join("policy"), DType::F32, &dev).unwrap();
    let reference = hf::load_dir(dir.join("ref"), DType::F32, &dev).unwrap();
    let tok = Tokenizer::from_file(dir.join("policy/tokenizer.json")).unwrap();
    let sp = Specials {
        eos_id: Some(2),
        eos_text: Some("<|im_end|>".into()),
        bos_id: Some(1),
    };
    let pairs = read_pairs(&dir.join("pairs.jsonl")).unwrap();
    let runs = [
        (
            "dpo_sigmoid",
            Template::TrlDpo,
            DirectLoss::Dpo {
                beta: 0.1,
                label_smoothing: 0.0,
            },
        ),
        ("dpo_ipo", Template::TrlDpo, DirectLoss::Ipo { beta: 0.1 }),
        // TRL 1.16's sigmoid loss ignores label_smoothing: the run equals plain DPO.
        (
            "dpo_sigmoid_ls",
            Template::TrlDpo,
            DirectLoss::Dpo {
                beta: 0.1,
                label_smoothing: 0.0,
            },
        ),
        (
            "dpo_robust",
            Template::TrlDpo,
            DirectLoss::Robust {
                beta: 0.1,
                label_smoothing: 0.1,
            },
        ),
        (
            "cpo_sigmoid",
            Template::TrlCpo,
            DirectLoss::Cpo {
                beta: 0.1,
                nll_weight: 1.0,
            },
        ),
        (
            "simpo",
            Template::TrlCpo,
            DirectLoss::Simpo {
                beta: 2.5,
                gamma: 0.25,
            },
        ),
        (
            "alphapo",
            Template::TrlCpo,
            DirectLoss::AlphaPo {
                beta: 2.5,
                gamma: 0.25,
                alpha: 0.25,
            },
        ),
        // ORPOTrainer: CPO's tokenization; its NLL counts the prompt too.
        ("orpo", Template::TrlCpo, DirectLoss::Orpo { lambda: 0.1 }),
    ];
    for (name, template, loss) in runs {
        let run = &exp["runs"][name];
        let (cp, stats) = tokenize(&pairs, &tok, template, &sp, 1024).unwrap();
        assert_eq!(stats.kept, pairs.len());
        let want = run["pairs"].as_array().unwrap();
        for (i, (p, w)) in cp.iter().zip(want).enumerate() {
            let ids = |k: &str| -> Vec<u32> {
                w[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            assert_eq!(
                p.chosen.ids,
                ids("chosen_ids"),
                "{name} pair {i} chosen ids"
            );
            assert_eq!(
                p.rejected.ids,
                ids("rejected_ids"),
                "{name} pair {i} rejected ids"
            );
            assert_eq!(
                p.chosen.start as u64,
                w["chosen_completion_start"].as_u64().unwrap(),
                "{name} pair {i}"
            );
            assert_eq!(
                p.rejected.start as u64,
                w["rejected_completion_start"].as_u64().unwrap(),
                "{name} pair {i}"
            );
            let lp = pair_logps(&policy, &[p], 0).unwrap();
            let c = lp
                .chosen
                .sum
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()[0];
            let r = lp
                .rejected
                .sum
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()[0];
            let (wc, wr) = (
                w["policy_chosen_logp"].as_f64().unwrap(),
                w["policy_rejected_logp"].as_f64().unwrap(),
            );
            assert!(
                close(c, wc) && close(r, wr),
                "{name} pair {i}: logps {c}, {r} vs {wc}, {wr}"
            );
        }
        let m = evaluate_direct(&policy, Some(&reference), &cp, &loss, cp.len(), 0).unwrap();
        let got = m.to_trl_json();
        let metrics = &run["metrics"];
        for (k, v) in got.as_object().unwrap() {
            let (g, w) = (v.as_f64().unwrap(), metrics[k].as_f64().unwrap_or(f64::NAN));
            assert!(close(g, w), "{name} {k}: caracal {g} vs TRL {w}");
        }
    }
}

/// KTO against TRL 1.16's `KTOTrainer.evaluate()` (`tools/make_kto_fixture.py`):
/// the same sequences and KL (mismatched) sequences, log-probs and metrics.
#[test]
fn kto_matches_trl() {
    use caracal_align::direct::KtoOptions;
    use caracal_align::kto::{evaluate_kto, kl_sequences, read_examples, tokenize as kto_tokenize};
    let dir = fixture();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("kto_expected.json")).unwrap())
            .unwrap();
    let dev = Device::Cpu;
    let policy = hf::load_dir(dir.join("policy"), DType::F32, &dev).unwrap();
    let reference = hf::load_dir(dir.join("ref"), DType::F32, &dev).unwrap();
    let tok = Tokenizer::from_file(dir.join("policy/tokenizer.json")).unwrap();
    let ex = read_examples(&dir.join("kto.jsonl")).unwrap();
    let (seqs, dropped) = kto_tokenize(&ex, &tok, Some("<|im_end|>"), 1024).unwrap();
    assert_eq!(dropped, 0);
    let kl = kl_sequences(&seqs);
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    for (i, (s, w)) in seqs.iter().zip(exp["rows"].as_array().unwrap()).enumerate() {
        assert_eq!(s.seq.ids, ids(&w["ids"]), "row {i} ids");
        assert_eq!(
            s.seq.start as u64,
            w["completion_start"].as_u64().unwrap(),
            "row {i}"
        );
        assert_eq!(kl[i].ids, ids(&w["kl_ids"]), "row {i} KL ids");
        assert_eq!(s.label, w["label"].as_bool().unwrap());
    }
    let m = evaluate_kto(&policy, &reference, &seqs, &KtoOptions::default(), 8, 0).unwrap();
    let got = m.to_trl_json();
    for (k, v) in got.as_object().unwrap() {
        let (g, w) = (v.as_f64().unwrap(), exp["metrics"][k].as_f64().unwrap());
        assert!(close(g, w), "KTO {k}: caracal {g} vs TRL {w}");
    }
}
