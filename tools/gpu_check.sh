#!/usr/bin/env bash
# The GPU check of the `cuda` feature, in one script for a machine with an
# NVIDIA GPU and CUDA 13 libraries (no Rust toolchain needed there):
#   1. the GPU-vs-CPU tests of every fused op (.gpu/cuda_vs_cpu) and the
#      NVRTC compile test (.gpu/caracal_kernels);
#   2. `caracal bench kernels --device cuda --json` at Liger's H100 shapes;
#   3. optionally (ANCHOR=1, with the Liger wheel in .whl/), the PyTorch and
#      Liger anchor on the same card (reference/liger_anchor.py, copied to
#      .gpu/).
# Build the binaries first on any x86-64 machine: bash tools/cuda_build.sh --tests
# Results go to $OUT (default /tmp/gpu_out): tests.log, bench.json, anchor.jsonl.
# Finishes in well under 8 minutes on an H100 (the bench's share is ~2 min).
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=${GPU_BIN:-.gpu}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
T0=$(date +%s)
# Unpack the binaries that tools/cuda_build.sh stripped and compressed.
BIN=/tmp/caracal_gpu_bin
mkdir -p "$BIN"
for f in "$SRC"/*; do
  case "$f" in
    *.xz) python3 -c "import lzma,sys; open(sys.argv[2],'wb').write(lzma.open(sys.argv[1]).read())" "$f" "$BIN/$(basename "$f" .xz)" ;;
    *) cp "$f" "$BIN/" ;;
  esac
done
chmod +x "$BIN"/* 2>/dev/null

# The machine's CUDA libraries (the binary was linked against stubs).
find_lib() {
  for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 \
           /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13.0/targets/x86_64-linux/lib \
           /usr/local/cuda/lib64; do
    [ -e "$d/$1" ] && { echo "$d/$1"; return; }
  done
  ldconfig -p 2>/dev/null | awk -v l="$1" '$1 == l { print $NF; exit }'
}
PRE=""; DIRS=""
for l in libcuda.so.1 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
  p=$(find_lib "$l")
  if [ -z "$p" ]; then echo "gpu_check: $l not found on this machine" >&2; exit 2; fi
  PRE="$PRE:$p"; DIRS="$DIRS:$(dirname "$p")"
done
export LD_PRELOAD=${PRE#:}
export LD_LIBRARY_PATH=${DIRS#:}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

echo "== 1. GPU vs CPU tests"
export CARACAL_REQUIRE_GPU=1
timeout 60 "$BIN/caracal_kernels" cuda::rt 2>&1 | tail -3 | tee "$OUT/tests.log"
timeout 180 "$BIN/cuda_vs_cpu" --test-threads=1 2>&1 | tee -a "$OUT/tests.log"
TESTS=${PIPESTATUS[0]}
echo "tests exit $TESTS after $(( $(date +%s) - T0 )) s"

echo "== 1b. no visible GPU gives a clear error"
NOGPU=$(CUDA_VISIBLE_DEVICES= timeout 30 "$BIN/caracal" bench kernels --device cuda --ops rms_norm 2>&1)
NOGPU_RC=$?
echo "exit $NOGPU_RC: $NOGPU" | tail -2 | tee -a "$OUT/tests.log"
if [ "$NOGPU_RC" = 0 ] || ! echo "$NOGPU" | grep -q "could not open CUDA device"; then
  echo "FAILED: no clear error without a visible GPU" | tee -a "$OUT/tests.log"; TESTS=1
fi

echo "== 2. bench kernels --device cuda"
timeout 200 "$BIN/caracal" bench kernels --device cuda --reps 10 ${BENCH_OPS:+--ops $BENCH_OPS} --json > "$OUT/bench.json" 2> "$OUT/bench.err"
BENCH=$?
tail -5 "$OUT/bench.err"
python3 - "$OUT/bench.json" <<'PY' || cat "$OUT/bench.json"
import json, sys
rows = json.load(open(sys.argv[1]))
for r in rows:
    print(f"{r['op']:<9} {r['impl']:<22} {r['ms_median']:>9.3f} ms {r['peak_bytes']/2**20:>9.0f} MiB  {r['shape']}")
PY
echo "bench exit $BENCH after $(( $(date +%s) - T0 )) s"

if [ "${ANCHOR:-0}" = 1 ] && ls .whl/liger_kernel-*.whl >/dev/null 2>&1; then
  echo "== 3. anchor: PyTorch eager and Liger on this card"
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
  for c in ${ANCHOR_CASES:-flce ce rmsnorm swiglu rope}; do
    for i in torch liger; do
      timeout 60 python3 "$BIN/liger_anchor.py" "$c" "$i" 2>/dev/null | tail -1 | tee -a "$OUT/anchor.jsonl"
    done
  done
fi
echo "gpu_check done in $(( $(date +%s) - T0 )) s (tests $TESTS, bench $BENCH)"
[ "$TESTS" = 0 ] && [ "$BENCH" = 0 ]
