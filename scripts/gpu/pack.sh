#!/usr/bin/env bash
# Builds a preset here (default cuda-release; the GPU machine has no Debian -dev packages) and
# packs the binaries with their non-system shared libraries into .carry/gpu.tar.xz for a device
# run (carry `.carry`, then scripts/gpu/run_tests.sh unpacks it; its CPU also gives clean CPU
# benchmarks: `bash scripts/gpu/pack.sh cpu-release`).
# CUDA libraries are not packed: the GPU machine has the CUDA 13 toolkit in /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/cuda/bin
preset=${1:-cuda-release}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
out=.carry/gpu
rm -rf "$out" && mkdir -p "$out/lib"
cp "build/$preset/lrnn" "build/$preset/tests/lrnn_tests" "$out/"
for bin in "$out/lrnn" "$out/lrnn_tests"; do
  ldd "$bin" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcuda*|libcublas*|libcudart*|libnccl*) ;;
      *) cp -Lu "$lib" "$out/lib/" ;;
    esac
  done
done
# The device run carries at most 64 MiB with the tree: ship one compressed archive.
tar -C .carry -cJf .carry/gpu.tar.xz gpu && rm -rf "$out"
du -sh .carry/gpu.tar.xz
