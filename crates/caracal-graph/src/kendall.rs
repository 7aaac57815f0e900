//! Kendall's tau-a, `τ_a = (C − D) / (n(n−1)/2)`, where `C` and `D` count
//! the concordant and discordant pairs and tied pairs count for neither.
//!
//! Knight's `O(n log n)` algorithm (Knight 1966, JASA 61): sort by `(x, y)`,
//! count the pairs tied in `x`, in `y` and in both, and count the discordant
//! pairs as the inversions of `y` in that order, with a merge sort. For two
//! binary columns the 2×2 table gives `C − D = n₀₀n₁₁ − n₀₁n₁₀` directly, and
//! a binary column against any other needs one pass over the other's order.

use caracal_core::{ensure, Result};
use rayon::prelude::*;

/// Pairs within runs of equal values of a sorted slice: `Σ t(t−1)/2`.
fn tied_pairs<T: PartialEq>(sorted: &[T]) -> u64 {
    let mut total = 0u64;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as u64;
        total += t * (t - 1) / 2;
        i = j;
    }
    total
}

/// Sort `v` ascending and return its number of inversions (pairs `i < j`
/// with `v[i] > v[j]`), with `buf` as scratch of the same length (the sorted
/// values may end in either). Runs of 8 are sorted by insertion (each shift
/// is one inversion), then merged bottom-up between the two buffers.
fn merge_count(v: &mut Vec<u32>, buf: &mut Vec<u32>) -> u64 {
    const RUN: usize = 8;
    let n = v.len();
    let mut inv = 0u64;
    for run in v.chunks_mut(RUN) {
        for i in 1..run.len() {
            let x = run[i];
            let mut j = i;
            while j > 0 && run[j - 1] > x {
                run[j] = run[j - 1];
                j -= 1;
            }
            run[j] = x;
            inv += (i - j) as u64;
        }
    }
    let mut width = RUN;
    while width < n {
        for lo in (0..n).step_by(2 * width) {
            let mid = (lo + width).min(n);
            let hi = (lo + 2 * width).min(n);
            let (src, dst) = (&v[lo..hi], &mut buf[lo..hi]);
            let m = mid - lo;
            let (mut i, mut j, mut k) = (0, m, 0);
            // Branch-free: on random data a branch here mispredicts half
            // the time, and that, not the comparisons, is the cost.
            while i < m && j < src.len() {
                let (a, b) = (src[i], src[j]);
                let right = b < a;
                dst[k] = if right { b } else { a };
                inv += (right as u64) * (m - i) as u64;
                j += right as usize;
                i += !right as usize;
                k += 1;
            }
            dst[k..k + m - i].copy_from_slice(&src[i..m]);
            k += m - i;
            let rest = src.len() - j;
            dst[k..k + rest].copy_from_slice(&src[j..]);
        }
        std::mem::swap(v, buf);
        width *= 2;
    }
    inv
}

/// Dense ranks `0..levels` of `x` (equal values share a rank).
fn dense_ranks(x: &[f64]) -> (Vec<u32>, u32) {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0u32; x.len()];
    let mut level = 0u32;
    for w in 0..idx.len() {
        if w > 0 && x[idx[w]] != x[idx[w - 1]] {
            level += 1;
        }
        r[idx[w]] = level;
    }
    (r, level + 1)
}

/// One column prepared for many pairs: its dense ranks, its order, and the
/// pairs tied within it.
struct Prepared {
    rank: Vec<u32>,
    levels: u32,
    order: Vec<usize>,
    tied: u64,
}

impl Prepared {
    fn new(x: &[f64]) -> Self {
        let (rank, levels) = dense_ranks(x);
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by_key(|&i| rank[i]);
        let sorted: Vec<u32> = order.iter().map(|&i| rank[i]).collect();
        Prepared {
            tied: tied_pairs(&sorted),
            rank,
            levels,
            order,
        }
    }
}

