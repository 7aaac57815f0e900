#!/usr/bin/env bash
# Fetch the aggregated-paths data shipped in the PyPI package `mta` 0.0.9
# (mta/data/data.csv.gz: 10,000 paths, 12 channels) into .cache/mta/data.csv
# for crates/caracal-attribution/tests/mta.rs. Idempotent; prints a message
# and exits 0 when offline or when pip is missing (the test then skips).
set -uo pipefail
cd "$(dirname "$0")/.."
out=.cache/mta/data.csv
if [ -s "$out" ]; then
  echo "fetch_mta: $out already present"
  exit 0
fi
mkdir -p .cache/mta
pip=$(command -v pip || command -v pip3 || true)
if [ -z "$pip" ]; then
  echo "fetch_mta: pip not found; skipping (the mta real-data test will be skipped)"
  exit 0
fi
if ! "$pip" download --no-deps mta==0.0.9 -d .cache/mta >/dev/null 2>&1; then
  echo "fetch_mta: could not download mta==0.0.9 (offline?); skipping (the mta real-data test will be skipped)"
  exit 0
fi
pkg=$(ls .cache/mta/mta-0.0.9* 2>/dev/null | head -n1)
if [ -z "$pkg" ]; then
  echo "fetch_mta: no mta 0.0.9 archive after download; skipping"
  exit 0
fi
python3 - "$pkg" "$out" <<'PY' || { echo "fetch_mta: could not unpack $pkg; skipping"; exit 0; }
import gzip, sys, tarfile, zipfile
pkg, out = sys.argv[1], sys.argv[2]
if pkg.endswith(".whl") or pkg.endswith(".zip"):
    z = zipfile.ZipFile(pkg)
    name = next(n for n in z.namelist() if n.endswith("mta/data/data.csv.gz"))
    raw = z.read(name)
else:
    t = tarfile.open(pkg)
    m = next(m for m in t.getmembers() if m.name.endswith("mta/data/data.csv.gz"))
    raw = t.extractfile(m).read()
open(out + ".tmp", "wb").write(gzip.decompress(raw))
import os
os.replace(out + ".tmp", out)
PY
echo "fetch_mta: wrote $out"
