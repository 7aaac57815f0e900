//! Reading a flat Parquet file into a [`Table`], so that every input that
//! takes CSV also takes Parquet (files written by pandas, pyarrow, polars or
//! Spark: snappy, zstd, gzip or uncompressed).
//!
//! Values become the text a CSV would hold: integers and floats in Rust's
//! shortest round-trip form, booleans as `true`/`false`, strings as is,
//! nulls as the empty string, dates as days and timestamps as ms/µs since
//! the Unix epoch. Nested columns (lists, maps, structs) are an error.

use crate::table::Table;
use crate::{Error, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::path::Path;

fn text(f: &Field) -> Option<String> {
    Some(match f {
        Field::Null => String::new(),
        Field::Bool(v) => v.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float16(v) => f32::from(*v).to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => String::from_utf8_lossy(b.data()).into_owned(),
        Field::Date(v) => v.to_string(),
        Field::TimeMillis(v) => v.to_string(),
        Field::TimeMicros(v) => v.to_string(),
        Field::TimestampMillis(v) => v.to_string(),
        Field::TimestampMicros(v) => v.to_string(),
        Field::Decimal(_) => f.to_string(),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => return None,
    })
}

/// Read a Parquet file into a [`Table`] of text columns.
pub fn read_parquet(path: &Path) -> Result<Table> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| Error::file(path, format!("is not a readable Parquet file ({e})")))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let root = schema.root_schema();
    let names: Vec<String> = root
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    if names.is_empty() {
        return Err(Error::file(path, "has no columns"));
    }
    if let Some(f) = root.get_fields().iter().find(|f| f.is_group()) {
        return Err(Error::file(
            path,
            format!(
                "column `{}` is nested (a list, map or struct); only flat columns can be read",
                f.name()
            ),
        ));
    }
    let mut columns = vec![Vec::new(); names.len()];
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| Error::file(path, format!("cannot read rows ({e})")))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| Error::file(path, format!("row {}: {e}", i + 1)))?;
        for (c, (name, field)) in row.get_column_iter().enumerate() {
            let v = text(field).ok_or_else(|| {
                Error::file(
                    path,
                    format!(
                        "row {}: column `{name}` is nested; only flat columns can be read",
                        i + 1
                    ),
                )
            })?;
            let col = columns.get_mut(c).ok_or_else(|| {
                Error::file(
                    path,
                    format!(
                        "row {} has more columns than the schema's {}",
                        i + 1,
                        names.len()
                    ),
                )
            })?;
            col.push(v);
        }
    }
    Ok(Table {
        source: path.to_path_buf(),
        names,
        columns,
    })
}
