#!/usr/bin/env bash
# Model decoding on CPU (issue #5): synthetic ~100M-parameter GLA, RWKV-7 and RecurrentGemma
# checkpoints in their real formats, prefill (512-token prompt) and decode (128 tokens, batch 1)
# tokens/s, each against the memory-bandwidth floor measured in the same run (weight bytes read
# per token / read bandwidth on the same threads). Usage: bash scripts/bench_models.sh [LRNN] [THREADS]
# Needs ~1.5 GiB of memory and ~400 MB of temporary disk per model.
set -uo pipefail
lrnn=${1:-build/cpu-release/lrnn}
threads=${2:-2}
lscpu | grep -E 'Model name|^CPU\(s\)' || true
for arch in gla rwkv7 recurrent_gemma; do
  echo "== $arch"
  "$lrnn" --threads "$threads" bench decode "$arch" --params 100M
done
