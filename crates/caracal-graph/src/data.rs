//! A numeric data set: `n` rows (observations) by `p` named columns
//! (variables), checked once at the boundary.
//!
//! Missing values are not imputed: an empty cell, `NA` or `NaN` is an error
//! that names the row and column, so that no method silently works on a
//! pairwise-deleted covariance that may not be positive semi-definite.

use caracal_core::{bail, table::Table, Error, Result};
use std::path::Path;

/// Columns of numbers of equal length.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Column names, one per variable.
    pub names: Vec<String>,
    /// `cols[j][i]` is observation `i` of variable `j`.
    pub cols: Vec<Vec<f64>>,
}

impl Dataset {
    /// Build from named columns; errors on ragged, empty, non-finite or
    /// constant columns.
    pub fn new(names: Vec<String>, cols: Vec<Vec<f64>>) -> Result<Self> {
        if names.len() != cols.len() {
            bail!(
                "{} names for {} columns; give one name per column",
                names.len(),
                cols.len()
            );
        }
        if cols.len() < 2 {
            bail!(
                "a graph needs at least 2 variables (columns); got {}",
                cols.len()
            );
        }
        let n = cols[0].len();
        if n < 2 {
            bail!("a graph needs at least 2 observations (rows); got {n}");
        }
        for (name, c) in names.iter().zip(&cols) {
            if c.len() != n {
                bail!(
                    "column `{name}` has {} values but the first column has {n}",
                    c.len()
                );
            }
            if let Some(i) = c.iter().position(|v| !v.is_finite()) {
                bail!(
                    "row {}, column `{name}` is missing or not finite ({}); missing values are not \
                     supported: impute them or drop the row first",
                    i + 1,
                    c[i]
                );
            }
            if c.iter().all(|&v| v == c[0]) {
                bail!(
                    "column `{name}` is constant (every value is {}); drop it: a constant has no \
                     dependencies to learn",
                    c[0]
                );
            }
        }
        Ok(Dataset { names, cols })
    }

    /// Columns named `x1..xp`.
    pub fn from_columns(cols: Vec<Vec<f64>>) -> Result<Self> {
        let names = (1..=cols.len()).map(|j| format!("x{j}")).collect();
        Self::new(names, cols)
    }

    /// Every column of a table, parsed as numbers.
    pub fn from_table(t: &Table) -> Result<Self> {
        let mut cols = Vec::with_capacity(t.names.len());
        for (name, raw) in t.names.iter().zip(&t.columns) {
            let mut c = Vec::with_capacity(raw.len());
            for (r, v) in raw.iter().enumerate() {
                let missing =
                    v.is_empty() || v.eq_ignore_ascii_case("na") || v.eq_ignore_ascii_case("nan");
                let x = if missing { None } else { v.parse::<f64>().ok() };
                match x {
                    Some(x) if x.is_finite() => c.push(x),
                    _ if missing => {
                        return Err(Error::file(
                            &t.source,
                            format!(
                                "row {}, column `{name}` is missing; missing values are not \
                                 supported: impute them or drop the row first",
                                r + 2
                            ),
                        ))
                    }
                    _ => {
                        return Err(Error::file(
                            &t.source,
                            format!(
                                "row {}, column `{name}`: `{v}` is not a finite number",
                                r + 2
                            ),
                        ))
                    }
                }
            }
            cols.push(c);
        }
        Self::new(t.names.clone(), cols).map_err(|e| Error::file(&t.source, e.to_string()))
    }

    /// Read a CSV file with a header row, every column numeric.
    pub fn read_csv(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_table(&Table::read(path)?)
    }

    /// The data as CSV text with a header row.
    pub fn to_csv(&self) -> String {
        let mut s = self.names.join(",");
        s.push('\n');
        for i in 0..self.n() {
            let row: Vec<String> = self.cols.iter().map(|c| format!("{}", c[i])).collect();
            s.push_str(&row.join(","));
            s.push('\n');
        }
        s
    }

    /// Number of observations.
    pub fn n(&self) -> usize {
        self.cols[0].len()
    }

    /// Number of variables.
    pub fn p(&self) -> usize {
        self.cols.len()
    }

    /// The rows `idx` (with repetition allowed), for subsampling; constant
    /// columns in the subsample are not rejected here.
    pub fn subset_rows(&self, idx: &[usize]) -> Dataset {
        Dataset {
            names: self.names.clone(),
            cols: self
                .cols
                .iter()
                .map(|c| idx.iter().map(|&i| c[i]).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_errors_for_constant_missing_and_ragged() {
        let e = Dataset::from_columns(vec![vec![1.0, 2.0], vec![3.0, 3.0]]).unwrap_err();
        assert!(e.to_string().contains("column `x2` is constant"), "{e}");
        let t = Table::from_reader("a,b\n1,2\n,3\n4,5\n".as_bytes(), "m.csv").unwrap();
        let e = Dataset::from_table(&t).unwrap_err().to_string();
        assert!(
            e.contains("row 3, column `a` is missing") && e.contains("impute"),
            "{e}"
        );
        let e = Dataset::from_columns(vec![vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert!(e.to_string().contains("has 1 values"), "{e}");
    }
}
