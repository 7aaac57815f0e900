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

/// A true graph as an edge list: a header line `i,j`, then one line
/// `name_a,name_b` per edge (the file `caracal graph simulate` writes).
pub fn edge_list_csv(names: &[String], truth: &[bool]) -> String {
    let mut s = String::from("i,j\n");
    for ((i, j), t) in pairs(names.len()).zip(truth) {
        if *t {
            s.push_str(&format!("{},{}\n", names[i], names[j]));
        }
    }
    s
}

/// Read an edge list written by [`edge_list_csv`] (names must be columns
/// of the data, in either order; repeats are allowed) into the true
/// pattern in [`pairs`] order.
pub fn parse_edge_list(text: &str, names: &[String]) -> caracal_core::Result<Vec<bool>> {
    use caracal_core::bail;
    let p = names.len();
    let index = |name: &str, line: usize| -> caracal_core::Result<usize> {
        match names.iter().position(|n| n == name) {
            Some(k) => Ok(k),
            None => bail!(
                "edge list line {line}: `{name}` is not a column of the data (columns: {})",
                names.join(", ")
            ),
        }
    };
    let mut adj = vec![false; n_pairs(p)];
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, h)) if h.trim().replace(' ', "") == "i,j" => {}
        Some((_, h)) => bail!("edge list: the header is `{h}`; expected `i,j`"),
        None => {
            bail!("edge list: the file is empty; expected a header `i,j` and one edge per line")
        }
    }
    for (k, l) in lines {
        let line = k + 1;
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        if f.len() != 2 {
            bail!(
                "edge list line {line}: `{l}` has {} fields; expected two column names",
                f.len()
            );
        }
        let (a, b) = (index(f[0], line)?, index(f[1], line)?);
        if a == b {
            bail!("edge list line {line}: `{l}` joins a column to itself");
        }
        let (i, j) = (a.min(b), a.max(b));
        // Position of (i, j) in `pairs` order: columns j = 1.., rows i < j.
        adj[j * (j - 1) / 2 + i] = true;
    }
    Ok(adj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: usize) -> Vec<String> {
        (1..=p).map(|k| format!("x{k}")).collect()
    }

    #[test]
    fn edge_list_round_trips_and_accepts_either_order() {
        let n = names(5);
        let truth: Vec<bool> = pairs(5).map(|(i, j)| (i + j) % 3 == 0).collect();
        let text = edge_list_csv(&n, &truth);
        assert_eq!(parse_edge_list(&text, &n).unwrap(), truth);
        let swapped = "i,j\nx3,x1\n\nx5 , x4\n";
        let got = parse_edge_list(swapped, &n).unwrap();
        let want: Vec<bool> = pairs(5).map(|e| e == (0, 2) || e == (3, 4)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_edge_lists_are_clear_errors() {
        let n = names(3);
        for (text, needle) in [
            ("", "file is empty"),
            ("a,b\nx1,x2\n", "expected `i,j`"),
            ("i,j\nx1,x9\n", "`x9` is not a column"),
            ("i,j\nx2,x2\n", "joins a column to itself"),
            ("i,j\nx1,x2,x3\n", "has 3 fields"),
        ] {
            let e = parse_edge_list(text, &n).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
