//! Evaluation: credit error against known shares, and bootstrap intervals.

use crate::data::{normalize, Journeys};
use caracal_core::{Error, Result, Rng};
use serde::Serialize;

/// Total-variation distance `½ Σ_c |p_c − q_c|` between two share vectors
/// (each clipped at 0 and normalized first).
pub fn total_variation(p: &[f64], q: &[f64]) -> Result<f64> {
    if p.len() != q.len() || p.is_empty() {
        return Err(Error::invalid(format!(
            "total variation needs two share vectors of the same non-zero length, got {} and {}",
            p.len(),
            q.len()
        )));
    }
    let (p, q) = (normalize(p), normalize(q));
    Ok(0.5 * p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f64>())
}

/// Channel shares with percentile bootstrap intervals.
#[derive(Clone, Debug, Serialize)]
pub struct SharesWithIntervals {
    pub shares: Vec<f64>,
    /// 2.5% and 97.5% percentiles per channel.
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub replicates: usize,
}

/// Percentile bootstrap over journeys (Efron 1979): resample members with
/// replacement `b` times and recompute `shares_of` on each resample.
pub fn bootstrap_journeys(
    journeys: &Journeys,
    b: usize,
    seed: u64,
    shares_of: impl Fn(&Journeys) -> Result<Vec<f64>> + Sync,
) -> Result<SharesWithIntervals> {
    let shares = shares_of(journeys)?;
    let n = journeys.journeys.len();
    let mut rng = Rng::new(seed);
    let seeds: Vec<u64> = (0..b).map(|_| rng.next_u64()).collect();
    use rayon::prelude::*;
    let reps: Vec<Vec<f64>> = seeds
        .par_iter()
        .map(|&s| {
            let mut r = Rng::new(s);
            let idx: Vec<usize> = (0..n).map(|_| r.below(n)).collect();
            shares_of(&journeys.subset(&idx))
        })
        .collect::<Result<_>>()?;
    Ok(intervals(shares, &reps))
}

/// Percentile bootstrap of per-unit channel credits: `per_unit[i][c]` is
/// unit `i`'s credit to channel `c`; each replicate sums a resample.
pub fn bootstrap_units(per_unit: &[Vec<f64>], b: usize, seed: u64) -> SharesWithIntervals {
    let m = per_unit.first().map_or(0, Vec::len);
    let sum = |idx: &[usize]| {
        let mut s = vec![0.0; m];
        for &i in idx {
            for (a, x) in s.iter_mut().zip(&per_unit[i]) {
                *a += x;
            }
        }
        normalize(&s)
    };
    let n = per_unit.len();
    let all: Vec<usize> = (0..n).collect();
    let shares = sum(&all);
    let mut rng = Rng::new(seed);
    let reps: Vec<Vec<f64>> = if n == 0 {
        Vec::new()
    } else {
        (0..b)
            .map(|_| {
                let idx: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
                sum(&idx)
            })
            .collect()
    };
    intervals(shares, &reps)
}

fn intervals(shares: Vec<f64>, reps: &[Vec<f64>]) -> SharesWithIntervals {
    let m = shares.len();
    let (mut lower, mut upper) = (shares.clone(), shares.clone());
    if !reps.is_empty() {
        for c in 0..m {
            let mut v: Vec<f64> = reps.iter().map(|r| r[c]).collect();
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
            lower[c] = q(0.025);
            upper[c] = q(0.975);
        }
    }
    SharesWithIntervals {
        shares,
        lower,
        upper,
        replicates: reps.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_variation_basics() {
        assert_eq!(total_variation(&[1.0, 0.0], &[0.0, 1.0]).unwrap(), 1.0);
        assert!((total_variation(&[2.0, 2.0], &[0.5, 0.5]).unwrap()).abs() < 1e-15);
        assert!(total_variation(&[1.0], &[0.5, 0.5]).is_err());
    }

    #[test]
    fn bootstrap_interval_covers_the_estimate() {
        let units: Vec<Vec<f64>> = (0..400).map(|i| vec![(i % 3) as f64, 1.0]).collect();
        let s = bootstrap_units(&units, 200, 1);
        for c in 0..2 {
            assert!(s.lower[c] <= s.shares[c] && s.shares[c] <= s.upper[c]);
            assert!(s.upper[c] - s.lower[c] < 0.1);
        }
    }
}
