#!/usr/bin/env bash
# fla's per-key kernels (chunk_gla, chunk_rwkv6) autotune for minutes per shape on a fresh machine,
# longer than a device call allows with the rest of the benchmark (bench/gpu/README.md). This device
# run does only that, resumable: it unpacks the Python peers (.carry/py.tar.xz) and the autotuning
# results of earlier calls (.carry/tc.tgz), times the per-key ops (fla's and lrnn's, so the call also
# yields a same-run ratio for every shape it finishes) with Triton's cache in /tmp/tc for at most
# LIMIT seconds (default 500), and always packs the autotuning results found so far into $OUT/tc.tgz
# (a few KB: *.autotune.json only). Here: cp <files_at>/tc.tgz .carry/tc.tgz, then call again until
# every shape is done; the full benchmark then takes them with
#   tar -C /tmp -xzf .carry/tc.tgz && python3 bench/gpu/bench_decay_attn.py ... --triton-cache /tmp/tc
#   bash scripts/gpu/fla_autotune.sh [pack name (default gpu)]     (SHAPES: default "8x4096 2x16384")
set -u
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out" /tmp/tc
name=${1:-gpu}
tar -C .carry -xJf ".carry/$name.tar.xz" || { echo "no .carry/$name.tar.xz: run scripts/gpu/pack.sh first"; exit 1; }
[ -d .carry/py ] || tar -C .carry -xJf .carry/py.tar.xz || { echo "no .carry/py.tar.xz (bench/gpu/README.md)"; exit 1; }
[ ! -e .carry/tc.tgz ] || tar -C /tmp -xzf .carry/tc.tgz
echo "autotuning results carried in: $(find /tmp/tc -name '*.autotune.json' | wc -l)"
pk=$PWD/.carry/$name
export LD_LIBRARY_PATH=$pk/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} PYTHONPATH=$PWD/.carry/py PYTHONUNBUFFERED=1
t=$(date +%s)
timeout "${LIMIT:-500}" python3 bench/gpu/bench_decay_attn.py --lib "$pk/lib/liblrnn.so" --skip-tfla --triton-cache /tmp/tc \
  --only fla_chunk_gla,fla_chunk_rwkv6,lrnn_gla,lrnn_rwkv6 --shapes "${SHAPES:-8x4096 2x16384}" --reps 20 --out "$out/bench" \
  >"$out/bench.log" 2>&1
echo "benchmark: exit $? in $(( $(date +%s) - t )) s (124: stopped at LIMIT; the results so far are kept)"
(cd /tmp && find tc -name '*.autotune.json' | tar -czf "$out/tc.tgz" -T -)
echo "autotuning results packed: $(tar -tzf "$out/tc.tgz" | wc -l) -> $out/tc.tgz"
# (the rows as the benchmark printed them: bench.md is written only at its end)
grep -E '^\{"op"' "$out/bench.log" || tail -5 "$out/bench.log"
