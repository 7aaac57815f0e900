//! A feed stored as Parquet (written by pyarrow from the CSV files of
//! `caracal rank simulate --members 12 --items 40 --history 6 --sessions 2
//! --candidates 4 --seed 3`) reads into the same feed as the CSV files.

use caracal_rank::data::Feed;
use std::path::PathBuf;

#[test]
fn parquet_feed_equals_csv_feed() {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feed");
    let csv = Feed::read_csv(d.join("csv")).unwrap();
    let pq = Feed::read_csv(d.join("parquet")).unwrap();
    assert_eq!(csv.members.len(), 12);
    assert_eq!(csv.sessions.len(), 24);
    assert_eq!(pq, csv);
}
