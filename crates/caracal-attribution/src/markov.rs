//! Markov-chain attribution by removal effect (Anderl et al., "Mapping the
//! customer journey: a graph-based framework for online attribution
//! modeling", 2016; ChannelAttribution's `markov_model`), in closed form.
//!
//! States of an order-`k` chain are the last `k` channels of a path (shorter
//! at the start), plus `start`, `conversion` and `null`. Transition
//! probabilities are the path counts' frequencies. With `Q` the transient
//! block and `r` the one-step conversion probabilities, the absorbing
//! chain's conversion probabilities are `x = (I − Q)⁻¹ r` (the fundamental
//! matrix `N = (I − Q)⁻¹`, Kemeny & Snell; `B = N·R`), and
//! `P(conv) = x[start]`.
//!
//! Removing channel `c` sends every transition into a state that contains
//! `c` to `null`; the removal effect is `RE_c = 1 − P₋c(conv) / P(conv)`,
//! which for order 1 equals ChannelAttribution's Monte-Carlo estimate
//! `P(path visits c | conversion)`. Attributed conversions (value) are
//! `RE_c / Σ RE × total conversions (value)`.
//!
//! `x = Qx + r` is solved by Gauss–Seidel sweeps (self-loops solved
//! exactly) from `x = 0`, which increase monotonically to the solution;
//! the sweeps stop when no entry moves by more than 1e-15, i.e. the result
//! is the closed form to round-off (no Monte-Carlo noise, no seed).

use crate::data::{Credit, Paths};
use caracal_core::{Error, Result, Rng};
use serde::Serialize;
use std::collections::HashMap;

const START: usize = 0;

/// An order-`k` absorbing Markov chain fitted to paths.
#[derive(Clone, Debug)]
pub struct MarkovChain {
    pub order: usize,
    pub channels: Vec<String>,
    /// Channel tuple of each transient state (state 0 = start, empty tuple).
    pub states: Vec<Vec<usize>>,
    /// `next[s]`: transient successors with probabilities.
    pub next: Vec<Vec<(usize, f64)>>,
    /// One-step probability of conversion from each state.
    pub conv: Vec<f64>,
    /// One-step probability of null from each state.
    pub null: Vec<f64>,
}

/// Result of [`markov_attribution`].
#[derive(Clone, Debug, Serialize)]
pub struct MarkovResult {
    pub order: usize,
    pub n_states: usize,
    /// P(conversion) of the fitted chain from start.
    pub p_conversion: f64,
    /// `RE_c = 1 − P₋c / P`, per channel.
    pub removal_effect: Vec<f64>,
    pub credit: Credit,
}

impl MarkovChain {
    /// Fit the order-`order` chain (1 to 3 are typical) to aggregated paths.
    pub fn from_paths(paths: &Paths, order: usize) -> Result<MarkovChain> {
        if order == 0 || order > 6 {
            return Err(Error::invalid(format!(
                "Markov order must be between 1 and 6, got {order}"
            )));
        }
        let mut ids: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut states = vec![Vec::new()];
        ids.insert(Vec::new(), START);
        let mut counts: Vec<HashMap<usize, f64>> = vec![HashMap::new()];
        let mut conv = vec![0.0];
        let mut null = vec![0.0];
        let mut total = 0.0;
        for r in &paths.rows {
            let w = r.conversions + r.nulls;
            if w <= 0.0 || r.steps.is_empty() {
                continue;
            }
            total += w;
            let mut prev = START;
            for i in 0..r.steps.len() {
                let tuple = r.steps[(i + 1).saturating_sub(order)..=i].to_vec();
                let s = *ids.entry(tuple.clone()).or_insert_with(|| {
                    states.push(tuple);
                    counts.push(HashMap::new());
                    conv.push(0.0);
                    null.push(0.0);
                    states.len() - 1
                });
                *counts[prev].entry(s).or_insert(0.0) += w;
                prev = s;
            }
            conv[prev] += r.conversions;
            null[prev] += r.nulls;
        }
        if total <= 0.0 {
            return Err(Error::invalid(
                "the paths have no conversions and no nulls; nothing to fit a Markov chain to",
            ));
        }
        let mut next = Vec::with_capacity(states.len());
        for s in 0..states.len() {
            let out: f64 = counts[s].values().sum::<f64>() + conv[s] + null[s];
            let mut v: Vec<(usize, f64)> = counts[s].iter().map(|(&j, &c)| (j, c / out)).collect();
            v.sort_by_key(|x| x.0);
            next.push(v);
            conv[s] /= out;
            null[s] /= out;
        }
        Ok(MarkovChain {
            order,
            channels: paths.channels.clone(),
            states,
            next,
            conv,
            null,
        })
    }

