//! A small column-oriented table read from CSV or Parquet, with typed
//! accessors whose errors name the file, the column and the row.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Columns of text as read from a file with a header row.
#[derive(Clone, Debug)]
pub struct Table {
    /// Where the table came from (for messages).
    pub source: PathBuf,
    /// Column names in file order.
    pub names: Vec<String>,
    /// `columns[c][r]` is the raw text of row `r` in column `c`.
    pub columns: Vec<Vec<String>>,
}

impl Table {
    /// Read a table from `path`: Parquet when the name ends in `.parquet`
    /// or `.pq`, CSV with a header row otherwise.
    pub fn read(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq") => {
                crate::parquet_read::read_parquet(path)
            }
            _ => Self::read_csv(path),
        }
    }

    /// Read a CSV file with a header row.
    pub fn read_csv(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
        Self::from_reader(file, path)
    }

    /// Parse CSV text with a header row; `source` names it in messages.
    pub fn from_reader(r: impl std::io::Read, source: impl AsRef<Path>) -> Result<Table> {
        let source = source.as_ref().to_path_buf();
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(r);
        let names: Vec<String> = rdr
            .headers()
            .map_err(|e| Error::file(&source, format!("cannot read the header row: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            return Err(Error::file(&source, "has no header row"));
        }
        let mut columns = vec![Vec::new(); names.len()];
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| Error::file(&source, format!("row {}: {e}", i + 2)))?;
            for (c, v) in rec.iter().enumerate() {
                columns[c].push(v.to_string());
            }
        }
        Ok(Table {
            source,
            names,
            columns,
        })
    }

    /// Number of data rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// Index of column `name`, or an error that lists the columns present.
    pub fn col_index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::file(
                &self.source,
                format!(
                    "column `{name}` is missing; expected one of: {}",
                    self.names.join(", ")
                ),
            )
        })
    }

    /// The raw text of column `name`.
    pub fn text(&self, name: &str) -> Result<&[String]> {
        Ok(&self.columns[self.col_index(name)?])
    }

    /// Column `name` parsed as numbers; empty cells and `NA` are errors.
    pub fn f64s(&self, name: &str) -> Result<Vec<f64>> {
        let c = self.col_index(name)?;
        self.columns[c]
            .iter()
            .enumerate()
            .map(|(r, v)| {
                v.parse::<f64>().map_err(|_| {
                    Error::file(
                        &self.source,
                        format!("row {}, column `{name}`: `{v}` is not a number", r + 2),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_clear_errors() {
        let t = Table::from_reader("a,b\n1,x\n2.5,y\n".as_bytes(), "t.csv").unwrap();
        assert_eq!(t.n_rows(), 2);
        assert_eq!(t.f64s("a").unwrap(), vec![1.0, 2.5]);
        let e = t.f64s("b").unwrap_err().to_string();
        assert!(e.contains("row 2, column `b`"), "{e}");
        let e = t.text("c").unwrap_err().to_string();
        assert!(
            e.contains("column `c` is missing") && e.contains("a, b"),
            "{e}"
        );
    }
}
