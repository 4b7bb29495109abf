#!/usr/bin/env bash
# On the GPU machine (carry build/h-cuda2-pack): runs the decay_attn CUDA tests, the lrnn timing
# mode and fla's chunk kernels at the same sizes; logs under $OUT. Usage: chunk_device.sh [gtest filter] [fla|nofla]
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out" /tmp/dab
tar -C /tmp/dab -xJf build/h-cuda2-pack/bin.tar.xz
export LD_LIBRARY_PATH=/tmp/dab/bin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
/tmp/dab/bin/da_cuda_tests --gtest_filter="${1:-decay_attn_cuda*}" > "$out/tests.log" 2>&1
echo "tests rc=$?"; grep -E "^\[  (PASSED|FAILED) |FAILED  \]|tests ran" "$out/tests.log" | head -60
LRNN_CHUNK_TIMING=1 /tmp/dab/bin/da_cuda_tests --gtest_filter='decay_attn_cuda.timing' 2>&1 | grep -E "^lrnn|FAIL|rror" | tee "$out/timing.log"
if [ "${2:-fla}" = fla ]; then
  PYTHONPATH=$PWD/build/h-cuda2-pack/py PYTHONUNBUFFERED=1 timeout 380 python3 bench/gpu/chunk_fla.py 2>&1 | grep -E "^fla|failed"  | tee "$out/fla.log"
fi
