#!/usr/bin/env python3
"""Expected KTO evaluation numbers from TRL's own KTOTrainer.

Reuses the models of `make_dpo_fixture.py` (`dpo_tiny/policy`, `dpo_tiny/ref`,
SmolLM2's tokenizer in `policy/`, pad `<|endoftext|>` = 0, eos `<|im_end|>` = 2)
and writes, next to them in `crates/caracal-align/tests/fixtures/dpo_tiny/`:

- `kto.jsonl`          8 rows of TRL's unpaired plain-text format
                       {"prompt", "completion", "label"}: rows 0-3 are pairs 0-3
                       of `pairs.jsonl` with their chosen (label true), rows 4-7
                       are pairs 4-7 with their rejected (label false).
- `kto_expected.json`  the config, the metrics dict of `evaluate()` (all 8 rows
                       in one eval batch; "eval_" stripped, timing keys left
                       out), and per row what the trainer fed the models.

TRL 1.16.0 (`trl.KTOTrainer`, trl/trainer/kto_trainer.py; the
`trl.experimental.kto` names are deprecated aliases of it):

Tokenization (`_prepare_dataset`, kto_trainer.py:1044-1137): EOS *text* is
appended to the completion unless it already ends with it (1077-1082); then
prompt_ids = tok(prompt), full = tok(prompt + completion) (no BOS: this
tokenizer adds no special tokens), the prompt part is the common prefix of the
two (1112, `common_prefix_length`) and completion_ids = full[prefix:]. So for
row 2 ("... A: " + "Eight.") the trailing space merges into " Eight" and the
prompt part is one token shorter than tok(prompt).

KL examples (kto_trainer.py:1141-1157, collator 161-207): with `batched=True,
batch_size=per_device_train_batch_size` (also for the eval set),
KL_completion_ids = [c[-1]] + c[:-1] within each chunk, i.e. KL row i is
prompt_i + completion_{(i-1) mod n} (n = 8 here: one chunk). The collator
builds prompt_ids + completion_ids, right-pads with pad id, and the
completion mask covers the completion tokens.

Per-row fields: `ids` / `kl_ids` the full sequences, `completion_start` /
`kl_completion_start` (= len(prompt_ids), the same for both), `kl_source` the
row whose completion the KL sequence borrows, `*_logp` = sum over completion
tokens t of log p(ids[t] | ids[:t]) under policy / ref (plain forward, one
sequence at a time, float64 log-softmax), `len` the completion length,
`policy_entropy_sum` / `policy_mean_logit_sum` over the positions predicting
the completion tokens (policy only; for the `entropy` and `logits/*` metrics).

Formulas (checked in `check_kto` to |a-b| <= 1e-5 * max(1, |b|)):
    kl      = max(0, mean_i(policy_kl_logp_i - ref_kl_logp_i)), detached (1443-1444)
    r_i     = policy_logp_i - ref_logp_i
    loss_i  = 1 - sigmoid(beta * (r_i - kl))   if label_i              (1453)
              1 - sigmoid(beta * (kl - r_i))   otherwise               (1470)
    loss    = nanmean(cat(w_d * chosen losses, w_u * rejected losses)) (1479-1482, 1548)
    rewards/chosen  = sum_{label} beta * r_i / #chosen                 (1528-1530)
    logps/chosen    = sum_{label} policy_logp_i / #chosen              (1531-1533)
    (rejected alike, 1536-1541); rewards/margins = chosen - rejected (1543-1546)
    entropy         = sum of per-token entropies over all completion tokens /
                      number of completion tokens (1486-1496)
    logits/chosen   = sum over chosen completion positions of the vocab-mean
                      logit / number of chosen completion tokens (1504-1522)
    num_tokens      = 0 (only counted in training, 1498-1502)

Usage (from the repository root, after make_dpo_fixture.py):

    /tmp/venv-trl/bin/python tools/make_kto_fixture.py

Versions: trl 1.16.0, transformers 5.25.0, torch 2.15.0 (see
make_dpo_fixture.py). CPU, single-threaded.
"""
import json
import math
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_dpo_fixture as dpo  # noqa: E402  (sets the env vars, imports torch)

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset, disable_caching  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from trl import KTOConfig, KTOTrainer  # noqa: E402

torch.set_num_threads(1)

