#!/usr/bin/env python3
"""Expected preference-optimization evaluation numbers from TRL's own trainers.

Writes `crates/caracal-align/tests/fixtures/dpo_tiny/`:

- `policy/`        a tiny random LlamaForCausalLM (f32 safetensors, config.json)
                   plus SmolLM2's tokenizer (tokenizer.json, tokenizer_config.json)
                   with pad = `<|endoftext|>` (id 0); torch.manual_seed(0).
- `ref/`           the reference model: same config, torch.manual_seed(1)
                   (config.json + model.safetensors only).
- `pairs.jsonl`    8 plain-text rows {"prompt","chosen","rejected"}.
- `expected.json`  per run: the trainer config, the metrics dict returned by
                   `evaluate()` with all 8 pairs in one eval batch ("eval_"
                   prefix stripped; timing entries such as eval_runtime left
                   out), and per pair the token ids the trainer fed the model
                   (from its processed eval dataset) with per-sequence
                   statistics computed here with a plain forward pass, one
                   sequence at a time (see "Per-pair fields" below).

Runs (TRL 1.16.0):
    dpo_sigmoid     DPOTrainer, loss_type="sigmoid", beta 0.1
    dpo_ipo         DPOTrainer, loss_type="ipo", beta 0.1
    dpo_sigmoid_ls  DPOTrainer, loss_type="sigmoid", label_smoothing 0.1, beta 0.1
                    (TRL 1.16's DPO "sigmoid" ignores label_smoothing: same
                    numbers as dpo_sigmoid)
    dpo_robust      DPOTrainer, loss_type="robust", label_smoothing 0.1, beta 0.1
    cpo_sigmoid     trl.experimental.cpo.CPOTrainer, loss_type="sigmoid", beta 0.1,
                    cpo_alpha 1.0
    simpo           CPOTrainer, loss_type="simpo", beta 2.5, simpo_gamma 0.25,
                    cpo_alpha 0.0
    alphapo         CPOTrainer, loss_type="alphapo" (CPOConfig.__post_init__
                    turns it into loss_type="simpo", cpo_alpha 0.0), alpha 0.25,
                    beta 2.5, simpo_gamma 0.25
    orpo            trl.experimental.orpo.ORPOTrainer, beta (ORPO's λ) 0.1. It
                    tokenizes as CPOTrainer; its NLL term counts every token of
                    the chosen sequence after the first (the prompt too:
                    labels are all non-pad ids), so ORPO pairs also carry
                    `policy_chosen_full_logp` / `chosen_full_len` (positions
                    1..len-1). Its `logits/*` metrics average over one position
                    fewer than CPO's and are not checked here.

Per-pair fields. `chosen_ids` / `rejected_ids` are the full sequences (prompt +
completion, EOS included, no padding); `*_completion_start` is the index of the
first completion token. `*_logp` is sum_{t=start}^{len-1} log p(ids[t] |
ids[:t]) and `*_len` = len - start (the number of completion tokens). DPO
runs also carry, for the policy, per sequence over the same positions t-1
(the positions that predict completion tokens): `*_entropy_sum` (entropy of
the next-token distribution), `*_mean_logit_sum` (mean over the vocabulary of
the logits) and `chosen_top1` (how many targets are the first argmax). CPO
runs carry `chosen_labels` / `rejected_labels` (-100 on the prompt part, as
the trainer built them) and `*_logits_sum_real` / `*_logits_sum_pad`: the sum
of all logits (every position, every vocab entry) of the sequence itself, and
of the pad positions the trainer adds up to `padded_len` (right-padding with
id 0, attention_mask 0, position ids continuing 0..padded_len-1), which CPO's
`logits/*` metrics average over.

The script recomputes every metric of every run from the per-pair values
(so `check_*` below document the formulas) and asserts agreement to
|a - b| <= 1e-5 * max(1, |b|): TRL reports metrics as float32 values
(`.item()` of float32 tensors; CPO even averages through
`torch.tensor(list).mean()`), and summed log-probs are O(100), where one
float32 ulp is ~1e-5, so a comparison should use that relative tolerance.

The tokenizer comes from the SmolLM2 GGUF in `.cache/smollm2/` through
`AutoTokenizer.from_pretrained(dir, gguf_file=...)` (needs the `gguf` package).
Its bos_token is `<|im_start|>` (id 1): DPOTrainer never adds it (the
tokenizer adds no special tokens to plain text), CPOTrainer prepends it to
every prompt (add_bos_token_if_needed), so the CPO sequences start with id 1
and the DPO ones do not.

Model: LlamaConfig(vocab 49152, hidden 16, intermediate 32, 2 layers, 2 heads,
1 kv head, rope_theta 1e4, rms_norm_eps 1e-5, tied embeddings, pad 0, bos 1,
eos 2, initializer_range 0.2, eager attention). The larger initializer_range
(default 0.02) makes log-probs depend on the context. The RMSNorm weights get
`+= 0.1 * randn`.

Usage (from the repository root):

    python3 -m venv /tmp/venv-trl
    /tmp/venv-trl/bin/pip install torch transformers trl==1.16.0 datasets gguf safetensors accelerate
    /tmp/venv-trl/bin/python tools/make_dpo_fixture.py

Versions this fixture was made with (no pins were needed beyond trl):
    trl 1.16.0, transformers 5.25.0, torch 2.15.0, datasets 5.2.0,
    accelerate 1.16.0, tokenizers 0.23.3, gguf 0.19.0, safetensors 0.8.0,
    Python 3.11.7. Runs on CPU, single-threaded; rerunning gives identical files.
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
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset, disable_caching  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402
from trl.experimental.cpo import CPOConfig, CPOTrainer  # noqa: E402
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

# The tokenizer and the tiny model shape are the reward-model fixture's.
import make_rm_fixture as rm_fixture  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
GGUF_DIR = ROOT / ".cache" / "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "crates" / "caracal-align" / "tests" / "fixtures" / "dpo_tiny"

EOS_TEXT = "<|im_end|>"
MAX_LENGTH = 1024  # far above the longest sequence (asserted below)

# Row 0's chosen ends with the policy's own greedy continuation of
# "The capital of France is Paris." (" disaster" x3, found once with the
# policy below) so that `mean_token_accuracy` is not 0: the random policy
# predicts no other completion token. Row 1 already ends its chosen with the
# EOS text; row 2's prompt ends with a space that merges into the chosen's
# first token (" Eight") but not into the rejected's ("42" is split into
# digits, so the space stays a token of its own); row 3 is non-ASCII
# (umlauts, ß, emoji); row 7 is long.
PAIRS = [
    {"prompt": "The capital of France is", "chosen": " Paris. disaster disaster disaster", "rejected": " Berlin."},
    {"prompt": "Say hi.", "chosen": " Hi there!" + EOS_TEXT, "rejected": " Go away."},
    {"prompt": "Q: How many legs does a spider have? A: ", "chosen": "Eight.", "rejected": "42"},
    {"prompt": "Grüße aus München! Wie geht's?", "chosen": " Gut, danke. 😊", "rejected": " Schlecht."},
    {
        "prompt": "Write a haiku about the sea.\n",
        "chosen": "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time.",
        "rejected": "The sea is big.",
    },
    {"prompt": "def add(a, b):\n", "chosen": "    return a + b\n", "rejected": "    pass"},
    {"prompt": "Answer yes or no:", "chosen": " yes", "rejected": " no"},
    {
        "prompt": "Explain briefly why the sky is blue.",
        "chosen": " Sunlight is scattered by the molecules of the air, and short blue wavelengths are "
        "scattered much more strongly than long red ones, so we mostly see scattered blue light.",
        "rejected": " Because the ocean reflects onto it.",
    },
]

RUNS = {
    "dpo_sigmoid": ("dpo", {"loss_type": "sigmoid", "beta": 0.1}),
    "dpo_ipo": ("dpo", {"loss_type": "ipo", "beta": 0.1}),
    "dpo_sigmoid_ls": ("dpo", {"loss_type": "sigmoid", "beta": 0.1, "label_smoothing": 0.1}),
    "dpo_robust": ("dpo", {"loss_type": "robust", "beta": 0.1, "label_smoothing": 0.1}),
    "cpo_sigmoid": ("cpo", {"loss_type": "sigmoid", "beta": 0.1, "cpo_alpha": 1.0}),
    "simpo": ("cpo", {"loss_type": "simpo", "beta": 2.5, "simpo_gamma": 0.25, "cpo_alpha": 0.0}),
    "alphapo": ("cpo", {"loss_type": "alphapo", "alpha": 0.25, "beta": 2.5, "simpo_gamma": 0.25}),
    "orpo": ("orpo", {"beta": 0.1}),
}

# Entries of evaluate()'s dict that measure time, not the model.
TIMING_KEYS = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


def close(a, b, what):
    assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (what, a, b)


def load_tokenizer():
    tok = rm_fixture.load_tokenizer()
    assert tok.bos_token == "<|im_start|>" and tok.bos_token_id == 1, (tok.bos_token, tok.bos_token_id)
    # Plain text gets no special tokens from this tokenizer (no BOS, no EOS).
    assert tok("Hello")["input_ids"] == tok("Hello", add_special_tokens=False)["input_ids"]
    return tok


def build_model(tok, seed):
    cfg = rm_fixture.tiny_llama_config(tok, bos_token_id=1)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    rm_fixture.perturb_norms(model)
    model.eval()
    return model


def load_model(path):
    # A fresh object per run: DPOTrainer patches `forward` (fused LM head) and
    # both trainers write pad ids into the config.
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def seq_stats(model, ids, start, padded_len=None):
    """Plain forward of one sequence; statistics over completion tokens ids[start:]."""
    assert start >= 1
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], dtype=torch.long)).logits[0].double()
    pred = logits[start - 1 : len(ids) - 1]  # positions predicting ids[start:]
    tgt = torch.tensor(ids[start:], dtype=torch.long)
    logp = F.log_softmax(pred, dim=-1)
    out = {
        "logp": float(logp.gather(1, tgt[:, None]).sum()),
        "len": len(ids) - start,
        "entropy_sum": float(-(logp.exp() * logp).sum()),
        "mean_logit_sum": float(pred.mean(dim=-1).sum()),
        "top1": int((pred.argmax(dim=-1) == tgt).sum()),
        "logits_sum_real": float(logits.sum()),
    }
    if padded_len is not None:
        n = padded_len - len(ids)
        with torch.no_grad():
            pl = model(
                input_ids=torch.tensor([ids + [0] * n], dtype=torch.long),
                attention_mask=torch.tensor([[1] * len(ids) + [0] * n], dtype=torch.long),
            ).logits[0].double()
        # real positions do not see the right padding
        close(float(pl[: len(ids)].sum()), out["logits_sum_real"], "padded real logits")
        out["logits_sum_pad"] = float(pl[len(ids) :].sum())
    return out


def clean_metrics(metrics):
    out = {}
    for k, v in metrics.items():
        short = k[len("eval_"):] if k.startswith("eval_") else k
        if short in TIMING_KEYS:
            continue
        out[short] = float(v)
    return dict(sorted(out.items()))


def common_args(tmp, n):
    return dict(
        output_dir=tmp,
        per_device_eval_batch_size=n,
        per_device_train_batch_size=n,
        report_to=[],
        max_length=MAX_LENGTH,
        seed=0,
        bf16=False,
        fp16=False,
        use_cpu=True,
        dataset_num_proc=None,
        disable_tqdm=True,
        logging_strategy="no",
        save_strategy="no",
        gradient_checkpointing=False,
    )


def run_dpo(tok, cfg, tmp):
    policy, ref = load_model(OUT / "policy"), load_model(OUT / "ref")
    args = DPOConfig(**common_args(tmp, len(PAIRS)), **cfg)
    ds = Dataset.from_list(PAIRS)
    trainer = DPOTrainer(
        model=policy, ref_model=ref, args=args, processing_class=tok, train_dataset=ds, eval_dataset=ds
    )
    metrics = clean_metrics(trainer.evaluate())
    ev = trainer.eval_dataset
    assert len(ev) == len(PAIRS), "TRL dropped rows"
    pol, rf = load_model(OUT / "policy"), load_model(OUT / "ref")
    pairs = []
    for i in range(len(ev)):
        p, c, r = list(ev[i]["prompt_ids"]), list(ev[i]["chosen_ids"]), list(ev[i]["rejected_ids"])
        full_c, full_r = p + c, p + r
        assert max(len(full_c), len(full_r)) < MAX_LENGTH, "would be truncated"
        # the collator's concatenation is exactly the tokenization of prompt + completion (+ EOS)
        row = PAIRS[i]
        for full, key in ((full_c, "chosen"), (full_r, "rejected")):
            text = row["prompt"] + row[key]
            if not text.endswith(EOS_TEXT):
                text += EOS_TEXT
            assert full == tok(text)["input_ids"], (i, key)
            assert full[-1] == tok.eos_token_id and full.count(tok.eos_token_id) == 1
        pc, pr = seq_stats(pol, full_c, len(p)), seq_stats(pol, full_r, len(p))
        rc, rr = seq_stats(rf, full_c, len(p)), seq_stats(rf, full_r, len(p))
        pairs.append(
            {
                "chosen_ids": full_c,
                "rejected_ids": full_r,
                "chosen_completion_start": len(p),
                "rejected_completion_start": len(p),
                "policy_chosen_logp": pc["logp"],
                "policy_rejected_logp": pr["logp"],
                "ref_chosen_logp": rc["logp"],
                "ref_rejected_logp": rr["logp"],
                "chosen_len": pc["len"],
                "rejected_len": pr["len"],
                "policy_chosen_entropy_sum": pc["entropy_sum"],
                "policy_rejected_entropy_sum": pr["entropy_sum"],
                "policy_chosen_mean_logit_sum": pc["mean_logit_sum"],
                "policy_rejected_mean_logit_sum": pr["mean_logit_sum"],
                "policy_chosen_top1": pc["top1"],
            }
        )
    check_dpo(metrics, pairs, cfg)
    return metrics, pairs


def logsig(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def mean(xs):
    return sum(xs) / len(xs)


def check_dpo(m, pairs, cfg):
    beta, ls, lt = cfg["beta"], cfg.get("label_smoothing", 0.0), cfg["loss_type"]
    cr = [p["policy_chosen_logp"] - p["ref_chosen_logp"] for p in pairs]
    rr = [p["policy_rejected_logp"] - p["ref_rejected_logp"] for p in pairs]
    d = [c - r for c, r in zip(cr, rr)]
    if lt == "sigmoid":  # label_smoothing is not used by "sigmoid"
        losses = [-logsig(beta * x) for x in d]
    elif lt == "ipo":  # log-ratios divided by the number of completion tokens
        losses = [
            (c / p["chosen_len"] - r / p["rejected_len"] - 1 / (2 * beta)) ** 2 for c, r, p in zip(cr, rr, pairs)
        ]
    elif lt == "robust":
        losses = [(-(1 - ls) * logsig(beta * x) + ls * logsig(-beta * x)) / (1 - 2 * ls) for x in d]
    else:
        raise ValueError(lt)
    n_c = sum(p["chosen_len"] for p in pairs)
    n_r = sum(p["rejected_len"] for p in pairs)
    mine = {
        "loss": mean(losses),
        "rewards/chosen": mean([beta * x for x in cr]),
        "rewards/rejected": mean([beta * x for x in rr]),
        "rewards/accuracies": mean([1.0 if beta * c > beta * r else 0.0 for c, r in zip(cr, rr)]),
        "rewards/margins": mean([beta * x for x in d]),
        "logps/chosen": mean([p["policy_chosen_logp"] for p in pairs]),
        "logps/rejected": mean([p["policy_rejected_logp"] for p in pairs]),
        "entropy": sum(p["policy_chosen_entropy_sum"] + p["policy_rejected_entropy_sum"] for p in pairs)
        / (n_c + n_r),
        "logits/chosen": sum(p["policy_chosen_mean_logit_sum"] for p in pairs) / n_c,
        "logits/rejected": sum(p["policy_rejected_mean_logit_sum"] for p in pairs) / n_r,
        "mean_token_accuracy": sum(p["policy_chosen_top1"] for p in pairs) / n_c,
        "num_tokens": 0.0,
    }
    for k, v in mine.items():
        close(m[k], v, k)
    extra = set(m) - set(mine) - {"epoch"}
    assert not extra, extra


def run_cpo(tok, cfg, tmp, kind="cpo"):
    policy = load_model(OUT / "policy")
    config, trainer_class = (CPOConfig, CPOTrainer) if kind == "cpo" else (ORPOConfig, ORPOTrainer)
    args = config(**common_args(tmp, len(PAIRS)), **cfg)
    ds = Dataset.from_list(PAIRS)
    trainer = trainer_class(model=policy, args=args, processing_class=tok, train_dataset=ds, eval_dataset=ds)
    metrics = clean_metrics(trainer.evaluate())
    ev = trainer.eval_dataset
    assert len(ev) == len(PAIRS)
    seqs = []
    for i in range(len(ev)):
        e = ev[i]
        for key in ("chosen", "rejected"):
            ids, labels = list(e[f"{key}_input_ids"]), list(e[f"{key}_labels"])
            assert len(ids) == len(labels) < MAX_LENGTH
            start = next(j for j, x in enumerate(labels) if x != -100)
            assert labels[:start] == [-100] * start and labels[start:] == ids[start:]
            assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
            assert ids.count(tok.eos_token_id) == 1
            # BOS + tokenization of prompt + completion (+ EOS id)
            text = PAIRS[i]["prompt"] + PAIRS[i][key]
            body = tok(text, add_special_tokens=False)["input_ids"]
            if body[-1] != tok.eos_token_id:
                body = body + [tok.eos_token_id]
            assert ids == [tok.bos_token_id] + body, (i, key)
            seqs.append((ids, labels, start))
    padded_len = max(len(s[0]) for s in seqs)
    pol = load_model(OUT / "policy")
    pairs = []
    for i in range(len(ev)):
        (ci, cl, cs), (ri, rl, rs) = seqs[2 * i], seqs[2 * i + 1]
        pc, pr = seq_stats(pol, ci, cs, padded_len), seq_stats(pol, ri, rs, padded_len)
        pairs.append(
            {
                "chosen_ids": ci,
                "rejected_ids": ri,
                "chosen_labels": cl,
                "rejected_labels": rl,
                "chosen_completion_start": cs,
                "rejected_completion_start": rs,
                "policy_chosen_logp": pc["logp"],
                "policy_rejected_logp": pr["logp"],
                "chosen_len": pc["len"],
                "rejected_len": pr["len"],
                "policy_chosen_logits_sum_real": pc["logits_sum_real"],
                "policy_chosen_logits_sum_pad": pc["logits_sum_pad"],
                "policy_rejected_logits_sum_real": pr["logits_sum_real"],
                "policy_rejected_logits_sum_pad": pr["logits_sum_pad"],
            }
        )
        if kind == "orpo":
            full = seq_stats(pol, ci, 1)
            pairs[-1]["policy_chosen_full_logp"] = full["logp"]
            pairs[-1]["chosen_full_len"] = full["len"]
    if kind == "orpo":
        check_orpo(metrics, pairs, args)
        return metrics, pairs, padded_len, {"beta": args.beta}
    check_cpo(metrics, pairs, args, padded_len, tok)
    effective = {k: getattr(args, k) for k in ("loss_type", "beta", "label_smoothing", "cpo_alpha", "simpo_gamma", "alpha")}
    return metrics, pairs, padded_len, effective


def check_orpo(m, pairs, args):
    beta = args.beta
    lc = [p["policy_chosen_logp"] / p["chosen_len"] for p in pairs]
    lr = [p["policy_rejected_logp"] / p["rejected_len"] for p in pairs]
    log1mexp = lambda x: math.log(-math.expm1(x))  # noqa: E731
    log_odds = [(c - r) - (log1mexp(c) - log1mexp(r)) for c, r in zip(lc, lr)]
    ratio = [logsig(x) for x in log_odds]
    nll = -sum(p["policy_chosen_full_logp"] for p in pairs) / sum(p["chosen_full_len"] for p in pairs)
    mine = {
        "loss": nll - mean([beta * x for x in ratio]),
        "nll_loss": nll,
        "rewards/chosen": mean([beta * x for x in lc]),
        "rewards/rejected": mean([beta * x for x in lr]),
        "rewards/accuracies": mean([1.0 if beta * c > beta * r else 0.0 for c, r in zip(lc, lr)]),
        "rewards/margins": mean([beta * (c - r) for c, r in zip(lc, lr)]),
        "logps/chosen": mean(lc),
        "logps/rejected": mean(lr),
        "log_odds_ratio": mean(ratio),
        "log_odds_chosen": mean(log_odds),
    }
    for k, v in mine.items():
        close(m[k], v, k)
    extra = set(m) - set(mine) - {"epoch", "logits/chosen", "logits/rejected"}
    assert not extra, extra


def check_cpo(m, pairs, args, padded_len, tok):
    beta, ls, lt, alpha = args.beta, args.label_smoothing, args.loss_type, args.alpha
    avg = lt in ("ipo", "simpo")  # average_log_prob
    lc = [p["policy_chosen_logp"] / (p["chosen_len"] if avg else 1) for p in pairs]
    lr = [p["policy_rejected_logp"] / (p["rejected_len"] if avg else 1) for p in pairs]
    if alpha != 0.0:
        rc = [(1 - math.exp(x) ** (-alpha)) / alpha for x in lc]
        rr = [(1 - math.exp(x) ** (-alpha)) / alpha for x in lr]
    else:
        rc, rr = lc, lr
    logits = [c - r for c, r in zip(rc, rr)]
    if lt == "simpo":
        logits = [x - args.simpo_gamma / beta for x in logits]
    assert lt in ("simpo", "sigmoid")
    losses = [-logsig(beta * x) * (1 - ls) - logsig(-beta * x) * ls for x in logits]
    n_c = sum(p["chosen_len"] for p in pairs)
    nll = -sum(p["policy_chosen_logp"] for p in pairs) / n_c if args.cpo_alpha != 0 else 0.0
    per_batch = len(pairs) * padded_len * len(tok)
    mine = {
        "loss": mean(losses) + args.cpo_alpha * nll,
        "nll_loss": nll,
        "rewards/chosen": mean([beta * x for x in rc]),
        "rewards/rejected": mean([beta * x for x in rr]),
        "rewards/accuracies": mean([1.0 if beta * c > beta * r else 0.0 for c, r in zip(rc, rr)]),
        "rewards/margins": mean([beta * (c - r) for c, r in zip(rc, rr)]),
        "logps/chosen": mean(lc),
        "logps/rejected": mean(lr),
        "logits/chosen": sum(p["policy_chosen_logits_sum_real"] + p["policy_chosen_logits_sum_pad"] for p in pairs)
        / per_batch,
        "logits/rejected": sum(
            p["policy_rejected_logits_sum_real"] + p["policy_rejected_logits_sum_pad"] for p in pairs
        )
        / per_batch,
    }
    for k, v in mine.items():
        close(m[k], v, k)
    extra = set(m) - set(mine) - {"epoch"}
    assert not extra, extra


def main():
    disable_caching()
    OUT.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer()

    for name, seed in (("policy", 0), ("ref", 1)):
        mdir = OUT / name
        if mdir.exists():
            shutil.rmtree(mdir)
        build_model(tok, seed).save_pretrained(mdir, safe_serialization=True)
        for extra in mdir.iterdir():
            if extra.name not in ("config.json", "model.safetensors"):
                extra.unlink()  # generation_config.json is not needed
    tok.save_pretrained(OUT / "policy")
    assert (OUT / "policy" / "tokenizer.json").exists()

    with open(OUT / "pairs.jsonl", "w", encoding="utf-8") as f:
        for r in PAIRS:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    expected = {
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "eos_text": tok.eos_token,
        "bos_token_id": tok.bos_token_id,
        "bos_text": tok.bos_token,
        "bos_note": "DPOTrainer adds no BOS (the tokenizer adds no special tokens to plain text); "
        "CPOTrainer prepends bos_token_id to every prompt",
        "batching": "all 8 pairs in one eval batch (per_device_eval_batch_size = 8)",
        "tolerance": "|a - b| <= 1e-5 * max(1, |b|) (TRL metrics are float32)",
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kind, cfg) in RUNS.items():
            entry = {
                "trainer": {
                    "dpo": "DPOTrainer",
                    "cpo": "trl.experimental.cpo.CPOTrainer",
                    "orpo": "trl.experimental.orpo.ORPOTrainer",
                }[kind]
            }
            entry["config"] = dict(cfg, max_length=MAX_LENGTH)
            if kind == "dpo":
                metrics, pairs = run_dpo(tok, cfg, tmp)
            else:
                metrics, pairs, padded_len, effective = run_cpo(tok, cfg, tmp, kind)
                entry["effective_config"] = effective
                entry["padded_len"] = padded_len
            entry["metrics"] = metrics
            entry["pairs"] = pairs
            expected["runs"][name] = entry
    # json.dump writes floats with repr(), i.e. full (shortest round-trip) precision.
    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")

    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>10}  {p.relative_to(ROOT)}")
    for name, e in expected["runs"].items():
        print(name, json.dumps(e["metrics"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
