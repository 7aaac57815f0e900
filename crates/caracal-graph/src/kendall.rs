//! Kendall's tau-a, `τ_a = (C − D) / (n(n−1)/2)`, where `C` and `D` count
//! the concordant and discordant pairs and tied pairs count for neither.
//!
//! Knight's `O(n log n)` algorithm (Knight 1966, JASA 61): sort by `(x, y)`,
//! count the pairs tied in `x`, in `y` and in both, and count the discordant
//! pairs as the inversions of `y` in that order, with a merge sort. For two
//! binary columns the 2×2 table gives `C − D = n₀₀n₁₁ − n₀₁n₁₀` directly, and
//! a binary column against any other needs one pass over the other's order.

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
/// with `v[i] > v[j]`); `buf` is scratch of the same length. Runs of up to
/// 24 are sorted by insertion (each shift is one inversion).
fn merge_count(v: &mut [u32], buf: &mut [u32]) -> u64 {
    let n = v.len();
    if n <= 24 {
        let mut inv = 0u64;
        for i in 1..n {
            let x = v[i];
            let mut j = i;
            while j > 0 && v[j - 1] > x {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = x;
            inv += (i - j) as u64;
        }
        return inv;
    }
    let mid = n / 2;
    let mut inv = {
        let (lb, rb) = buf.split_at_mut(mid);
        let (lv, rv) = v.split_at_mut(mid);
        merge_count(lv, lb) + merge_count(rv, rb)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            buf[k] = v[j];
            inv += (mid - i) as u64;
            j += 1;
        } else {
            buf[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buf[k..k + mid - i].copy_from_slice(&v[i..mid]);
    k += mid - i;
    buf[k..k + n - j].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&buf[..n]);
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

/// Kendall's tau-a of two equally long samples (`NaN` when shorter than 2).
pub fn kendall_tau_a(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_a needs equally long samples");
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let c = concordance(&Prepared::new(x), &Prepared::new(y));
    c as f64 / ((n * (n - 1)) as f64 / 2.0)
}

/// The `p × p` matrix of tau-a between columns (unit diagonal), computed in
/// parallel over pairs.
pub fn kendall_matrix(cols: &[Vec<f64>]) -> Vec<Vec<f64>> {
    kendall_matrix_with(cols, |_| {})
}

/// [`kendall_matrix`], calling `done(k)` as each row of `k` pairs finishes
/// (for progress reports).
pub fn kendall_matrix_with(cols: &[Vec<f64>], done: impl Fn(usize) + Sync) -> Vec<Vec<f64>> {
    let p = cols.len();
    let n = cols.first().map_or(0, |c| c.len());
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
    k
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
            let (fast, slow) = (kendall_tau_a(u, v), brute(u, v));
            assert!((fast - slow).abs() < 1e-15, "{fast} vs {slow}");
        }
        // No ties: a reversed sample has tau −1; ties pull tau-a below 1.
        let r: Vec<f64> = (0..50).map(|i| -(i as f64)).collect();
        let s: Vec<f64> = (0..50).map(|i| i as f64).collect();
        assert_eq!(kendall_tau_a(&r, &s), -1.0);
        assert!(kendall_tau_a(&x, &x) < 1.0);
        let m = kendall_matrix(&[x.clone(), y.clone(), b.clone()]);
        assert_eq!(m[0][0], 1.0);
        assert_eq!(m[1][2], m[2][1]);
        assert!((m[2][0] - brute(&b, &x)).abs() < 1e-15);
    }
}
