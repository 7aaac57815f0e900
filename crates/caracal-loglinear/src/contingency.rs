//! A multi-way contingency table: factors with named levels, one count per
//! cell, and an optional `start` (base measure) whose zeros are structural.
//!
//! Cells are stored row-major: the first factor varies slowest, the last
//! fastest, so cell `(i_0, …, i_{d-1})` sits at `Σ_k i_k · stride_k`.

use caracal_core::table::Table;
use caracal_core::{bail, ensure, Error, Result};
use std::collections::HashMap;

/// One classifying factor of a table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Factor {
    /// Column name, e.g. `Admit`.
    pub name: String,
    /// Level labels in table order; the first is the reference level.
    pub levels: Vec<String>,
}

/// Counts over the cross-classification of some factors.
#[derive(Clone, Debug)]
pub struct ContingencyTable {
    /// The factors, slowest-varying first.
    pub factors: Vec<Factor>,
    /// One count per cell, row-major.
    pub counts: Vec<f64>,
    /// Base measure per cell (`R loglin`'s `start`); a zero marks a structural zero.
    pub start: Vec<f64>,
    /// For a table read from long format: the cell of every input row, in input order.
    pub row_cells: Option<Vec<usize>>,
}

impl ContingencyTable {
    /// A table from factors and row-major counts, with `start = 1` everywhere.
    pub fn new(factors: Vec<Factor>, counts: Vec<f64>) -> Result<Self> {
        ensure!(
            !factors.is_empty(),
            "a contingency table needs at least one factor"
        );
        for f in &factors {
            ensure!(
                !f.levels.is_empty(),
                "factor `{}` has no levels; every factor needs at least one",
                f.name
            );
        }
        let n: usize = factors.iter().map(|f| f.levels.len()).product();
        ensure!(
            counts.len() == n,
            "the table has {n} cells but {} counts were given",
            counts.len()
        );
        for (i, &c) in counts.iter().enumerate() {
            ensure!(
                c.is_finite() && c >= 0.0,
                "count {c} in cell {} is negative or not finite; counts must be non-negative numbers",
                describe_cell(&factors, i)
            );
        }
        Ok(ContingencyTable {
            factors,
            counts,
            start: vec![1.0; n],
            row_cells: None,
        })
    }

    /// Replace the base measure; zeros mark structural zeros, which must hold no counts.
    pub fn with_start(mut self, start: Vec<f64>) -> Result<Self> {
        ensure!(
            start.len() == self.counts.len(),
            "`start` has {} values but the table has {} cells",
            start.len(),
            self.counts.len()
        );
        for (i, (&s, &y)) in start.iter().zip(&self.counts).enumerate() {
            ensure!(
                s.is_finite() && s >= 0.0,
                "start value {s} in cell {} is negative or not finite",
                self.describe(i)
            );
            ensure!(
                s > 0.0 || y == 0.0,
                "cell {} is a structural zero (start 0) but has count {y}; give it a positive start or a zero count",
                self.describe(i)
            );
        }
        self.start = start;
        Ok(self)
    }

    /// A table from a long-format CSV: one row per cell, factor columns plus a
    /// count column (and optionally a `start` column). Levels are kept in order
    /// of first appearance; cells that no row mentions get count 0.
    pub fn from_long(
        t: &Table,
        counts: &str,
        start: Option<&str>,
        factor_cols: Option<&[String]>,
    ) -> Result<Self> {
        let y = t.f64s(counts)?;
        let s = match start {
            Some(c) => Some(t.f64s(c)?),
            None => None,
        };
        let names: Vec<String> = match factor_cols {
            Some(f) => f.to_vec(),
            None => t
                .names
                .iter()
                .filter(|n| n.as_str() != counts && Some(n.as_str()) != start)
                .cloned()
                .collect(),
        };
        ensure!(
            !names.is_empty(),
            "{}: no factor columns besides the count column `{counts}`",
            t.source.display()
        );
        ensure!(
            t.n_rows() > 0,
            "{}: the table has no rows",
            t.source.display()
        );
        let mut factors = Vec::new();
        let mut codes: Vec<Vec<usize>> = Vec::new();
        for name in &names {
            let col = t.text(name)?;
            let mut map: HashMap<&str, usize> = HashMap::new();
            let mut levels = Vec::new();
            let mut c = Vec::with_capacity(col.len());
            for v in col {
                let k = *map.entry(v.as_str()).or_insert_with(|| {
                    levels.push(v.clone());
                    levels.len() - 1
                });
                c.push(k);
            }
            factors.push(Factor {
                name: name.clone(),
                levels,
            });
            codes.push(c);
        }
        let dims: Vec<usize> = factors.iter().map(|f| f.levels.len()).collect();
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = match n {
            Some(n) if n <= 1 << 31 => n,
            _ => bail!(
                "{}: the factors span more than 2^31 cells; use fewer factors or levels",
                t.source.display()
            ),
        };
        let strides = strides(&dims);
        let mut cells = vec![0.0; n];
        let mut seen = vec![false; n];
        let mut st = vec![1.0; n];
        let mut row_cells = Vec::with_capacity(y.len());
        for r in 0..y.len() {
            let cell: usize = (0..dims.len()).map(|k| codes[k][r] * strides[k]).sum();
            if seen[cell] {
                return Err(Error::file(
                    &t.source,
                    format!(
                        "row {} repeats the cell {} of an earlier row; aggregate the counts to one row per cell",
                        r + 2,
                        describe_cell(&factors, cell)
                    ),
                ));
            }
            if !(y[r].is_finite() && y[r] >= 0.0) {
                return Err(Error::file(
                    &t.source,
                    format!(
                        "row {}: count {} in column `{counts}` is negative; counts must be non-negative",
                        r + 2,
                        y[r]
                    ),
                ));
            }
            seen[cell] = true;
            cells[cell] = y[r];
            if let Some(s) = &s {
                st[cell] = s[r];
            }
            row_cells.push(cell);
        }
        let mut tab = ContingencyTable::new(factors, cells)?.with_start(st)?;
        tab.row_cells = Some(row_cells);
        Ok(tab)
    }

