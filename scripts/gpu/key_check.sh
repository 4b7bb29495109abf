#!/usr/bin/env bash
# Short device run for the fused per-key forward (tc_key_wg, src/ops/decay_attn/cuda/chunk_key_wg.cuh;
# LRNN_DA_KEY_WG=0 turns it off): its own test, the decay_attn and C ABI tests, the racecheck barrier
# probe, an A/B of benchmark rows (alternating processes), a profile, then memcheck (GLA, RWKV-6, simple
# GLA varlen, mLSTM) and racecheck (GLA, RWKV-6), in that order (the most important first: a run cut
# short by its time limit still prints what it did). Needs .carry/<pack>.tar.xz from scripts/gpu/pack.sh
# (TEST_TARGET=lrnn_gpu_tests) and .carry/py.tar.xz (bench/gpu/README.md).
#   bash scripts/gpu/key_check.sh [pack name (default gpu)]
# AB: the benchmark processes' LRNN_DA_KEY_WG values (default "1 0 1", empty: none; or NAME=value[,NAME=value] each; ABT: each one's time limit, default
# 240 s: four ops at both shapes took more than 120 in run 29, fla's reference for simple GLA autotuning
# first; the processes share Triton's cache in /tmp/tc); ONLY: the benchmark ops;
# TESTS: the gtest filter (default decay_attn and C ABI); SAN=0: no memcheck / synccheck / racecheck, MC=0: no
# memcheck (MCT: its time limit, default 120 s), RC=0: no synccheck / racecheck
# (MC_FILTER, RC_FILTER: their gtest filters); PROBE=0: no racecheck probe, PROBE_MODES: its modes (default 0 1 2 3 4 5); SYNC=0: no synccheck (SYNC_PROBE_MODES, SYNC_CASES: below); NCU_OP, NCU_KERNEL: Nsight Compute (common.sh ncu_op); PROF: ops to
# profile (kernel times, the GPU's idle gaps between kernels) at PROF_SHAPES (default 8x4096), with PROF_ENV (NAME=value
# ...) set for it.
set -u
# shellcheck source=scripts/gpu/common.sh
source "$(dirname "$0")/common.sh" "${1:-gpu}"
# The fused kernels' own test first: where it fails (or hangs), the rest would only spend device time
# (unless KEEP_GOING=1).
step "key_forward_kernels" key.log timeout 120 "$pk/lrnn_tests" --gtest_filter=decay_attn_cuda.key_forward_kernels
if ! grep -q '^\[  PASSED  \] 1 test' "$out/key.log"; then
  grep -B2 -A8 'Failure' "$out/key.log" | head -120
  echo "key_forward_kernels did not pass (KEEP_GOING=1: the rest runs anyway, its timings of wrong results)"
  [ "${KEEP_GOING:-0}" = 1 ] || { echo "stopping (total $(( $(date +%s) - t0 )) s)"; exit 1; }
fi
step "tests" tests.log timeout 200 "$pk/lrnn_tests" --gtest_filter="${TESTS:-decay_attn_cuda*:capi*}"
# Does racecheck model a CTA barrier reached at different instructions by two warp roles (tc_key_wg's
# pattern)? scripts/gpu/probes/racecheck_barrier.cu: every mode should be free of hazards.
if [ "${PROBE:-1}" = 1 ] && nvcc -arch=sm_90a -o /tmp/rc_probe scripts/gpu/probes/racecheck_barrier.cu >"$out/probe.log" 2>&1; then
  for m in ${PROBE_MODES:-0 1 2 3 4 5}; do
    timeout 60 compute-sanitizer --tool racecheck --racecheck-report hazard /tmp/rc_probe $m >"$out/probe$m.log" 2>&1
    echo "racecheck probe mode $m: exit $?; $(grep -E 'RACECHECK SUMMARY|^mode' "$out/probe$m.log" | tr '\n' ' ')"
  done
