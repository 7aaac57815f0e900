#!/usr/bin/env python3
"""Expected reward-model evaluation numbers from TRL's own RewardTrainer.evaluate().

Writes `crates/caracal-align/tests/fixtures/rm_tiny/`:

- `model/`          a tiny random LlamaForSequenceClassification (f32 safetensors,
                    config.json) plus SmolLM2's tokenizer (tokenizer.json,
                    tokenizer_config.json) with pad = `<|endoftext|>` (id 0).
- `pairs.jsonl`     10 explicit-prompt plain-text rows {"prompt","chosen","rejected"}.
- `implicit.jsonl`  6 implicit-prompt rows {"chosen","rejected"}.
- `expected.json`   per pair: the token ids TRL fed to the model (chosen_ids,
                    rejected_ids, from the trainer's processed eval dataset) and
                    the reward of each, computed here one sequence at a time
                    (`model(input_ids=ids).logits[0, 0]`); per file and per
                    `center_rewards_coefficient` in {None, 0.01}: the metrics
                    dict returned by `RewardTrainer.evaluate()` with all rows in
                    one eval batch ("eval_" prefix stripped; timing entries
                    such as eval_runtime are left out as they are not
                    deterministic).

The tokenizer comes from the SmolLM2 GGUF in `.cache/smollm2/` through
`AutoTokenizer.from_pretrained(dir, gguf_file=...)` (needs the `gguf` package).

Model: LlamaConfig(vocab 49152, hidden 16, intermediate 32, 2 layers, 2 heads,
1 kv head, rope_theta 1e4, rms_norm_eps 1e-5, tied embeddings, num_labels 1,
pad 0, bos 1, eos 2, initializer_range 0.2), torch.manual_seed(0). The larger
initializer_range (default 0.02) makes attention/MLP outputs comparable to
the token embedding, so the reward depends on the context and not only on the
last token (which is `<|im_end|>` for every sequence). The RMSNorm weights get
`+= 0.1 * randn` and `score.weight` is redrawn with std 1/sqrt(16) so that
rewards are O(1).

Usage (from the repository root):

    python3 -m venv /tmp/venv-trl
    /tmp/venv-trl/bin/pip install torch transformers trl==1.16.0 datasets gguf safetensors accelerate
    /tmp/venv-trl/bin/python tools/make_rm_fixture.py

Versions this fixture was made with (no pins were needed beyond trl):
    trl 1.16.0, transformers 5.25.0, torch 2.15.0, datasets 5.2.0,
    accelerate 1.16.0, tokenizers 0.23.3, gguf 0.19.0, safetensors 0.8.0,
    Python 3.11.7. Rerunning gives identical files (the script checks that
    TRL's batched metrics agree with the per-sequence rewards to 1e-5).

Tolerances for a comparison: TRL's batched (right-padded) forward and the
per-sequence rewards recorded here differ by about 1e-6; reloading `model/`
with transformers' default attention (sdpa, not eager) also moves rewards by
about 1e-6. `expected.json` also carries `epoch` (0.0) and `num_tokens` (0.0,
only counted in training) because evaluate() returns them.
"""
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset, disable_caching  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GGUF_DIR = ROOT / ".cache" / "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "crates" / "caracal-align" / "tests" / "fixtures" / "rm_tiny"

EOS_TEXT = "<|im_end|>"

# Explicit prompt, plain text. Row 2 has a chosen that already ends with the EOS
# text; rows 3 and 9 are non-ASCII; rows 1, 4, 5 and 8 have prompts ending in a
# space or newline, so the boundary can merge into one token when TRL
# tokenizes prompt + completion as one string.
PAIRS = [
    {"prompt": "The capital of France is", "chosen": " Paris.", "rejected": " Berlin."},
    {
        "prompt": "Write a haiku about the sea.\n",
        "chosen": "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time.",
        "rejected": "The sea is big.",
    },
    {"prompt": "Say hi.", "chosen": " Hi there!" + EOS_TEXT, "rejected": " Go away."},
    {
        "prompt": "Translate to French: good morning",
        "chosen": " Bonjour, ça va? Très bien — merci! 🌞",
        "rejected": " Guten Morgen, naïvement.",
    },
    {"prompt": "Q: Is water wet? A: ", "chosen": "Yes, water makes things wet.", "rejected": "No"},
    {"prompt": "def add(a, b):\n", "chosen": "    return a + b\n", "rejected": "    pass"},
    {"prompt": "Answer yes or no:", "chosen": " yes", "rejected": " no"},
    {
        "prompt": "Explain briefly why the sky is blue.",
        "chosen": " Sunlight is scattered by the molecules of the air, and short blue wavelengths are "
        "scattered much more strongly than long red ones, so when we look at any part of the sky away "
        "from the sun we mostly see that scattered blue light coming toward us.",
        "rejected": " Because the ocean reflects onto it.",
    },
    {"prompt": "List three colours:\n\n", "chosen": "- red\n- green\n- blue", "rejected": "red green"},
    {"prompt": "Grüße aus München! Wie geht's?", "chosen": " Gut, danke. 😊", "rejected": " Schlecht."},
]

# Implicit prompt: the prompt is inside both texts.
IMPLICIT = [
    {"chosen": "The capital of France is Paris.", "rejected": "The capital of France is Rome."},
    {"chosen": "2 + 2 = 4", "rejected": "2 + 2 = 5"},
    {
        "chosen": "User asked for a poem. Roses are red, violets are blue, sugar is sweet, and so are you.",
        "rejected": "User asked for a poem. No.",
    },
    {"chosen": "Hello!" + EOS_TEXT, "rejected": "Hello?"},
    {"chosen": "Café au lait, s'il vous plaît.", "rejected": "Coffee."},
    {"chosen": "Water boils at 100 °C at sea level.\n", "rejected": "Water boils at 50 °C."},
]

