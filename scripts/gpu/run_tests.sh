#!/usr/bin/env bash
# On the GPU machine: runs the packed test binary (see pack.sh) against the GPU and writes
# the log to $OUT (or ./gpu-out). Usage: bash scripts/gpu/run_tests.sh [gtest filter]
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out"
tar -C .carry -xJf .carry/gpu.tar.xz
# The test binary was built in /work/main: make that path lead here.
if [ "$PWD" != /work/main ] && [ ! -e /work/main ]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
for p in cuda-release cpu-release; do mkdir -p build/$p && cp .carry/gpu/lrnn build/$p/lrnn; done
export LD_LIBRARY_PATH=$PWD/.carry/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
.carry/gpu/lrnn_tests --gtest_filter="${1:-*}" 2>&1 | tee "$out/tests.log" | tail -40
