#!/usr/bin/env python3
"""Write the Parquet fixtures of caracal-core's reader tests with pyarrow
(`pip install pyarrow`), and the CSV twin the reader must agree with.

    python3 tools/make_parquet_fixtures.py

Writes crates/caracal-core/tests/fixtures/{table.csv, table_snappy.parquet,
table_zstd.parquet, table_gzip.parquet, nested.parquet} (a few KB in all).
"""
import pathlib
import pyarrow as pa
import pyarrow.parquet as pq

out = pathlib.Path(__file__).resolve().parent.parent / "crates/caracal-core/tests/fixtures"
out.mkdir(parents=True, exist_ok=True)
rows = [
    (1, "alpha", 1700000000000, 0.5, True),
    (2, "beta, with a comma", 1700000001000, -1.25, False),
    (3, "", 1700000002000, None, True),
    (40, "gamma", 1700000003000, 1e-3, False),
]
t = pa.table({
    "member_id": pa.array([r[0] for r in rows], pa.int64()),
    "item": pa.array([r[1] for r in rows], pa.string()),
    "ts": pa.array([r[2] for r in rows], pa.int64()),
    "score": pa.array([r[3] for r in rows], pa.float64()),
    "flag": pa.array([r[4] for r in rows], pa.bool_()),
})
for codec in ["snappy", "zstd", "gzip"]:
    pq.write_table(t, out / f"table_{codec}.parquet", compression=codec)
with open(out / "table.csv", "w") as f:
    f.write("member_id,item,ts,score,flag\n")
    for m, item, ts, score, flag in rows:
        item = f'"{item}"' if "," in item else item
        s = "" if score is None else repr(score)
        f.write(f"{m},{item},{ts},{s},{str(flag).lower()}\n")
nested = pa.table({"id": pa.array([1, 2]), "tags": pa.array([["a"], ["b", "c"]])})
pq.write_table(nested, out / "nested.parquet")
print("wrote", sorted(p.name for p in out.iterdir()))
