#!/usr/bin/env bash
# Reference checks (the pre-training demo): build, load tiny real-format
# checkpoints of several architectures, check their logits against the reference
# implementations' (HF transformers / fla), generate with constant memory, and time the
# decay_attn operator forms against the machine's own SGEMM.
# (The main job — training on a real corpus and generating — is scripts/demo.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$(nproc)" --target lrnn_cli
lrnn=build/cpu-release/lrnn
echo
echo "== lrnn info tests/data/fla_gla (a tiny GLA checkpoint in fla's format)"
"$lrnn" info tests/data/fla_gla | sed -n 1,12p
echo
echo "== logits vs the reference implementations (tiny random-weight checkpoints, fp32)"
for m in fla_gla fla_retnet fla_rwkv6 fla_rwkv7 fla_gated_deltanet hf_rwkv4 hf_recurrentgemma hf_xlstm; do
  printf '%-20s ' "$m"
  "$lrnn" logits --model "tests/data/$m" --ids-npy "tests/data/$m/input_ids.npy" \
    --compare "tests/data/$m/logits.npy" 2>/dev/null || echo "(not supported yet)"
done
echo
echo "== generate 256 tokens from the GLA checkpoint (ids; the weights are random)"
"$lrnn" generate --model tests/data/fla_gla --ids 1,2,3,4,5 -n 256 --temperature 0.8 --top-k 40 --no-stream | cut -c1-120
if "$lrnn" bench --help >/dev/null 2>&1; then
  echo
  echo "== lrnn bench op decay_attn (simple GLA, B=1 T=2048 H=4 K=V=128, fp32)"
  "$lrnn" bench op decay_attn --variant simple_gla --B 1 --T 2048 --H 4 --K 128 --V 128
fi
