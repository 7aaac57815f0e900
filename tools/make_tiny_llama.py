#!/usr/bin/env python3
"""Write the tiny random Llama fixture for caracal-models' Hugging Face parity test.

A LlamaForCausalLM with hidden 64, 2 layers, 4 query / 2 key-value heads,
vocab 256, Llama-3 RoPE scaling active on the low frequencies, saved by
`transformers` with its logits (f32) on fixed token ids.

    python tools/make_tiny_llama.py [out_dir]

Default out_dir: crates/caracal-models/tests/fixtures/tiny_llama
Writes config.json, model.safetensors and expected.safetensors
(`ids` [2, 12] int64, `logits` [2, 12, 256] f32). Needs torch, transformers.
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "caracal-models", "tests", "fixtures", "tiny_llama")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
cfg = LlamaConfig(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    attn_implementation="eager",
)
model = LlamaForCausalLM(cfg).eval().to(torch.float32)
# Norm weights are ones at init; perturb them so the test sees them.
with torch.no_grad():
    for n, p in model.named_parameters():
        if "norm" in n:
            p.add_(0.1 * torch.randn_like(p))
model.save_pretrained(out, safe_serialization=True)
g = torch.Generator().manual_seed(1)
ids = torch.randint(0, 256, (2, 12), generator=g)
with torch.no_grad():
    logits = model(input_ids=ids).logits.float()
save_file({"ids": ids.contiguous(), "logits": logits.contiguous()}, os.path.join(out, "expected.safetensors"))
for f in os.listdir(out):
    print(f, os.path.getsize(os.path.join(out, f)))
