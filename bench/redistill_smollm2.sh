#!/usr/bin/env bash
# Re-distilling the pruned SmolLM2 (issue 17 §4), design fixed before the
# run: the student is bench/prune_smollm2.sh's OSSCAR model at FFN 50% with
# 2 of 3 KV groups; the teacher is the dense SmolLM2 (dequantized); the
# text is the six training plays concatenated (their last 5% held out by
# the trainer); forward KL + CE (r = 0.5, τ = 1, the distillation study's
# better objective); 100 steps of 4 × 256 tokens, lr 1e-4 (cosine to 1e-5,
# 10 warmup steps), seed 0; held-out evaluation every 25 steps; then Hamlet
# perplexity over the same 4096 tokens as the pruning table.
#   bash bench/prune_smollm2.sh && bash bench/redistill_smollm2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/caracal
OUT=${OUT:-runs/redistill_smollm2}
cat .cache/shakespeare/plays/*.txt > runs/plays_all.txt
$BIN --threads 2 distill --teacher .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
  --student runs/prune_smollm2/ffn50_kv2.osscar --data runs/plays_all.txt \
  --loss fkl --kd-weight 0.5 --temperature 1 --steps 100 --batch-size 4 --seq-len 256 \
  --lr 1e-4 --min-lr 1e-5 --warmup 10 --eval-every 25 --eval-batches 2 --ckpt-every 25 \
  --out "$OUT" --json > "$OUT.distill.json"
$BIN --threads 2 lm eval --model "$OUT" --data .cache/shakespeare/hamlet.txt --seq-len 256 --max-windows 16 --json > "$OUT.eval.json"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
curve = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
res = {
    "distill": json.load(open(f"{out}.distill.json")),
    "hamlet_after": json.load(open(f"{out}.eval.json")),
    "curve": [{k: r[k] for k in ("step", "loss", "kd", "ce", "eval_ppl", "eval_kl_to_teacher") if k in r} for r in curve],
}
json.dump(res, open("bench/results/redistill_smollm2.json", "w"), indent=1)
print(json.dumps({"hamlet_ppl_after": res["hamlet_after"]["perplexity"], "curve": [c for c in res["curve"] if "eval_ppl" in c]}, indent=1))
PY
