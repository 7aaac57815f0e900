//! The `caracal` binary as a user meets it.

use std::process::Command;

fn caracal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_caracal"))
        .args(args)
        .output()
        .expect("the caracal binary runs")
}

#[test]
fn help_lists_the_subcommands() {
    let out = caracal(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["tour", "bench", "loglin", "graph"] {
        assert!(text.contains(sub), "--help lacks `{sub}`:\n{text}");
    }
}

#[test]
fn cuda_without_the_feature_says_how_to_build_it() {
    let out = caracal(&["bench", "kernels", "--device", "cuda"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features cuda"), "{err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one-sentence error expected: {err}"
    );
}

#[test]
fn unknown_kernel_op_is_a_clear_error() {
    let out = caracal(&["bench", "kernels", "--ops", "nope", "--scale", "small"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown op `nope`") && err.contains("swiglu"),
        "{err}"
    );
}

#[test]
fn bench_kernels_json_has_the_documented_fields() {
    let out = caracal(&[
        "bench", "kernels", "--ops", "swiglu", "--scale", "small", "--reps", "1", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        for f in ["op", "shape", "impl", "ms_median", "peak_bytes"] {
            assert!(r.get(f).is_some(), "row lacks `{f}`: {r}");
        }
        assert!(r["ms_median"].as_f64().unwrap() > 0.0);
        assert!(r["peak_bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(rows[0]["impl"], "fused");
    assert_eq!(rows[1]["impl"], "candle-reference");
}

#[test]
fn tour_writes_the_report_and_summary() {
    let dir = std::env::temp_dir().join(format!("caracal-tour-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let out = caracal(&["tour", "--out", d, "--sections", "loglinear,graph"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        html.contains("<svg") || html.contains("<table"),
        "report has no chart or table"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    for key in ["loglinear", "graph"] {
        assert!(
            summary.get(key).is_some(),
            "summary lacks `{key}`: {summary}"
        );
    }
    // UCBAdmissions under [AG][AD][GD]: G² = 20.2043, df = 5 (R loglin).
    let g2 = summary["loglinear"]["ucb_deviance_g2"].as_f64().unwrap();
    assert!((g2 - 20.204275).abs() < 1e-4, "{g2}");
    let bad = caracal(&["tour", "--out", d, "--sections", "nope"]);
    assert!(!bad.status.success());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn rank_train_resumes_where_it_stopped() {
    let dir = std::env::temp_dir().join(format!("caracal-rank-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let base = [
        "rank",
        "train",
        "--members",
        "60",
        "--items",
        "120",
        "--history",
        "6",
        "--candidates",
        "4",
        "--d-model",
        "8",
        "--layers",
        "1",
        "--patience",
        "9",
        "--out",
        out,
    ];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        caracal(&a)
    };
    let first = run(&["--epochs", "2"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let resumed = run(&["--epochs", "3", "--resume"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let log = std::fs::read_to_string(dir.join("train.jsonl")).unwrap();
    let epochs: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    // --resume in an empty folder says what is missing.
    let _ = std::fs::remove_dir_all(&dir);
    let e = run(&["--epochs", "2", "--resume"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("no training state"));
    let _ = std::fs::remove_dir_all(&dir);
}
