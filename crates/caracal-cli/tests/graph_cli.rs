//! `caracal graph` as a user runs it.

use serde_json::json;
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
    // Without --data the fit scores itself against the simulated graph: the
    // same F1 as computed here from the edge list `graph simulate` wrote.
    let sel = &v["recovery"]["selected"];
    assert_eq!(sel["lambda"], v["lambda"]);
    assert!(
        (sel["f1"].as_f64().unwrap() - f1).abs() < 1e-12,
        "{sel} vs F1 {f1}"
    );
    let auc = v["recovery"]["auc"].as_f64().unwrap();
    assert!(auc > 0.8 && auc <= 1.0, "ROC AUC {auc}");
}

/// `--truth` scores a fit of a CSV against the edge list `graph simulate`
/// wrote: the path's TPR reaches 1 on easy data, TPR/FPR/F1 agree with the
/// edges the fit reports, and a bad edge list is a one-line error.
#[test]
fn truth_file_gives_edge_recovery() {
    let dir = std::env::temp_dir().join(format!("caracal_graph_truth_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("sim.csv");
    let args = [
        "graph", "simulate", "--n", "300", "--p", "10", "--data", "gaussian", "--graph", "band",
    ];
    let o = caracal(&[&args[..], &["--out", csv.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let truth_path = dir.join("sim.graph.csv");
    let fit = |extra: &[&str]| {
        let base = [
            "graph",
            "fit",
            "--data",
            csv.to_str().unwrap(),
            "--method",
            "glasso",
        ];
        caracal(&[&base[..], extra].concat())
    };
    let o = fit(&["--truth", truth_path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["recovery"];
    let tpr: Vec<f64> = serde_json::from_value(r["tpr"].clone()).unwrap();
    assert_eq!(tpr.len(), 20, "one point per λ of the default path");
    assert_eq!(
        *tpr.last().unwrap(),
        1.0,
        "a band graph on 300 Gaussian rows: {tpr:?}"
    );
    assert!(r["auc"].as_f64().unwrap() > 0.95, "{r}");
    // The selected point, recomputed from the reported edges.
    let n_true = std::fs::read_to_string(&truth_path)
        .unwrap()
        .lines()
        .count()
        - 1;
    let truth: Vec<(String, String)> = std::fs::read_to_string(&truth_path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    let names: Vec<String> = serde_json::from_value(v["variables"].clone()).unwrap();
    let est = v["edges"].as_array().unwrap();
    let tp = est
        .iter()
        .filter(|e| {
            let (a, b) = (
                &names[e[0].as_u64().unwrap() as usize],
                &names[e[1].as_u64().unwrap() as usize],
            );
            truth
                .iter()
                .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
        })
        .count() as f64;
    let sel = &r["selected"];
    assert!(
        (sel["tpr"].as_f64().unwrap() - tp / n_true as f64).abs() < 1e-12,
        "{sel}"
    );
    assert!((sel["f1"].as_f64().unwrap() - 2.0 * tp / (est.len() + n_true) as f64).abs() < 1e-12);
    // Text output names the figures.
    let o = fit(&["--truth", truth_path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ROC AUC") && text.contains("best F1"),
        "{text}"
    );
    // A name that is not a column.
    std::fs::write(dir.join("bad.graph.csv"), "i,j\nx1,x42\n").unwrap();
    let o = fit(&["--truth", dir.join("bad.graph.csv").to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`x42` is not a column"), "{err}");
}

/// `caracal graph latent` reproduces the oracle values of
/// `tests/latent_oracle.rs` (caracal-graph) from a CSV, writes the matrix
/// atomically with `--out`, and `graph fit --method latent-glasso` runs on it.
#[test]
fn latent_correlation_from_the_command_line() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../caracal-graph/tests/data/latent_mixed.csv"
    );
    let o = caracal(&["graph", "latent", "--data", data, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kinds"][1], "binary");
    assert_eq!(v["projected"], false);
    // High-precision oracle (Owen's T + brentq) for the (v1, v2) pair.
    let r12 = v["pointwise"][0][1].as_f64().unwrap();
    assert!((r12 - 0.3701328436392484).abs() < 1e-10, "{r12}");
    let c12 = v["correlation"][0][1].as_f64().unwrap();
    assert!((c12 - 0.999 * 0.3701328436392484).abs() < 1e-10, "{c12}");

    let dir = std::env::temp_dir().join(format!("caracal_graph_latent_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("r.csv");
    let o = caracal(&[
        "graph",
        "latent",
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "variable,v1,v2,v3,v4,v5,v6");
    assert_eq!(rows.len(), 7);
    let first: Vec<f64> = rows[1]
        .split(',')
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(first[0], 1.0);
    assert!((first[1] - c12).abs() < 1e-15);

    let o = caracal(&[
        "graph",
        "fit",
        "--data",
        data,
        "--method",
        "latent-glasso",
        "--path",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "latent-glasso");

    let o = caracal(&["graph", "latent", "--data", data, "--nu", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("must lie in [0, 1)"));

    // A three-level column is read as continuous, and the user is told so.
    let ternary = dir.join("ternary.csv");
    let rows: String = (0..40)
        .map(|i| format!("{},{},{}\n", i % 3, (i * 7) % 11, i % 2))
        .collect();
    std::fs::write(&ternary, format!("t,c,b\n{rows}")).unwrap();
    let o = caracal(&["graph", "latent", "--data", ternary.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("read as continuous") && err.contains("t (3)"),
        "{err}"
    );
    assert!(!err.contains("c (11)"), "{err}");
    let o = caracal(&[
        "graph",
        "fit",
        "--data",
        ternary.to_str().unwrap(),
        "--method",
        "latent-glasso",
        "--lambda",
        "0.1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("t (3)"));
}

/// `--scale`: on binary data `auto` is `fisher`, on mixed data it is
/// `natural`, the two scales give different fits, and a bad value is a
/// one-line error.
#[test]
fn loss_scale_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("caracal_graph_scale_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let precision = |csv: &std::path::Path, scale: &str| {
        let o = caracal(&[
            "graph",
            "fit",
            "--data",
            csv.to_str().unwrap(),
            "--lambda",
            "0.05",
            "--scale",
            scale,
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["precision"].clone(), v["loss_scale"].clone())
    };
    for (data, auto_is) in [("binary", "fisher"), ("mixed", "natural")] {
        let csv = dir.join(format!("{data}.csv"));
        let o = caracal(&[
            "graph",
            "simulate",
            "--n",
            "200",
            "--p",
            "8",
            "--data",
            data,
            "--out",
            csv.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (auto, natural, fisher) = (
            precision(&csv, "auto"),
            precision(&csv, "natural"),
            precision(&csv, "fisher"),
        );
        assert_ne!(
            natural.0, fisher.0,
            "{data}: the loss scale changed nothing"
        );
        assert_eq!(
            (&natural.1, &fisher.1),
            (&json!("natural"), &json!("fisher"))
        );
        let same = if auto_is == "fisher" {
            &fisher
        } else {
            &natural
        };
        assert_eq!(&auto, same, "{data}: auto is not {auto_is}");
    }
    let o = caracal(&["graph", "fit", "--lambda", "0.1", "--scale", "fish"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown loss scale `fish`; expected auto, natural or fisher"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
