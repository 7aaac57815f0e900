#!/usr/bin/env bash
# Build the `caracal` binary with the `cuda` feature on a machine with no GPU
# and no CUDA install (recipe: ../shared/reference/kernels-gpu-anchor.md).
# nvcc 13.0 comes from PyPI (candle's own kernels need it at build time; ours
# are compiled at run time by NVRTC). The CUDA libraries are linked against
# empty stubs and loaded from the GPU machine at run time (tools/gpu_check.sh).
#
#   bash tools/cuda_build.sh           # -> .gpu/caracal (the cuda build)
#   bash tools/cuda_build.sh --tests   # also .gpu/cuda_vs_cpu and .gpu/caracal_kernels
# .gpu/ is what tools/gpu_check.sh runs on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${CUDA_WORK:-$PWD/.cache/cuda}
ROOT=$WORK/root/nvidia/cu13
STUBS=$WORK/stubs
if [ ! -x "$ROOT/bin/nvcc" ]; then
  mkdir -p "$WORK/wheels"
  python3 -m pip download -q --no-deps -d "$WORK/wheels" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 \
    nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85
  for w in "$WORK"/wheels/*.whl; do unzip -q -o "$w" -d "$WORK/root"; done
fi
if [ ! -e "$STUBS/libcudart.so" ]; then
  mkdir -p "$STUBS"
  for l in libcuda.so:libcuda.so.1 libnvrtc.so:libnvrtc.so.13 libcurand.so:libcurand.so.10 \
           libcublas.so:libcublas.so.13 libcublasLt.so:libcublasLt.so.13; do
    gcc -shared -o "$STUBS/${l%%:*}" -Wl,-soname,"${l##*:}" -x c /dev/null
  done
  ln -sf "$ROOT/lib/libcudart.so.13" "$STUBS/libcudart.so"
fi
export CUDA_HOME=$ROOT CUDA_ROOT=$ROOT CUDA_PATH=$ROOT CUDA_COMPUTE_CAP=90 PATH=$ROOT/bin:$PATH
export RUSTFLAGS="-L $STUBS -C link-arg=-Wl,--unresolved-symbols=ignore-all"
export CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-$PWD/target/cuda}
cargo build --release -p caracal-cli --features cuda
mkdir -p .gpu
cp target/cuda/release/caracal .gpu/caracal
[ -f ../shared/reference/liger_anchor.py ] && cp ../shared/reference/liger_anchor.py .gpu/
if [ "${1:-}" = "--tests" ]; then
  # The GPU-vs-CPU comparison tests (and the NVRTC unit test), as binaries
  # that tools/gpu_check.sh runs.
  cargo test --release -p caracal-kernels --features cuda --lib --test cuda_vs_cpu --no-run 2>&1 \
    | tee "$WORK/test-build.log"
  for t in cuda_vs_cpu caracal_kernels; do
    exe=$(grep -o "target/cuda/release/deps/$t-[0-9a-f]*" "$WORK/test-build.log" | tail -1)
    cp "$exe" ".gpu/$t"
  done
fi
# The binaries carry candle's PTX: strip and xz them to travel (~9 MB each).
for f in .gpu/caracal .gpu/cuda_vs_cpu .gpu/caracal_kernels; do
  [ -f "$f" ] || continue
  strip "$f" && xz -T2 -6 -f "$f"
done
ls -la .gpu