    /// Number of levels of each factor.
    pub fn dims(&self) -> Vec<usize> {
        self.factors.iter().map(|f| f.levels.len()).collect()
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.counts.len()
    }

    /// Index of the factor called `name`.
    pub fn factor_index(&self, name: &str) -> Option<usize> {
        self.factors.iter().position(|f| f.name == name)
    }

    /// `A=a, B=b` for cell `i`.
    pub fn describe(&self, i: usize) -> String {
        describe_cell(&self.factors, i)
    }

    /// The table summed over every factor not in `keep` (given by name, in table order).
    pub fn collapse(&self, keep: &[&str]) -> Result<ContingencyTable> {
        let mut idx = Vec::new();
        for k in keep {
            match self.factor_index(k) {
                Some(i) => idx.push(i),
                None => bail!(
                    "the table has no factor `{k}`; it has {}",
                    self.factor_names().join(", ")
                ),
            }
        }
        idx.sort_unstable();
        idx.dedup();
        let plan = crate::margins::MarginPlan::new(&self.dims(), &idx);
        let mut out = vec![0.0; plan.size()];
        plan.sum(&self.counts, &mut out);
        ContingencyTable::new(idx.iter().map(|&i| self.factors[i].clone()).collect(), out)
    }

    /// Factor names in table order.
    pub fn factor_names(&self) -> Vec<String> {
        self.factors.iter().map(|f| f.name.clone()).collect()
    }
}

/// Row-major strides for `dims`.
pub fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// Level index of every factor for cell `i`.
pub fn cell_levels(dims: &[usize], mut i: usize) -> Vec<usize> {
    let mut l = vec![0; dims.len()];
    for k in (0..dims.len()).rev() {
        l[k] = i % dims[k];
        i /= dims[k];
    }
    l
}

fn describe_cell(factors: &[Factor], i: usize) -> String {
    let dims: Vec<usize> = factors.iter().map(|f| f.levels.len()).collect();
    let l = cell_levels(&dims, i);
    factors
        .iter()
        .zip(l)
        .map(|(f, l)| format!("{}={}", f.name, f.levels[l]))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_format_round_trip_and_errors() {
        let csv = "A,B,n\nx,u,1\ny,u,2\nx,v,3\n";
        let t = Table::from_reader(csv.as_bytes(), "t.csv").unwrap();
        let tab = ContingencyTable::from_long(&t, "n", None, None).unwrap();
        assert_eq!(tab.dims(), vec![2, 2]);
        assert_eq!(tab.counts, vec![1.0, 3.0, 2.0, 0.0]);
        assert_eq!(tab.row_cells.as_deref(), Some(&[0, 2, 1][..]));
        let bad = Table::from_reader("A,n\nx,-1\n".as_bytes(), "b.csv").unwrap();
        let e = ContingencyTable::from_long(&bad, "n", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let dup = Table::from_reader("A,n\nx,1\nx,2\n".as_bytes(), "d.csv").unwrap();
        let e = ContingencyTable::from_long(&dup, "n", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("repeats"), "{e}");
    }
}
