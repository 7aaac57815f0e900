//! `caracal align kto --out` trains with KTO on the `dpo_tiny` fixture:
//! the reference log-probs are computed once and then read from their
//! cache; the run writes metrics.jsonl, a checkpoint and a Hugging Face
//! folder; a run killed midway and resumed ends where an uninterrupted one
//! ends; training raises the reward margin; training flags without `--out`
//! are refused.

mod common;

use common::caracal;
use std::path::{Path, PathBuf};

fn fx() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../caracal-align/tests/fixtures/dpo_tiny")
}

/// The metrics lines of a run, without their timings.
fn metrics(d: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn align_kto_out_trains_caches_the_reference_and_resumes_exactly() {
    let d = fx();
    let tmp = std::env::temp_dir().join(format!("caracal-kto-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let examples = tmp.join("kto.jsonl");
    std::fs::copy(d.join("kto.jsonl"), &examples).unwrap();
    let (policy, reference) = (d.join("policy"), d.join("ref"));
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let args = |model: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "align",
            "kto",
            "--model",
            model.to_str().unwrap(),
            "--ref-model",
            reference.to_str().unwrap(),
            "--examples",
            examples.to_str().unwrap(),
            "--batch-size",
            "4",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let train = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "--epochs",
            "5",
            "--lr",
            "2e-3",
            "--ckpt-every",
            "3",
            "--out",
        ];
        v.push(out.to_str().unwrap());
        v.extend(extra);
        args(&policy, &v)
    };
    let ok = |v: Vec<String>| {
        let (good, out, err) = caracal(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(good, "{err}");
        (out, err)
    };
    let (before, _) = ok(args(&policy, &[]));
    let (out_a, err) = ok(train(&a, &[]));
    assert!(
        err.contains("reference log-probs of 8 examples written to"),
        "{err}"
    );
    assert!(err.contains("trained 10 steps"), "{err}");
    for f in [
        "metrics.jsonl",
        "checkpoint.safetensors",
        "config.json",
        "model.safetensors",
    ] {
        assert!(a.join(f).exists(), "{f} is missing");
    }
    let (out, err) = ok(train(&b, &["--stop-after", "5"]));
    assert!(err.contains("read from"), "{err}");
    assert!(out.contains("stopped at step 5 of 10"), "{out}");
    let (out_b, err) = ok(train(&b, &["--resume"]));
    assert!(err.contains("resuming at step 3 of 10"), "{err}");
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma.len(), 10);
    assert_eq!(
        ma, mb,
        "the resumed run's log must equal the uninterrupted one"
    );
    for k in [
        "loss",
        "kl",
        "rewards_chosen",
        "rewards_rejected",
        "grad_norm",
        "lr",
    ] {
        assert!(ma[0][k].is_f64(), "{k} is missing: {}", ma[0]);
    }
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    // The final evaluation, printed at the end, is that of the trained policy
    // (a Hugging Face folder), and its margin beats the initial policy's.
    let j = |s: &str| -> serde_json::Value { serde_json::from_str(s.trim()).unwrap() };
    assert_eq!(j(&out_a), j(&out_b));
    let (after, _) = ok(args(&a, &[]));
    assert_eq!(j(&after), j(&out_a));
    let margin = |s: &str| j(s)["rewards/margins"].as_f64().unwrap();
    assert!(
        margin(&after) > margin(&before) + 0.3,
        "margin {} → {}",
        margin(&before),
        margin(&after)
    );
    // Training flags are refused without --out.
    let (good, _, err) = caracal(
        &args(&policy, &["--resume"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!good && err.contains("--out"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}
