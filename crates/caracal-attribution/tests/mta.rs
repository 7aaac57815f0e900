//! Real shipped data: the 10,000 aggregated paths of the PyPI package `mta`
//! 0.0.9 (`mta/data/data.csv.gz`, the same paths as ChannelAttribution's
//! Data.csv), through the Markov, Shapley and heuristic methods.
//! `tools/fetch_mta.sh` puts them in `.cache/mta/data.csv`; without the file
//! the test prints why and passes.

use caracal_attribution::heuristics::{heuristic_credit, Heuristic};
use caracal_attribution::markov::{markov_attribution, MarkovChain};
use caracal_attribution::read::read_paths;
use caracal_attribution::shapley::simplified_shapley;
use caracal_core::Rng;
use std::path::PathBuf;

#[test]
fn mta_paths_through_markov_and_heuristics() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = root.join(".cache/mta/data.csv");
    if !file.exists() {
        eprintln!(
            "SKIPPED mta_paths_through_markov_and_heuristics: {} is absent; run tools/fetch_mta.sh",
            file.display()
        );
        return;
    }
    let paths = read_paths(&file).unwrap();
    assert_eq!(paths.rows.len(), 10_000);
    assert_eq!(paths.channels.len(), 12);
    let total = paths.total_conversions();
    let value = paths.total_value();
    let mut report = Vec::new();
    for h in Heuristic::ALL {
        let c = heuristic_credit(&paths, h);
        assert!((c.conversions.iter().sum::<f64>() - total).abs() < 1e-6 * total);
        report.push((h.name().to_string(), c.shares()));
    }
    let s = simplified_shapley(&paths);
    assert!((s.conversions.iter().sum::<f64>() - total).abs() < 1e-6 * total);
    report.push(("shapley".into(), s.shares()));
    for order in 1..=3 {
        let m = markov_attribution(&paths, order).unwrap();
        assert!(m.removal_effect.iter().all(|r| (0.0..=1.0).contains(r)));
        assert!((m.credit.conversions.iter().sum::<f64>() - total).abs() < 1e-6 * total);
        assert!((m.credit.value.iter().sum::<f64>() - value).abs() < 1e-6 * value);
        report.push((format!("markov-{order}"), m.credit.shares()));
        if order == 1 {
            // Closed form against Monte-Carlo on the real chain.
            let chain = MarkovChain::from_paths(&paths, 1).unwrap();
            let n = 200_000;
            let (p_mc, re_mc) = chain.simulate(n, 10_000, &mut Rng::new(11));
            let se = (m.p_conversion * (1.0 - m.p_conversion) / n as f64).sqrt();
            assert!(
                (p_mc - m.p_conversion).abs() < 5.0 * se,
                "{p_mc} vs {}",
                m.p_conversion
            );
            for (a, b) in re_mc.iter().zip(&m.removal_effect) {
                assert!((a - b).abs() < 0.01, "MC {a} vs closed form {b}");
            }
        }
        eprintln!(
            "markov-{order}: {} states, P(conv) {:.4}",
            m.n_states, m.p_conversion
        );
    }
    eprintln!("channel shares on mta data.csv ({total} conversions):");
    eprintln!(
        "{:>14} {}",
        "",
        paths
            .channels
            .iter()
            .map(|c| format!("{c:>7}"))
            .collect::<String>()
    );
    for (name, sh) in &report {
        eprintln!(
            "{name:>14} {}",
            sh.iter().map(|x| format!("{x:>7.3}")).collect::<String>()
        );
    }
}
