#!/usr/bin/env bash
# The main job, end to end: install what is needed (scripts/setup.sh, incl. Debian's fortune
# cookie files as an English corpus), build, train a small byte-level GLA on the fortunes for a
# few minutes on 2 CPU cores, print the validation loss, and generate a sample from a prompt.
#
#   bash scripts/demo.sh [--arch gla|rwkv7|...] [--minutes N] [--threads N] [--prompt TEXT]
#
# The training config is scripts/demo/gla.json; --arch ARCH takes the model section of
# scripts/demo/ARCH.json instead (any trainable architecture: `lrnn train --arch x` lists them).
# Everything the demo writes goes to build/demo/ (corpus, shards, checkpoints, log.csv, loss.svg).
# BUILD_DIR (default build/cpu-release) picks the build folder; LRNN=path/to/lrnn skips setup and build.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=gla
minutes=6
threads=2
prompt="The meaning of life is"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --prompt) prompt="$2"; shift 2 ;;
    *) echo "demo.sh: unknown option $1 (expected --arch, --minutes, --threads, --prompt)" >&2; exit 2 ;;
  esac
done

if [ -n "${LRNN:-}" ]; then
  lrnn=$LRNN  # an lrnn binary built already: no setup, no build
else
  bash scripts/setup.sh
  build=${BUILD_DIR:-build/cpu-release}
  cmake --preset cpu-release -B "$build" >/dev/null
  cmake --build "$build" -j "$(nproc)" --target lrnn_cli
  lrnn=$build/lrnn
fi

# The corpus: every fortune file of the fortunes, fortunes-min packages (text only: not the
# .dat indexes, not the .u8 links, not the offensive/ folder), with the '%' lines between
# fortunes turned into blank lines. No third-party text is stored in this repository.
mkdir -p build/demo
corpus=build/demo/fortunes.txt
fortune_dir=/usr/share/games/fortunes
if [ ! -d "$fortune_dir" ]; then
  echo "demo: $fortune_dir is missing (Debian package 'fortunes'; scripts/setup.sh installs it)" >&2
  exit 1
fi
: > "$corpus.tmp"
for f in "$fortune_dir"/*; do
  case "$f" in *.dat|*.u8) continue ;; esac
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  awk '{ sub(/\r$/, "") } /^%$/ { print ""; next } { print }' "$f" >> "$corpus.tmp"
done
mv "$corpus.tmp" "$corpus"
echo "== corpus: $(wc -c < "$corpus") bytes from $(ls "$fortune_dir" | grep -vc '\.\(dat\|u8\)$') fortune files"

run=build/demo/run-$arch
rm -rf "$run"
echo "== lrnn train: $arch, byte-level, $minutes minutes on $threads threads (progress on stderr; log in $run/log.csv, curve in $run/loss.svg)"
arch_args=()
if [ "$arch" != gla ]; then arch_args=(--arch "$arch"); fi
"$lrnn" train --config scripts/demo/gla.json "${arch_args[@]}" --set data.path="$corpus" --set threads="$threads" \
  --minutes "$minutes" --out "$run" --json > build/demo/train-$arch.json
echo "== result: $(cat build/demo/train-$arch.json)"
echo
echo "== lrnn generate --model $run/last --prompt \"$prompt\""
"$lrnn" --threads "$threads" generate --model "$run/last" --prompt "$prompt" -n 400 --temperature 0.7 --top-k 40 --seed 1
