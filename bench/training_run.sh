#!/usr/bin/env bash
# Runs `lrnn train` configurations side by side on an idle machine (each with its own threads),
# for the numbers in bench/training.md. Usage, from the repository root, with a packed build
# (.carry/htrain.tar.xz: lrnn, lib/, fortunes.txt as scripts/demo.sh builds it):
#   bash bench/training_run.sh OUTDIR MINUTES "name1|--set a=b --set c=d" "name2|--arch rwkv7" ...
set -euo pipefail
out=$1; minutes=$2; shift 2
work=${WORK:-/tmp/htrain}
if [ ! -x "$work/htrain/lrnn" ]; then mkdir -p "$work" && tar -C "$work" -xJf .carry/htrain.tar.xz; fi
export LD_LIBRARY_PATH="$work/htrain/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
lrnn="$work/htrain/lrnn"
mkdir -p "$out"
pids=()
for spec in "$@"; do
  name=${spec%%|*}; args=${spec#*|}
  rm -rf "$work/run-$name"
  # shellcheck disable=SC2086
  "$lrnn" train --config scripts/demo/gla.json --set data.path="$work/htrain/fortunes.txt" --minutes "$minutes" \
    --out "$work/run-$name" --json $args > "$out/$name.json" 2> "$out/$name.err" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
for spec in "$@"; do
  name=${spec%%|*}
  cp "$work/run-$name/log.csv" "$out/$name.log.csv" 2>/dev/null || true
  cp "$work/run-$name/loss.svg" "$out/$name.loss.svg" 2>/dev/null || true
  if [ -n "${PROMPT:-}" ] && [ -d "$work/run-$name/last" ]; then
    "$lrnn" --threads 2 generate --model "$work/run-$name/last" --prompt "$PROMPT" -n 400 --temperature 0.7 --top-k 40 --seed 1 \
      > "$out/$name.sample.txt" 2>&1 || true
  fi
done
nproc > "$out/machine.txt"; uptime >> "$out/machine.txt"; lscpu | grep -E "Model name|^CPU\(s\)" >> "$out/machine.txt"
