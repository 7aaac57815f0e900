//! `caracal rm`: a run killed midway and resumed ends where an uninterrupted
//! run ends; eval reports TRL's metrics (and equals TRL on its fixture);
//! score agrees with eval's tokenization; bad input is one clear sentence.

mod common;

use caracal_align::study::world_pairs;
use caracal_align::world::{Split, World, WorldConfig};
use common::caracal;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal-rm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_pairs(path: &Path, split: Split, n: usize, seed: u64) {
    let w = World::new(&WorldConfig::default()).unwrap();
    let lines: String = world_pairs(&w, split, n, seed)
        .iter()
        .map(|p| serde_json::to_string(p).unwrap() + "\n")
        .collect();
    std::fs::write(path, lines).unwrap();
}

fn ok(args: &[&str]) -> (String, String) {
    let (good, out, err) = caracal(args);
    assert!(good, "caracal {args:?} failed: {err}");
    (out, err)
}

fn fails(args: &[&str], want: &str) {
    let (good, _, err) = caracal(args);
    assert!(!good, "caracal {args:?} should fail");
    assert!(
        err.contains(want),
        "caracal {args:?}: `{want}` not in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

/// TRL's reward metric names.
const METRICS: [&str; 6] = [
    "loss",
    "accuracy",
    "margin",
    "mean_reward",
    "min_reward",
    "max_reward",
];

/// The JSON objects of JSONL text.
fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn losses(d: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(d.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn killed_and_resumed_training_ends_where_an_uninterrupted_run_ends() {
    let d = dir("resume");
    let (train, eval) = (d.join("train.jsonl"), d.join("eval.jsonl"));
    write_pairs(&train, Split::Train, 96, 1);
    write_pairs(&eval, Split::InDomain, 24, 1);
    let (t, e) = (train.to_str().unwrap(), eval.to_str().unwrap());
    let (a, b) = (d.join("a"), d.join("b"));
    let common = [
        "rm",
        "train",
        "--pairs",
        t,
        "--eval-pairs",
        e,
        "--batch-size",
        "8",
        "--ckpt-every",
        "3",
        "--bsr",
        "0.001",
        "--seed",
        "4",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |v: Vec<String>| ok(&v.iter().map(String::as_str).collect::<Vec<_>>());
    run(with(&["--out", a.to_str().unwrap()]));
    let (out, _) = run(with(&["--out", b.to_str().unwrap(), "--stop-after", "7"]));
    assert!(out.contains("stopped at step 7 of 12"), "{out}");
    assert!(!b.join("model.safetensors").exists());
    // An interrupted run folder (a checkpoint, no config.json yet) evaluates.
    let (out, _) = ok(&[
        "rm",
        "eval",
        "--model",
        b.to_str().unwrap(),
        "--pairs",
        e,
        "--json",
    ]);
    let mid: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(mid["loss"].as_f64().unwrap().is_finite(), "{mid}");
    let (_, err) = run(with(&["--out", b.to_str().unwrap(), "--resume"]));
    assert!(err.contains("resuming at step 6 of 12"), "{err}");
    let (la, lb) = (losses(&a), losses(&b));
    assert_eq!(la.len(), 12);
    assert_eq!(
        la, lb,
        "the resumed run's log must equal the uninterrupted one"
    );
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    // The run folder is a LlamaForSequenceClassification that eval reads.
    let (out, _) = ok(&[
        "rm",
        "eval",
        "--model",
        a.to_str().unwrap(),
        "--pairs",
        e,
        "--json",
        "--diagnostics",
        "--bsr",
        "0.001",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in METRICS {
        assert!(v[k].as_f64().unwrap().is_finite(), "{k}: {v}");
    }
    assert_eq!(v["pairs"], 24);
    assert_eq!(v["batches"], 3);
    assert!(v["diagnostics"]["effective_rank"].as_f64().unwrap() > 1.0);
    assert!(v["diagnostics"]["diff_norm"]["mean"].as_f64().unwrap() > 0.0);
    // The logged eval at the end equals a fresh `rm eval` of the saved model.
    let last: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(a.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let (l1, l2) = (
        last["eval_loss"].as_f64().unwrap(),
        v["loss"].as_f64().unwrap(),
    );
    assert!((l1 - l2).abs() < 1e-6, "{l1} vs {l2}");

    // score: the pairs' rewards, and the same texts given as prompt/completion.
    let (out, _) = ok(&["rm", "score", "--model", a.to_str().unwrap(), "--pairs", e]);
    let rows: Vec<serde_json::Value> = jsonl(&out);
    assert_eq!(rows.len(), 24);
    let pairs: Vec<serde_json::Value> = jsonl(&std::fs::read_to_string(&eval).unwrap());
    let texts: String = pairs
        .iter()
        .map(|p| {
            serde_json::json!({"prompt": p["prompt"], "completion": p["chosen"]}).to_string() + "\n"
        })
        .collect();
    let tf = d.join("texts.jsonl");
    std::fs::write(&tf, texts).unwrap();
    let sf = d.join("scores.jsonl");
    ok(&[
        "rm",
        "score",
        "--model",
        a.to_str().unwrap(),
        "--texts",
        tf.to_str().unwrap(),
        "--out",
        sf.to_str().unwrap(),
    ]);
    let scored: Vec<serde_json::Value> = jsonl(&std::fs::read_to_string(&sf).unwrap());
    for (s, r) in scored.iter().zip(&rows) {
        let (x, y) = (
            s["reward"].as_f64().unwrap(),
            r["chosen_reward"].as_f64().unwrap(),
        );
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    std::fs::remove_dir_all(&d).ok();
}

/// `caracal rm eval --json` equals TRL 1.16's `RewardTrainer.evaluate()` on
/// the fixture of `tools/make_rm_fixture.py` (one eval batch of all pairs).
#[test]
fn rm_eval_json_equals_trl_evaluate() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../caracal-align/tests/fixtures/rm_tiny");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let model = fx.join("model");
    for (file, n) in [("pairs.jsonl", "10"), ("implicit.jsonl", "6")] {
        for (key, extra) in [
            ("none", vec![]),
            ("center_0.01", vec!["--center-rewards", "0.01"]),
        ] {
            let p = fx.join(file);
            let mut args = vec![
                "rm",
                "eval",
                "--model",
                model.to_str().unwrap(),
                "--pairs",
                p.to_str().unwrap(),
                "--batch-size",
                n,
                "--json",
            ];
            args.extend(extra);
            let (out, _) = ok(&args);
            let got: serde_json::Value = serde_json::from_str(&out).unwrap();
            for k in METRICS {
                let (g, w) = (
                    got[k].as_f64().unwrap(),
                    exp["files"][file]["metrics"][key][k].as_f64().unwrap(),
                );
                assert!(
                    (g - w).abs() < 1e-5,
                    "{file} {key} {k}: caracal {g} vs TRL {w}"
                );
            }
        }
    }
}

#[test]
fn bad_input_is_one_clear_sentence() {
    let d = dir("bad");
    let good = d.join("good.jsonl");
    write_pairs(&good, Split::Train, 8, 2);
    let g = good.to_str().unwrap();
    let out = d.join("run");
    let o = out.to_str().unwrap();
    fails(
        &["rm", "train", "--pairs", g, "--loss", "dpo", "--out", o],
        "loss `dpo` is unknown",
    );
    fails(
        &["rm", "train", "--pairs", g, "--bsr=-1", "--out", o],
        "--bsr is -1",
    );
    fails(
        &["rm", "train", "--pairs", "/nonexistent.jsonl", "--out", o],
        "/nonexistent.jsonl",
    );
    fails(
        &["rm", "train", "--pairs", g, "--batch-size", "0", "--out", o],
        "--batch-size is 0",
    );
    fails(
        &[
            "rm",
            "train",
            "--pairs",
            g,
            "--pad-token",
            "<eos>",
            "--out",
            o,
        ],
        "equals the EOS token",
    );
    fails(
        &["rm", "train", "--pairs", g, "--out", o, "--resume"],
        "cannot resume",
    );
    let bad = d.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"chosen\": \"a\", \"rejected\": \"b\"}\n{\"chosen\": \"a\"}\n",
    )
    .unwrap();
    fails(
        &["rm", "train", "--pairs", bad.to_str().unwrap(), "--out", o],
        "line 2: field `rejected` is missing",
    );
    // Identical, empty and over-long pairs are counted warnings; training goes on.
    let odd = d.join("odd.jsonl");
    std::fs::write(
        &odd,
        "{\"prompt\":\"what soup\",\"chosen\":\" salt\",\"rejected\":\" salt\"}\n\
         {\"prompt\":\"what soup\",\"chosen\":\"\",\"rejected\":\" salt\"}\n\
         {\"prompt\":\"what soup\",\"chosen\":\" salt salt salt salt salt salt salt\",\"rejected\":\" oven\"}\n",
    )
    .unwrap();
    let (_, err) = ok(&[
        "rm",
        "train",
        "--pairs",
        odd.to_str().unwrap(),
        "--max-length",
        "6",
        "--out",
        o,
    ]);
    assert!(
        err.contains("1 of 3 pairs are longer than --max-length"),
        "{err}"
    );
    assert!(
        err.contains("1 pairs have identical chosen and rejected"),
        "{err}"
    );
    assert!(
        err.contains("1 pairs have an empty chosen or rejected"),
        "{err}"
    );
    // A classifier folder without its score head.
    let (cfg, st) = (out.join("config.json"), out.join("model.safetensors"));
    assert!(cfg.exists() && st.exists());
    let nohead = d.join("nohead");
    std::fs::create_dir_all(&nohead).unwrap();
    std::fs::copy(&cfg, nohead.join("config.json")).unwrap();
    std::fs::copy(out.join("tokenizer.json"), nohead.join("tokenizer.json")).unwrap();
    let (ts, _) = caracal_models::st::read(&st, &candle_core::Device::Cpu).unwrap();
    let kept: Vec<(String, candle_core::Tensor)> = ts
        .into_iter()
        .filter(|(n, _)| n != "score.weight")
        .collect();
    std::fs::write(
        nohead.join("model.safetensors"),
        caracal_models::st::to_bytes(&kept, Default::default()).unwrap(),
    )
    .unwrap();
    fails(
        &[
            "rm",
            "eval",
            "--model",
            nohead.to_str().unwrap(),
            "--pairs",
            g,
        ],
        "`score.weight` is missing",
    );
    fails(
        &["rm", "study", "--scale", "huge"],
        "--scale `huge` is unknown",
    );
    std::fs::remove_dir_all(&d).ok();
}
