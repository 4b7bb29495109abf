#!/usr/bin/env bash
# CPU operator benchmarks at the issues' shapes (B=4, T=4096, H=8, K=V=128, fp32, 2 threads),
# each against the SGEMM rate measured in the same run. Usage: bash scripts/bench_cpu.sh [LRNN]
# Writes the tables to bench-cpu.txt in $OUT or the current directory.
set -uo pipefail
lrnn=${1:-build/cpu-release/lrnn}
out=${OUT:-.}/bench-cpu.json
: > "${out%.json}.txt"
lscpu | grep -E 'Model name|^CPU\(s\)' || true
run() {
  echo "== $*"
  "$lrnn" --threads 2 bench op "$@" | tee -a "${out%.json}.txt"
}
for v in simple_gla gla retnet rwkv6 mlstm; do run decay_attn --variant "$v" --repeats 2; done
for v in delta gated; do run delta_rule --variant "$v" --repeats 2; done
run wkv4 --repeats 2
run linear_scan --repeats 2
run conv1d --repeats 2
