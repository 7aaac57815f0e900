#!/usr/bin/env python3
"""Hugging Face transformers on CPU, same setup as `caracal bench train`:
the SmolLM2-135M config, random init, B=4, T=512, AdamW, f32.

    python bench/torch_train.py [--steps 3] [--batch-size 4] [--seq-len 512] [--small] [--json]

Prints tokens/s (median step after the first) and the process's peak RSS
(torch CPU has no allocated-bytes counter; RSS includes the interpreter).
Use it for the README ratio against `caracal bench train --json`.
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--small", action="store_true", help="hidden 128, 4 layers, vocab 8192")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.small:
        cfg = LlamaConfig(vocab_size=8192, hidden_size=128, intermediate_size=336, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5,
                          tie_word_embeddings=True)
    else:
        cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
                          rope_theta=100000.0, max_position_embeddings=8192, tie_word_embeddings=True)
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    times, losses = [], []
    for _ in range(a.steps):
        ids = torch.randint(0, cfg.vocab_size, (a.batch_size, a.seq_len + 1), generator=g)
        t0 = time.perf_counter()
        out = model(input_ids=ids[:, :-1], labels=ids[:, :-1])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(out.loss.item())
    timed = times[1:] if len(times) > 1 else times
    step = statistics.median(timed)
    tokens = a.batch_size * a.seq_len
    res = {
        "impl": "transformers " + __import__("transformers").__version__ + ", torch " + torch.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": a.batch_size, "seq_len": a.seq_len, "steps": a.steps,
        "threads": torch.get_num_threads(),
        "tokens_per_s": tokens / step, "step_s_median": step, "step_s_all": times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "losses": losses,
    }
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"transformers: {res['tokens_per_s']:.1f} tokens/s, step {step:.3f} s, peak RSS {res['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
