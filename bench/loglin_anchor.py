#!/usr/bin/env python3
"""Anchor timings for `caracal bench loglin`: statsmodels GLM (Poisson, IRLS)
and R `loglin` on the same generated table, with all two-way terms.

The table comes from the Rust side, so both see identical counts:

    target/release/caracal bench loglin --write-table /tmp/loglin6.csv
    python3 bench/loglin_anchor.py --table /tmp/loglin6.csv [--json]

(`--factors 5` on both commands gives a 10^5-cell table that statsmodels can
hold in memory.) statsmodels needs the dense treatment-coded design
(cells x params float64, and IRLS copies it); when that would not fit in
available memory, the statsmodels run is skipped and the reason reported
instead of swapping the machine to death. R runs only if `Rscript` is on PATH.
"""
import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def mem_available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def design(df, factors):
    """Treatment coding, first level (order of appearance) as reference, all two-way terms."""
    codes = []
    for f in factors:
        cat = pd.Categorical(df[f], categories=pd.unique(df[f]))
        codes.append((cat.codes.astype(np.int64), len(cat.categories)))
    n = len(df)
    cols = [np.ones(n)]
    dummies = []
    for c, k in codes:
        d = np.zeros((n, k - 1))
        m = c > 0
        d[np.nonzero(m)[0], c[m] - 1] = 1.0
        dummies.append(d)
        cols.append(d)
    for a, b in itertools.combinations(range(len(factors)), 2):
        da, db = dummies[a], dummies[b]
        cols.append((da[:, None, :] * db[:, :, None]).reshape(n, -1))
    return np.column_stack(cols)


def run_statsmodels(df, factors, reps):
    import statsmodels.api as sm

    n = len(df)
    p = 1 + sum(df[f].nunique() - 1 for f in factors) + sum(
        (df[a].nunique() - 1) * (df[b].nunique() - 1) for a, b in itertools.combinations(factors, 2)
    )
    need = 3 * n * p * 8
    avail = mem_available_bytes()
    if avail is not None and need > 0.7 * avail:
        return {
            "skipped": f"the dense design is {n} x {p} float64 = {n * p * 8 / 2**30:.1f} GiB and IRLS "
            f"copies it (~{need / 2**30:.1f} GiB needed, {avail / 2**30:.1f} GiB available)",
            "cells": n,
            "params": p,
        }
    X = design(df, factors)
    y = df["Freq"].to_numpy(dtype=float)
    times = []
    res = None
    for _ in range(reps):
        t = time.perf_counter()
        res = sm.GLM(y, X, family=sm.families.Poisson()).fit()
        times.append((time.perf_counter() - t) * 1e3)
    return {
        "ms_median": float(np.median(times)),
        "ms_all": times,
        "deviance": float(res.deviance),
        "pearson": float(res.pearson_chi2),
        "df": int(res.df_resid),
        "iterations": int(res.fit_history["iteration"]),
        "cells": n,
        "params": p,
        "threads_env": os.environ.get("OMP_NUM_THREADS"),
    }


R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
eps <- as.numeric(args[2]); reps <- as.integer(args[3])
fac <- setdiff(names(d), "Freq")
for (f in fac) d[[f]] <- factor(d[[f]], levels = unique(d[[f]]))
tab <- xtabs(as.formula(paste("Freq ~", paste(fac, collapse = "+"))), data = d)
margins <- combn(seq_along(fac), 2, simplify = FALSE)
ts <- numeric(reps)
for (r in seq_len(reps)) {
  ts[r] <- system.time(fit <- loglin(tab, margins, eps = eps, iter = 1000, print = FALSE))[["elapsed"]]
}
cat(sprintf("%.9f %.9f %d %s\n", fit$lrt, fit$pearson, fit$df, paste(ts * 1000, collapse = ",")))
"""


def run_r(path, eps, reps):
    if shutil.which("Rscript") is None:
        return {"skipped": "Rscript is not installed"}
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(R_SCRIPT)
        script = f.name
    try:
        out = subprocess.run(
            ["Rscript", "--vanilla", script, path, str(eps), str(reps)],
            check=True, capture_output=True, text=True,
        ).stdout.split()
    finally:
        os.unlink(script)
    ms = [float(x) for x in out[3].split(",")]
    return {
        "ms_median": float(np.median(ms)),
        "ms_all": ms,
        "deviance": float(out[0]),
        "pearson": float(out[1]),
        "df": int(out[2]),
        "eps_counts": eps,
        "version": subprocess.run(["Rscript", "--version"], capture_output=True, text=True).stderr.strip(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="long-format CSV written by `caracal bench loglin --write-table`")
    ap.add_argument("--eps", type=float, default=1e-3, help="R loglin eps (largest marginal deviation, counts)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--skip-statsmodels", action="store_true")
    ap.add_argument("--skip-r", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    df = pd.read_csv(a.table, dtype=str)
    df["Freq"] = df["Freq"].astype(float)
    factors = [c for c in df.columns if c != "Freq"]
    out = {"table": a.table, "cells": len(df)}
    if not a.skip_statsmodels:
        import statsmodels

        out["statsmodels"] = run_statsmodels(df, factors, a.reps)
        out["statsmodels"]["version"] = statsmodels.__version__
    if not a.skip_r:
        out["r_loglin"] = run_r(a.table, a.eps, a.reps)
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    sys.exit(main())
