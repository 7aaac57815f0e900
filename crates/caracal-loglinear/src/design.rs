//! Design matrices stored by sparse columns (coordinate descent touches one
//! column at a time), with a row-wise copy for Newton's weighted Gram matrix.

use crate::contingency::{cell_levels, ContingencyTable};
use crate::spec::HierarchicalModel;
use caracal_core::{ensure, Result};
use rayon::prelude::*;

/// One column: the rows where it is non-zero and, unless it is an indicator, the values.
#[derive(Clone, Debug, Default)]
pub struct Column {
    /// Rows with a non-zero entry, ascending.
    pub rows: Vec<u32>,
    /// The entries; `None` means every entry is 1 (an indicator column).
    pub vals: Option<Vec<f64>>,
}

impl Column {
    /// `(row, value)` pairs of the non-zero entries.
    pub fn iter(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.rows
            .iter()
            .enumerate()
            .map(move |(k, &r)| (r as usize, self.vals.as_ref().map_or(1.0, |v| v[k])))
    }

    /// `x_jᵀ v`.
    pub fn dot(&self, v: &[f64]) -> f64 {
        match &self.vals {
            None => self.rows.iter().map(|&r| v[r as usize]).sum(),
            Some(x) => self
                .rows
                .iter()
                .zip(x)
                .map(|(&r, x)| x * v[r as usize])
                .sum(),
        }
    }

    /// `max_i |x_ij|` (0 for an empty column).
    pub fn max_abs(&self) -> f64 {
        match &self.vals {
            None if self.rows.is_empty() => 0.0,
            None => 1.0,
            Some(x) => x.iter().fold(0.0, |m, v| m.max(v.abs())),
        }
    }

    /// Whether every entry is 0 or 1.
    pub fn is_binary(&self) -> bool {
        self.vals
            .as_ref()
            .is_none_or(|x| x.iter().all(|&v| v == 1.0))
    }
}

/// A design matrix `X` (rows = cells, columns = features) with column names.
#[derive(Clone, Debug)]
pub struct Design {
    /// Number of rows.
    pub n_rows: usize,
    /// Column names.
    pub names: Vec<String>,
    /// Sparse columns.
    pub cols: Vec<Column>,
}

/// Rows of `X`: `idx[ptr[i]..ptr[i+1]]` are the non-zero columns of row `i`.
#[derive(Clone, Debug)]
pub struct Csr {
    /// Row start offsets, length `n_rows + 1`.
    pub ptr: Vec<usize>,
    /// Column indices.
    pub idx: Vec<u32>,
    /// Entries.
    pub val: Vec<f64>,
}

impl Design {
    /// A design from dense columns; zeros are not stored.
    pub fn from_columns(n_rows: usize, cols: &[Vec<f64>], names: Vec<String>) -> Result<Self> {
        ensure!(
            names.len() == cols.len(),
            "{} column names for {} columns",
            names.len(),
            cols.len()
        );
        let mut out = Vec::with_capacity(cols.len());
        for (j, c) in cols.iter().enumerate() {
            ensure!(
                c.len() == n_rows,
                "column `{}` has {} values but the design has {n_rows} rows",
                names[j],
                c.len()
            );
            ensure!(
                c.iter().all(|v| v.is_finite()),
                "column `{}` of the design has a value that is not a finite number",
                names[j]
            );
            let rows: Vec<u32> = (0..n_rows)
                .filter(|&i| c[i] != 0.0)
                .map(|i| i as u32)
                .collect();
            let vals: Vec<f64> = rows.iter().map(|&r| c[r as usize]).collect();
            let binary = vals.iter().all(|&v| v == 1.0);
            out.push(Column {
                rows,
                vals: if binary { None } else { Some(vals) },
            });
        }
        Ok(Design {
            n_rows,
            names,
            cols: out,
        })
    }

    /// A design from a row-major `n_rows × names.len()` array.
    pub fn from_row_major(n_rows: usize, data: &[f64], names: Vec<String>) -> Result<Self> {
        let p = names.len();
        ensure!(
            data.len() == n_rows * p,
            "a {n_rows}×{p} design needs {} values, got {}",
            n_rows * p,
            data.len()
        );
        let cols: Vec<Vec<f64>> = (0..p)
            .map(|j| (0..n_rows).map(|i| data[i * p + j]).collect())
            .collect();
        Self::from_columns(n_rows, &cols, names)
    }

