#!/usr/bin/env bash
# Builds a preset here (default cuda-release; the GPU machine has no Debian -dev packages) and
# packs the binaries (lrnn, lrnn_tests, liblrnn.so for the C ABI / ctypes) with their non-system
# shared libraries into .carry/$PACK_NAME.tar.xz for a device run (carry `.carry`, then
# scripts/gpu/run_all.sh or run_tests.sh unpacks it; its CPU also gives clean CPU benchmarks:
# `bash scripts/gpu/pack.sh cpu-release`).
# Environment: BUILD_DIR (default build/<preset>), PACK_NAME (default gpu), JOBS (default nproc),
# TEST_TARGET (default lrnn_tests; lrnn_gpu_tests builds only the CUDA and C ABI tests, packed
# under the same name lrnn_tests).
# CUDA libraries are not packed: the GPU machine has the CUDA 13 toolkit in /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/cuda/bin
preset=${1:-cuda-release}
build=${BUILD_DIR:-build/$preset}
name=${PACK_NAME:-gpu}
cmake --preset "$preset" -B "$build" >/dev/null
tests=${TEST_TARGET:-lrnn_tests}
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target lrnn "$tests"
out=.carry/$name
rm -rf "$out" && mkdir -p "$out/lib"
# The CLI rides along when it builds (the GPU tests and the benchmark do not need it).
if cmake --build "$build" -j "${JOBS:-$(nproc)}" --target lrnn_cli; then cp "$build/lrnn" "$out/"; else echo "pack.sh: lrnn_cli did not build; packing without it" >&2; fi
cp "$build/tests/$tests" "$out/lrnn_tests"
cp -L "$build/liblrnn.so" "$out/lib/"
for bin in "$out/lrnn" "$out/lrnn_tests" "$out/lib/liblrnn.so"; do
  [ -e "$bin" ] || continue
  ldd "$bin" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcuda*|libcublas*|libcudart*|libnccl*|liblrnn.so*) ;;
      *) cp -Lu "$lib" "$out/lib/" ;;
    esac
  done
done
# The device run carries at most 64 MiB with the tree: ship one compressed archive.
tar -C .carry -cJf ".carry/$name.tar.xz" "$name" && rm -rf "$out"
du -sh ".carry/$name.tar.xz"
