//! Cross-checks between algorithms, monotonicity, penalized KKT, and bad input.

use caracal_core::Rng;
use caracal_loglinear::penalized::kkt_violation;
use caracal_loglinear::{
    datasets, fit, fit_path, fit_penalized, parse_model, stats, Algorithm, Convergence, Design,
    FitOptions, Penalty, PenaltyOptions, Problem, RandomMode, Sampling, ZeroMargins,
};

fn ucb_problem() -> Problem {
    let t = datasets::ucb_admissions();
    let m = parse_model("[AG][AD][GD]", &t.factor_names()).unwrap();
    Problem::from_table(&t, &m, Sampling::Poisson, ZeroMargins::Error).unwrap()
}

fn gaussian_problem() -> Problem {
    let mut rng = Rng::new(42);
    let (n, p) = (200, 5);
    let truth = [1.0, 0.4, -0.3, 0.2, -0.5];
    let mut x = Vec::with_capacity(n * p);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..p)
            .map(|j| if j == 0 { 1.0 } else { rng.normal() })
            .collect();
        let eta: f64 = row.iter().zip(truth).map(|(a, b)| a * b).sum();
        y.push(rng.poisson(eta.exp()) as f64);
        x.extend(row);
    }
    let names = (0..p).map(|j| format!("x{j}")).collect();
    let d = Design::from_row_major(n, &x, names).unwrap();
    Problem::from_design(d, &y, None, Sampling::Poisson).unwrap()
}

#[test]
fn mm_on_a_gaussian_design_matches_newton_to_1e8() {
    let p = gaussian_problem();
    let mut o = FitOptions::with(Algorithm::Newton);
    o.convergence = Convergence::MaxDeviation(1e-9);
    let nt = fit(&p, &o).unwrap();
    for alg in [
        Algorithm::Mm,
        Algorithm::Momentum,
        Algorithm::Random(RandomMode::Permutation),
    ] {
        let mut o = FitOptions::with(alg);
        o.convergence = Convergence::MaxDeviation(1e-9);
        let f = fit(&p, &o).unwrap();
        for (a, b) in f.theta.iter().zip(&nt.theta) {
            assert!((a - b).abs() < 1e-8, "{alg:?}: {a} vs {b}");
        }
    }
    // Exact IPS refuses real-valued features with a pointer to MM.
    let e = fit(&p, &FitOptions::with(Algorithm::Ips))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--algorithm mm"), "{e}");
}

