//! Journeys and conversions stored as Parquet (written by pyarrow, zstd,
//! from the CSV files of `caracal attribution simulate --members 60 --seed 5`)
//! read into the same journeys as the CSV files.

use caracal_attribution::read::{read_journeys, JourneyOptions};
use std::path::PathBuf;

#[test]
fn parquet_journeys_equal_csv_journeys() {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let opts = JourneyOptions::default();
    let (csv, csv_report) =
        read_journeys(d.join("journeys.csv"), d.join("conversions.csv"), &opts).unwrap();
    let (pq, pq_report) = read_journeys(
        d.join("journeys.parquet"),
        d.join("conversions.parquet"),
        &opts,
    )
    .unwrap();
    assert!(!csv.journeys.is_empty());
    assert_eq!(pq, csv);
    assert_eq!(pq_report, csv_report);
}
