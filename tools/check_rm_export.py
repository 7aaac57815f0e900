#!/usr/bin/env python3
"""Check that a reward model folder written by caracal loads in transformers and TRL.

Reads `crates/caracal-align/tests/fixtures/rm_export/` (written by caracal, not
by this script; nothing there is modified except `expected.json`):

- `model/`       config.json (LlamaForSequenceClassification, num_labels 1,
                 pad 0, eos 1), model.safetensors, tokenizer.json (word-level,
                 `<pad>`=0, `<eos>`=1, `<unk>`=2), tokenizer_config.json.
- `pairs.jsonl`  8 rows {"prompt","chosen","rejected","gold_chosen","gold_rejected"};
                 the gold_* fields are dropped before the rows go to TRL.

Checks (each one an assert; the script stops at the first failure):

- `AutoModelForSequenceClassification.from_pretrained(dir, dtype=float32,
  output_loading_info=True)` reports no missing, unexpected or mismatched
  keys and no error messages, and neither it nor `AutoTokenizer.from_pretrained(dir)`
  emits a Python warning or a transformers log record at WARNING or above.
- The tokenizer reports pad `<pad>` (0) and eos `<eos>` (1), matching config.json.
- TRL's batched `evaluate()` metrics agree to 1e-5 with the metrics recomputed
  from the per-sequence rewards.
- Rewards from one right-padded batch of all 2 x 8 sequences (the tokenizer's
  own `padding=True` and attention_mask) agree with the per-sequence rewards
  to 1e-5, and the tokenizer's ids for prompt + completion + `<eos>` equal the
  ids TRL fed.

Writes `expected.json` next to `pairs.jsonl`, in the layout of
`rm_tiny/expected.json` (see tools/make_rm_fixture.py): per pair the token ids
TRL fed to the model (chosen_ids, rejected_ids, from the trainer's processed
eval dataset), the reward of each computed one sequence at a time
(`model(input_ids=ids).logits[0, 0]`), and, as extra fields, the same rewards
from the one right-padded batch (chosen_reward_padded_batch,
rejected_reward_padded_batch); per `center_rewards_coefficient` in {None, 0.01}
the metrics dict returned by `RewardTrainer.evaluate()` with all 8 rows in one
eval batch ("eval_" prefix stripped; timing entries left out). Extra top-level
entries: unk_token_id, attn_implementation, loading_info, padded_batch_max_abs_diff
and the versions of the other packages involved.

The model is loaded with transformers' default attention (sdpa), as a user of
the exported folder would get it.

Usage (from the repository root; venv as in tools/make_rm_fixture.py, gguf not needed):

    /tmp/venv-trl/bin/python tools/check_rm_export.py

Versions this was run with: trl 1.16.0, transformers 5.25.0, torch 2.15.0,
datasets 5.2.0, accelerate 1.16.0, tokenizers 0.23.3, safetensors 0.8.0,
Python 3.11.7. Rerunning gives an identical expected.json.
"""
import json
import logging
import math
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import accelerate  # noqa: E402
import datasets  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset, disable_caching  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402
# The TRL evaluation and its cross-check are shared with the other fixture.
from make_rm_fixture import evaluate_rows  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "crates" / "caracal-align" / "tests" / "fixtures" / "rm_export"
MDIR = FX / "model"
PAIRS_FILE = "pairs.jsonl"

PAD_TEXT, PAD_ID = "<pad>", 0
EOS_TEXT, EOS_ID = "<eos>", 1
UNK_TEXT, UNK_ID = "<unk>", 2

# Fields of pairs.jsonl that TRL must not see.
DROP = ("gold_chosen", "gold_rejected")

# Entries of evaluate()'s dict that measure time, not the model.

TOL = 1e-5


