#!/usr/bin/env python3
"""Oracle values for caracal-graph's rank-based latent correlation.

Writes `crates/caracal-graph/tests/data/latent_mixed.csv` (a mixed
binary/continuous data set drawn here) and prints two oracles for it:

1. `latentcor` (PyPI, Yoon, Müller & Gaynanova 2021), `method="original"`:
   the published implementation of Fan, Liu, Ning & Zou (2017). Its bivariate
   normal CDF is scipy's, accurate to about 1e-5, so agreement is checked at
   that level.
2. An independent high-precision evaluation of the same estimator: Kendall's
   tau-a by brute force over all pairs, the bridge functions through Owen's T
   (scipy.special.owens_t, not the Plackett integral caracal uses), inverted
   with brentq at xtol 1e-15.

Usage: python3 tools/make_latent_oracle.py   (needs numpy, scipy; latentcor
optional: pip install latentcor)
"""
import math
import os
import sys

import numpy as np
from scipy import optimize, special

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "caracal-graph", "tests", "data")


def pnorm(x):
    return 0.5 * special.erfc(-x / math.sqrt(2.0))


def bvn(h, k, r):
    """Phi2(h, k; r) by Owen's T (Owen 1956, eq. 2.1)."""
    if r == 0.0:
        return pnorm(h) * pnorm(k)
    if h == 0.0 and k == 0.0:
        return 0.25 + math.asin(r) / (2.0 * math.pi)
    s = math.sqrt(1.0 - r * r)

    def t(x, y):
        # T(x, (y - r x) / (x s)), with x == 0 read as the limit.
        if x == 0.0:
            return math.copysign(0.25, y) if y != 0.0 else 0.0
        return special.owens_t(x, (y - r * x) / (x * s))

    corr = 0.5 if (h * k < 0.0 or (h * k == 0.0 and h + k < 0.0)) else 0.0
    return 0.5 * pnorm(h) + 0.5 * pnorm(k) - t(h, k) - t(k, h) - corr


def tau_a(x, y):
    n = len(x)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    return (dx * dy).sum() / (n * (n - 1))


def bridge(kind_a, kind_b, da, db, r):
    if kind_a == "con" and kind_b == "con":
        return 2.0 / math.pi * math.asin(r)
    if kind_a == "bin" and kind_b == "bin":
        return 2.0 * (bvn(da, db, r) - pnorm(da) * pnorm(db))
    d = da if kind_a == "bin" else db
    return 4.0 * bvn(d, 0.0, r / math.sqrt(2.0)) - 2.0 * pnorm(d)


def oracle(x, kinds):
    n, p = x.shape
    delta = [None] * p
    for j in range(p):
        if kinds[j] == "bin":
            delta[j] = special.ndtri(np.mean(x[:, j] == x[:, j].min()))
    k = np.eye(p)
    r = np.eye(p)
    for a in range(p):
        for b in range(a):
            t = tau_a(x[:, a], x[:, b])
            k[a, b] = k[b, a] = t
            f = lambda rho: bridge(kinds[a], kinds[b], delta[a], delta[b], rho) - t
            lo, hi = -0.99, 0.99
            if f(lo) >= 0.0:
                v = lo
            elif f(hi) <= 0.0:
                v = hi
            else:
                v = optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
            r[a, b] = r[b, a] = v
    return k, r


def write_csv(name, x):
    """Columns v1..vp, every value exactly as a Python float prints it."""
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        f.write(",".join(f"v{j + 1}" for j in range(x.shape[1])) + "\n")
        for row in x:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    print(f"wrote {path}")


def main():
    rng = np.random.default_rng(20261127)
    n, p = 120, 6
    # A chain-plus-one latent correlation.
    sigma = np.eye(p)
    for j in range(p - 1):
        sigma[j, j + 1] = sigma[j + 1, j] = 0.45
    sigma[0, 5] = sigma[5, 0] = -0.3
    u = rng.multivariate_normal(np.zeros(p), sigma, size=n)
    x = np.empty_like(u)
    kinds = ["con", "bin", "con", "bin", "con", "bin"]
    x[:, 0] = u[:, 0]
    x[:, 1] = (u[:, 1] > 0.3).astype(float)
    x[:, 2] = np.exp(u[:, 2])  # a monotone map: the latent correlation ignores it
    x[:, 3] = (u[:, 3] > -0.5).astype(float) * 3.0 + 2.0  # levels 2 and 5
    x[:, 4] = u[:, 4] ** 3
    x[:, 5] = (u[:, 5] > 0.8).astype(float)
    write_csv("latent_mixed.csv", x)
    k, r = oracle(x, kinds)
    np.set_printoptions(precision=12, suppress=True, linewidth=200)
    print("kendall tau-a:\n", k)
    print("latent correlation (pointwise, high precision):\n", r)
    print("min eigenvalue:", np.linalg.eigvalsh(r).min())
    try:
        import latentcor
    except ImportError:
        print("latentcor not installed; skipping the package oracle", file=sys.stderr)
        return
    x01 = x.copy()
    for j in range(p):
        if kinds[j] == "bin":
            x01[:, j] = (x[:, j] != x[:, j].min()).astype(float)
    out = latentcor.latentcor(x01, tps=kinds, method="original", use_nearPD=False, tol=1e-10)
    rp = np.asarray(out["Rpointwise"] if isinstance(out, dict) else out[1])
    print("latentcor original Rpointwise:\n", rp)
    print("max |latentcor - high precision|:", np.abs(rp - r).max())
    indefinite(latentcor)


def higham(a, tol=1e-15):
    """Higham (2002) alternating projections, W = I, to convergence."""
    y, ds = a.copy(), np.zeros_like(a)
    for _ in range(100000):
        r = y - ds
        w, v = np.linalg.eigh(r)
        x = (v * np.maximum(w, 0.0)) @ v.T
        ds = x - r
        nxt = x.copy()
        np.fill_diagonal(nxt, 1.0)
        done = np.linalg.norm(nxt - y) / np.linalg.norm(nxt) < tol
        y = nxt
        if done:
            break
    return y


def indefinite(latentcor):
    """A small sample whose pointwise latent correlation is indefinite."""
    rng = np.random.default_rng(0)
    n, p = 14, 5
    sigma = np.full((p, p), 0.6)
    np.fill_diagonal(sigma, 1.0)
    u = rng.multivariate_normal(np.zeros(p), sigma, size=n)
    x = u.copy()
    kinds = ["con", "bin", "con", "bin", "bin"]
    for j, kind in enumerate(kinds):
        if kind == "bin":
            x[:, j] = (u[:, j] > 0.2 * j - 0.3).astype(float)
    write_csv("latent_indefinite.csv", x)
    _, r = oracle(x, kinds)
    print("pointwise min eigenvalue:", np.linalg.eigvalsh(r).min())
    h = 0.999 * higham(r)
    np.fill_diagonal(h, 1.0)
    print("Higham nearest, shrunk by nu = 0.001:", repr(h.tolist()))
    print("its Frobenius distance before shrinking:", np.linalg.norm(higham(r) - r))
    out = latentcor.latentcor(x, tps=kinds, method="original", use_nearPD=True, tol=1e-10)
    rl = np.asarray(out["R"] if isinstance(out, dict) else out[0])
    print("latentcor R (statsmodels corr_nearest, then shrunk):", repr(rl.tolist()))
    print("its Frobenius distance before shrinking:",
          np.linalg.norm((rl - 0.001 * np.eye(p)) / 0.999 - r))


if __name__ == "__main__":
    main()
