//! `caracal lm`: a training run killed midway and resumed logs the same
//! losses as an uninterrupted run; eval and generate read its checkpoint;
//! bad model files give one clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_caracal"))
}

/// Run `cmd`, which must succeed (its stderr is the failure message).
fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("caracal-lm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const ARGS: &[&str] = &[
    "lm",
    "train",
    "--steps",
    "30",
    "--batch-size",
    "8",
    "--seq-len",
    "64",
    "--hidden",
    "64",
    "--layers",
    "2",
    "--eval-every",
    "10",
    "--ckpt-every",
    "5",
    "--warmup",
    "5",
];

fn losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn killed_and_resumed_training_matches_an_uninterrupted_run() {
    let full = tmp("full");
    let st = bin()
        .args(ARGS)
        .arg("--out")
        .arg(&full)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let want = losses(&full);
    assert_eq!(want.len(), 30);

    let dir = tmp("killed");
    let mut child = bin()
        .args(ARGS)
        .arg("--out")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while losses(&dir).len() < 12 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let at_kill = losses(&dir).len();
    eprintln!("killed after {at_kill} logged steps (exit {status:?})");
    assert!(!status.success() || at_kill == 30);

    resume(&dir);
    let got = losses(&dir);
    assert_eq!(
        got.iter().map(|x| x.0).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    for ((s, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "step {s}: resumed {a} vs uninterrupted {b}"
        );
    }

    let ck = dir.join("checkpoint.safetensors");
    let out = succeed(bin().args(["lm", "eval", "--json", "--model"]).arg(&ck));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["perplexity"].as_f64().unwrap() < 40.0, "{v}");
    let out = succeed(
        bin()
            .args([
                "lm",
                "generate",
                "--max-new-tokens",
                "20",
                "--temperature",
                "0.8",
                "--top-p",
                "0.9",
                "--model",
            ])
            .arg(&ck),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("The "));
    std::fs::remove_dir_all(full).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_model_files_give_one_clear_error() {
    let d = tmp("bad");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("broken.gguf");
    std::fs::write(&p, b"GGUF\x03\x00\x00\x00trunc").unwrap();
    let out = bin()
        .args(["lm", "eval", "--model"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.gguf") && err.contains("truncated or corrupted"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn resume_reuses_the_runs_data_and_refuses_other_data() {
    let root = tmp("data");
    std::fs::create_dir_all(&root).unwrap();
    let text = root.join("corpus.txt");
    let other = root.join("other.txt");
    let body: String = (0..400)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog.\n"))
        .collect();
    std::fs::write(&text, &body).unwrap();
    std::fs::write(&other, body.to_uppercase()).unwrap();
    let run = |out: &Path, extra: &[&str]| {
        bin()
            .args([
                "lm",
                "train",
                "--steps",
                "12",
                "--batch-size",
                "4",
                "--seq-len",
                "32",
            ])
            .args([
                "--hidden",
                "32",
                "--layers",
                "1",
                "--ckpt-every",
                "3",
                "--eval-every",
                "0",
            ])
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let data = text.to_str().unwrap();
    let full = root.join("full");
    assert!(run(&full, &["--data", data]).status.success());
    let want = losses(&full);
    assert_eq!(want.len(), 12);

    // Stopped after 6 steps, then resumed without --data: same losses.
    let part = root.join("part");
    run(&part, &["--data", data, "--stop-after", "6"]);
    assert_eq!(losses(&part).len(), 6);
    resume(&part);
    let got = losses(&part);
    assert_eq!(got.len(), 12);
    for ((s, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "step {s}: resumed {a} vs uninterrupted {b}"
        );
    }

    // Resuming with different data is a clear error, not a silently different run.
    let out = bin()
        .args(["lm", "train", "--resume", "--data"])
        .arg(&other)
        .arg("--out")
        .arg(&part)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this run trained on") && err.contains("corpus.txt"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `caracal lm train --resume --out DIR`, which must succeed.
fn resume(dir: &std::path::Path) {
    succeed(bin().args(["lm", "train", "--resume", "--out"]).arg(dir));
}
