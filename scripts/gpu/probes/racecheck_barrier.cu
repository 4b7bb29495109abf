// Does compute-sanitizer's racecheck see a CTA barrier that two warp roles reach at different
// instructions? tc_key_wg (src/ops/decay_attn/cuda/chunk_key_wg.cuh) has its state warps write Qa to
// shared memory, then `bar.sync 0, 384` in their branch, while warpgroup 0 passes `bar.sync 0, 384` in its
// own branch and reads Qa with ldmatrix; racecheck reported RAW hazards there (session 17) although
// the results are right. This probe has the same pattern three ways; racecheck should report nothing
// for any of them if it models the barrier (as the hardware does):
//   0: one barrier instruction for both roles (as tc_seg_wg, which racecheck passes);
//   1: each role's own `bar.sync 0, 64` (tc_key_wg's pattern);
//   2: as 1 with the read by ldmatrix.
//   nvcc -arch=sm_90a -o /tmp/probe scripts/gpu/probes/racecheck_barrier.cu
//   for m in 0 1 2; do compute-sanitizer --tool racecheck --racecheck-report hazard /tmp/probe $m; done
#include <cstdio>
#include <cstdlib>

__global__ void probe(int mode, unsigned* out) {
  __shared__ __align__(16) unsigned short buf[32 * 8];
  const int tid = threadIdx.x, l = tid % 32;
  const bool writer = tid >= 32;
  for (int it = 0; it < 4; ++it) {
    if (mode == 0) {
      if (writer) buf[l * 8 + it % 8] = static_cast<unsigned short>(it + l);
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
      if (!writer) out[it * 32 + l] = buf[l * 8 + it % 8];
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
    } else if (writer) {
      buf[l * 8 + it % 8] = static_cast<unsigned short>(it + l);
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
    } else {
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
      if (mode == 1) {
        out[it * 32 + l] = buf[l * 8 + it % 8];
      } else {
        unsigned r0;
        const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(buf + (l % 8) * 8));
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(a));
        out[it * 32 + l] = r0;
      }
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
    }
  }
}

int main(int argc, char** argv) {
  const int mode = argc > 1 ? atoi(argv[1]) : 0;
  unsigned* out = nullptr;
  cudaMalloc(&out, 4 * 32 * sizeof(unsigned));
  probe<<<1, 64>>>(mode, out);
  const cudaError_t e = cudaDeviceSynchronize();
  printf("mode %d: %s\n", mode, cudaGetErrorString(e));
  cudaFree(out);
  return e == cudaSuccess ? 0 : 1;
}
