//! Edge-recovery metrics against a known graph: TPR and FPR along a `λ`
//! path, ROC AUC and the best F1 (as R `huge.roc` reports them).
//!
//! The AUC scores each pair by how early on the path (from the sparsest
//! end) it first enters the graph, pairs that never enter tying at zero,
//! and takes the Mann–Whitney statistic ([`caracal_core::metrics::auc`]):
//! this is the area under the ROC polyline through the path's (FPR, TPR)
//! points, closed with a straight segment to (1, 1).

use caracal_core::{ensure, metrics::auc, Result};

/// Edge recovery along a path.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recovery {
    /// True-positive rate at each path point.
    pub tpr: Vec<f64>,
    /// False-positive rate at each path point.
    pub fpr: Vec<f64>,
    /// F1 score at each path point.
    pub f1: Vec<f64>,
    /// Area under the ROC curve.
    pub auc: f64,
    /// The largest F1.
    pub best_f1: f64,
    /// The path point where it occurs.
    pub best_index: usize,
}

/// Compare the estimated patterns `path` (ordered from sparse to dense) with
/// the true pattern `truth`, all in [`crate::edges::pairs`] order.
pub fn edge_recovery(truth: &[bool], path: &[Vec<bool>]) -> Result<Recovery> {
    ensure!(
        !path.is_empty(),
        "edge recovery needs at least one estimated graph"
    );
    ensure!(
        path.iter().all(|g| g.len() == truth.len()),
        "every estimated graph must have {} pairs",
        truth.len()
    );
    let pos = truth.iter().filter(|&&t| t).count() as f64;
    let neg = truth.len() as f64 - pos;
    ensure!(
        pos > 0.0 && neg > 0.0,
        "the true graph needs at least one edge and one non-edge"
    );
    let (mut tpr, mut fpr, mut f1) = (Vec::new(), Vec::new(), Vec::new());
    for g in path {
        let tp = g.iter().zip(truth).filter(|(e, t)| **e && **t).count() as f64;
        let fp = g.iter().zip(truth).filter(|(e, t)| **e && !**t).count() as f64;
        tpr.push(tp / pos);
        fpr.push(fp / neg);
        let sel = g.iter().filter(|&&e| e).count() as f64;
        f1.push(if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (sel + pos)
        });
    }
    let k = path.len();
    let scores: Vec<f64> = (0..truth.len())
        .map(|e| {
            path.iter()
                .position(|g| g[e])
                .map_or(0.0, |first| (k - first) as f64)
        })
        .collect();
    let area = auc(truth, &scores)?;
    let (best_index, best_f1) = f1
        .iter()
        .copied()
        .enumerate()
        .fold((0, f64::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a });
    Ok(Recovery {
        tpr,
        fpr,
        f1,
        auc: area,
        best_f1,
        best_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_reversed_orders() {
        let truth = vec![true, false, true, false];
        let good = vec![
            vec![true, false, false, false],
            vec![true, false, true, false],
            vec![true, true, true, false],
        ];
        let r = edge_recovery(&truth, &good).unwrap();
        assert_eq!(r.auc, 1.0);
        assert_eq!(r.best_f1, 1.0);
        assert_eq!(r.best_index, 1);
        let bad = vec![vec![false, true, false, true]];
        assert_eq!(edge_recovery(&truth, &bad).unwrap().auc, 0.0);
    }
}
