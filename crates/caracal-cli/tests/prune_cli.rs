//! `caracal prune --structured`: the pruned folder is smaller, its JSON
//! report has the fields, `caracal lm eval` runs on it with the source
//! model's tokenizer, and bad inputs are one-sentence errors (exit code 1,
//! no panic).

mod common;

use caracal_models::train::grammar_corpus;
use common::caracal;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn tiny_llama() -> String {
    fixture("caracal-models/tests/fixtures/tiny_llama")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal_prune_cli_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// ~20 kB of calibration text.
fn calib(name: &str) -> String {
    common::tmp("prune_cli", name, &grammar_corpus(5, 20_000))
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = caracal(args);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn osscar_writes_a_smaller_folder_that_lm_eval_reads() {
    let out = out_dir("osscar");
    let o = out.to_string_lossy().into_owned();
    let c = calib("calib_a.txt");
    let m = tiny_llama();
    let r = run_json(&[
        "prune",
        "--structured",
        "--method",
        "osscar",
        "--model",
        &m,
        "--calib",
        &c,
        "--ffn-keep",
        "0.5",
        "--kv-groups-keep",
        "1",
        "--out",
        &o,
        "--json",
    ]);
    // The fixture: hidden 64, FFN 160, 4/2 heads of 16, 2 layers, vocab 256, untied.
    assert_eq!(r["method"], "osscar");
    assert_eq!(r["before"]["intermediate_size"], 160);
    assert_eq!(r["after"]["intermediate_size"], 80);
    assert_eq!(r["after"]["num_attention_heads"], 2);
    assert_eq!(r["after"]["num_key_value_heads"], 1);
    assert_eq!(r["after"]["head_dim"], 16);
    let per_layer =
        |i: usize, q: usize, kv: usize| 64 * 16 * (2 * q + 2 * kv) + 3 * 64 * i + 2 * 64;
    let params = |i, q, kv| 2 * 256 * 64 + 2 * per_layer(i, q, kv) + 64;
    assert_eq!(r["before"]["params"], params(160, 4, 2));
    assert_eq!(r["after"]["params"], params(80, 2, 1));
    // 20 kB of bytes, windows of 256: 78 available, all read.
    assert_eq!(r["calibration"]["windows"], 78);
    let layers = r["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert_eq!(l["down_proj"]["kept"], 80);
        assert_eq!(l["down_proj"]["of"], 160);
        assert_eq!(l["o_proj"]["kept"], 1);
        let e = l["down_proj"]["rel_error"].as_f64().unwrap();
        assert!(e > 0.0 && e < 1.0, "{e}");
        assert!(l["o_proj"]["rel_error"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(r["tokenizer"], "bytes");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["intermediate_size"], 80);
    assert_eq!(cfg["num_attention_heads"], 2);
    assert_eq!(cfg["num_key_value_heads"], 1);
    assert_eq!(cfg["head_dim"], 16);
    assert!(out.join("model.safetensors").exists());

    let ev = run_json(&[
        "lm",
        "eval",
        "--model",
        &o,
        "--data",
        &c,
        "--json",
        "--max-windows",
        "2",
    ]);
    assert!(ev["perplexity"].as_f64().unwrap().is_finite());
    assert_eq!(ev["tokens"], 2 * 256);
    std::fs::remove_dir_all(out).unwrap();
}

/// A source folder with a Hugging Face tokenizer: the pruned folder gets
/// its tokenizer.json and tokenizer_config.json, and `lm eval` tokenizes
/// with it (the same token count as on the source model); the baselines
/// run too; a short text gives fewer windows, never an error.
#[test]
fn the_tokenizer_travels_and_the_baselines_run() {
    let src = fixture("caracal-align/tests/fixtures/dpo_tiny/policy");
    let text = common::tmp("prune_cli", "short.txt", &grammar_corpus(6, 6_000));
    let want = run_json(&[
        "lm",
        "eval",
        "--model",
        &src,
        "--data",
        &text,
        "--json",
        "--seq-len",
        "64",
    ]);
    for method in ["osscar", "minitron", "magnitude"] {
        let out = out_dir(&format!("tok_{method}"));
        let o = out.to_string_lossy().into_owned();
        let r = run_json(&[
            "prune",
            "--structured",
            "--method",
            method,
            "--model",
            &src,
            "--calib",
            &text,
            "--seq-len",
            "64",
            "--out",
            &o,
            "--json",
        ]);
        assert_eq!(r["after"]["intermediate_size"], 16);
        assert_eq!(r["tokenizer"], "copied");
        let w = r["calibration"]["windows"].as_u64().unwrap();
        assert!(w > 0 && w < 128, "{w}");
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            let a = std::fs::read(Path::new(&src).join(f)).unwrap();
            assert_eq!(std::fs::read(out.join(f)).unwrap(), a, "{f}");
        }
        let ev = run_json(&[
            "lm",
            "eval",
            "--model",
            &o,
            "--data",
            &text,
            "--json",
            "--seq-len",
            "64",
        ]);
        assert_eq!(ev["tokens"], want["tokens"]);
        assert!(ev["perplexity"].as_f64().unwrap().is_finite());
        std::fs::remove_dir_all(out).unwrap();
    }
}

#[test]
fn bad_inputs_are_one_sentence_errors() {
    let m = tiny_llama();
    let c = calib("calib_b.txt");
    let short = common::tmp("prune_cli", "tiny.txt", "far too short");
    let out = out_dir("bad");
    let o = out.to_string_lossy().into_owned();
    let bad_kv = out_dir("bad_kv_model");
    std::fs::create_dir_all(&bad_kv).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&m).join("config.json")).unwrap())
            .unwrap();
    cfg["num_key_value_heads"] = 3.into();
    std::fs::write(bad_kv.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        Path::new(&m).join("model.safetensors"),
        bad_kv.join("model.safetensors"),
    )
    .unwrap();
    let bk = bad_kv.to_string_lossy().into_owned();
    let base = |model: &str, calib: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "prune",
            "--structured",
            "--model",
            model,
            "--calib",
            calib,
            "--out",
            &o,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    for (args, want) in [
        (base(&m, &c, &["--ffn-keep", "1.5"]), "--ffn-keep is 1.5"),
        (base(&m, &c, &["--ffn-keep", "0"]), "--ffn-keep is 0"),
        (
            base(&m, &c, &["--kv-groups-keep", "0"]),
            "--kv-groups-keep is 0",
        ),
        (
            base(&m, &c, &["--kv-groups-keep", "3"]),
            "only 2 KV-head groups",
        ),
        (
            base(&m, &c, &["--method", "wanda"]),
            "unknown pruning method `wanda`",
        ),
        (base(&m, &short, &[]), "fewer than one window"),
        (base(&bk, &c, &[]), "does not divide num_attention_heads"),
        (
            ["prune", "--model", &m, "--calib", &c, "--out", &o]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            "add --structured",
        ),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_caracal"))
            .args(&a)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {err}");
        assert!(err.contains(want), "{a:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!out.exists(), "a failed run wrote {}", out.display());
    std::fs::remove_dir_all(bad_kv).unwrap();
}
