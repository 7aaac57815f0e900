//! Simplified and ordered Shapley values (Zhao, Mahboobi & Bagheri,
//! "Shapley Value Methods for Attribution Modeling in Online Advertising",
//! arXiv 1804.05327, 2018), as used by Google Ads Data Hub.
//!
//! With `R(S)` the conversions of paths whose *set* of channels is exactly
//! `S` and the coalition value `v(S) = Σ_{T⊆S} R(T)`, the Shapley value has
//! the closed form (Zhao et al. eq. 8)
//! `φ_j = Σ_{S ∋ j} R(S) / |S|`.
//! The ordered variant (eq. 12) credits channel `j` at position `i` of the
//! ordered channel set (first appearances): `φ_j^i = Σ_{S: S_i = j} R(S)/|S|`;
//! summed over positions it gives the same channel totals.

use crate::data::{Credit, Paths};
use std::collections::BTreeMap;

/// Simplified Shapley credit: `φ_j = Σ_{S∋j} R(S)/|S|`.
pub fn simplified_shapley(paths: &Paths) -> Credit {
    let mut by_set: BTreeMap<Vec<usize>, (f64, f64)> = BTreeMap::new();
    for r in paths.rows.iter().filter(|r| r.conversions > 0.0) {
        let mut s = r.steps.clone();
        s.sort_unstable();
        s.dedup();
        let e = by_set.entry(s).or_default();
        e.0 += r.conversions;
        e.1 += r.value;
    }
    let mut c = Credit::zeros(&paths.channels);
    for (s, (conv, val)) in by_set {
        let k = s.len() as f64;
        for j in s {
            c.conversions[j] += conv / k;
            c.value[j] += val / k;
        }
    }
    c
}

/// Ordered Shapley: `credit[j][i]` for channel `j` at position `i` of the
/// ordered channel set, and the channel totals.
pub fn ordered_shapley(paths: &Paths) -> (Vec<Vec<f64>>, Credit) {
    let mut by_seq: BTreeMap<Vec<usize>, (f64, f64)> = BTreeMap::new();
    for r in paths.rows.iter().filter(|r| r.conversions > 0.0) {
        let mut s = Vec::new();
        for &c in &r.steps {
            if !s.contains(&c) {
                s.push(c);
            }
        }
        let e = by_seq.entry(s).or_default();
        e.0 += r.conversions;
        e.1 += r.value;
    }
    let m = paths.channels.len();
    let mut pos = vec![vec![0.0; m]; m];
    let mut c = Credit::zeros(&paths.channels);
    for (s, (conv, val)) in by_seq {
        let k = s.len() as f64;
        for (i, j) in s.into_iter().enumerate() {
            pos[j][i] += conv / k;
            c.conversions[j] += conv / k;
            c.value[j] += val / k;
        }
    }
    (pos, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PathRow;

    #[test]
    fn closed_form_equals_brute_force_shapley_of_the_additive_game() {
        let rows = [
            (vec![0, 1], 3.0),
            (vec![1, 0, 0], 1.0),
            (vec![2], 2.0),
            (vec![0, 1, 2], 6.0),
            (vec![1], 1.0),
        ];
        let paths = Paths {
            channels: vec!["a".into(), "b".into(), "c".into()],
            rows: rows
                .iter()
                .map(|(s, c)| PathRow {
                    steps: s.clone(),
                    ages: None,
                    conversions: *c,
                    value: *c,
                    nulls: 1.0,
                })
                .collect(),
            unattributed_conversions: 0.0,
        };
        // v(S) = Σ_{T⊆S} R(T) over bitmasks; Shapley by the definition.
        let r = |mask: u32| -> f64 {
            rows.iter()
                .filter(|(s, _)| s.iter().fold(0u32, |m, &c| m | 1 << c) == mask)
                .map(|x| x.1)
                .sum()
        };
        let v = |s: u32| -> f64 { (1..8u32).filter(|t| t & !s == 0).map(r).sum() };
        let fact = |n: u32| (1..=n).product::<u32>() as f64;
        let simp = simplified_shapley(&paths).conversions;
        for j in 0..3u32 {
            let mut phi = 0.0;
            for s in 0..8u32 {
                if s & (1 << j) != 0 {
                    continue;
                }
                let k = s.count_ones();
                phi += fact(k) * fact(2 - k) / fact(3) * (v(s | 1 << j) - v(s));
            }
            assert!(
                (phi - simp[j as usize]).abs() < 1e-12,
                "{j}: {phi} vs {simp:?}"
            );
        }
        let (pos, ord) = ordered_shapley(&paths);
        assert_eq!(ord.conversions, simp);
        // b first in [b,a]: 1/2; b first alone: 1.
        assert!((pos[1][0] - 1.5).abs() < 1e-12, "{pos:?}");
    }
}
