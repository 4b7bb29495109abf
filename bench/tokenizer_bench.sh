#!/usr/bin/env bash
# Encode throughput (MB/s, one thread) of lrnn's tokenizers against HF tokenizers and
# sentencepiece in the same run, on 4 MB of generated text; first checks that both give
# identical ids. Results go in bench/tokenizer.md.
# Usage: bash bench/tokenizer_bench.sh [LRNN_BINARY] [SECONDS]   (needs pip tokenizers sentencepiece)
set -euo pipefail
cd "$(dirname "$0")/.."
lrnn=${1:-build/tok/lrnn}
secs=${2:-3}
work=build/tok-bench
mkdir -p "$work"
export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1
python3 tools/make_tokenizer_cases.py --bench-text "$work/varied.txt" --bench-mb 4 --bench-kind varied \
  --bench-tokenizers "$work"
python3 tools/make_tokenizer_cases.py --bench-text "$work/english.txt" --bench-mb 4 --bench-kind english
# A NeoX-style variant of the trained tokenizer: NFC normalizer and a special token.
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
t = json.load(open(f"{w}/bpe_gpt2_32k.json"))
t["normalizer"] = {"type": "NFC"}
t["added_tokens"] = [{"id": 32000, "content": "<|endoftext|>", "special": True, "normalized": False,
                      "lstrip": False, "rstrip": False, "single_word": False}]
json.dump(t, open(f"{w}/bpe_neox_32k.json", "w"))
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for text in english varied; do
  for tok in tests/data/tok_bpe/tokenizer.json "$work/bpe_gpt2_32k.json" "$work/bpe_llama3_32k.json" \
             "$work/bpe_neox_32k.json" tests/data/tokenizer/bpe_llama2.json tests/data/tok_spm/tokenizer.model; do
    echo "== $text.txt, $tok"
    "$lrnn" tokenize --tokenizer "$tok" --file "$work/$text.txt" --json > "$work/ids.json"
    "$lrnn" tokenize --tokenizer "$tok" --file "$work/$text.txt" --bench --bench-seconds "$secs" | tail -1 | sed 's/^/lrnn: /'
    "$lrnn" tokenize --tokenizer "$tok" --file "$work/$text.txt" --bench-lines --bench-seconds "$secs" | tail -1 | sed 's/^/lrnn: /'
    python3 bench/tokenizer_bench.py "$tok" "$work/$text.txt" "$secs" "$work/ids.json"
  done
done
