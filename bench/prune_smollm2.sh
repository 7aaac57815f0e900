#!/usr/bin/env bash
# Structured pruning of SmolLM2-135M-Instruct (issue 17 §4), design fixed
# before the run: calibration on the six training plays of
# .cache/shakespeare/plays (the pruner's defaults: at most 128 windows of 256
# tokens), held-out perplexity on Hamlet (16 windows of 256 tokens, the same
# for every model), no re-distillation. Two sizes: FFN 50% with all three KV
# groups, and FFN 50% with two of three KV groups; three methods each
# (osscar, minitron, magnitude). Then prefill speed: `lm eval` over the same
# 4096 Hamlet tokens (batch 1, 256-token windows, logits kept) for the dense
# model and each size's OSSCAR model, alternating, 3 repetitions, 2 threads.
#
#   bash tools/fetch_fixtures.sh && cargo build --release -p caracal-cli
#   bash bench/prune_smollm2.sh            # -> bench/results/prune_smollm2.json
#   SPEED_ONLY=1 bash bench/prune_smollm2.sh   # rerun only the speed part (a quiet machine)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/caracal
GGUF=.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
CALIB=.cache/shakespeare/plays
HELD=.cache/shakespeare/hamlet.txt
OUT=${OUT:-runs/prune_smollm2}
mkdir -p "$OUT"
EVAL=(lm eval --data "$HELD" --seq-len 256 --max-windows 16 --json)
if [ -z "${SPEED_ONLY:-}" ]; then
$BIN --threads 2 "${EVAL[@]}" --model "$GGUF" > "$OUT/dense.eval.json"
for size in "ffn50:--ffn-keep 0.5" "ffn50_kv2:--ffn-keep 0.5 --kv-groups-keep 2"; do
  name=${size%%:*}; flags=${size#*:}
  for m in osscar minitron magnitude; do
    d="$OUT/$name.$m"
    # shellcheck disable=SC2086
    $BIN --threads 2 prune --structured --method $m --model "$GGUF" --calib "$CALIB" $flags --out "$d" --json > "$d.prune.json"
    $BIN --threads 2 "${EVAL[@]}" --model "$d" > "$d.eval.json"
  done
done
fi
rm -f "$OUT"/speed.*.json
for rep in 1 2 3; do
  for model in "$GGUF" "$OUT/ffn50.osscar" "$OUT/ffn50_kv2.osscar"; do
    tag=$(basename "$model" | tr '.' '_')
    $BIN --threads 2 "${EVAL[@]}" --model "$model" > "$OUT/speed.$tag.$rep.json"
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
def load(p):
    return json.load(open(p))
res = {"dense": load(f"{out}/dense.eval.json"), "pruned": {}, "speed": {}}
for p in sorted(glob.glob(f"{out}/*.prune.json")):
    name = os.path.basename(p)[: -len(".prune.json")]
    d = os.path.join(out, name)
    res["pruned"][name] = {
        "prune": load(p),
        "eval": load(f"{d}.eval.json"),
        "model_bytes": os.path.getsize(os.path.join(d, "model.safetensors")),
    }
for p in sorted(glob.glob(f"{out}/speed.*.json")):
    tag = os.path.basename(p).split(".")[1]
    e = load(p)
    res["speed"].setdefault(tag, []).append(e["tokens"] / e["seconds"])
res["speed_median_tokens_per_s"] = {k: statistics.median(v) for k, v in res["speed"].items()}
os.makedirs("bench/results", exist_ok=True)
json.dump(res, open("bench/results/prune_smollm2.json", "w"), indent=1)
print(json.dumps({k: v["eval"]["perplexity"] for k, v in res["pruned"].items()}, indent=1))
print("dense", res["dense"]["perplexity"], res["speed_median_tokens_per_s"])
PY