    fn removed(&self, s: usize, removed: Option<usize>) -> bool {
        removed.is_some_and(|c| self.states[s].contains(&c))
    }

    /// P(conversion) from start with channel `removed` (if any) sent to
    /// null: the closed form `((I − Q)⁻¹ r)[start]`.
    pub fn conversion_probability(&self, removed: Option<usize>) -> Result<f64> {
        let n = self.states.len();
        let mut x = vec![0.0; n];
        for sweep in 0..200_000 {
            let mut delta = 0.0f64;
            for s in 0..n {
                if self.removed(s, removed) {
                    continue;
                }
                let mut acc = self.conv[s];
                let mut self_p = 0.0;
                for &(j, p) in &self.next[s] {
                    if j == s {
                        self_p = p;
                    } else if !self.removed(j, removed) {
                        acc += p * x[j];
                    }
                }
                let v = if self_p < 1.0 {
                    acc / (1.0 - self_p)
                } else {
                    0.0
                };
                delta = delta.max((v - x[s]).abs());
                x[s] = v;
            }
            if delta <= 1e-15 && sweep > 0 {
                return Ok(x[START]);
            }
        }
        Err(Error::NoConvergence(
            "the Markov chain's absorption probabilities did not converge in 200000 sweeps".into(),
        ))
    }

    /// ChannelAttribution's Monte-Carlo estimate: simulate `n` walks from
    /// start (at most `max_steps` transitions each; longer walks count as
    /// null); returns `(P(conv), P(walk visits c | conv) per channel)`.
    pub fn simulate(&self, n: usize, max_steps: usize, rng: &mut Rng) -> (f64, Vec<f64>) {
        let mut n_conv = 0usize;
        let mut visits = vec![0usize; self.channels.len()];
        let mut seen = vec![false; self.channels.len()];
        for _ in 0..n {
            seen.fill(false);
            let mut s = START;
            for _ in 0..max_steps {
                let u = rng.uniform();
                let mut acc = self.conv[s];
                if u < acc {
                    n_conv += 1;
                    for (c, &v) in seen.iter().enumerate() {
                        visits[c] += v as usize;
                    }
                    break;
                }
                acc += self.null[s];
                if u < acc {
                    break;
                }
                let mut to = None;
                for &(j, p) in &self.next[s] {
                    acc += p;
                    if u < acc {
                        to = Some(j);
                        break;
                    }
                }
                // Round-off: fall to the last successor.
                let Some(j) = to.or_else(|| self.next[s].last().map(|x| x.0)) else {
                    break;
                };
                s = j;
                if let Some(&c) = self.states[s].last() {
                    seen[c] = true;
                }
            }
        }
        let p = n_conv as f64 / n as f64;
        let re = visits
            .iter()
            .map(|&v| v as f64 / n_conv.max(1) as f64)
            .collect();
        (p, re)
    }
}

