#!/usr/bin/env bash
# The main job, end to end, with what lrnn can do today: build, inspect a real-format
# checkpoint, and time the decay_attn operator forms against the machine's own SGEMM.
# (Training a model from text and generating from it replaces this with issue #8.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$(nproc)" --target lrnn_cli
lrnn=build/cpu-release/lrnn
echo
echo "== lrnn info tests/data/fla_gla (a tiny GLA checkpoint in fla's format)"
"$lrnn" info tests/data/fla_gla
if "$lrnn" bench --help >/dev/null 2>&1; then
  echo
  echo "== lrnn bench op decay_attn (GLA, B=1 T=2048 H=4 K=V=128, fp32)"
  "$lrnn" bench op decay_attn --variant gla --B 1 --T 2048 --H 4 --K 128 --V 128
fi