OUT = dpo.OUT
EOS_TEXT = dpo.EOS_TEXT
CONFIG = {"loss_type": "kto", "beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0}


def kto_rows():
    pairs = [json.loads(line) for line in (OUT / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 8
    rows = [{"prompt": p["prompt"], "completion": p["chosen"], "label": True} for p in pairs[:4]]
    rows += [{"prompt": p["prompt"], "completion": p["rejected"], "label": False} for p in pairs[4:]]
    return rows


def load_tokenizer():
    tok = AutoTokenizer.from_pretrained(str(OUT / "policy"))
    assert tok.eos_token == EOS_TEXT and tok.eos_token_id == 2
    assert tok.pad_token_id == 0 and tok.bos_token_id == 1
    assert tok("Hello")["input_ids"] == tok("Hello", add_special_tokens=False)["input_ids"]
    return tok


def check_kto(m, rows, beta, wd, wu):
    n = len(rows)
    kl_raw = sum(r["policy_kl_logp"] - r["ref_kl_logp"] for r in rows) / n
    kl = max(0.0, kl_raw)
    losses = []
    for r in rows:
        x = r["policy_logp"] - r["ref_logp"]
        if r["label"]:
            losses.append(wd * (1 - 1 / (1 + math.exp(-beta * (x - kl)))))
        else:
            losses.append(wu * (1 - 1 / (1 + math.exp(-beta * (kl - x)))))
    ch = [r for r in rows if r["label"]]
    rj = [r for r in rows if not r["label"]]
    mine = {
        "loss": sum(losses) / n,
        "kl": kl,
        "rewards/chosen": sum(beta * (r["policy_logp"] - r["ref_logp"]) for r in ch) / len(ch),
        "rewards/rejected": sum(beta * (r["policy_logp"] - r["ref_logp"]) for r in rj) / len(rj),
        "logps/chosen": sum(r["policy_logp"] for r in ch) / len(ch),
        "logps/rejected": sum(r["policy_logp"] for r in rj) / len(rj),
        "entropy": sum(r["policy_entropy_sum"] for r in rows) / sum(r["len"] for r in rows),
        "logits/chosen": sum(r["policy_mean_logit_sum"] for r in ch) / sum(r["len"] for r in ch),
        "logits/rejected": sum(r["policy_mean_logit_sum"] for r in rj) / sum(r["len"] for r in rj),
        "num_tokens": 0.0,
    }
    mine["rewards/margins"] = mine["rewards/chosen"] - mine["rewards/rejected"]
    for k, v in mine.items():
        dpo.close(m[k], v, k)
    extra = set(m) - set(mine) - {"epoch"}
    assert not extra, extra
    return kl_raw, losses


def main():
    disable_caching()
    tok = load_tokenizer()
    rows = kto_rows()
    with open(OUT / "kto.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        policy, ref = dpo.load_model(OUT / "policy"), dpo.load_model(OUT / "ref")
        args = KTOConfig(**dpo.common_args(tmp, len(rows)), **CONFIG)
        ds = Dataset.from_list(rows)
        trainer = KTOTrainer(
            model=policy, ref_model=ref, args=args, processing_class=tok, train_dataset=ds, eval_dataset=ds
        )
        metrics = dpo.clean_metrics(trainer.evaluate())
        ev = trainer.eval_dataset
        assert len(ev) == len(rows), "TRL dropped rows"
        assert trainer.calculate_KL and not trainer.precompute_ref_logps

    pol, rf = dpo.load_model(OUT / "policy"), dpo.load_model(OUT / "ref")
    n = len(rows)
    out_rows = []
    for i in range(n):
        e, r = ev[i], rows[i]
        p, c, kc = list(e["prompt_ids"]), list(e["completion_ids"]), list(e["KL_completion_ids"])
        src = (i - 1) % n  # rotation by +1 within the (single) chunk of 8
        assert kc == list(ev[src]["completion_ids"]), (i, src)
        assert bool(e["label"]) == r["label"]
        ids, kl_ids = p + c, p + kc
        assert max(len(ids), len(kl_ids)) < dpo.MAX_LENGTH
        # full sequence == tokenization of prompt + completion (+ EOS text), no BOS
        text = r["prompt"] + r["completion"]
        if not text.endswith(EOS_TEXT):
            text += EOS_TEXT
        assert ids == tok(text)["input_ids"], i
        assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1 and ids[0] != tok.bos_token_id
        # the prompt part is the common prefix of tok(prompt) and tok(prompt + completion)
        tp = tok(r["prompt"])["input_ids"]
        assert tp[: len(p)] == p
        ps, rs = dpo.seq_stats(pol, ids, len(p)), dpo.seq_stats(rf, ids, len(p))
        pk, rk = dpo.seq_stats(pol, kl_ids, len(p)), dpo.seq_stats(rf, kl_ids, len(p))
        out_rows.append(
            {
                "label": r["label"],
                "ids": ids,
                "completion_start": len(p),
                "prompt_tokens_dropped": len(tp) - len(p),
                "len": ps["len"],
                "kl_source": src,
                "kl_ids": kl_ids,
                "kl_completion_start": len(p),
                "kl_len": pk["len"],
                "policy_logp": ps["logp"],
                "ref_logp": rs["logp"],
                "policy_kl_logp": pk["logp"],
                "ref_kl_logp": rk["logp"],
                "policy_entropy_sum": ps["entropy_sum"],
                "policy_mean_logit_sum": ps["mean_logit_sum"],
            }
        )
    kl_raw, losses = check_kto(metrics, out_rows, args.beta, args.desirable_weight, args.undesirable_weight)
    for r, l in zip(out_rows, losses):
        r["loss"] = l

    doc = {
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "datasets": datasets.__version__,
        },
        "config": {
            **{k: getattr(args, k) for k in ("loss_type", "beta", "desirable_weight", "undesirable_weight")},
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "per_device_eval_batch_size": args.per_device_eval_batch_size,
            "max_length": args.max_length,
        },
        "mix": "rows 0-3: pairs 0-3 chosen (label true); rows 4-7: pairs 4-7 rejected (label false)",
        "kl_rule": "kl_ids[i] = prompt_ids[i] + completion_ids[(i - 1) mod 8]",
        "kl_unclamped": kl_raw,
        "metrics": metrics,
        "rows": out_rows,
    }
    (OUT / "kto_expected.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(metrics, indent=1))
    print("kl_unclamped", kl_raw, "dropped", [r["prompt_tokens_dropped"] for r in out_rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
