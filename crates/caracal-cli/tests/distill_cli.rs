//! `caracal distill`: a student config distilled from the tiny Llama
//! fixture on text; a killed and resumed run ends where a straight one
//! does; bad input is one sentence.

mod common;
use common::{caracal, tmp};

fn teacher() -> String {
    format!(
        "{}/../caracal-models/tests/fixtures/tiny_llama",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn student_config(group: &str) -> String {
    tmp(
        group,
        "student.json",
        r#"{"vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "max_position_embeddings": 256, "tie_word_embeddings": true}"#,
    )
}

fn data(group: &str) -> String {
    tmp(
        group,
        "text.txt",
        &"To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. "
            .repeat(40),
    )
}

fn out(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("caracal_distill_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.to_string_lossy().into_owned()
}

/// Each test writes its inputs into its own `group` folder (tests run in
/// parallel; a shared file could be read while another test rewrites it).
fn run(group: &str, out: &str, extra: &[&str]) -> (bool, String, String) {
    let (t, s, d) = (teacher(), student_config(group), data(group));
    let mut args = vec![
        "--threads",
        "1",
        "distill",
        "--teacher",
        &t,
        "--student-config",
        &s,
        "--data",
        &d,
        "--steps",
        "8",
        "--batch-size",
        "2",
        "--seq-len",
        "32",
        "--lr",
        "1e-2",
        "--min-lr",
        "1e-3",
        "--warmup",
        "1",
        "--eval-every",
        "4",
        "--eval-batches",
        "2",
        "--ckpt-every",
        "2",
        "--out",
        out,
        "--json",
    ];
    args.extend_from_slice(extra);
    caracal(&args)
}

#[test]
fn distill_trains_resumes_exactly_and_writes_the_student() {
    let straight = out("straight");
    let good = ["--loss", "fkl", "--kd-weight", "1"];
    let (ok, stdout, stderr) = run("distill_ok", &straight, &good);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["steps"], 8);
    let (b, a) = (
        v["before"]["kl_to_teacher"].as_f64().unwrap(),
        v["after"]["kl_to_teacher"].as_f64().unwrap(),
    );
    assert!(a < b, "KL to the teacher {b} → {a}");
    for f in [
        "config.json",
        "model.safetensors",
        "checkpoint.safetensors",
        "metrics.jsonl",
    ] {
        assert!(std::path::Path::new(&straight).join(f).exists(), "{f}");
    }
    // The student loads back and is scored by lm eval.
    let (ok, _, stderr) = caracal(&[
        "lm",
        "eval",
        "--model",
        &straight,
        "--data",
        &data("distill_ok"),
    ]);
    assert!(ok, "{stderr}");

    let killed = out("killed");
    let (ok, _, stderr) = run(
        "distill_ok",
        &killed,
        &[&good[..], &["--stop-after", "5"]].concat(),
    );
    assert!(ok, "{stderr}");
    let (ok, stdout2, stderr) = run("distill_ok", &killed, &[&good[..], &["--resume"]].concat());
    assert!(ok, "{stderr}");
    assert!(stderr.contains("resuming at step 4 of 8"), "{stderr}");
    let v2: serde_json::Value = serde_json::from_str(stdout2.trim()).unwrap();
    assert_eq!(v["after"], v2["after"], "resumed run ends elsewhere");
    let w = |d: &str| std::fs::read(std::path::Path::new(d).join("model.safetensors")).unwrap();
    assert_eq!(w(&straight), w(&killed));
}

#[test]
fn bad_input_is_one_sentence() {
    let o = out("bad");
    for (extra, want) in [
        (vec!["--loss", "tvd"], "no fused-linear kernel yet"),
        (vec!["--loss", "jsd", "--beta", "0"], "0 < β < 1"),
    ] {
        let (ok, _, stderr) = run("distill_bad", &o, &extra);
        assert!(!ok);
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let other = tmp(
        "distill_bad",
        "other.json",
        r#"{"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "max_position_embeddings": 256}"#,
    );
    let (t, d) = (teacher(), data("distill_bad"));
    let (ok, _, stderr) = caracal(&[
        "distill",
        "--teacher",
        &t,
        "--student-config",
        &other,
        "--data",
        &d,
        "--out",
        &o,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("vocabulary of 256 tokens and the student 100"),
        "{stderr}"
    );
    let short = tmp("distill_bad", "short.txt", "too short");
    let s = student_config("distill_bad");
    let (ok, _, stderr) = caracal(&[
        "distill",
        "--teacher",
        &t,
        "--student-config",
        &s,
        "--data",
        &short,
        "--out",
        &o,
    ]);
    assert!(!ok);
    assert!(stderr.contains("more than one window"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
