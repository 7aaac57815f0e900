//! `caracal bench prefill`: every model is timed, the first is the baseline,
//! and a text shorter than the windows is one sentence.

mod common;
use common::{caracal, tmp};

#[test]
fn prefill_times_each_model_against_the_first() {
    let m = format!(
        "{}/../caracal-models/tests/fixtures/tiny_llama",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = tmp(
        "prefill",
        "text.txt",
        &"All the world's a stage. ".repeat(40),
    );
    let models = format!("{m},{m}");
    let (ok, out, err) = caracal(&[
        "--threads",
        "1",
        "bench",
        "prefill",
        "--models",
        &models,
        "--data",
        &text,
        "--seq-len",
        "32",
        "--windows",
        "2",
        "--reps",
        "2",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let rows = v["models"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["speedup_vs_first"].as_f64().unwrap(), 1.0);
    for r in rows {
        assert_eq!(r["seconds"].as_array().unwrap().len(), 2);
        assert!(r["tokens_per_s_median"].as_f64().unwrap() > 0.0);
        assert!(r["params"].as_u64().unwrap() > 0);
    }
    let (ok, _, err) = caracal(&[
        "bench",
        "prefill",
        "--models",
        &m,
        "--data",
        &text,
        "--seq-len",
        "4096",
    ]);
    assert!(!ok);
    assert!(err.contains("windows of 4096 need"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
