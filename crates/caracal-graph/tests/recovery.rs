//! Edge recovery on simulated non-Gaussian data (p = 50, n = 400): IGGL's
//! ROC AUC along its λ path against the graphical lasso on the raw data.
//! Run with `--nocapture` to see the table the README quotes.

use caracal_graph::{path_recovery, simulate, DataKind, FitOptions, GraphKind, Method, SimOptions};

/// AUC, best F1, and the (FPR, TPR) of the densest graph on the path.
fn auc(sim: &caracal_graph::Simulated, method: Method) -> (f64, f64, (f64, f64)) {
    let o = FitOptions {
        method,
        path: 30,
        ratio: 0.05,
        ..FitOptions::default()
    };
    let r = path_recovery(&sim.data, &sim.truth, &o).unwrap();
    let last = (*r.fpr.last().unwrap(), *r.tpr.last().unwrap());
    (r.auc, r.best_f1, last)
}

#[test]
fn iggl_beats_glasso_on_counts_and_binary_hubs_and_stays_close_otherwise() {
    println!(
        "| data | graph | IGGL AUC | glasso AUC | npn-glasso AUC | latent-glasso AUC | MB AUC | IGGL F1 | glasso F1 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for data in [DataKind::Binary, DataKind::Counts] {
        for (graph, seed) in [
            (GraphKind::Random, 1),
            (GraphKind::Hub, 2),
            (GraphKind::ScaleFree, 3),
        ] {
            let sim = simulate(&SimOptions {
                graph,
                data,
                seed,
                ..SimOptions::new(400, 50)
            })
            .unwrap();
            let (ia, if1, iend) = auc(&sim, Method::Iggl);
            let (ga, gf1, gend) = auc(&sim, Method::Glasso);
            let (na, _, _) = auc(&sim, Method::NpnGlasso);
            let (la, _, _) = auc(&sim, Method::LatentGlasso);
            let (ma, _, _) = auc(&sim, Method::Mb);
            println!("| {data:?} | {graph:?} | {ia:.3} | {ga:.3} | {na:.3} | {la:.3} | {ma:.3} | {if1:.3} | {gf1:.3} |");
            println!(
                "  densest graph (FPR, TPR): IGGL ({:.3}, {:.3}), glasso ({:.3}, {:.3})",
                iend.0, iend.1, gend.0, gend.1
            );
            // Fairness of the comparison: the AUC closes each path with a
            // straight segment to (1, 1), which costs a path that stops short.
            // IGGL's path must reach at least as far along both axes as
            // glasso's, so no shortfall of its λ grid is counted against it.
            assert!(
                iend.0 >= gend.0 && iend.1 >= gend.1,
                "{data:?} {graph:?}: IGGL's path ends at {iend:?}, short of glasso's {gend:?}"
            );
            // The rank-based latent correlation (counts read as continuous
            // columns with ties) is on one scale too.
            if data == DataKind::Counts {
                assert!(
                    la > ga + 0.02,
                    "{graph:?}: latent-glasso AUC {la:.3} does not beat glasso's {ga:.3}"
                );
            }
            match (data, graph) {
                // Counts with unequal means: the log link puts the columns on one scale.
                (DataKind::Counts, _) => assert!(
                    ia > ga + 0.02,
                    "{graph:?}: IGGL AUC {ia:.3} does not beat glasso's {ga:.3}"
                ),
                // Binary hubs: IGGL (ν = 10) beats raw glasso.
                (_, GraphKind::Hub) => assert!(
                    ia > ga,
                    "{graph:?}: IGGL AUC {ia:.3} does not beat glasso's {ga:.3}"
                ),
                // Binary random and scale-free: IGGL still trails raw glasso
                // (0.964 vs 0.977 and 0.974; see the crate docs for why).
                // Guard against regressions only.
                _ => assert!(
                    ia > ga - 0.02,
                    "{graph:?}: IGGL AUC {ia:.3} far below glasso's {ga:.3}"
                ),
            }
        }
    }
}
