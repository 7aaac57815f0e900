//! `caracal attribution markov` / `fit` end to end, on the built binary.

mod common;

use common::caracal;

fn tmp(name: &str, text: &str) -> String {
    common::tmp("attr_cli", name, text)
}

#[test]
fn markov_json_has_removal_effect_conversions_and_value() {
    let p = tmp(
        "paths.csv",
        "path;total_conversions;total_conversion_value;total_null\n\
         search > email;3;30;2\nemail;1;10;6\nsearch > social > email;2;20;1\nsocial;0;0;4\n",
    );
    let (ok, out, err) = caracal(&[
        "attribution",
        "markov",
        "--paths",
        &p,
        "--order",
        "2",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let chans = v["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 3);
    let total: f64 = chans
        .iter()
        .map(|c| c["conversions"].as_f64().unwrap())
        .sum();
    let value: f64 = chans.iter().map(|c| c["value"].as_f64().unwrap()).sum();
    assert!((total - 6.0).abs() < 1e-9 && (value - 60.0).abs() < 1e-9);
    assert!(chans
        .iter()
        .all(|c| c["removal_effect"].as_f64().unwrap() > 0.0));
}

#[test]
fn bad_paths_and_unknown_methods_fail_with_one_sentence() {
    let p = tmp("bad.csv", "path;total_conversions\na>>b;1\n");
    let (ok, _, err) = caracal(&["attribution", "markov", "--paths", &p]);
    assert!(
        !ok && err.contains("row 2") && err.contains("empty step"),
        "{err}"
    );
    let (ok, _, err) = caracal(&["attribution", "fit", "--method", "nope"]);
    assert!(!ok && err.contains("unknown method `nope`"), "{err}");
}
