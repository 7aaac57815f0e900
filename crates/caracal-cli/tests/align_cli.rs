//! `caracal align eval --json` equals TRL 1.16's `DPOTrainer.evaluate()` and
//! `CPOTrainer.evaluate()` on the `dpo_tiny` fixture
//! (`tools/make_dpo_fixture.py`), with each loss's default template; bad
//! input is one clear sentence.

mod common;

use common::caracal;
use std::path::{Path, PathBuf};

fn fx() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../caracal-align/tests/fixtures/dpo_tiny")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

#[test]
fn align_eval_json_equals_trl() {
    let d = fx();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("expected.json")).unwrap()).unwrap();
    let (policy, reference, pairs) = (d.join("policy"), d.join("ref"), d.join("pairs.jsonl"));
    let (p, r, f) = (
        policy.to_str().unwrap(),
        reference.to_str().unwrap(),
        pairs.to_str().unwrap(),
    );
    let runs: [(&str, Vec<&str>); 5] = [
        ("dpo_sigmoid", vec!["--loss", "dpo", "--ref-model", r]),
        ("dpo_ipo", vec!["--loss", "ipo", "--ref-model", r]),
        (
            "dpo_robust",
            vec![
                "--loss",
                "robust",
                "--label-smoothing",
                "0.1",
                "--ref-model",
                r,
            ],
        ),
        ("cpo_sigmoid", vec!["--loss", "cpo"]),
        (
            "alphapo",
            vec![
                "--loss", "alphapo", "--alpha", "0.25", "--beta", "2.5", "--gamma", "0.25",
            ],
        ),
    ];
    for (name, extra) in runs {
        let mut args = vec![
            "align",
            "eval",
            "--model",
            p,
            "--pairs",
            f,
            "--batch-size",
            "8",
            "--json",
        ];
        args.extend(extra);
        let (good, out, err) = caracal(&args);
        assert!(good, "{name}: {err}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        let want = &exp["runs"][name]["metrics"];
        for k in [
            "loss",
            "rewards/chosen",
            "rewards/rejected",
            "rewards/accuracies",
            "rewards/margins",
            "logps/chosen",
            "logps/rejected",
        ] {
            let (g, w) = (got[k].as_f64().unwrap(), want[k].as_f64().unwrap());
            assert!(close(g, w), "{name} {k}: caracal {g} vs TRL {w}");
        }
    }
}

