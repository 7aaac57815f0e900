#!/usr/bin/env python3
"""Does transformers read a model that `caracal prune --structured` wrote?

Prunes the tiny Llama fixture of caracal-models (hidden 64, 4 query heads, 2
KV heads, head_dim 16, FFN 160, Llama-3 RoPE scaling, byte vocabulary) with
OSSCAR to FFN 50% and 1 of 2 KV groups, so the output has 2 query heads of
dimension 16 on a hidden size of 64: `head_dim` must be written explicitly,
and the o_proj / q/k/v rows and columns of the removed group must be gone
in the layout transformers expects. Then loads the folder with
`LlamaForCausalLM.from_pretrained` (asserting no missing or unexpected key,
and the config's shapes), runs fixed token ids, and writes

    crates/caracal-compress/tests/fixtures/pruned_tiny/
        config.json, model.safetensors   (caracal's output, as written)
        expected.json                    (ids and transformers' logits)

which `cargo test -p caracal-compress --test pruned_hf` compares with
caracal's own logits of the same folder.

Usage (from the repository root):
    cargo build --release -p caracal-cli
    /tmp/venv-trl/bin/python tools/check_pruned_hf.py

Made with transformers 5.25.0, torch 2.15.0, safetensors 0.8.0 (the
venv of tools/make_dpo_fixture.py); single-threaded torch.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import LlamaForCausalLM

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "crates" / "caracal-models" / "tests" / "fixtures" / "tiny_llama"
OUT = ROOT / "crates" / "caracal-compress" / "tests" / "fixtures" / "pruned_tiny"
BIN = ROOT / "target" / "release" / "caracal"
TEXT = (
    "Though this be madness, yet there is method in it. "
    "The lady doth protest too much, methinks. "
    "There are more things in heaven and earth than are dreamt of in your philosophy. "
) * 40
IDS = [[3, 100, 7, 255, 0, 42, 42, 9, 65, 66, 67, 32, 84, 104, 101, 10]]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        calib = Path(tmp) / "calib.txt"
        calib.write_text(TEXT)
        out = Path(tmp) / "pruned"
        cmd = [str(BIN), "--threads", "1", "prune", "--structured", "--method", "osscar",
               "--model", str(SRC), "--calib", str(calib), "--samples", "16", "--seq-len", "64",
               "--ffn-keep", "0.5", "--kv-groups-keep", "1", "--out", str(out), "--json"]
        report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        for f in ("config.json", "model.safetensors"):
            shutil.copy(out / f, OUT / f)
    cfg = json.loads((OUT / "config.json").read_text())
    assert cfg["num_attention_heads"] == 2 and cfg["num_key_value_heads"] == 1, cfg
    assert cfg["head_dim"] == 16 and cfg["hidden_size"] == 64 and cfg["intermediate_size"] == 80, cfg
    model, info = LlamaForCausalLM.from_pretrained(OUT, output_loading_info=True, torch_dtype=torch.float32)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.model.layers[0].self_attn.o_proj.weight.shape == (64, 32)
    assert model.model.layers[0].mlp.down_proj.weight.shape == (64, 80)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(IDS)).logits[0].double()
    expected = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "command": "caracal prune --structured --method osscar --ffn-keep 0.5 --kv-groups-keep 1 (tiny_llama)",
        "params_after": report["after"]["params"],
        "ids": IDS[0],
        "logits": logits.tolist(),
    }
    with open(OUT / "expected.json", "w") as f:
        json.dump(expected, f)
        f.write("\n")
    print("transformers loaded", OUT, "params", sum(p.numel() for p in model.parameters()), "report", report["after"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
