#!/usr/bin/env bash
# The one GPU run, on the device machine: unpacks what scripts/gpu/pack.sh built (carry `.carry`),
# runs the CUDA tests, compute-sanitizer memcheck (and racecheck) on small cases, then the decay_attn benchmark
# (bench/gpu/bench_decay_attn.py: lrnn through its C ABI vs fla, mlstm_kernels TFLA and SDPA flash,
# same process), and writes report.md (plus logs) to $OUT.
#   bash scripts/gpu/run_all.sh [pack name (default gpu)] [gtest filter]
# Needs .carry/<pack>.tar.xz, and .carry/py with fla, einops and mlstm_kernels (see bench/gpu/README.md).
# BENCH_ARGS passes extra options to the benchmark, shell-quoted (e.g. "--shapes '8x4096 2x16384' --reps 10
# --triton-cache .carry/tc"); BENCH_TIMEOUT its limit in seconds (default 420). CHUNK_TIMING=1|quick|key
# adds the kernel-level timing test (decay_attn_cuda.timing) before the benchmark. MEMCHECK_FILTER
# replaces the memcheck cases; a second memcheck run forces sequence segments on per-key cases.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out"
name=${1:-gpu}
filter=${2:-'cuda*:*cuda*:capi*:*Cuda*:*CUDA*'}
tar -C .carry -xJf ".carry/$name.tar.xz" || { echo "no .carry/$name.tar.xz: run scripts/gpu/pack.sh first" | tee "$out/report.md"; exit 1; }
pk=.carry/$name
export LD_LIBRARY_PATH=$PWD/$pk/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=$PATH:/usr/local/cuda/bin
# The Python peers may come as one archive (the 64 MiB carry limit): .carry/py.tar.xz -> .carry/py.
[ -d .carry/py ] || [ ! -e .carry/py.tar.xz ] || tar -C .carry -xJf .carry/py.tar.xz
report=$out/report.md
{
  echo "# lrnn GPU run ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?') (working tree as sent)"
  echo '```'
} >"$report"

# 1. Tests: the CUDA and C ABI cases (each skips itself where a GPU is absent).
start=$(date +%s)
"$pk/lrnn_tests" --gtest_filter="$filter" >"$out/tests.log" 2>&1
rc_tests=$?
{
  echo; echo "## Tests (gtest filter \`$filter\`): exit $rc_tests, $(( $(date +%s) - start )) s"; echo
  # Counts and the summary first, then every failure with its harness lines (FAIL rows), so that a
  # failure is never cut off behind the list of passing tests.
  echo '```'
  echo "OK: $(grep -c '^\[       OK \]' "$out/tests.log"), FAILED: $(grep -c '^\[  FAILED  \] .* ms)$' "$out/tests.log")"
  grep -E '^\[==========\]|^\[  (PASSED|FAILED|SKIPPED) ' "$out/tests.log" | head -40
  grep -E 'Failure|assertion|error:|FAIL ' "$out/tests.log" | head -60
  echo '```'
} >>"$report"

# 2. compute-sanitizer memcheck on small cases (the step kernel, cuBLAS linear, the C ABI).
san=/usr/local/cuda/bin/compute-sanitizer
if [ -x "$san" ]; then
  start=$(date +%s)
  "$san" --tool memcheck --leak-check no --error-exitcode 3 "$pk/lrnn_tests" \
    --gtest_filter="${MEMCHECK_FILTER:-decay_attn_step_cuda.*:cuda_linear.*:capi.step_matches_the_op_on_host_and_cuda:decay_attn_cuda.no_final_state:decay_attn_cuda_gla.varlen_k64_v64:decay_attn_cuda_rwkv6.t63_init_k64_v128}" \
    >"$out/memcheck.log" 2>&1
  rc_san=$?
  LRNN_DA_SEGMENTS=3 "$san" --tool memcheck --leak-check no --error-exitcode 3 "$pk/lrnn_tests" \
    --gtest_filter='decay_attn_cuda_gla.t200_init_k128_v128:decay_attn_cuda_rwkv6.varlen_k64_v64:decay_attn_cuda.forward_context' >"$out/memcheck_segments.log" 2>&1
  rc_seg=$?
  # racecheck (shared-memory hazards) on the normaliser's sweeps, with forced segments.
  LRNN_DA_SEGMENTS=3 "$san" --tool racecheck --racecheck-report hazard --print-limit 10 --error-exitcode 3 "$pk/lrnn_tests" \
    --gtest_filter='decay_attn_cuda_mlstm.t200_init_k128_v128:decay_attn_cuda_mlstm_sig.t1000_init_k64_v64' >"$out/racecheck.log" 2>&1
  rc_race=$?
  {
    echo; echo "## compute-sanitizer memcheck: exit $rc_san, with forced segments $rc_seg; racecheck: exit $rc_race; $(( $(date +%s) - start )) s"; echo
    echo '```'; grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY|Invalid|PASSED|FAILED' "$out/memcheck.log" "$out/memcheck_segments.log" "$out/racecheck.log" | head -20; echo '```'
  } >>"$report"
else
  echo -e "\n## compute-sanitizer: not found at $san" >>"$report"
fi

# 3. Kernel-level timing (optional).
if [ -n "${CHUNK_TIMING:-}" ]; then
  LRNN_CHUNK_TIMING=$CHUNK_TIMING "$pk/lrnn_tests" --gtest_filter=decay_attn_cuda.timing 2>&1 | grep -E '^lrnn|FAIL|rror' >"$out/timing.log"
  { echo; echo "## Kernel timing (LRNN_CHUNK_TIMING=$CHUNK_TIMING)"; echo; echo '```'; cat "$out/timing.log"; echo '```'; } >>"$report"
fi

# 4. Benchmark (one Python process; TFLA probed in a child first since it may crash Triton).
if [ -n "${SKIP_BENCH:-}" ]; then echo -e "\n## Benchmark: skipped (SKIP_BENCH)" >>"$report"; cat "$report"; exit 0; fi
start=$(date +%s)
eval "bench_args=(${BENCH_ARGS:-})"
PYTHONPATH=$PWD/.carry/py:${PYTHONPATH:-} PYTHONUNBUFFERED=1 timeout "${BENCH_TIMEOUT:-420}" python3 bench/gpu/bench_decay_attn.py \
  --lib "$pk/lib/liblrnn.so" --out "$out" "${bench_args[@]}" >"$out/bench.log" 2>&1
rc_bench=$?
{
  echo; echo "## Benchmark: exit $rc_bench, $(( $(date +%s) - start )) s"; echo
  if [ -f "$out/bench.md" ]; then sed 's/^# /### /' "$out/bench.md"; else echo '```'; tail -30 "$out/bench.log"; echo '```'; fi
} >>"$report"
cat "$report"
