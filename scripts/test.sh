#!/usr/bin/env bash
# Builds lrnn and runs every test: the unit and op-comparison tests (ctest, Release build),
# a short run of each fuzzer, and, where nvcc is present, a compile of the CUDA backend.
# This is the README's test command and what CI runs (.ci/run).
#   LRNN_FUZZ_SECONDS (default 10)  seconds per fuzz target; 0 skips fuzzing
#   LRNN_SKIP_CUDA=1                skip the CUDA compile check
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
werror=OFF
if [ "${CI:-}" = "true" ]; then werror=ON; fi
export LRNN_WERROR=$werror

echo "== build (cpu-release)"
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$jobs"

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  if [ "${LRNN_SKIP_CUDA:-0}" != "1" ]; then
    echo "== compile check (cuda-release: sm_90a + sm_80)"
    cmake --preset cuda-release >/dev/null
    cmake --build --preset cuda-release -j "$jobs" --target lrnn lrnn_cli
  fi
else
  echo "== nvcc not found: CUDA compile check skipped"
fi

secs=${LRNN_FUZZ_SECONDS:-10}
if [ "$secs" != "0" ]; then
  echo "== fuzz (${secs}s per target)"
  bash scripts/fuzz.sh "$secs"
fi

echo "== tests (ctest)"
ctest --preset cpu-release -j "$jobs" --timeout 900