    /// Treatment (dummy) coding of a hierarchical model over the table cells
    /// `active` (row `r` of the design is cell `active[r]`): the first level
    /// of each factor is the reference, interaction columns are products of
    /// dummies with the first factor varying fastest, named as R `glm` does
    /// (`AdmitRejected:GenderFemale`). Also returns the columns of each term.
    pub fn treatment(
        table: &ContingencyTable,
        model: &HierarchicalModel,
        active: &[usize],
    ) -> (Design, Vec<Vec<usize>>) {
        let dims = table.dims();
        let mut names = Vec::new();
        let mut blocks = Vec::new();
        let mut base = Vec::new();
        for t in &model.terms {
            base.push(names.len());
            let ncol: usize = t.iter().map(|&k| dims[k] - 1).product();
            let start = names.len();
            for c in 0..ncol {
                if t.is_empty() {
                    names.push("(Intercept)".to_string());
                    continue;
                }
                let mut rem = c;
                let mut parts = Vec::new();
                for &k in t {
                    let l = rem % (dims[k] - 1) + 1;
                    rem /= dims[k] - 1;
                    let f = &table.factors[k];
                    parts.push(format!("{}{}", f.name, f.levels[l]));
                }
                names.push(parts.join(":"));
            }
            blocks.push((start..names.len()).collect::<Vec<_>>());
        }
        let mut cols: Vec<Column> = vec![Column::default(); names.len()];
        for (r, &cell) in active.iter().enumerate() {
            let l = cell_levels(&dims, cell);
            for (ti, t) in model.terms.iter().enumerate() {
                if blocks[ti].is_empty() || t.iter().any(|&k| l[k] == 0) {
                    continue;
                }
                let (mut c, mut s) = (0, 1);
                for &k in t {
                    c += (l[k] - 1) * s;
                    s *= dims[k] - 1;
                }
                cols[base[ti] + c].rows.push(r as u32);
            }
        }
        (
            Design {
                n_rows: active.len(),
                names,
                cols,
            },
            blocks,
        )
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.cols.len()
    }

    /// `Xθ`.
    pub fn matvec(&self, theta: &[f64]) -> Vec<f64> {
        let mut eta = vec![0.0; self.n_rows];
        for (c, &t) in self.cols.iter().zip(theta) {
            if t == 0.0 {
                continue;
            }
            for (i, x) in c.iter() {
                eta[i] += x * t;
            }
        }
        eta
    }

    /// `Xᵀv`, columns in parallel.
    pub fn tmatvec(&self, v: &[f64]) -> Vec<f64> {
        self.cols.par_iter().map(|c| c.dot(v)).collect()
    }

    /// The row-wise copy.
    pub fn csr(&self) -> Csr {
        let mut count = vec![0usize; self.n_rows + 1];
        for c in &self.cols {
            for &r in &c.rows {
                count[r as usize + 1] += 1;
            }
        }
        for i in 0..self.n_rows {
            count[i + 1] += count[i];
        }
        let nnz = count[self.n_rows];
        let mut fill = count.clone();
        let mut idx = vec![0u32; nnz];
        let mut val = vec![0.0; nnz];
        for (j, c) in self.cols.iter().enumerate() {
            for (i, x) in c.iter() {
                idx[fill[i]] = j as u32;
                val[fill[i]] = x;
                fill[i] += 1;
            }
        }
        Csr {
            ptr: count,
            idx,
            val,
        }
    }

    /// `max_i Σ_{j∈B} |x_ij|` for a block of columns: the MM step size `s_B`.
    pub fn block_scale(&self, block: &[usize]) -> f64 {
        let mut acc = vec![0.0; self.n_rows];
        for &j in block {
            for (i, x) in self.cols[j].iter() {
                acc[i] += x.abs();
            }
        }
        acc.iter().fold(0.0, |m: f64, v| m.max(*v))
    }
}