# Entries of evaluate()'s dict that measure time, not the model.
TIMING_KEYS = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


def load_tokenizer():
    tok = AutoTokenizer.from_pretrained(str(GGUF_DIR), gguf_file=GGUF_NAME)
    assert tok.eos_token == EOS_TEXT and tok.eos_token_id == 2, (tok.eos_token, tok.eos_token_id)
    tok.pad_token = "<|endoftext|>"
    assert tok.pad_token_id == 0, tok.pad_token_id
    assert tok.pad_token_id != tok.eos_token_id
    return tok


def tiny_llama_config(tok, **extra):
    """The tiny Llama shape every fixture here shares (SmolLM2's vocabulary)."""
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=2,
        initializer_range=0.2,
        attn_implementation="eager",
        **extra,
    )


def perturb_norms(model):
    """Norm weights are ones at init; move them so the parity tests see them."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))


def build_model(tok):
    cfg = tiny_llama_config(tok, num_labels=1, bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg).to(torch.float32)
    perturb_norms(model)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn_like(model.score.weight) / math.sqrt(cfg.hidden_size))
    model.eval()
    return model


def reward_one(model, ids):
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids], dtype=torch.long)).logits[0, 0].item())


def run_trl(model, tok, rows, center, tmp):
    args = RewardConfig(
        output_dir=tmp,
        per_device_eval_batch_size=len(rows),
        per_device_train_batch_size=len(rows),
        report_to=[],
        max_length=None,
        seed=0,
        bf16=False,
        fp16=False,
        use_cpu=True,
        center_rewards_coefficient=center,
        dataset_num_proc=None,
        disable_tqdm=True,
        logging_strategy="no",
        save_strategy="no",
    )
    ds = Dataset.from_list(rows)
    trainer = RewardTrainer(
        model=model, args=args, processing_class=tok, train_dataset=ds, eval_dataset=ds
    )
    metrics = trainer.evaluate()
    ev = trainer.eval_dataset
    ids = [(list(ev[i]["chosen_ids"]), list(ev[i]["rejected_ids"])) for i in range(len(ev))]
    assert len(ids) == len(rows), "TRL dropped rows (max_length filter?)"
    out = {}
    for k, v in metrics.items():
        short = k[len("eval_"):] if k.startswith("eval_") else k
        if short in TIMING_KEYS:
            continue
        out[short] = float(v)
    return ids, dict(sorted(out.items()))


def check_metrics(m, rc, rr, center):
    """Recompute TRL's metrics from the per-sequence rewards (one batch)."""
    n = len(rc)
    d = [c - r for c, r in zip(rc, rr)]
    loss = sum(-math.log(1.0 / (1.0 + math.exp(-x))) for x in d) / n
    if center is not None:
        loss += center * sum((c + r) ** 2 for c, r in zip(rc, rr)) / n
    allr = rc + rr
    mine = {
        "loss": loss,
        "accuracy": sum(1.0 for x in d if x > 0) / n,
        "margin": sum(d) / n,
        "mean_reward": sum(allr) / len(allr),
        "min_reward": min(allr),
        "max_reward": max(allr),
    }
    for k, v in mine.items():
        assert abs(m[k] - v) < 1e-5, (k, m[k], v)


def evaluate_rows(model, tok, rows, tmp, check_ids=None):
    """TRL's evaluate() on `rows` (one batch), without and with
    center_rewards_coefficient = 0.01, plus each sequence's reward run one at
    a time, cross-checked against TRL's metrics. `check_ids(ids)` may assert
    more about the token ids TRL fed the model."""
    entry = {"pairs": None, "metrics": {}}
    for label, center in (("none", None), ("center_0.01", 0.01)):
        ids, metrics = run_trl(model, tok, rows, center, tmp)
        if entry["pairs"] is None:
            if check_ids is not None:
                check_ids(ids)
            entry["pairs"] = [
                {
                    "chosen_ids": c,
                    "rejected_ids": r,
                    "chosen_reward": reward_one(model, c),
                    "rejected_reward": reward_one(model, r),
                }
                for c, r in ids
            ]
        else:
            assert ids == [(p["chosen_ids"], p["rejected_ids"]) for p in entry["pairs"]]
        check_metrics(
            metrics,
            [p["chosen_reward"] for p in entry["pairs"]],
            [p["rejected_reward"] for p in entry["pairs"]],
            center,
        )
        entry["metrics"][label] = metrics
    return entry


def main():
    disable_caching()
    OUT.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer()
    model = build_model(tok)

    mdir = OUT / "model"
    if mdir.exists():
        shutil.rmtree(mdir)
    model.save_pretrained(mdir, safe_serialization=True)
    tok.save_pretrained(mdir)
    assert (mdir / "tokenizer.json").exists()

    files = {"pairs.jsonl": PAIRS, "implicit.jsonl": IMPLICIT}
    for name, rows in files.items():
        with open(OUT / name, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    expected = {
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "eos_text": tok.eos_token,
        "bos_token_id": tok.bos_token_id,
        "batching": "all rows of a file in one eval batch (per_device_eval_batch_size = rows)",
        "files": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in files.items():
            expected["files"][name] = evaluate_rows(model, tok, rows, tmp)
    # json.dump writes floats with repr(), i.e. full (shortest round-trip) precision.
    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")

    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>10}  {p.relative_to(ROOT)}")
    for name in files:
        for label, m in expected["files"][name]["metrics"].items():
            print(name, label, json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
