#!/usr/bin/env python3
"""Anchor for `caracal bench graph`: time R glasso and scikit-learn's
graphical_lasso on the very matrices caracal uses, at the same tolerance.

    target/release/caracal bench graph --write-s /tmp/graph_s --json > /tmp/ours.json
    python3 bench/graph_anchor.py --dir /tmp/graph_s --ours /tmp/ours.json

R: glasso(S, rho, thr = tol, penalize.diagonal = TRUE / FALSE), timed inside R
(system.time, median of reps). sklearn: graphical_lasso(S, alpha, mode="cd",
tol=tol, max_iter=100) (its tolerance is a dual gap, not R's thr; noted).
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np


def time_r(path, lam, tol, pen, reps):
    code = f"""
suppressMessages(library(glasso))
S <- as.matrix(read.csv('{path}', header = FALSE))
ts <- c(); g <- NULL
for (k in 1:{reps + 1}) {{
  t <- system.time(g <- glasso(S, {lam}, thr = {tol}, penalize.diagonal = {'TRUE' if pen else 'FALSE'}))[['elapsed']]
  if (k > 1) ts <- c(ts, t)
}}
wi <- g$wi; e <- sum(wi[upper.tri(wi)] != 0)
cat(median(ts) * 1000, e, g$niter, '\\n')
"""
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(float(out[1])), int(float(out[2]))


def time_sklearn(S, lam, tol, reps):
    from sklearn.covariance import graphical_lasso
    ts = []
    prec = None
    for k in range(reps + 1):
        t = time.perf_counter()
        try:
            _, prec = graphical_lasso(S, alpha=lam, mode="cd", tol=tol, max_iter=100)
        except Exception as e:  # noqa: BLE001
            return float("nan"), -1, str(e)
        if k:
            ts.append((time.perf_counter() - t) * 1e3)
    e = int(np.sum(np.triu(prec, 1) != 0))
    return statistics.median(ts), e, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ours", help="JSON from caracal bench graph --json")
    ap.add_argument("--lambda", dest="lam", type=float, default=0.1)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sklearn-max-p", type=int, default=1000)
    a = ap.parse_args()
    ours = {}
    if a.ours:
        for r in json.load(open(a.ours))["results"]:
            ours[(r["p"], r["variant"])] = r
    rows = []
    for f in sorted(os.listdir(a.dir), key=lambda s: int(s[2:-4])):
        p = int(f[2:-4])
        path = os.path.join(a.dir, f)
        S = np.loadtxt(path, delimiter=",")
        for pen in (True, False):
            variant = "penalized" if pen else "unpenalized"
            r_ms, r_e, r_it = time_r(path, a.lam, a.tol, pen, a.reps)
            row = {"p": p, "variant": variant, "R_ms": r_ms, "R_edges": r_e, "R_iter": r_it}
            if not pen and p <= a.sklearn_max_p:
                sk_ms, sk_e, err = time_sklearn(S, a.lam, a.tol, a.reps)
                row.update({"sklearn_ms": sk_ms, "sklearn_edges": sk_e, "sklearn_error": err})
            o = ours.get((p, variant))
            if o:
                row.update({"ours_ms": o["ms_median"], "ours_edges": o["edges"], "ours_iter": o["iterations"]})
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"anchor": "graph", "rows": rows}))


if __name__ == "__main__":
    sys.exit(main())
