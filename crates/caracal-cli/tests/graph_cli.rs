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