fn assert_monotone(obj: &[f64], what: &str) {
    for w in obj.windows(2) {
        assert!(
            w[1] <= w[0] + 1e-9 * (1.0 + w[0].abs()),
            "{what}: objective rose {} -> {}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn objective_is_monotone_for_every_algorithm() {
    let algs = [
        Algorithm::Ipf,
        Algorithm::Ips,
        Algorithm::Mm,
        Algorithm::Block,
        Algorithm::Random(RandomMode::Permutation),
        Algorithm::Random(RandomMode::WithReplacement),
        Algorithm::Random(RandomMode::Importance),
        Algorithm::Momentum,
        Algorithm::Newton,
    ];
    let ucb = ucb_problem();
    let gauss = gaussian_problem();
    for alg in algs {
        let mut o = FitOptions::with(alg);
        o.convergence = Convergence::MaxDeviation(1e-7);
        let f = fit(&ucb, &o).unwrap();
        assert_monotone(&f.objective, alg.name());
        assert!(
            (2.0 * f.objective.last().unwrap() - 20.204275).abs() < 1e-5,
            "{alg:?}"
        );
        if !matches!(alg, Algorithm::Ipf | Algorithm::Ips) {
            let f = fit(&gauss, &o).unwrap();
            assert_monotone(&f.objective, alg.name());
        }
    }
    // The relative-objective rule also stops.
    let mut o = FitOptions::with(Algorithm::Ips);
    o.convergence = Convergence::RelativeObjective(1e-10);
    assert!(fit(&ucb, &o).unwrap().converged);
}

#[test]
fn l1_path_satisfies_kkt() {
    let p = ucb_problem();
    let opts = PenaltyOptions {
        kkt_tol: 1e-8,
        ..Default::default()
    };
    let path = fit_path(&p, &opts, 12, 1e-3).unwrap();
    assert_eq!(path[0].n_nonzero, 0);
    for f in &path {
        let k = kkt_violation(&p, &f.theta, &f.mu, f.lambda, Penalty::L1);
        assert!(k < 1e-6, "lambda {}: KKT {k}", f.lambda);
        assert_monotone(&f.objective, "l1");
    }
    assert!(path.last().unwrap().n_nonzero > path[0].n_nonzero);
    let f = fit_penalized(&p, 100.0, &opts, None).unwrap();
    assert_eq!(f.n_nonzero, 8, "{:?}", f.theta);
}

#[test]
fn group_l1_path_satisfies_kkt() {
    let p = ucb_problem();
    let opts = PenaltyOptions {
        penalty: Penalty::GroupL1,
        kkt_tol: 1e-8,
        ..Default::default()
    };
    let path = fit_path(&p, &opts, 6, 1e-2).unwrap();
    for f in &path {
        let k = kkt_violation(&p, &f.theta, &f.mu, f.lambda, Penalty::GroupL1);
        assert!(k < 1e-6, "lambda {}: KKT {k}", f.lambda);
        assert_monotone(&f.objective, "group");
    }
}

/// A new user's table: nobody in department B is female and rejected... and
/// no women applied to department F at all, so the [GD] margin is zero.
#[test]
fn a_zero_margin_is_named_and_can_be_fitted_as_structural() {
    let mut csv = String::from("Admit,Gender,Dept,Freq\n");
    for line in datasets::UCB_ADMISSIONS_CSV.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let n = if f[1] == "Female" && f[2] == "F" {
            "0"
        } else {
            f[3]
        };
        csv.push_str(&format!("{},{},{},{n}\n", f[0], f[1], f[2]));
    }
    let t = caracal_core::table::Table::from_reader(csv.as_bytes(), "mine.csv").unwrap();
    let t = caracal_loglinear::ContingencyTable::from_long(&t, "Freq", None, None).unwrap();
    let m = parse_model("[AG][AD][GD]", &t.factor_names()).unwrap();
    let e = Problem::from_table(&t, &m, Sampling::Poisson, ZeroMargins::Error)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[Gender,Dept] margin is zero at Gender=Female, Dept=F"),
        "{e}"
    );
    let p = Problem::from_table(&t, &m, Sampling::Poisson, ZeroMargins::Structural).unwrap();
    assert_eq!(p.active.len(), 22);
    let mut last: Option<f64> = None;
    for alg in [Algorithm::Ipf, Algorithm::Ips, Algorithm::Newton] {
        let f = fit(&p, &FitOptions::with(alg)).unwrap();
        let g = stats::goodness_of_fit(&p, &f);
        // 22 estimable cells; 19 parameters less GenderFemale:DeptF, not identifiable.
        assert_eq!((g.cells, g.rank, g.df), (22, 18, 4), "{alg:?}");
        if let Some(d) = last {
            assert!((g.deviance - d).abs() < 1e-6);
        }
        last = Some(g.deviance);
        assert_eq!(f.fitted.len(), 24);
    }
}

#[test]
fn bad_input_gets_one_clear_sentence() {
    let t = datasets::ucb_admissions();
    let e = parse_model("[AG][AX]", &t.factor_names())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("factor `X`, which the table does not have"),
        "{e}"
    );
    let e = caracal_loglinear::ContingencyTable::new(t.factors.clone(), vec![-1.0; 24])
        .unwrap_err()
        .to_string();
    assert!(e.contains("negative"), "{e}");
    let d = Design::from_row_major(2, &[1.0, 1.0], vec!["x".into()]).unwrap();
    let e = Problem::from_design(d, &[1.0, -2.0], None, Sampling::Poisson)
        .unwrap_err()
        .to_string();
    assert!(e.contains("negative"), "{e}");
    let p = ucb_problem();
    let mut o = FitOptions::with(Algorithm::Ips);
    o.max_sweeps = 3;
    let e = fit(&p, &o).unwrap_err().to_string();
    assert!(
        e.contains("did not converge in 3 sweeps") && e.contains("still") && e.contains("try"),
        "{e}"
    );
}
