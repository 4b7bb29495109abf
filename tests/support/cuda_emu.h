// A CPU emulation of the CUDA built-ins that plain SIMT kernels use, so that a kernel's source runs
// in tests without a GPU: a CTA's threads are host threads, __syncthreads a barrier (a thread that
// returns leaves it, as on the GPU), a cooperative grid's sync a barrier over every thread of the
// grid (a CTA that returns before it hangs the emulation, as it would hang the GPU), dynamic shared
// memory a NaN-filled buffer per CTA. Non-cooperative launches run one CTA at a time.
//
// Include this, then define LRNN_STAB_SMEM (or the kernel header's shared-memory macro) and include
// the kernel header. It checks the kernels' logic (indexing, phases, barriers; data races within a
// CTA show under ThreadSanitizer), not the GPU's memory model or timing. Everything lives in the
// including file's namespace `lrnn::ops::cuda_chunk` (anonymous part), clear of CUDA's own types.
#pragma once

#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <pthread.h>
#include <stdexcept>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__

namespace lrnn::ops::cuda_chunk {
namespace {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3() = default;
  dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float2 {
  float x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }

thread_local dim3 threadIdx, blockIdx, gridDim, blockDim;
thread_local std::barrier<>* emu_cta_barrier = nullptr;
thread_local std::barrier<>* emu_grid_barrier = nullptr;
thread_local float* emu_smem = nullptr;

inline void __syncthreads() { emu_cta_barrier->arrive_and_wait(); }
template <typename T>
inline T __ldcg(const T* p) {
  return *p;
}

namespace cooperative_groups {
struct grid_group {
  void sync() {
    if (!emu_grid_barrier) throw std::logic_error("grid sync in a kernel not launched cooperatively");
    emu_grid_barrier->arrive_and_wait();
  }
};
inline grid_group this_grid() { return {}; }
}  // namespace cooperative_groups

struct emu_thread {
  const std::function<void()>* body;
  dim3 t, b, grid, block;
  std::barrier<>* cta;
  std::barrier<>* grid_bar;
  float* smem;
};

inline void* emu_thread_main(void* p) {
  auto* a = static_cast<emu_thread*>(p);
  threadIdx = a->t, blockIdx = a->b, gridDim = a->grid, blockDim = a->block;
  emu_cta_barrier = a->cta, emu_grid_barrier = a->grid_bar, emu_smem = a->smem;
  (*a->body)();
  a->cta->arrive_and_drop();
  return nullptr;
}

// Runs `body` (the kernel call) as every thread of the launch; returns when all have finished.
inline void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, bool cooperative, const std::function<void()>& body) {
  const unsigned ctas = grid.x * grid.y * grid.z, nt = block.x * block.y * block.z;
  auto run = [&](unsigned c0, unsigned c1, std::barrier<>* grid_bar) {
    std::vector<std::unique_ptr<std::barrier<>>> bars;
    std::vector<std::vector<float>> smem;
    std::vector<emu_thread> th;
    for (unsigned c = c0; c < c1; ++c) {
      bars.push_back(std::make_unique<std::barrier<>>(nt));
      smem.emplace_back(smem_bytes / sizeof(float) + 1, NAN);
    }
    for (unsigned c = c0; c < c1; ++c)
      for (unsigned t = 0; t < nt; ++t)
        th.push_back({&body, dim3(t), dim3(c % grid.x, c / grid.x % grid.y, c / grid.x / grid.y), grid, block,
                      bars[c - c0].get(), grid_bar, smem[c - c0].data()});
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    std::vector<pthread_t> ids(th.size());
    size_t started = 0;
    for (; started < th.size(); ++started)
      if (pthread_create(&ids[started], &attr, emu_thread_main, &th[started]) != 0) break;
    pthread_attr_destroy(&attr);
    if (started < th.size()) {  // (the threads started would wait for the others forever)
      std::fprintf(stderr, "cuda_emu: could not start thread %zu of %zu\n", started, th.size());
      std::abort();
    }
    for (auto& id : ids) pthread_join(id, nullptr);
  };
  if (cooperative) {
    std::barrier<> grid_bar(static_cast<std::ptrdiff_t>(ctas) * nt);
    run(0, ctas, &grid_bar);
  } else {
    for (unsigned c = 0; c < ctas; ++c) run(c, c + 1, nullptr);
  }
}

}  // namespace
}  // namespace lrnn::ops::cuda_chunk
