#!/usr/bin/env bash
# Device run for the Hopper wgmma kernels (tc_fwd_wg, tc_seg_wg: src/ops/decay_attn/cuda/chunk_wg.cuh;
# LRNN_DA_WG=0 turns them off, 1 keeps the threads' own stores of O, 2 (the default) TMA stores;
# LRNN_DA_SEG_WG=0 / 1 / 2 (default): the segment passes on wgmma none / forward-direction / both;
# LRNN_DA_KEY_WG=0 / 1 (default): the fused per-key forward tc_key_wg off / on):
# the GPU suite with it on for the forward without the normaliser (s), the decay_attn / C ABI tests
# with it on everywhere (1), memcheck and racecheck of wgmma cases (both segment passes on wgmma: the default), then the benchmark's lrnn rows
# with it on and off in alternating processes (same run: the A/B). Needs .carry/<pack>.tar.xz from
# scripts/gpu/pack.sh (TEST_TARGET=lrnn_gpu_tests is enough) and .carry/py (bench/gpu/README.md).
#   bash scripts/gpu/wg_check.sh [pack name (default gpu)]
# AB: the benchmark processes' settings, in order (default "2 0 2"): a value is LRNN_DA_WG's, or
# VAR=value[,VAR=value] environment assignments (e.g. AB="LRNN_DA_SEG_WG=2 LRNN_DA_SEG_WG=0"); PROF and
# NCU_OP (below). QUICK=1 (~3 minutes instead of ~5): the GPU suite on the default kernels instead of
# LRNN_DA_WG=s, no racecheck.
# Everything that decides the result is printed (the device run returns the output's tail); logs in $OUT/logs.tgz.
set -u
# shellcheck source=scripts/gpu/common.sh
source "$(dirname "$0")/common.sh" "${1:-gpu}"
echo "HGMMA instructions in liblrnn.so: $(cuobjdump -sass "$pk/lib/liblrnn.so" 2>/dev/null | grep -c HGMMA)"
gpu='cuda*:*cuda*:capi*:*Cuda*:*CUDA*'
quick=${QUICK:-0}
if [ "$quick" = 1 ]; then
  step "GPU suite, default kernels" tests_s.log timeout 200 "$pk/lrnn_tests" --gtest_filter="$gpu"
else
  step "GPU suite, LRNN_DA_WG=s" tests_s.log env LRNN_DA_WG=s timeout 200 "$pk/lrnn_tests" --gtest_filter="$gpu"
fi
step "decay_attn + C ABI, LRNN_DA_WG=1" tests_1.log env LRNN_DA_WG=1 timeout 150 "$pk/lrnn_tests" --gtest_filter='decay_attn_cuda*:capi*'
step "decay_attn, segments 3" tests_seg.log env LRNN_DA_SEGMENTS=3 timeout 150 "$pk/lrnn_tests" --gtest_filter='decay_attn_cuda*'
# (MC_FILTER / RC_FILTER replace the memcheck / racecheck tests; MC_SEGS / RC_SEGS their LRNN_DA_SEGMENTS)
step "memcheck, default kernels, segments ${MC_SEGS:-3}" memcheck.log env LRNN_DA_SEGMENTS=${MC_SEGS:-3} timeout 150 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 3 \
  "$pk/lrnn_tests" --gtest_filter="${MC_FILTER:-decay_attn_cuda_simple_gla.t200_init_k128_v128:decay_attn_cuda_retnet.t63_init_k64_v128:decay_attn_cuda_mlstm.varlen:decay_attn_cuda_mlstm_sig.t200_init_k128_v128}"
[ "$quick" = 1 ] || step "racecheck, default kernels, segments ${RC_SEGS:-3}" racecheck.log env LRNN_DA_SEGMENTS=${RC_SEGS:-3} timeout 300 compute-sanitizer --tool racecheck \
  --racecheck-report hazard --print-limit 10 --error-exitcode 3 "$pk/lrnn_tests" \
  --gtest_filter="${RC_FILTER:-decay_attn_cuda_simple_gla.t200_init_k128_v128:decay_attn_cuda_mlstm.t200_init_k128_v128:decay_attn_cuda_gla.t65_k128_v64}"
# A/B: lrnn rows only (the peers need their own calls: bench/gpu/README.md), alternating processes.
export PYTHONPATH=$PWD/.carry/py:${PYTHONPATH:-} PYTHONUNBUFFERED=1
# (SKIP replaces the benchmark ops left out, e.g. to time lrnn_gla too)
skip=${SKIP:-sdpa_flash_causal,fla_chunk_simple_gla,fla_chunk_gla,fla_chunk_rwkv6,lrnn_gla,lrnn_rwkv6,lrnn_mlstm_recompute}
ab=${AB:-2 0 2}
i=0
for w in $ab; do
  i=$(( i + 1 ))
  t=$(date +%s)
  case $w in *=*) set_env=${w//,/ } ;; *) set_env="LRNN_DA_WG=$w" ;; esac
  # shellcheck disable=SC2086
  env $set_env timeout 150 python3 bench/gpu/bench_decay_attn.py --lib "$pk/lib/liblrnn.so" --skip-tfla --skip "$skip" \
    --out "$out/ab$i" >"$out/ab$i.log" 2>&1
  echo "bench process $i ($set_env): exit $? in $(( $(date +%s) - t )) s"
done
python3 - "$out" $ab <<'PY'
import json, sys
out, ws = sys.argv[1], sys.argv[2:]
for i, w in enumerate(ws, 1):
    try:
        r = json.load(open(f"{out}/ab{i}/bench.json"))
    except Exception as e:  # noqa: BLE001
        print(f"ab{i}: no results ({e})")
        continue
    print(f"ab{i} ({w}): copy {r.get('copy_bw_GBps', 0):.0f} GB/s")
    for x in r["rows"]:
        print("  %-26s %dx%-6d fwd %-8s fwd+bwd %-8s fwd floor %s %s" % (x.get("op"), x.get("B", 0), x.get("T", 0), x.get("fwd_ms"),
              x.get("fwdbwd_ms"), x.get("fwd_floor_frac"), (x.get("status", "") + " " + x.get("error", ""))[:80]))
PY
# PROF=op,op: GPU kernel times (us per call) of those ops' forward+backward with the default kernels,
# e.g. PROF=lrnn_mlstm,lrnn_simple_gla for where mLSTM's extra time goes.
if [ -n "${PROF:-}" ]; then
  timeout 150 python3 bench/gpu/bench_decay_attn.py --lib "$pk/lib/liblrnn.so" --skip-tfla --skip "$skip" --reps 5 \
    --profile "$PROF" --out "$out/prof" >"$out/prof.log" 2>&1
  echo "kernel profile: exit $?"
  for f in "$out"/prof/profile_*.txt; do [ -e "$f" ] && head -14 "$f"; done
fi
[ -n "${NCU_OP:-}" ] && ncu_op
echo "total $(( $(date +%s) - t0 )) s"