/// Removal-effect attribution with an order-`order` chain.
pub fn markov_attribution(paths: &Paths, order: usize) -> Result<MarkovResult> {
    let chain = MarkovChain::from_paths(paths, order)?;
    let p = chain.conversion_probability(None)?;
    if p <= 0.0 {
        return Err(Error::invalid(
            "the paths have no conversions; removal effects are undefined",
        ));
    }
    let removal_effect: Vec<f64> = (0..paths.channels.len())
        .map(|c| Ok((1.0 - chain.conversion_probability(Some(c))? / p).max(0.0)))
        .collect::<Result<_>>()?;
    let credit = Credit::from_shares(
        &paths.channels,
        &removal_effect,
        paths.total_conversions(),
        paths.total_value(),
    );
    Ok(MarkovResult {
        order,
        n_states: chain.states.len(),
        p_conversion: p,
        removal_effect,
        credit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PathRow;

    fn row(steps: &[usize], conv: f64, null: f64) -> PathRow {
        PathRow {
            steps: steps.to_vec(),
            ages: None,
            conversions: conv,
            value: conv * 2.0,
            nulls: null,
        }
    }

    fn toy() -> Paths {
        Paths {
            channels: vec!["a".into(), "b".into(), "c".into()],
            rows: vec![
                row(&[0, 1], 3.0, 2.0),
                row(&[0], 1.0, 4.0),
                row(&[1, 1, 2], 2.0, 1.0),
                row(&[2, 0, 1], 1.0, 3.0),
                row(&[2], 0.0, 5.0),
                row(&[1, 0, 0, 2], 2.0, 1.0),
            ],
            unattributed_conversions: 0.0,
        }
    }

    /// Dense Gaussian elimination on (I − Q) x = r, the textbook form.
    fn dense(chain: &MarkovChain, removed: Option<usize>) -> f64 {
        let n = chain.states.len();
        let mut a = vec![vec![0.0; n + 1]; n];
        for s in 0..n {
            a[s][s] = 1.0;
            if chain.removed(s, removed) {
                continue;
            }
            a[s][n] = chain.conv[s];
            for &(j, p) in &chain.next[s] {
                if !chain.removed(j, removed) {
                    a[s][j] -= p;
                }
            }
        }
        for k in 0..n {
            let piv = (k..n)
                .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
                .unwrap();
            a.swap(k, piv);
            for i in k + 1..n {
                let f = a[i][k] / a[k][k];
                for j in k..=n {
                    a[i][j] -= f * a[k][j];
                }
            }
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|j| a[i][j] * x[j]).sum();
            x[i] = (a[i][n] - s) / a[i][i];
        }
        x[START]
    }

    #[test]
    fn closed_form_matches_dense_solve_and_monte_carlo() {
        let p = toy();
        for order in 1..=3 {
            let chain = MarkovChain::from_paths(&p, order).unwrap();
            let res = markov_attribution(&p, order).unwrap();
            let pd = dense(&chain, None);
            assert!((res.p_conversion - pd).abs() < 1e-12, "order {order}");
            let mut rng = Rng::new(order as u64);
            let n = 400_000;
            let (pmc, re_mc) = chain.simulate(n, 1000, &mut rng);
            let se = (pd * (1.0 - pd) / n as f64).sqrt();
            assert!((pmc - pd).abs() < 5.0 * se, "order {order}: {pmc} vs {pd}");
            for c in 0..3 {
                let pc = dense(&chain, Some(c));
                let re = 1.0 - pc / pd;
                assert!((res.removal_effect[c] - re).abs() < 1e-10);
                // Monte-Carlo: P(visit c | conv) = 1 − P₋c/P for any order.
                let nconv = pmc * n as f64;
                let se = (re * (1.0 - re) / nconv).sqrt();
                assert!(
                    (re_mc[c] - re).abs() < 5.0 * se + 1e-9,
                    "order {order} channel {c}: MC {} vs closed form {re}",
                    re_mc[c]
                );
            }
            let total: f64 = res.credit.conversions.iter().sum();
            assert!((total - 9.0).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_orders_and_empty_data_are_errors() {
        assert!(MarkovChain::from_paths(&toy(), 0).is_err());
        let mut p = toy();
        p.rows.iter_mut().for_each(|r| r.conversions = 0.0);
        let e = markov_attribution(&p, 1).unwrap_err().to_string();
        assert!(e.contains("no conversions"), "{e}");
    }
}
