//! Fast marginal sums and marginal scaling over a row-major table.
//!
//! A cell index splits as `h · n_lo + j`, where `j` runs over the last few
//! factors (at least 64 cells) and `h` over the rest. The margin index is
//! linear in the factor levels, so it is `hi[h] + lo[j]` with two small lookup
//! tables that stay in cache: every pass reads the cells contiguously. Large
//! tables are split into a fixed number of `h` ranges run on rayon, each with
//! its own accumulator, summed in a fixed order so results do not depend on the
//! number of threads.

use rayon::prelude::*;

/// Below this many cells the loops run on the calling thread.
const PAR_MIN: usize = 1 << 15;
/// Number of `h` ranges a large table is cut into.
const N_CHUNKS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq)]
enum LoKind {
    /// No factor of the margin is in the `lo` part: the inner loop is a plain sum.
    Zero,
    /// The `lo` part maps onto consecutive margin cells.
    Contiguous,
    /// Anything else.
    General,
}

/// How the cells of one table map onto the cells of one of its margins.
#[derive(Clone, Debug)]
pub struct MarginPlan {
    factors: Vec<usize>,
    size: usize,
    n: usize,
    n_lo: usize,
    hi: Vec<u32>,
    lo: Vec<u32>,
    kind: LoKind,
}

/// Where the `lo` part of the cell index starts: the last factors, spanning at least 64 cells.
fn split(dims: &[usize]) -> usize {
    let n: usize = dims.iter().product();
    let mut s = dims.len();
    let mut lo = 1;
    while s > 0 && lo < 64.min(n) {
        s -= 1;
        lo *= dims[s];
    }
    s
}

impl MarginPlan {
    /// The plan for the margin over `factors` (indices into `dims`, any order, no repeats).
    pub fn new(dims: &[usize], factors: &[usize]) -> Self {
        let mut factors = factors.to_vec();
        factors.sort_unstable();
        factors.dedup();
        let n: usize = dims.iter().product();
        // Row-major strides of the margin over its own factors.
        let mut mstride = vec![0usize; dims.len()];
        let mut size = 1;
        for &k in factors.iter().rev() {
            mstride[k] = size;
            size *= dims[k];
        }
        let s = split(dims);
        let n_lo: usize = dims[s..].iter().product();
        let index = |part: &[usize], first: usize, count: usize| -> Vec<u32> {
            let mut out = Vec::with_capacity(count);
            let mut l = vec![0usize; part.len()];
            for _ in 0..count {
                let m: usize = l
                    .iter()
                    .enumerate()
                    .map(|(i, &li)| li * mstride[first + i])
                    .sum();
                out.push(m as u32);
                for i in (0..part.len()).rev() {
                    l[i] += 1;
                    if l[i] < part[i] {
                        break;
                    }
                    l[i] = 0;
                }
            }
            out
        };
        let hi = index(&dims[..s], 0, n / n_lo.max(1));
        let lo = index(&dims[s..], s, n_lo);
        let kind = if lo.iter().all(|&x| x == 0) {
            LoKind::Zero
        } else if lo.iter().enumerate().all(|(j, &x)| x as usize == j) {
            LoKind::Contiguous
        } else {
            LoKind::General
        };
        MarginPlan {
            factors,
            size,
            n,
            n_lo,
            hi,
            lo,
            kind,
        }
    }

    /// Number of cells of the margin.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The margin's factors, ascending.
    pub fn factors(&self) -> &[usize] {
        &self.factors
    }

    /// Margin cell of table cell `i`.
    pub fn index_of(&self, i: usize) -> usize {
        (self.hi[i / self.n_lo] + self.lo[i % self.n_lo]) as usize
    }

    fn chunk_rows(&self) -> usize {
        self.hi.len().div_ceil(N_CHUNKS).max(1)
    }

    fn accumulate(&self, h0: usize, v: &[f64], acc: &mut [f64]) {
        let n_lo = self.n_lo;
        for (dh, row) in v.chunks_exact(n_lo).enumerate() {
            let b = self.hi[h0 + dh] as usize;
            match self.kind {
                LoKind::Zero => acc[b] += row.iter().sum::<f64>(),
                LoKind::Contiguous => {
                    for (a, x) in acc[b..b + n_lo].iter_mut().zip(row) {
                        *a += x;
                    }
                }
                LoKind::General => {
                    for (x, &j) in row.iter().zip(&self.lo) {
                        acc[b + j as usize] += x;
                    }
                }
            }
        }
    }

