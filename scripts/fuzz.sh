#!/usr/bin/env bash
# Builds the libFuzzer targets (clang) and runs each for SECONDS (default 10) on its corpus.
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]}"
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/${t%_fuzz}
  work=fuzz/corpus-work/${t%_fuzz}
  mkdir -p "$work"
  echo "fuzz: $t for ${secs}s (corpus $corpus)"
  build/fuzz/fuzz/$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$work" "$corpus" 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|crash-|Done' || true
  test "${PIPESTATUS[0]}" -eq 0 || { echo "fuzz: $t FAILED"; exit 1; }
done
