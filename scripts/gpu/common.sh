# Sourced by the device-run scripts (wg_check.sh, key_check.sh): unpacks the pack .carry/$1.tar.xz
# (scripts/gpu/pack.sh) into .carry/$1 (pk), the Python peers .carry/py.tar.xz into .carry/py, sets the
# library and tool paths, makes the log folder (out: $OUT or gpu-out), prints the GPU, and defines step.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out"
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
}
