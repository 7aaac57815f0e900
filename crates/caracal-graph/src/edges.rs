//! Edges of an estimated graph: the nonzero off-diagonal pattern of a
//! symmetric matrix, listed once per pair `i < j`.

use faer::Mat;

/// One undirected edge with its weight (e.g. the precision entry).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Edge {
    /// Smaller node index.
    pub i: usize,
    /// Larger node index.
    pub j: usize,
    /// The matrix entry.
    pub weight: f64,
}

/// Number of node pairs `p(p − 1)/2`.
pub fn n_pairs(p: usize) -> usize {
    p * p.saturating_sub(1) / 2
}

/// The pairs `(i, j)`, `i < j`, in the order used by adjacency vectors
/// (column by column of the upper triangle).
pub fn pairs(p: usize) -> impl Iterator<Item = (usize, usize)> {
    (1..p).flat_map(|j| (0..j).map(move |i| (i, j)))
}

/// The nonzero off-diagonal entries of `m` (upper triangle).
pub fn edges(m: &Mat<f64>) -> Vec<Edge> {
    pairs(m.nrows())
        .filter(|&(i, j)| m[(i, j)] != 0.0)
        .map(|(i, j)| Edge {
            i,
            j,
            weight: m[(i, j)],
        })
        .collect()
}

/// The upper-triangle pattern of `m` as booleans, in [`pairs`] order.
pub fn adjacency(m: &Mat<f64>) -> Vec<bool> {
    pairs(m.nrows()).map(|(i, j)| m[(i, j)] != 0.0).collect()
}