    fn scale_rows(&self, h0: usize, v: &mut [f64], ratio: &[f64]) {
        let n_lo = self.n_lo;
        for (dh, row) in v.chunks_exact_mut(n_lo).enumerate() {
            let b = self.hi[h0 + dh] as usize;
            match self.kind {
                LoKind::Zero => {
                    let r = ratio[b];
                    row.iter_mut().for_each(|x| *x *= r);
                }
                LoKind::Contiguous => {
                    for (x, r) in row.iter_mut().zip(&ratio[b..b + n_lo]) {
                        *x *= r;
                    }
                }
                LoKind::General => {
                    for (x, &j) in row.iter_mut().zip(&self.lo) {
                        *x *= ratio[b + j as usize];
                    }
                }
            }
        }
    }

    /// `out[m] = Σ_{cells i in margin cell m} v[i]`.
    pub fn sum(&self, v: &[f64], out: &mut [f64]) {
        debug_assert_eq!(v.len(), self.n);
        out.fill(0.0);
        if self.n < PAR_MIN {
            self.accumulate(0, v, out);
            return;
        }
        let rows = self.chunk_rows();
        let parts: Vec<Vec<f64>> = v
            .par_chunks(rows * self.n_lo)
            .enumerate()
            .map(|(c, chunk)| {
                let mut acc = vec![0.0; self.size];
                self.accumulate(c * rows, chunk, &mut acc);
                acc
            })
            .collect();
        for p in parts {
            for (o, x) in out.iter_mut().zip(p) {
                *o += x;
            }
        }
    }

    /// `v[i] *= ratio[margin cell of i]`.
    pub fn scale(&self, v: &mut [f64], ratio: &[f64]) {
        if self.n < PAR_MIN {
            self.scale_rows(0, v, ratio);
            return;
        }
        let rows = self.chunk_rows();
        v.par_chunks_mut(rows * self.n_lo)
            .enumerate()
            .for_each(|(c, chunk)| self.scale_rows(c * rows, chunk, ratio));
    }

    /// `scale(v, ratio)` and then `next.sum(v, out)`, in one pass over the cells.
    pub fn scale_then_sum(&self, v: &mut [f64], ratio: &[f64], next: &MarginPlan, out: &mut [f64]) {
        debug_assert_eq!(self.n_lo, next.n_lo);
        out.fill(0.0);
        if self.n < PAR_MIN {
            self.scale_rows(0, v, ratio);
            next.accumulate(0, v, out);
            return;
        }
        let rows = self.chunk_rows();
        let parts: Vec<Vec<f64>> = v
            .par_chunks_mut(rows * self.n_lo)
            .enumerate()
            .map(|(c, chunk)| {
                let mut acc = vec![0.0; next.size];
                // Row by row, so each row is scaled and summed while in L1.
                for (dh, row) in chunk.chunks_exact_mut(self.n_lo).enumerate() {
                    let h = c * rows + dh;
                    self.scale_rows(h, row, ratio);
                    next.accumulate(h, row, &mut acc);
                }
                acc
            })
            .collect();
        for p in parts {
            for (o, x) in out.iter_mut().zip(p) {
                *o += x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(dims: &[usize], f: &[usize], v: &[f64]) -> Vec<f64> {
        let size: usize = f.iter().map(|&k| dims[k]).product();
        let mut out = vec![0.0; size];
        for (i, x) in v.iter().enumerate() {
            let l = crate::contingency::cell_levels(dims, i);
            let mut m = 0;
            for &k in f {
                m = m * dims[k] + l[k];
            }
            out[m] += x;
        }
        out
    }

    #[test]
    fn margins_match_naive_small_and_large() {
        for dims in [vec![2, 3, 4], vec![5, 4, 3, 6, 7, 5, 4]] {
            let n: usize = dims.iter().product();
            let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 + 0.5).collect();
            let d = dims.len();
            for f in [
                vec![],
                vec![0],
                vec![d - 1],
                vec![0, d - 1],
                vec![1, d - 1],
                (0..d).collect(),
            ] {
                let p = MarginPlan::new(&dims, &f);
                let mut out = vec![0.0; p.size()];
                p.sum(&v, &mut out);
                let want = naive(&dims, &f, &v);
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{dims:?} {f:?}");
                }
                // scale_then_sum == scale; sum
                let ratio: Vec<f64> = (0..p.size()).map(|m| 1.0 + m as f64 * 0.01).collect();
                let q = MarginPlan::new(&dims, &[0]);
                let (mut v1, mut v2) = (v.clone(), v.clone());
                let mut o1 = vec![0.0; q.size()];
                let mut o2 = vec![0.0; q.size()];
                p.scale_then_sum(&mut v1, &ratio, &q, &mut o1);
                p.scale(&mut v2, &ratio);
                q.sum(&v2, &mut o2);
                assert_eq!(v1, v2);
                for (a, b) in o1.iter().zip(&o2) {
                    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0));
                }
            }
        }
    }
}
