#!/usr/bin/env bash
# Development build of the decay_attn CUDA chunk kernels (bench/decay_attn_cuda.md): configure
# build/h-cuda2 once (cmake --preset cuda-release -B build/h-cuda2 -DCMAKE_CUDA_ARCHITECTURES=90a),
# then chunk_minbuild.py compiles only core, backend, decay_attn and the decay_attn CUDA test
# with the preset's flags and links build/h-cuda2/mytests/da_cuda_tests (the whole library and
# lrnn_tests take most of an hour on a shared 2-core box); this script packs it with its non-system shared libraries into build/h-cuda2-pack/bin.tar.xz for a device
# run (carry build/h-cuda2-pack; bench/gpu/chunk_device.sh runs it there).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/cuda/bin
b=build/h-cuda2
python3 bench/gpu/chunk_minbuild.py
out=build/h-cuda2-pack/bin
rm -rf $out && mkdir -p $out
cp $b/mytests/da_cuda_tests $out/
for bin in $out/da_cuda_tests; do
  ldd "$bin" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcuda*|libcublas*|libcudart*|libnccl*|liblrnn*) ;;
      *) cp -Lu "$lib" "$out/" ;;
    esac
  done
done
tar -C build/h-cuda2-pack -cJf build/h-cuda2-pack/bin.tar.xz bin && rm -rf $out
du -sh build/h-cuda2-pack/bin.tar.xz
