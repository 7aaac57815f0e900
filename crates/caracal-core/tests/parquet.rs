//! Parquet files written by pyarrow (tools/make_parquet_fixtures.py) read
//! into the same table as their CSV twin, for every compression codec; a
//! nested column and a non-Parquet file are one clear error each.

use caracal_core::table::Table;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn parquet_reads_like_its_csv_twin_for_every_codec() {
    let csv = Table::read(fixture("table.csv")).unwrap();
    assert_eq!(csv.n_rows(), 4);
    for codec in ["snappy", "zstd", "gzip"] {
        let pq = Table::read(fixture(&format!("table_{codec}.parquet"))).unwrap();
        assert_eq!(pq.names, csv.names, "{codec}");
        assert_eq!(pq.columns, csv.columns, "{codec}");
        // The typed accessors work the same on both.
        assert_eq!(pq.f64s("ts").unwrap(), csv.f64s("ts").unwrap());
    }
    let pq = Table::read(fixture("table_snappy.parquet")).unwrap();
    assert_eq!(pq.text("item").unwrap()[1], "beta, with a comma");
    assert_eq!(
        pq.text("score").unwrap()[2],
        "",
        "a null reads as an empty cell"
    );
}

#[test]
fn nested_columns_and_other_files_are_clear_errors() {
    let e = Table::read(fixture("nested.parquet"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nested.parquet") && e.contains("`tags` is nested"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("caracal-pq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("fake.parquet");
    std::fs::write(&fake, "member_id,item\n1,a\n").unwrap();
    let e = Table::read(&fake).unwrap_err().to_string();
    assert!(
        e.contains("fake.parquet") && e.contains("not a readable Parquet file"),
        "{e}"
    );
    let e = Table::read(dir.join("missing.parquet"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot open"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
