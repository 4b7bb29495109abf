#!/usr/bin/env bash
# Nsight Compute profile of the tensor-core decay_attn kernels, on the device machine: runs the
# timing test in quick mode (scalar decay, B = 8, T = 4096, H = 16, K = V = 128, bf16) under ncu
# for each kernel named, and writes per kernel the details page and the per-instruction SASS
# page (stall reasons) to $OUT.
#   bash scripts/gpu/profile.sh [pack name (default h-cuda1)] [kernel regex ...]
# Needs .carry/<pack>.tar.xz from scripts/gpu/pack.sh (TEST_TARGET=lrnn_gpu_tests is enough).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out"
name=${1:-h-cuda1}
shift || true
[ $# -gt 0 ] || set -- tc_fwd tc_dq tc_dkv
tar -C .carry -xJf ".carry/$name.tar.xz" || exit 1
pk=.carry/$name
export LD_LIBRARY_PATH=$PWD/$pk/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "ncu not found" | tee "$out/profile.log"; exit 1; }
for k in "$@"; do
  LRNN_CHUNK_TIMING=quick "$ncu" --kernel-name "regex:$k" --launch-skip 2 --launch-count 1 --set full \
    --import-source no -f -o "$out/$k" "$pk/lrnn_tests" --gtest_filter=decay_attn_cuda.timing >"$out/$k.run.log" 2>&1
  "$ncu" -i "$out/$k.ncu-rep" --page details >"$out/$k.details.txt" 2>&1
  "$ncu" -i "$out/$k.ncu-rep" --page source --csv --print-source sass >"$out/$k.sass.csv" 2>&1
  rm -f "$out/$k.ncu-rep"
done
ls -la "$out"
