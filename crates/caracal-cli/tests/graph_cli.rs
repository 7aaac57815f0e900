//! `caracal graph` as a user runs it.

use std::process::Command;

fn caracal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_caracal"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn fit_json_on_default_data_and_simulate_round_trip() {
    let o = caracal(&["graph", "fit", "--lambda", "0.1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["precision", "edges", "lambda", "objective", "iterations"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let dir = std::env::temp_dir().join(format!("caracal_graph_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("sim.csv");
    let o = caracal(&[
        "graph",
        "simulate",
        "--n",
        "100",
        "--p",
        "6",
        "--data",
        "counts",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("sim.graph.csv").exists());
    let o = caracal(&[
        "graph",
        "fit",
        "--data",
        csv.to_str().unwrap(),
        "--method",
        "glasso",
        "--path",
        "5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.join("bad.csv"), "a,b\n1,2\n,3\n4,4\n").unwrap();
    let o = caracal(&[
        "graph",
        "fit",
        "--data",
        dir.join("bad.csv").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
}

/// `caracal graph fit` with no arguments (IGGL, default selection) on the
/// default simulated mixed data must find a sensible graph: non-empty, and
/// with a reasonable F1 against the truth that `graph simulate` writes for
/// the same defaults (n = 400, p = 20, random graph, mixed data, seed 1).
#[test]
fn default_fit_finds_a_sensible_graph() {
    let o = caracal(&["graph", "fit", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "iggl");
    let est: std::collections::BTreeSet<(u64, u64)> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (i, j) = (e[0].as_u64().unwrap(), e[1].as_u64().unwrap());
            (i.min(j), i.max(j))
        })
        .collect();
    assert!(!est.is_empty(), "the default fit returned an empty graph");
    let dir = std::env::temp_dir().join(format!("caracal_graph_default_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("sim.csv");
    let o = caracal(&["graph", "simulate", "--out", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let truth: std::collections::BTreeSet<(u64, u64)> =
        std::fs::read_to_string(dir.join("sim.graph.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let (a, b) = l.split_once(',').unwrap();
                let idx = |s: &str| s.trim_start_matches('x').parse::<u64>().unwrap() - 1;
                let (i, j) = (idx(a), idx(b));
                (i.min(j), i.max(j))
            })
            .collect();
    assert!(!truth.is_empty());
    let tp = est.intersection(&truth).count() as f64;
    let f1 = 2.0 * tp / (est.len() + truth.len()) as f64;
    assert!(
        f1 > 0.5,
        "F1 {f1:.3} ({} estimated, {} true, {tp} shared)",
        est.len(),
        truth.len()
    );
}
