// Does compute-sanitizer's racecheck see a CTA barrier that two warp roles reach at different
// instructions? tc_key_wg (src/ops/decay_attn/cuda/chunk_key_wg.cuh) has its state warps write Qa to
// shared memory, then `bar.sync 0, 384` in their branch, while warpgroup 0 passes `bar.sync 0, 384` in its
// own branch and reads Qa with ldmatrix; racecheck reported RAW hazards there (session 17) although
// the results are right. This probe has the same pattern three ways; racecheck should report nothing
// for any of them if it models the barrier (as the hardware does):
//   0: one barrier instruction for both roles (as tc_seg_wg, which racecheck passes);
//   1: each role's own `bar.sync 0, 64` (tc_key_wg's pattern);
//   2: as 1 with the read by ldmatrix.
//   3: as 2 with the rest of tc_key_wg's stage cycle: the reader then stages its output in the same
//      bytes (generic writes, proxy fence), a second barrier, one writer thread refills them by a bulk
//      copy (TMA, completing on an mbarrier the writers wait on), and the writers rewrite them in place
//      (read, scale, write) before the next round. Session 18 (run 30): modes 0-2 are free of hazards;
//      mode 3 asks whether the bulk copy and the mbarrier are what racecheck's report on tc_key_wg is about.
//   4: tc_key_wg's barrier set at its size: 384 threads, warpgroup 0 (128 threads) reads by ldmatrix after
//      `bar.sync 0, 384` and then passes its own `bar.sync 1, 128`; the two writer warpgroups (256) pass
//      `bar.sync 2, 256` among themselves before writing, then `bar.sync 0, 384` in their branch.
//      Asks whether partial named barriers next to the CTA-wide one (and warp 0 diverged before it, its
//      thread 0 waiting on bulk stores) confuse racecheck.
//   5: as 4, warpgroup 0 first passing one barrier of its own (both roles then pass equally many
//      barriers before each access: tells whether racecheck matches accesses by barrier counts).
//      Session 20 (run 31, H100): mode 4 272 racecheck errors, mode 5 none: it does.
//   6: as 5 with the CTA-wide barrier in its non-aligned form, `barrier.sync 0, 384` (bar.sync is
//      barrier.sync.aligned, which PTX defines only where every thread executes the same instruction; the
//      two roles pass it at different ones). For synccheck, which reported "Divergent thread(s) in block"
//      at tc_key_wg's `bar.sync 0` in run 31: key_check.sh runs it on modes 0, 1, 4 and 6.
//   nvcc -arch=sm_90a -o /tmp/probe scripts/gpu/probes/racecheck_barrier.cu
//   for m in 0 1 2 3 4 5; do compute-sanitizer --tool racecheck --racecheck-report hazard /tmp/probe $m; done
#include <cstdio>
#include <cstdlib>

__device__ __forceinline__ unsigned smem(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

// Mode 3 (see the top): warp 0 reads with ldmatrix and stages its output in buf, warp 1 refills buf from src
// by a bulk copy (thread 32) and rewrites it in place.
__device__ void stage_cycle(const unsigned short* src, unsigned* out) {
  __shared__ __align__(128) unsigned short buf[64];  // (8 rows of 16 bytes: one ldmatrix x1)
  __shared__ __align__(8) unsigned long long bar;
  const int tid = threadIdx.x, l = tid % 32;
  const bool writer = tid >= 32;
  const unsigned b = smem(&bar);
  if (tid == 32) asm volatile("mbarrier.init.shared.b64 [%0], 1;\n" ::"r"(b));
  __syncthreads();
  auto refill = [&](int it) {  // (thread 32: the next round's bytes into buf)
    asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], 128;\n" ::"r"(b) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], 128, [%2];\n" ::"r"(smem(buf)),
                 "l"(src + 64 * it), "r"(b)
                 : "memory");
  };
  if (tid == 32) refill(0);
  for (int it = 0; it < 4; ++it) {
    if (writer) {
      // wait for round it's bytes (phase it), rewrite them in place, then the barrier
      asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared.b64 p, [%0], %1;\n@!p bra W;\n}\n" ::"r"(b), "r"(it & 1)
                   : "memory");
      if (l < 16) {
        unsigned* w4 = reinterpret_cast<unsigned*>(buf) + 2 * l;
        w4[0] = w4[0] * 3u + 1u, w4[1] = w4[1] * 3u + 1u;
      }
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
      asm volatile("bar.sync 0, 64;\n" ::: "memory");  // (the reader is done with buf)
      if (tid == 32 && it + 1 < 4) refill(it + 1);
    } else {
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
      unsigned r0;
      asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem(buf + (l % 8) * 8)));
      out[it * 32 + l] = r0;
      buf[l] = static_cast<unsigned short>(r0);  // (the output staged in the same bytes, as tc_key_wg's O)
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      asm volatile("bar.sync 0, 64;\n" ::: "memory");
    }
  }
}

