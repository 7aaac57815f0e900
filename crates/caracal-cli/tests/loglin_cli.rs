//! `caracal loglin fit` end to end, on the built binary.

mod common;

use common::caracal;

fn tmp(name: &str, text: &str) -> String {
    common::tmp("loglin_cli", name, text)
}

#[test]
fn default_run_is_ucb_with_json_keys() {
    let (ok, out, err) = caracal(&["loglin", "fit", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["deviance"].as_f64().unwrap() - 20.204275).abs() < 1e-6);
    assert!((v["pearson"].as_f64().unwrap() - 18.824281).abs() < 1e-6);
    assert_eq!(v["df"], 5);
    assert_eq!(v["converged"], true);
    assert!(v["iterations"].as_u64().unwrap() > 0);
    assert!((v["coefficients"]["GenderFemale"].as_f64().unwrap() + 1.99858834464).abs() < 1e-8);
    // fitted is in input row order: row 1 is Admitted, Male, A.
    let fitted = v["fitted"].as_array().unwrap();
    assert_eq!(fitted.len(), 24);
}

#[test]
fn table_file_r_style_model_and_algorithms_agree() {
    let ucb = caracal_loglinear::datasets::UCB_ADMISSIONS_CSV;
    let path = tmp("ucb.csv", ucb);
    for alg in ["ipf", "ips", "mm", "block", "random", "momentum", "newton"] {
        let (ok, out, err) = caracal(&[
            "loglin",
            "fit",
            "--table",
            &path,
            "--counts",
            "Freq",
            "--model",
            "Admit*Gender + Admit*Dept + Gender*Dept",
            "--algorithm",
            alg,
            "--json",
        ]);
        assert!(ok, "{alg}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            (v["deviance"].as_f64().unwrap() - 20.204275).abs() < 1e-6,
            "{alg}"
        );
    }
}

#[test]
fn bad_input_is_one_sentence() {
    let path = tmp("neg.csv", "A,B,n\nx,u,1\ny,u,-2\nx,v,3\ny,v,4\n");
    let (ok, _, err) = caracal(&[
        "loglin", "fit", "--table", &path, "--counts", "n", "--model", "[A][B]",
    ]);
    assert!(!ok && err.contains("negative"), "{err}");
    let path = tmp("zero.csv", "A,B,n\nx,u,0\ny,u,0\nx,v,3\ny,v,4\n");
    let (ok, _, err) = caracal(&[
        "loglin", "fit", "--table", &path, "--counts", "n", "--model", "[A][B]",
    ]);
    assert!(!ok && err.contains("[B] margin is zero at B=u"), "{err}");
    let (ok, out, err) = caracal(&[
        "loglin",
        "fit",
        "--table",
        &path,
        "--counts",
        "n",
        "--model",
        "[A][B]",
        "--zero-margins",
        "structural",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["df"], 0);
}

#[test]
fn design_matrix_mode_and_penalized_path() {
    let x = tmp("x.csv", "one,x\n1,-1\n1,-0.5\n1,0\n1,0.5\n1,1\n");
    let y = tmp("y.csv", "count\n2\n3\n6\n7\n12\n");
    let (ok, out, err) = caracal(&["loglin", "fit", "--design", &x, "--response", &y, "--json"]);
    assert!(ok, "{err}");
    let mm: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, _) = caracal(&[
        "loglin",
        "fit",
        "--design",
        &x,
        "--response",
        &y,
        "--algorithm",
        "newton",
        "--json",
    ]);
    assert!(ok);
    let nt: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (a, b) = (
        mm["coefficients"]["x"].as_f64().unwrap(),
        nt["coefficients"]["x"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-8, "{a} vs {b}");
    let (ok, out, err) = caracal(&["loglin", "fit", "--path", "5", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for p in v["path"].as_array().unwrap() {
        assert!(p["kkt"].as_f64().unwrap() < 1e-6);
    }
}