fi
export PYTHONPATH=$PWD/.carry/py:${PYTHONPATH:-} PYTHONUNBUFFERED=1
i=0
for kw in ${AB-1 0 1}; do
  i=$(( i + 1 ))
  t=$(date +%s)
  # (an entry "NAME=value[,NAME=value]" sets those variables instead, e.g. LRNN_DA_KEY_WG=1,LRNN_DA_SEGMENTS=3)
  case $kw in *=*) set_env=${kw//,/ } ;; *) set_env="LRNN_DA_KEY_WG=$kw" ;; esac
  # shellcheck disable=SC2086
  env $set_env timeout "${ABT:-240}" python3 bench/gpu/bench_decay_attn.py --lib "$pk/lib/liblrnn.so" --skip-tfla \
    --triton-cache /tmp/tc --only "${ONLY:-lrnn_gla,lrnn_rwkv6,lrnn_simple_gla}" --out "$out/ab$i" >"$out/ab$i.log" 2>&1
  echo "bench process $i ($set_env): exit $? in $(( $(date +%s) - t )) s"
  python3 - "$out/ab$i/bench.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:  # noqa: BLE001
    print(f"  no results ({e})"); sys.exit(0)
print(f"  copy {r.get('copy_bw_GBps', 0):.0f} GB/s")
for x in r["rows"]:
    if x.get("fwd_ms") is None: continue
    print("  %-18s %dx%-6d fwd %.4f fwd+bwd %.4f fwd floor %.3f %s" % (x.get("op"), x.get("B", 0), x.get("T", 0), x["fwd_ms"],
          x.get("fwdbwd_ms") or 0, x.get("fwd_floor_frac") or 0, (x.get("status", "") + " " + x.get("error", ""))[:60]))
PY
done
if [ -n "${PROF:-}" ]; then
  # (PROF: ops whose forward+backward kernels and the GPU's idle gaps between them are profiled)
  t=$(date +%s)
  # shellcheck disable=SC2086
  env ${PROF_ENV:-} timeout 120 python3 bench/gpu/bench_decay_attn.py --lib "$pk/lib/liblrnn.so" --skip-tfla --only "$PROF" \
    --profile "$PROF" --shapes "${PROF_SHAPES:-8x4096}" --reps 10 --out "$out/prof" >"$out/prof.log" 2>&1
  echo "profile process (${PROF_ENV:-default env}): exit $? in $(( $(date +%s) - t )) s"
  for f in "$out"/prof/profile_*.txt; do [ -e "$f" ] && { head -3 "$f"; grep -A6 '^span' "$f"; }; done
fi
[ -n "${NCU_OP:-}" ] && ncu_op
[ "${SAN:-1}" = 0 ] && { echo "total $(( $(date +%s) - t0 )) s"; exit 0; }
cases=${MC_FILTER:-decay_attn_cuda_gla.t200_init_k128_v128:decay_attn_cuda_rwkv6.t200_init_k128_v128:decay_attn_cuda_gla.t63_init_k64_v128:decay_attn_cuda_simple_gla.varlen:decay_attn_cuda_mlstm.t200_init_k128_v128}
[ "${MC:-1}" = 0 ] || step "memcheck" memcheck.log timeout "${MCT:-120}" compute-sanitizer --tool memcheck --leak-check no --error-exitcode 3 "$pk/lrnn_tests" --gtest_filter="$cases"
[ "${RC:-1}" = 0 ] && { echo "total $(( $(date +%s) - t0 )) s"; exit 0; }
# synccheck: barrier misuse (a bar.sync reached by part of a warp, or by the roles at different instructions,
# wrong counts, mbarrier misuse): the probe's modes (SYNC_PROBE_MODES, default 0 1 4 6: one instruction, two
# roles' own, tc_key_wg's set, and its non-aligned form) and each SYNC_CASES test in its own process
# (synccheck stops a kernel at its first error, failing the rest of that process).
if [ "${SYNC:-1}" = 1 ]; then
  if [ -x /tmp/rc_probe ]; then
    for m in ${SYNC_PROBE_MODES:-0 1 4 6}; do
      timeout 60 compute-sanitizer --tool synccheck /tmp/rc_probe $m >"$out/sprobe$m.log" 2>&1
      echo "synccheck probe mode $m: exit $?; $(grep -E 'ERROR SUMMARY|^mode' "$out/sprobe$m.log" | tr '\n' ' ')"
    done
  fi
  for c in ${SYNC_CASES:-decay_attn_cuda_gla.t200_init_k128_v128 decay_attn_cuda_rwkv6.t200_init_k128_v128 decay_attn_cuda_simple_gla.t200_init_k128_v128}; do
    step "synccheck $c" "sync_$c.log" timeout 120 compute-sanitizer --tool synccheck --print-limit 4 --error-exitcode 3 "$pk/lrnn_tests" --gtest_filter="$c"
    grep -v '^\[' "$out/sync_$c.log" | grep -m1 -A3 -E 'Barrier|barrier' | head -5
  done
fi
step "racecheck" racecheck.log timeout 200 compute-sanitizer --tool racecheck --racecheck-report hazard --print-limit 10 --error-exitcode 3 \
  "$pk/lrnn_tests" --gtest_filter="${RC_FILTER:-decay_attn_cuda_gla.t200_init_k128_v128:decay_attn_cuda_rwkv6.t200_init_k128_v128}"
# (the first two hazards in full: the accesses' threads, blocks, addresses and PCs, for when the logs do
# not come back)
grep -v '^\[' "$out/racecheck.log" | grep -m2 -A14 -E 'Race reported|Potential|hazard' | head -32
echo "total $(( $(date +%s) - t0 )) s"