class _Records(logging.Handler):
    """Collects transformers log records at WARNING or above."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def quiet_load(what, fn):
    """Run fn(); assert it emitted no Python warning and no transformers WARNING+ log."""
    handler = _Records()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
    finally:
        logger.removeHandler(handler)
    noise = handler.records + [f"{w.category.__name__}: {w.message}" for w in caught]
    assert not noise, f"{what} emitted warnings:\n" + "\n".join(noise)
    return out


def load_model():
    model, info = quiet_load(
        "AutoModelForSequenceClassification.from_pretrained",
        lambda: AutoModelForSequenceClassification.from_pretrained(
            str(MDIR), dtype=torch.float32, output_loading_info=True
        ),
    )
    info = {k: sorted(str(x) for x in v) for k, v in sorted(info.items())}
    print("loading_info:", json.dumps(info))
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(k), (k, info[k])
    assert type(model).__name__ == "LlamaForSequenceClassification", type(model)
    assert model.dtype == torch.float32, model.dtype
    assert model.config.num_labels == 1, model.config.num_labels
    assert model.config.pad_token_id == PAD_ID, model.config.pad_token_id
    assert model.config.eos_token_id == EOS_ID, model.config.eos_token_id
    model.eval()
    return model, info


def load_tokenizer():
    tok = quiet_load("AutoTokenizer.from_pretrained", lambda: AutoTokenizer.from_pretrained(str(MDIR)))
    got = (tok.pad_token, tok.pad_token_id, tok.eos_token, tok.eos_token_id)
    assert got == (PAD_TEXT, PAD_ID, EOS_TEXT, EOS_ID), got
    assert tok.convert_tokens_to_ids(UNK_TEXT) == UNK_ID
    assert tok.padding_side == "right", tok.padding_side
    return tok


def read_rows():
    rows = []
    with open(FX / PAIRS_FILE, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            for k in DROP:
                r.pop(k, None)
            assert sorted(r) == ["chosen", "prompt", "rejected"], sorted(r)
            rows.append({"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]})
    return rows


def rewards_padded_batch(model, tok, rows, ids):
    """All chosen then all rejected texts (prompt + completion + eos) in one right-padded batch."""
    texts = [r["prompt"] + r["chosen"] + EOS_TEXT for r in rows]
    texts += [r["prompt"] + r["rejected"] + EOS_TEXT for r in rows]
    enc = tok(texts, padding=True, return_tensors="pt")
    want = [c for c, _ in ids] + [r for _, r in ids]
    lengths = enc["attention_mask"].sum(dim=1).tolist()
    for i, (row, n) in enumerate(zip(enc["input_ids"].tolist(), lengths)):
        assert row[:n] == want[i], (i, row[:n], want[i])
        assert all(t == PAD_ID for t in row[n:]), (i, row)
        assert enc["attention_mask"][i, :n].all() and not enc["attention_mask"][i, n:].any(), i
    assert min(lengths) < max(lengths), "batch has no padding; the check would be vacuous"
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0]
    out = [float(x) for x in logits.tolist()]
    n = len(rows)
    return out[:n], out[n:]


def main():
    disable_caching()
    torch.manual_seed(0)
    model, info = load_model()
    tok = load_tokenizer()
    rows = read_rows()
    assert len(rows) == 8, len(rows)

    expected = {
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "datasets_version": datasets.__version__,
        "accelerate_version": accelerate.__version__,
        "tokenizers_version": tokenizers.__version__,
        "safetensors_version": safetensors.__version__,
        "python_version": platform.python_version(),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "eos_text": tok.eos_token,
        "bos_token_id": tok.bos_token_id,
        "unk_token_id": UNK_ID,
        "attn_implementation": model.config._attn_implementation,
        "loading_info": info,
        "batching": "all rows of a file in one eval batch (per_device_eval_batch_size = rows)",
        "files": {},
    }
    def check_ids(ids):
        for c, r in ids:
            assert UNK_ID not in c and UNK_ID not in r, ("<unk> in TRL ids", c, r)
            assert c[-1] == EOS_ID and r[-1] == EOS_ID, (c, r)

    with tempfile.TemporaryDirectory() as tmp:
        entry = evaluate_rows(model, tok, rows, tmp, check_ids)
    bc, br = rewards_padded_batch(model, tok, rows, [(p["chosen_ids"], p["rejected_ids"]) for p in entry["pairs"]])
    diff = 0.0
    for p, c, r in zip(entry["pairs"], bc, br):
        p["chosen_reward_padded_batch"] = c
        p["rejected_reward_padded_batch"] = r
        diff = max(diff, abs(c - p["chosen_reward"]), abs(r - p["rejected_reward"]))
    print(f"padded batch vs one at a time: max |diff| = {diff:.3e}")
    assert diff < TOL, diff
    expected["padded_batch_max_abs_diff"] = diff
    expected["files"][PAIRS_FILE] = entry

    # json.dump writes floats with repr(), i.e. full (shortest round-trip) precision.
    with open(FX / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")

    for i, p in enumerate(entry["pairs"]):
        print(
            f"pair {i}: len {len(p['chosen_ids'])}/{len(p['rejected_ids'])}"
            f"  chosen {p['chosen_reward']:+.6f}  rejected {p['rejected_reward']:+.6f}"
        )
    for label, m in entry["metrics"].items():
        print(PAIRS_FILE, label, json.dumps(m))
    print("wrote", (FX / "expected.json").relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