/// `C − D` of a two-level column `a` against any column `b`, in one pass
/// over `b`'s order: each element on `a`'s upper level gains the lower-level
/// elements below it in `b` and loses those above it.
fn concordance_binary(a: &Prepared, b: &Prepared) -> i64 {
    let total0 = a.rank.iter().filter(|&&r| r == 0).count() as i64;
    let (mut below0, mut sum) = (0i64, 0i64);
    let mut g = 0;
    while g < b.order.len() {
        let level = b.rank[b.order[g]];
        let mut end = g;
        let (mut eq0, mut eq1) = (0i64, 0i64);
        while end < b.order.len() && b.rank[b.order[end]] == level {
            if a.rank[b.order[end]] == 0 {
                eq0 += 1;
            } else {
                eq1 += 1;
            }
            end += 1;
        }
        let above0 = total0 - below0 - eq0;
        sum += eq1 * (below0 - above0);
        below0 += eq0;
        g = end;
    }
    sum
}

/// Per-thread buffers of [`concordance`].
struct Scratch {
    ys: Vec<u32>,
    buf: Vec<u32>,
    by_ab: Vec<usize>,
    start: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch { ys: Vec::new(), buf: Vec::new(), by_ab: Vec::new(), start: Vec::new() })
    };
}

/// `C − D` of a pair of prepared columns.
fn concordance(a: &Prepared, b: &Prepared) -> i64 {
    let n = a.rank.len();
    if a.levels == 2 && b.levels == 2 {
        let mut t = [[0i64; 2]; 2];
        for i in 0..n {
            t[a.rank[i] as usize][b.rank[i] as usize] += 1;
        }
        return t[0][0] * t[1][1] - t[0][1] * t[1][0];
    }
    if a.levels == 2 {
        return concordance_binary(a, b);
    }
    if b.levels == 2 {
        return concordance_binary(b, a);
    }
    SCRATCH.with(|cell| {
        let Scratch {
            ys,
            buf,
            by_ab,
            start,
        } = &mut *cell.borrow_mut();
        ys.clear();
        let mut tied_ab = 0u64;
        if a.tied == 0 {
            ys.extend(a.order.iter().map(|&i| b.rank[i]));
        } else {
            // Sorted by (a, b): a stable counting sort by a of b's order.
            start.clear();
            start.resize(a.levels as usize + 1, 0);
            for &r in &a.rank {
                start[r as usize + 1] += 1;
            }
            for l in 0..a.levels as usize {
                start[l + 1] += start[l];
            }
            by_ab.clear();
            by_ab.resize(n, 0);
            for &i in &b.order {
                let slot = &mut start[a.rank[i] as usize];
                by_ab[*slot] = i;
                *slot += 1;
            }
            if b.tied > 0 {
                // Runs of equal (a, b) are contiguous in this order.
                let mut run = 1u64;
                for w in 1..n {
                    let (i, j) = (by_ab[w - 1], by_ab[w]);
                    if a.rank[i] == a.rank[j] && b.rank[i] == b.rank[j] {
                        run += 1;
                    } else {
                        tied_ab += run * (run - 1) / 2;
                        run = 1;
                    }
                }
                tied_ab += run * (run - 1) / 2;
            }
            ys.extend(by_ab.iter().map(|&i| b.rank[i]));
        }
        buf.clear();
        buf.resize(n, 0);
        let discordant = merge_count(ys, buf);
        let n0 = (n as u64) * (n as u64 - 1) / 2;
        n0 as i64 - a.tied as i64 - b.tied as i64 + tied_ab as i64 - 2 * discordant as i64
    })
}

/// Samples of one length `n ≥ 2`, or a one-line error.
fn check(cols: &[&[f64]]) -> Result<usize> {
    let n = cols.first().map_or(0, |c| c.len());
    ensure!(
        cols.iter().all(|c| c.len() == n),
        "Kendall's tau needs samples of one length; got lengths {:?}",
        cols.iter().map(|c| c.len()).collect::<Vec<_>>()
    );
    ensure!(
        n >= 2,
        "Kendall's tau needs at least 2 observations; got {n}"
    );
    Ok(n)
}

/// Kendall's tau-a of two equally long samples of at least 2 values.
pub fn kendall_tau_a(x: &[f64], y: &[f64]) -> Result<f64> {
    let n = check(&[x, y])?;
    let c = concordance(&Prepared::new(x), &Prepared::new(y));
    Ok(c as f64 / ((n * (n - 1)) as f64 / 2.0))
}

/// The `p × p` matrix of tau-a between columns (unit diagonal), computed in
/// parallel over pairs.
pub fn kendall_matrix(cols: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    kendall_matrix_with(cols, |_| {})
}

