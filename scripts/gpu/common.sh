# Sourced by the device-run scripts (wg_check.sh, key_check.sh): unpacks the pack .carry/$1.tar.xz
# (scripts/gpu/pack.sh) into .carry/$1 (pk), the Python peers .carry/py.tar.xz into .carry/py, sets the
# library and tool paths, makes the log folder (out), prints the GPU, and defines step.
# The logs go to a folder of their own (out, under /tmp) and are packed into one archive, $OUT (or
# gpu-out)/logs.tgz, after every step and at exit: a device run brings back at most 8 files from $OUT
# (run 32 lost its profiles that way). Read them here with tar -xzf <files_at>/logs.tgz.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dest=${OUT:-gpu-out}
mkdir -p "$dest"
out=$(mktemp -d /tmp/gpu-logs.XXXXXX)
pack_logs() { tar -C "$out" -czf "$dest/logs.tgz" . 2>/dev/null; }
trap pack_logs EXIT
name=${1:-gpu}
tar -C .carry -xJf ".carry/$name.tar.xz" || { echo "no .carry/$name.tar.xz: run scripts/gpu/pack.sh first"; exit 1; }
pk=$PWD/.carry/$name
export LD_LIBRARY_PATH=$pk/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=$PATH:/usr/local/cuda/bin
# (The Python peers come as one archive: the 64 MiB carry limit.)
[ -d .carry/py ] || [ ! -e .carry/py.tar.xz ] || tar -C .carry -xJf .carry/py.tar.xz
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
t0=$(date +%s)
# step <label> <log> <command...>: runs it into $out/<log>, prints its exit status, seconds, gtest
# counts, failures and sanitizer summaries.
step() {
  local label=$1 log=$2 t
  shift 2
  t=$(date +%s)
  "$@" >"$out/$log" 2>&1
  echo "$label: exit $? in $(( $(date +%s) - t )) s; OK $(grep -c '^\[       OK \]' "$out/$log")"
  grep -E '^\[  (PASSED|FAILED) |^\[  FAILED  \]|ERROR SUMMARY|RACECHECK SUMMARY' "$out/$log" | head -20
  grep -E 'Failure|FAIL |rror' "$out/$log" | grep -v 'ERROR SUMMARY: 0' | head -30
  pack_logs
}
# NCU_OP=op NCU_KERNEL=regex: Nsight Compute on one launch of that kernel (demangled name, e.g.
# 'tc_fwd_wg<.*bool.1>': ncu demangles as tc_fwd_wg<__nv_bfloat16, (int)128, (bool)1>) in that benchmark op at B=8, T=4096: the details page and the
# SASS page with stall samples in $OUT (ncu.*), the top stalls printed (scripts/gpu/sass_stalls.py).
ncu_op() {
  local ncu
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  timeout 240 "$ncu" --kernel-name-base demangled --kernel-name "regex:${NCU_KERNEL:-tc_fwd_wg}" --launch-skip 2 --launch-count 1 \
    --set full --import-source no -f -o "$out/ncu" python3 bench/gpu/bench_decay_attn.py --lib "$pk/lib/liblrnn.so" --skip-tfla \
    --only "$NCU_OP" --shapes 8x4096 --reps 3 --out "$out/ncu_bench" >"$out/ncu.run.log" 2>&1
  echo "ncu ($NCU_OP, ${NCU_KERNEL:-tc_fwd_wg}): exit $?"
  "$ncu" -i "$out/ncu.ncu-rep" --page details >"$out/ncu.details.txt" 2>&1
  "$ncu" -i "$out/ncu.ncu-rep" --page source --csv --print-source sass >"$out/ncu.sass.csv" 2>&1
  rm -f "$out/ncu.ncu-rep"
  grep -E "^  [a-zA-Z].*(Duration|DRAM Throughput|Memory Throughput|Registers Per|Issue Slots Busy|No Eligible|Elapsed Cycles)" "$out/ncu.details.txt" | head -12
  python3 scripts/gpu/sass_stalls.py "$out/ncu.sass.csv" 45
}
