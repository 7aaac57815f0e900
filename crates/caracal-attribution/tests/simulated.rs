//! End-to-end on the simulator: every method's credit error against the
//! known true shares, conversion AUC, bootstrap intervals, back-evaluation.

use caracal_attribution::budget::back_evaluate;
use caracal_attribution::heuristics::Heuristic;
use caracal_attribution::transformer::{CreditMethod, TransformerConfig};
use caracal_attribution::{
    fit_methods, simulate, total_variation, Inputs, Method, SimConfig, Simulation,
};

/// The default simulator with `n_members` members (population ×100).
fn simulated(n_members: usize) -> Simulation {
    simulate(&SimConfig {
        n_members,
        population_factor: 100,
        ..Default::default()
    })
    .unwrap()
}

/// Journeys, aggregates and macro factors of a simulation.
fn all_inputs(sim: &Simulation) -> Inputs<'_> {
    Inputs {
        journeys: &sim.journeys,
        aggregates: Some(&sim.aggregates),
        macros: Some(&sim.macros),
    }
}

#[test]
fn calibrated_transformer_has_the_lowest_simulated_credit_error() {
    let sim = simulated(1500);
    let inputs = all_inputs(&sim);
    let methods = [
        Method::Heuristic(Heuristic::LastTouch),
        Method::Heuristic(Heuristic::FirstTouch),
        Method::Heuristic(Heuristic::Linear),
        Method::SimplifiedShapley,
        Method::Markov(1),
        Method::Markov(2),
        Method::Logistic,
        Method::Mmm,
        Method::Transformer {
            credit: CreditMethod::LeaveOneOut,
            calibrated: true,
        },
    ];
    let cfg = TransformerConfig {
        epochs: 5,
        ..Default::default()
    };
    let res = fit_methods(&methods, &inputs, &cfg, 20, 3).unwrap();
    let tv: Vec<f64> = res
        .iter()
        .map(|r| total_variation(&r.shares, &sim.true_shares).unwrap())
        .collect();
    for (r, t) in res.iter().zip(&tv) {
        eprintln!("{:>24}: TV {t:.3}", r.method);
        if r.method == "mmm" {
            continue; // shares from the aggregates, no member bootstrap
        }
        let iv = r.intervals.as_ref().unwrap();
        for c in 0..iv.shares.len() {
            assert!(iv.lower[c] <= iv.shares[c] + 1e-9 && iv.shares[c] <= iv.upper[c] + 1e-9);
        }
    }
    let cal = *tv.last().unwrap();
    // The calibration refits the MMM with the carry-over the member models
    // measure, so the calibrated model has the lowest error of all,
    // the aggregate-only MMM included.
    for (r, t) in res.iter().zip(&tv).take(tv.len() - 1) {
        assert!(
            cal < *t,
            "calibrated transformer TV {cal:.3} vs {} {t:.3}",
            r.method
        );
    }
    let auc = res.last().unwrap().auc.unwrap();
    assert!(auc > 0.55, "AUC {auc}");
    // Reallocating by the calibrated credit buys more than by last touch.
    let be_cal = back_evaluate(&sim, &res.last().unwrap().shares).unwrap();
    let be_last = back_evaluate(&sim, &res[0].shares).unwrap();
    assert!(
        be_cal.conversions > be_last.conversions,
        "{be_cal:?} vs {be_last:?}"
    );
}

#[test]
fn aggregate_only_channels_are_reported_and_missing_inputs_are_clear() {
    let sim = simulate(&SimConfig {
        n_members: 300,
        population_factor: 20,
        ..Default::default()
    })
    .unwrap();
    let mut aggr = sim.aggregates.clone();
    aggr.channels.push("tv".into());
    aggr.spend.push(
        sim.aggregates.spend[0]
            .iter()
            .map(|s| s * 0.5 + 10.0)
            .collect(),
    );
    let inputs = Inputs {
        journeys: &sim.journeys,
        aggregates: Some(&aggr),
        macros: Some(&sim.macros),
    };
    let (_, targets, extra) = caracal_attribution::methods::mmm_targets(&inputs).unwrap();
    assert_eq!(extra, ["tv"]);
    assert_eq!(targets.len(), sim.journeys.channels.len());
    let s: f64 = targets.iter().flatten().sum();
    assert!((s - 1.0).abs() < 1e-9);
    let no_aggr = Inputs {
        aggregates: None,
        ..inputs
    };
    let e = fit_methods(
        &[Method::Mmm],
        &no_aggr,
        &TransformerConfig::default(),
        0,
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--aggregates"), "{e}");
}

/// `bootstrap_refit`: each replicate retrains the calibrated pipeline on
/// resampled journeys, so its intervals also carry the model's fitting
/// noise and come out wider than resampling the fitted model's credit.
#[test]
fn refit_bootstrap_retrains_and_widens_the_intervals() {
    let sim = simulated(600);
    let inputs = all_inputs(&sim);
    let m = [Method::Transformer {
        credit: CreditMethod::LeaveOneOut,
        calibrated: true,
    }];
    let mut cfg = TransformerConfig {
        epochs: 2,
        kernel_models: 2,
        ..Default::default()
    };
    let fixed = fit_methods(&m, &inputs, &cfg, 6, 5).unwrap();
    cfg.bootstrap_refit = true;
    let refit = fit_methods(&m, &inputs, &cfg, 6, 5).unwrap();
    // The point estimate is the same fit either way.
    assert_eq!(fixed[0].shares, refit[0].shares);
    let width = |r: &caracal_attribution::MethodResult| -> f64 {
        let i = r.intervals.as_ref().expect("intervals");
        assert_eq!(i.replicates, 6);
        i.lower.iter().zip(&i.upper).map(|(l, u)| u - l).sum()
    };
    let (wf, wr) = (width(&fixed[0]), width(&refit[0]));
    eprintln!("summed 95% interval width: credit resampling {wf:.3}, refit {wr:.3}");
    assert!(wr > wf, "refit {wr} vs fixed {wf}");
}