/// [`kendall_matrix`], calling `done(k)` as each row of `k` pairs finishes
/// (for progress reports).
pub fn kendall_matrix_with(
    cols: &[Vec<f64>],
    done: impl Fn(usize) + Sync,
) -> Result<Vec<Vec<f64>>> {
    let p = cols.len();
    let n = check(&cols.iter().map(|c| c.as_slice()).collect::<Vec<_>>())?;
    let prep: Vec<Prepared> = cols.par_iter().map(|c| Prepared::new(c)).collect();
    let n0 = (n * n.saturating_sub(1)) as f64 / 2.0;
    let rows: Vec<Vec<f64>> = (0..p)
        .into_par_iter()
        .map(|a| {
            let row = (0..a)
                .map(|b| concordance(&prep[a], &prep[b]) as f64 / n0)
                .collect();
            done(a);
            row
        })
        .collect();
    let mut k = vec![vec![1.0; p]; p];
    for a in 0..p {
        for b in 0..a {
            k[a][b] = rows[a][b];
            k[b][a] = rows[a][b];
        }
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len();
        let mut s = 0.0;
        for i in 0..n {
            for j in 0..i {
                s += ((x[i] - x[j]).signum() * (y[i] - y[j]).signum())
                    * f64::from(x[i] != x[j] && y[i] != y[j]);
            }
        }
        s / ((n * (n - 1)) as f64 / 2.0)
    }

    #[test]
    fn matches_the_pairwise_definition_with_ties() {
        // A deterministic scramble with many ties in both columns.
        let n = 257;
        let x: Vec<f64> = (0..n).map(|i| ((i * 37 + 11) % 23) as f64).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| ((i * 91 + 5) % 17) as f64 + 0.5 * (i % 3) as f64)
            .collect();
        let b: Vec<f64> = (0..n).map(|i| ((i * 13) % 7 < 3) as u8 as f64).collect();
        let c: Vec<f64> = (0..n)
            .map(|i| ((i * 29 + 3) % 11 < 6) as u8 as f64)
            .collect();
        // And two columns without ties.
        let u: Vec<f64> = (0..n).map(|i| ((i * 101 + 7) % 257) as f64).collect();
        let w: Vec<f64> = (0..n).map(|i| ((i * 31 + 2) % 257) as f64 * 0.5).collect();
        for (u, v) in [
            (&x, &y),
            (&x, &b),
            (&b, &y),
            (&b, &c),
            (&x, &x),
            (&u, &w),
            (&u, &y),
            (&y, &u),
            (&b, &u),
        ] {
            let (fast, slow) = (kendall_tau_a(u, v).unwrap(), brute(u, v));
            assert!((fast - slow).abs() < 1e-15, "{fast} vs {slow}");
        }
        // Lengths around the insertion-run and merge boundaries.
        for len in [2usize, 3, 15, 16, 17, 31, 32, 33, 48, 100] {
            let u: Vec<f64> = (0..len).map(|i| ((i * 37 + 5) % 101) as f64).collect();
            let v: Vec<f64> = (0..len).map(|i| ((i * 59 + 3) % 103) as f64).collect();
            assert!(
                (kendall_tau_a(&u, &v).unwrap() - brute(&u, &v)).abs() < 1e-15,
                "n = {len}"
            );
        }
        // No ties: a reversed sample has tau −1; ties pull tau-a below 1.
        let r: Vec<f64> = (0..50).map(|i| -(i as f64)).collect();
        let s: Vec<f64> = (0..50).map(|i| i as f64).collect();
        assert_eq!(kendall_tau_a(&r, &s).unwrap(), -1.0);
        assert!(kendall_tau_a(&x, &x).unwrap() < 1.0);
        let m = kendall_matrix(&[x.clone(), y.clone(), b.clone()]).unwrap();
        assert_eq!(m[0][0], 1.0);
        assert_eq!(m[1][2], m[2][1]);
        assert!((m[2][0] - brute(&b, &x)).abs() < 1e-15);
        // Bad shapes are errors, not panics.
        let e = kendall_tau_a(&[1.0, 2.0], &[1.0]).unwrap_err().to_string();
        assert!(e.contains("one length"), "{e}");
        let e = kendall_matrix(&[vec![1.0], vec![2.0]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2 observations"), "{e}");
    }
}
