#!/usr/bin/env python3
"""PyTorch CPU eager anchor for `caracal bench kernels`.

Times forward+backward of each op in plain PyTorch eager (the composition
that Hugging Face models use) on the same shapes and thread count as
`caracal bench kernels --scale full` (or `--scale medium`: CE and FLCE at BT=1024), and prints JSON rows with the same
fields: op, shape, impl, ms_median, peak_bytes.

Peak bytes: each op runs in a fresh child process; peak_bytes is the child's
peak RSS minus its RSS once the inputs exist (the extra memory one
forward+backward needs).

Install:  pip install torch numpy
Run:      python3 bench/torch_kernels.py --threads 2 [--scale medium|small] [--reps 5] [--ops swiglu,ce]
"""
import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time


def shapes(scale):
    full = scale in ("full", "medium")
    bt = 4096 if scale == "full" else 1024
    return {
        "flce": (bt, 2048, 128256) if full else (512, 512, 32000),
        "ce": (bt, 128256) if full else (512, 32000),
        "rms_norm": (8192, 4096) if full else (1024, 1024),
        "layer_norm": (8192, 4096) if full else (1024, 1024),
        "swiglu": (8192, 11008) if full else (1024, 2816),
        "geglu": (8192, 11008) if full else (1024, 2816),
        "rope": (4, 32, 8, 1024, 128) if full else (1, 8, 2, 256, 64),
        "jsd": (4096, 32000) if full else (512, 8000),
        "kl_div": (4096, 32000) if full else (512, 8000),
    }


def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def make(op, shape):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)

    def rn(*s, grad=True):
        return torch.randn(*s, generator=g).requires_grad_(grad)

    if op == "flce":
        bt, h, v = shape
        x, w = rn(bt, h), rn(v, h) * 0.02
        w = w.detach().requires_grad_(True)
        y = torch.randint(0, v, (bt,), generator=g)
        return lambda: F.cross_entropy(x @ w.t(), y).backward()
    if op == "ce":
        n, v = shape
        z = rn(n, v)
        y = torch.randint(0, v, (n,), generator=g)
        return lambda: F.cross_entropy(z, y).backward()
    if op == "rms_norm":
        n, h = shape
        x, w = rn(n, h), rn(h)

        def f():
            # Hugging Face LlamaRMSNorm, eager.
            var = x.pow(2).mean(-1, keepdim=True)
            (w * (x * torch.rsqrt(var + 1e-6))).sum().backward()

        return f
    if op == "layer_norm":
        n, h = shape
        x, w, b = rn(n, h), rn(h), rn(h)
        return lambda: F.layer_norm(x, (h,), w, b).sum().backward()
    if op == "swiglu":
        a, b = rn(*shape), rn(*shape)
        return lambda: (F.silu(a) * b).sum().backward()
    if op == "geglu":
        a, b = rn(*shape), rn(*shape)
        return lambda: (F.gelu(a, approximate="tanh") * b).sum().backward()
    if op == "rope":
        bs, hq, hk, t, d = shape
        q, k = rn(bs, hq, t, d), rn(bs, hk, t, d)
        ang = torch.outer(torch.arange(t).float(), 1.0 / 10000 ** (torch.arange(0, d, 2).float() / d))
        emb = torch.cat([ang, ang], -1)
        cos, sin = emb.cos(), emb.sin()

        def rot(x):
            x1, x2 = x[..., : d // 2], x[..., d // 2 :]
            return torch.cat([-x2, x1], -1)

        def f():
            qo = q * cos + rot(q) * sin
            ko = k * cos + rot(k) * sin
            (qo.sum() + ko.sum()).backward()

        return f
    if op == "jsd":
        n, v = shape
        s = rn(n, v)
        t = torch.randn(n, v, generator=g).log_softmax(-1)

        def f():
            lq = s.log_softmax(-1)
            m = 0.5 * (lq.exp() + t.exp())
            lm = m.log()
            loss = 0.5 * (F.kl_div(lm, t, reduction="sum", log_target=True)
                          + F.kl_div(lm, lq, reduction="sum", log_target=True)) / n
            loss.backward()

        return f
    if op == "kl_div":
        n, v = shape
        x = rn(n, v)
        t = torch.randn(n, v, generator=g).softmax(-1)
        return lambda: F.kl_div(x.log_softmax(-1), t, reduction="batchmean").backward()
    raise ValueError(op)


def child(op, shape, reps, threads, q):
    import torch

    torch.set_num_threads(threads)
    f = make(op, shape)
    base = current_rss()
    f()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    q.put({"op": op, "shape": str(list(shape)), "impl": "torch-eager",
           "ms_median": statistics.median(times), "peak_bytes": max(0, peak - base),
           "torch": torch.__version__, "threads": threads})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", choices=["full", "medium", "small"], default="full")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ops", default="")
    a = ap.parse_args()
    sh = shapes(a.scale)
    ops = [o for o in a.ops.split(",") if o] or list(sh)
    ctx = mp.get_context("spawn")
    rows = []
    for op in ops:
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(op, sh[op], a.reps, a.threads, q))
        p.start()
        rows.append(q.get())
        p.join()
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
