//! Ranking and agreement metrics that several capabilities report.

use crate::{Error, Result};

/// Area under the ROC curve by the Mann–Whitney statistic, with tied scores
/// counted one half. Errors when either class is absent or a score is NaN.
pub fn auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    if labels.len() != scores.len() {
        return Err(Error::invalid(format!(
            "auc: {} labels but {} scores; give one score per label",
            labels.len(),
            scores.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(Error::Numeric("auc: a score is NaN".into()));
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties, then the rank-sum formula.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let n_pos = labels.iter().filter(|&&l| l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return Err(Error::invalid(
            "auc: needs at least one positive and one negative label",
        ));
    }
    Ok((rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// NDCG@k with linear gain `rel / log2(rank + 1)` (scikit-learn's
/// `ndcg_score` convention). Ties in `scores` keep input order. A list whose
/// ideal DCG is zero scores 0.
pub fn ndcg_at_k(relevance: &[f64], scores: &[f64], k: usize) -> Result<f64> {
    if relevance.len() != scores.len() {
        return Err(Error::invalid(format!(
            "ndcg: {} relevances but {} scores",
            relevance.len(),
            scores.len()
        )));
    }
    let dcg = |order: &[usize]| -> f64 {
        order
            .iter()
            .take(k)
            .enumerate()
            .map(|(r, &i)| relevance[i] / ((r + 2) as f64).log2())
            .sum()
    };
    let mut by_score: Vec<usize> = (0..scores.len()).collect();
    by_score.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut ideal: Vec<usize> = (0..scores.len()).collect();
    ideal.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
    let idcg = dcg(&ideal);
    Ok(if idcg > 0.0 {
        dcg(&by_score) / idcg
    } else {
        0.0
    })
}

/// Kendall's tau-b, which corrects for ties in either ranking.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Result<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return Err(Error::invalid(
            "kendall tau: needs two sequences of the same length, at least 2",
        ));
    }
    let (mut conc, mut disc, mut tx, mut ty) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let dx = (x[i] - x[j]).signum() * ((x[i] != x[j]) as i32 as f64);
            let dy = (y[i] - y[j]).signum() * ((y[i] != y[j]) as i32 as f64);
            if dx == 0.0 && dy == 0.0 {
                continue;
            } else if dx == 0.0 {
                tx += 1.0;
            } else if dy == 0.0 {
                ty += 1.0;
            } else if dx == dy {
                conc += 1.0;
            } else {
                disc += 1.0;
            }
        }
    }
    let denom = ((conc + disc + tx) * (conc + disc + ty)).sqrt();
    if denom == 0.0 {
        return Err(Error::invalid("kendall tau: a sequence is constant"));
    }
    Ok((conc - disc) / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_sklearn_doc_example() {
        // sklearn.metrics.roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.75
        let a = auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!((a - 0.75).abs() < 1e-12);
        // ties count one half
        let a = auc(&[false, true], &[0.5, 0.5]).unwrap();
        assert!((a - 0.5).abs() < 1e-12);
        assert!(auc(&[true, true], &[0.1, 0.2]).is_err());
    }

    #[test]
    fn ndcg_matches_hand_computation() {
        // sklearn doc example: ndcg_score([[10,0,0,1,5]], [[.1,.2,.3,4,70]]) = 0.695...
        let rel = [10.0, 0.0, 0.0, 1.0, 5.0];
        let s = [0.1, 0.2, 0.3, 4.0, 70.0];
        let dcg = 5.0 + 1.0 / 3f64.log2() + 10.0 / 6f64.log2();
        let idcg = 10.0 + 5.0 / 3f64.log2() + 0.5;
        let v = ndcg_at_k(&rel, &s, 5).unwrap();
        assert!((v - dcg / idcg).abs() < 1e-12);
        assert!((v - 0.6957).abs() < 1e-4);
    }

    #[test]
    fn kendall_matches_scipy_doc_example() {
        // scipy.stats.kendalltau([12,2,1,12,2],[1,4,7,1,0]) = -0.47140452079103173
        let t = kendall_tau_b(&[12., 2., 1., 12., 2.], &[1., 4., 7., 1., 0.]).unwrap();
        assert!((t + 0.471_404_520_791_031_73).abs() < 1e-12);
    }
}
