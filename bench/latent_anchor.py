#!/usr/bin/env python3
"""Latent correlation of mixed data: caracal vs latentcor (PyPI), side by side.

For each size, draws a latent Gaussian sample (AR(1) correlation 0.5^|j-k|),
makes every other column binary (thresholds spread over [-1, 1]) and the rest
monotone transforms, writes the CSV, then times on the same machine:
- `caracal graph latent --data F --json` (its own `seconds`: estimation only,
  after the CSV is parsed);
- `latentcor.latentcor(X, tps, method="original")` (bridge inversion, the
  same estimator) and `method="approx"` (interpolation), both after loading.
Reports medians over --reps and the largest difference between the matrices.

Usage (approx's pickled tables load only with scipy < 1.12; without that pin
`approx` is reported as failed and `original` still runs):
  pip install latentcor "scipy==1.11.4" "numpy<2" "statsmodels<0.15"
  python3 bench/latent_anchor.py --caracal target/release/caracal \
      --sizes 400x50,1000x100 --reps 3 [--original-max-p 100]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np


def draw(n, p, seed):
    rng = np.random.default_rng(seed)
    idx = np.arange(p)
    sigma = 0.5 ** np.abs(idx[:, None] - idx[None, :])
    u = rng.multivariate_normal(np.zeros(p), sigma, size=n)
    x = np.empty_like(u)
    kinds = []
    for j in range(p):
        if j % 2 == 1:
            x[:, j] = (u[:, j] > -1.0 + 2.0 * (j / max(p - 1, 1))).astype(float)
            kinds.append("bin")
        else:
            x[:, j] = np.exp(u[:, j]) if j % 4 == 0 else u[:, j] ** 3
            kinds.append("con")
    return x, kinds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--caracal", default="target/release/caracal")
    ap.add_argument("--sizes", default="400x50,1000x100")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--original-max-p", type=int, default=100,
                    help="skip latentcor's method='original' above this p (it is slow)")
    a = ap.parse_args()
    import latentcor

    warnings.filterwarnings("ignore")
    rows = []
    for size in a.sizes.split(","):
        n, p = (int(v) for v in size.split("x"))
        x, kinds = draw(n, p, 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mixed.csv")
            np.savetxt(path, x, delimiter=",", header=",".join(f"v{j}" for j in range(p)),
                       comments="", fmt="%.17g")
            ours, ours_r = [], None
            for _ in range(a.reps):
                out = subprocess.run([a.caracal, "graph", "latent", "--data", path, "--json"],
                                     check=True, capture_output=True, text=True).stdout
                v = json.loads(out)
                ours.append(v["seconds"])
                ours_r = np.array(v["correlation"])
        row = {"n": n, "p": p, "caracal_s": statistics.median(ours)}
        for method in ["original", "approx"]:
            if method == "original" and p > a.original_max_p:
                continue
            times, r = [], None
            try:
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    res = latentcor.latentcor(x, tps=kinds, method=method, use_nearPD=True)
                    times.append(time.perf_counter() - t0)
                    r = np.asarray(res["R"] if isinstance(res, dict) else res[0])
            except Exception as e:  # approx's pickled tables need scipy < 1.12
                print(f"latentcor method={method} failed: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            row[f"latentcor_{method}_s"] = statistics.median(times)
            row[f"max_abs_diff_{method}"] = float(np.abs(r - ours_r).max())
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| n × p | caracal | latentcor original | latentcor approx | max diff (original / approx) |")
    print("|---|---|---|---|---|")
    for r in rows:
        def t(k):
            return f"{r[k] * 1e3:.1f} ms" if k in r else "not run"
        def d(k):
            return f"{r[k]:.1e}" if k in r else "–"

        def ratio(k):
            return f" ({r[k] / r['caracal_s']:.0f}×)" if k in r else ""
        print(f"| {r['n']} × {r['p']} | {t('caracal_s')} | {t('latentcor_original_s')}"
              f"{ratio('latentcor_original_s')} | {t('latentcor_approx_s')}{ratio('latentcor_approx_s')} | "
              f"{d('max_abs_diff_original')} / {d('max_abs_diff_approx')} |")


if __name__ == "__main__":
    sys.exit(main())
