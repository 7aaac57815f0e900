//! What a new user runs into: constant columns, p > n, missing values,
//! mixed types, selection by eBIC and StARS.

use caracal_graph::{
    fit_graph, fit_path, simulate, DataKind, Dataset, FitOptions, Method, Selection, SimOptions,
};

#[test]
fn constant_column_and_missing_values_are_clear_errors() {
    let e = Dataset::from_columns(vec![vec![1.0, 2.0, 3.0], vec![4.0, 4.0, 4.0]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("constant"), "{e}");
    let t = caracal_core::table::Table::from_reader("a,b\n1,2\nNA,3\n2,1\n".as_bytes(), "x.csv")
        .unwrap();
    let e = Dataset::from_table(&t).unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains("column `a`"), "{e}");
}

#[test]
fn p_greater_than_n_works_for_every_method() {
    let sim = simulate(&SimOptions::new(20, 40)).unwrap();
    for method in [Method::Glasso, Method::Mb, Method::NpnGlasso, Method::Iggl] {
        let f = fit_graph(
            &sim.data,
            &FitOptions {
                method,
                path: 8,
                ..FitOptions::default()
            },
        )
        .unwrap();
        assert_eq!(f.precision.nrows(), 40, "{method:?}");
    }
}

#[test]
fn mixed_types_are_detected_and_stars_selects_a_point() {
    let sim = simulate(&SimOptions {
        data: DataKind::Mixed,
        ..SimOptions::new(300, 12)
    })
    .unwrap();
    let f = fit_graph(
        &sim.data,
        &FitOptions {
            lambda: Some(0.05),
            ..FitOptions::default()
        },
    )
    .unwrap();
    let names: Vec<&str> = f.losses.iter().map(|l| l.name()).collect();
    assert_eq!(&names[..4], &["gaussian", "logistic", "poisson", "huber"]);
    let pf = fit_path(
        &sim.data,
        &FitOptions {
            method: Method::Glasso,
            path: 10,
            selection: Selection::Stars,
            ..FitOptions::default()
        },
    )
    .unwrap();
    assert!(pf.selected < 10 && pf.instability.unwrap().windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn iggl_objective_decreases_and_gaussian_iggl_finds_the_graph() {
    let sim = simulate(&SimOptions::new(400, 10)).unwrap();
    let o = caracal_graph::IgglOptions {
        max_iter: 1,
        ..caracal_graph::IgglOptions::new(0.05)
    };
    let mut prev = caracal_graph::iggl(&sim.data, &o, None).unwrap();
    for _ in 0..20 {
        let next = caracal_graph::iggl(&sim.data, &o, Some(&prev)).unwrap();
        assert!(
            next.objective <= prev.objective + 1e-9,
            "{} > {}",
            next.objective,
            prev.objective
        );
        prev = next;
    }
}