// Mode 4 (see the top): 3 rounds on a 64 x 64 16-bit tile, each row written by the writers (a 4-byte word
// per thread per row), read back by warpgroup 0's ldmatrix (x1: each warp its 8-row slice).
__device__ void named_barriers(unsigned* out, bool align, bool na) {
  __shared__ __align__(128) unsigned short tile[64 * 64];
  __shared__ int flag[8];
  const int tid = threadIdx.x, l = tid % 32, warp = tid / 32;
  auto cta_bar = [na] {
    if (na) asm volatile("barrier.sync 0, 384;\n" ::: "memory");
    else asm volatile("bar.sync 0, 384;\n" ::: "memory");
  };
  // (mode 5: warpgroup 0 passes one barrier of its own first, so that both roles have passed as many
  // barriers, of any id, at each access: if racecheck matched accesses by such counts, mode 4 reports
  // and mode 5 does not)
  if (align && tid < 128) asm volatile("bar.sync 1, 128;\n" ::: "memory");
  for (int it = 0; it < 3; ++it) {
    if (tid >= 128) {
      const int st = tid - 128, r = st / 32, cw = st % 32;  // (8 rows of 32 words per round part)
      if (l == 0) flag[warp - 4] = it;
      asm volatile("bar.sync 2, 256;\n" ::: "memory");
      const int f = flag[(warp - 4) ^ 1];
      for (int rr = r; rr < 64; rr += 8)
        reinterpret_cast<unsigned*>(tile)[rr * 32 + cw] = static_cast<unsigned>(it * 65536 + rr * 32 + cw + f);
      cta_bar();
      cta_bar();  // (warpgroup 0 is done with the tile)
    } else {
      // (thread 0 alone first, as tc_key_wg's wait for its O stores: the warp reaches the barrier diverged)
      if (tid == 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
      cta_bar();
      unsigned r0;
      const unsigned a = smem(tile + (8 * warp + l % 8) * 64 + 8 * (it % 8));
      asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(a));
      out[it * 128 + tid] = r0;
      asm volatile("bar.sync 1, 128;\n" ::: "memory");
      cta_bar();
    }
  }
}

__global__ void probe(int mode, const unsigned short* src, unsigned* out) {
  if (mode == 3) {
    stage_cycle(src, out);
    return;
  }
  if (mode >= 4) {
    named_barriers(out, mode >= 5, mode == 6);
    return;
  }
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
  unsigned short* src = nullptr;
  cudaMalloc(&out, 4 * 128 * sizeof(unsigned));
  cudaMalloc(&src, 4 * 64 * sizeof(unsigned short));
  cudaMemset(src, 1, 4 * 64 * sizeof(unsigned short));
  probe<<<1, mode >= 4 ? 384 : 64>>>(mode, src, out);
  const cudaError_t e = cudaDeviceSynchronize();
  printf("mode %d: %s\n", mode, cudaGetErrorString(e));
  cudaFree(out);
  cudaFree(src);
  return e == cudaSuccess ? 0 : 1;
}