fn fails(args: &[&str], want: &str) {
    let (good, _, err) = caracal(args);
    assert!(!good, "{args:?} should fail");
    assert!(err.contains(want), "`{want}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_is_one_clear_sentence() {
    let d = fx();
    let (policy, pairs) = (d.join("policy"), d.join("pairs.jsonl"));
    let (p, f) = (policy.to_str().unwrap(), pairs.to_str().unwrap());
    let base = ["align", "eval", "--model", p, "--pairs", f];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run =
        |v: Vec<String>, want: &str| fails(&v.iter().map(String::as_str).collect::<Vec<_>>(), want);
    run(with(&["--loss", "kto"]), "loss `kto` is unknown");
    run(with(&["--loss", "simpo", "--beta", "0"]), "β is 0");
    run(with(&["--loss", "dpo"]), "give --ref-model");
    run(
        with(&["--loss", "simpo", "--template", "trl-x"]),
        "template `trl-x` is unknown",
    );
    run(
        with(&[
            "--loss",
            "robust",
            "--label-smoothing",
            "0.5",
            "--ref-model",
            p,
        ]),
        "label smoothing is 0.5",
    );
    // A reference with another vocabulary: the tiny byte-level Llama of caracal-models.
    let other =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../caracal-models/tests/fixtures/tiny_llama");
    run(
        with(&["--loss", "dpo", "--ref-model", other.to_str().unwrap()]),
        "vocabulary of 256 tokens",
    );
    // α = 0 runs SimPO and says so.
    let (good, out, err) = caracal(
        &with(&["--loss", "alphapo", "--alpha", "0", "--json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(good && err.contains("AlphaPO with α = 0 is SimPO"), "{err}");
    assert!(out.contains("rewards/margins"));
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

/// DPO training: the reference log-probs are computed once and then read
/// from their cache; a run killed midway and resumed ends where an
/// uninterrupted one ends; training lowers the DPO loss on its pairs.
#[test]
fn align_train_caches_the_reference_resumes_exactly_and_learns() {
    let d = fx();
    let tmp = std::env::temp_dir().join(format!("caracal-align-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let pairs = tmp.join("pairs.jsonl");
    std::fs::copy(d.join("pairs.jsonl"), &pairs).unwrap();
    let (policy, reference) = (d.join("policy"), d.join("ref"));
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "align",
            "train",
            "--model",
            policy.to_str().unwrap(),
            "--ref-model",
            reference.to_str().unwrap(),
            "--pairs",
            pairs.to_str().unwrap(),
            "--loss",
            "dpo",
            "--batch-size",
            "2",
            "--epochs",
            "3",
            "--lr",
            "1e-3",
            "--ckpt-every",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let ok = |v: Vec<String>| {
        let (good, out, err) = caracal(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(good, "{err}");
        (out, err)
    };
    let (_, err) = ok(args(&a, &[]));
    assert!(
        err.contains("reference log-probs of 8 pairs written to"),
        "{err}"
    );
    let (out, err) = ok(args(&b, &["--stop-after", "5"]));
    assert!(err.contains("read from"), "{err}");
    assert!(out.contains("stopped at step 5 of 12"), "{out}");
    let (_, err) = ok(args(&b, &["--resume"]));
    assert!(err.contains("resuming at step 4 of 12"), "{err}");
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
    // The trained policy (a Hugging Face folder) has a lower DPO loss.
    let eval = |model: &Path| -> f64 {
        let (good, out, err) = caracal(&[
            "align",
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--ref-model",
            reference.to_str().unwrap(),
            "--pairs",
            pairs.to_str().unwrap(),
            "--json",
        ]);
        assert!(good, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["loss"].as_f64().unwrap()
    };
    let (before, after) = (eval(&policy), eval(&a));
    assert!(after < before - 0.05, "DPO loss {before} → {after}");
    std::fs::remove_dir_all(&tmp).ok();
}

/// `caracal rl train`: RLOO of the tiny SmolLM2-tokenizer policy against
/// the `rm_tiny` reward model (same tokenizer); killed and resumed, it ends
/// where an uninterrupted run ends; bad reward specs are one sentence.
#[test]
fn rl_train_runs_resumes_and_names_bad_rewards() {
    let d = fx();
    let rm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../caracal-align/tests/fixtures/rm_tiny");
    let tmp = std::env::temp_dir().join(format!("caracal-rl-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let reward = format!("rm:{}", rm.join("model").display());
    let policy = d.join("policy");
    let prompts = rm.join("pairs.jsonl");
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "rl",
            "train",
            "--policy",
            policy.to_str().unwrap(),
            "--reward",
            &reward,
            "--prompts",
            prompts.to_str().unwrap(),
            "--k",
            "2",
            "--steps",
            "4",
            "--prompts-per-step",
            "2",
            "--max-new-tokens",
            "5",
            "--lr",
            "1e-3",
            "--ckpt-every",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let ok = |v: Vec<String>| {
        let (good, out, err) = caracal(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(good, "{err}");
        (out, err)
    };
    let (out, _) = ok(args(&a, &[]));
    assert!(out.contains("trained 4 steps of Rloo"), "{out}");
    ok(args(&b, &["--stop-after", "3"]));
    let (_, err) = ok(args(&b, &["--resume"]));
    assert!(err.contains("resuming at step 2 of 4"), "{err}");
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    let mut bad = args(&a, &[]);
    let i = bad.iter().position(|s| s == "--reward").unwrap();
    bad[i + 1] = "builtin:nope".into();
    fails(
        &bad.iter().map(String::as_str).collect::<Vec<_>>(),
        "--reward `builtin:nope` is unknown",
    );
    std::fs::remove_dir_all(&tmp).ok();
}

/// `caracal align kto --json` equals TRL 1.16's `KTOTrainer.evaluate()`.
#[test]
fn align_kto_json_equals_trl() {
    let d = fx();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("kto_expected.json")).unwrap())
            .unwrap();
    let (p, r, e) = (d.join("policy"), d.join("ref"), d.join("kto.jsonl"));
    let (good, out, err) = caracal(&[
        "align",
        "kto",
        "--model",
        p.to_str().unwrap(),
        "--ref-model",
        r.to_str().unwrap(),
        "--examples",
        e.to_str().unwrap(),
        "--json",
    ]);
    assert!(good, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in [
        "loss",
        "kl",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ] {
        let (g, w) = (
            got[k].as_f64().unwrap(),
            exp["metrics"][k].as_f64().unwrap(),
        );
        assert!(close(g, w), "KTO {k}: caracal {g} vs TRL {w}");
    }
    fails(
        &[
            "align",
            "kto",
            "--model",
            p.to_str().unwrap(),
            "--ref-model",
            r.to_str().unwrap(),
            "--examples",
            d.join("pairs.jsonl").to_str().unwrap(),
        ],
        "line 1: expected",
    );
}
