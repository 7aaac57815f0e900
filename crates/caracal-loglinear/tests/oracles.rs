//! The oracle values of reference/statistics.md §2 (R 4.2.2 `loglin`/`glm`, ipfn 1.4.4).

use caracal_loglinear::algo::ipf::raking;
use caracal_loglinear::params::loglin_params;
use caracal_loglinear::{
    datasets, fit, parse_model, stats, Algorithm, Convergence, FitOptions, Problem, Sampling,
    ZeroMargins,
};

fn gof(
    t: &caracal_loglinear::ContingencyTable,
    spec: &str,
    alg: Algorithm,
) -> stats::GoodnessOfFit {
    let m = parse_model(spec, &t.factor_names()).unwrap();
    let p = Problem::from_table(t, &m, Sampling::Poisson, ZeroMargins::Error).unwrap();
    let mut o = FitOptions::with(alg);
    o.convergence = Convergence::MaxDeviation(1e-9);
    let f = fit(&p, &o).unwrap();
    stats::goodness_of_fit(&p, &f)
}

#[test]
fn g2_x2_df_match_r_loglin_for_ucb_and_hair_eye_color() {
    let hec = datasets::hair_eye_color();
    let ucb = datasets::ucb_admissions();
    let hec_he = hec.collapse(&["Hair", "Eye"]).unwrap();
    let ucb_ag = ucb.collapse(&["Admit", "Gender"]).unwrap();
    let cases = [
        (&hec, "[HE][HS][ES]", 6.761250, 6.869027, 9),
        (&hec, "[H][E][S]", 166.300140, 164.924717, 24),
        (&hec, "[HE][S]", 19.856561, 19.567123, 15),
        (&hec_he, "[H][E]", 146.443578, 138.289842, 9),
        (&ucb, "[A][G][D]", 2097.671212, 2000.328068, 16),
        (&ucb, "[AG][D]", 2004.221805, 1748.159881, 15),
        (&ucb, "[AD][GD]", 21.735507, 19.938413, 6),
        (&ucb, "[AG][AD][GD]", 20.204275, 18.824281, 5),
        (&ucb_ag, "[A][G]", 93.449407, 92.205280, 1),
    ];
    for (t, spec, g2, x2, df) in cases {
        for alg in [Algorithm::Ipf, Algorithm::Newton] {
            let g = gof(t, spec, alg);
            assert!(
                (g.deviance - g2).abs() < 1e-6,
                "{spec} {alg:?}: G² {} vs {g2}",
                g.deviance
            );
            assert!(
                (g.pearson - x2).abs() < 1e-6,
                "{spec} {alg:?}: X² {} vs {x2}",
                g.pearson
            );
            assert_eq!(g.df, df, "{spec} {alg:?}");
        }
    }
}

const UCB_COEF: [(&str, f64); 19] = [
    ("(Intercept)", 6.27149854540),
    ("AdmitRejected", -0.58205139528),
    ("GenderFemale", -1.99858834464),
    ("DeptB", -0.40322048667),
    ("DeptC", -1.57790294894),
    ("DeptD", -1.35000496867),
    ("DeptE", -2.44982025299),
    ("DeptF", -3.13787147536),
    ("AdmitRejected:GenderFemale", -0.09987008816),
    ("AdmitRejected:DeptB", 0.04339793121),
    ("AdmitRejected:DeptC", 1.26259802238),
    ("AdmitRejected:DeptD", 1.29460646875),
    ("AdmitRejected:DeptE", 1.73930573782),
    ("AdmitRejected:DeptF", 3.30648005589),
    ("GenderFemale:DeptB", -1.07482038435),
    ("GenderFemale:DeptC", 2.66513271795),
    ("GenderFemale:DeptD", 1.95832431869),
    ("GenderFemale:DeptE", 2.79518588504),
    ("GenderFemale:DeptF", 2.00231915668),
];

#[test]
fn ucb_coefficients_match_glm_to_1e8() {
    let t = datasets::ucb_admissions();
    let m = parse_model("Admit*Gender + Admit*Dept + Gender*Dept", &t.factor_names()).unwrap();
    let p = Problem::from_table(&t, &m, Sampling::Poisson, ZeroMargins::Error).unwrap();
    for alg in [
        Algorithm::Ips,
        Algorithm::Ipf,
        Algorithm::Newton,
        Algorithm::Momentum,
        Algorithm::Block,
    ] {
        let mut o = FitOptions::with(alg);
        o.convergence = Convergence::MaxDeviation(1e-10);
        let f = fit(&p, &o).unwrap();
        assert_eq!(f.names.len(), 19);
        for (name, want) in UCB_COEF {
            let j = f
                .names
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("{name} missing: {:?}", f.names));
            assert!(
                (f.theta[j] - want).abs() < 1e-8,
                "{alg:?} {name}: {} vs {want}",
                f.theta[j]
            );
        }
    }
}

#[test]
fn hair_eye_color_sum_to_zero_params_match_loglin() {
    let t = datasets::hair_eye_color();
    let m = parse_model("[H][E][S]", &t.factor_names()).unwrap();
    let p = Problem::from_table(&t, &m, Sampling::Poisson, ZeroMargins::Error).unwrap();
    let f = fit(&p, &FitOptions::with(Algorithm::Ipf)).unwrap();
    let e = loglin_params(&t, &m, &f.fitted).unwrap();
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-8, "{a} vs {b}");
    close(e[0].values[0], 2.646878755);
    let hair = [-0.1791162732, 0.7947443105, -0.5985676233, -0.0170604139];
    let eye = [0.5296905086, 0.5067009904, -0.3313375446, -0.7050539544];
    assert_eq!(e[1].name, "Hair");
    hair.iter()
        .zip(&e[1].values)
        .for_each(|(a, b)| close(*a, *b));
    eye.iter()
        .zip(&e[2].values)
        .for_each(|(a, b)| close(*a, *b));
    close(e[3].values[0], -0.0574957044);
    close(e[3].values[1], 0.0574957044);
}

#[test]
fn ipfn_readme_example() {
    let seed = [8.0, 4.0, 6.0, 7.0, 3.0, 6.0, 5.0, 2.0, 9.0, 11.0, 3.0, 1.0];
    let targets = vec![
        (vec![0], vec![20.0, 18.0, 22.0]),
        (vec![1], vec![18.0, 16.0, 12.0, 14.0]),
    ];
    let r = raking(
        &[3, 4],
        &seed,
        &targets,
        Convergence::MaxDeviation(1e-12),
        1000,
    )
    .unwrap();
    let want = [
        5.579361, 2.162467, 3.891874, 8.366298, 3.433200, 5.322603, 5.321828, 3.922370, 8.987439,
        8.514931, 2.786299, 1.711332,
    ];
    for (a, b) in r.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}
