// The scalar (or per-head) decay's gradient as a reverse running sum over tokens of the per-token sums
// X_t = q_t . dq_t, Y_t = k_t . dk_t (finish_backward, chunk_bwd.cu), by blocks of kSBlk tokens: thread
// (r, h) of R = kSBT / H rows covers sub-block r of the block for head h (neighbouring threads read
// neighbouring heads of one token), its pairs kScanU at a time (the loads issue together). Phase 1
// writes each block's total of (X - Y) per head; phase 2 starts each block from F plus the totals of
// the blocks after it: those carries (and F0 in the first block) are summed by all R rows of a head,
// strided, then added up in shared memory (one thread per head summing K floats and the later blocks'
// totals in turn waited out a load each: run 19, H100, 11.9 us a pass at B=8 T=4096). Device code on
// CUDA's basic built-ins only (portable.cuh): scalar_gate_blocks runs the phases as two launches,
// scalar_gate_coop as one cooperative launch, stabiliser.cuh's backward tail inside its own, and
// tests/support/cuda_emu.h all of them on the CPU.
#pragma once

#include "ops/decay_attn/cuda/chunk_api.h"
#include "ops/decay_attn/cuda/portable.cuh"

#ifdef __CUDACC__
#include <cooperative_groups.h>
#endif

#include <cstddef>
#include <cstdint>

namespace lrnn::ops::cuda_chunk {
namespace {

__host__ __device__ __forceinline__ int64_t llmin(int64_t x, int64_t y) { return x < y ? x : y; }

// What the scan reads and writes: (X_t, Y_t) at t H + h, F and F0 [N, H, K] (or null), dgs [tokens, H].
struct xy_scan_args {
  int H, K;
  const int32_t* offsets;
  const float2* xy;
  const float *F, *F0;
  bool s0, bonus;  // an initial state; RWKV-6's bonus (the q term of a token comes after it)
  float* dgs;
};

inline xy_scan_args xy_args_of(const core_args& a, const finish_io& io) {
  return {a.H, a.K, a.offsets, reinterpret_cast<const float2*>(io.scratch), io.F, io.F0, a.s0 != nullptr, a.u != nullptr, io.dgs};
}

// The (X, Y) pairs of head h over tokens [tb, te): their sum of X - Y, and the reverse run from acc (the
// carry into te) writing dgs, with the initial state's term f0 (F0 summed over keys) at the sequence's
// first token sb. Pairs read kScanU at a time (the loads issue together).
constexpr int kScanU = 8;

__device__ __forceinline__ double xy_total(const float2* xy, int H, int h, int64_t tb, int64_t te) {
  double tot = 0.0;
  for (int64_t t0 = tb; t0 < te; t0 += kScanU) {
    float2 v[kScanU];
    LRNN_UNROLL
    for (int u = 0; u < kScanU; ++u) v[u] = t0 + u < te ? xy[(t0 + u) * H + h] : make_float2(0.f, 0.f);
    LRNN_UNROLL
    for (int u = 0; u < kScanU; ++u) tot += static_cast<double>(v[u].x) - v[u].y;
  }
  return tot;
}

__device__ __forceinline__ void xy_run(const xy_scan_args& a, int h, int64_t sb, int64_t tb, int64_t te, double acc, double f0) {
  const int H = a.H;
  for (int64_t t1 = te; t1 > tb; t1 -= kScanU) {
    float2 v[kScanU];
    LRNN_UNROLL
    for (int u = 0; u < kScanU; ++u) v[u] = t1 - 1 - u >= tb ? a.xy[(t1 - 1 - u) * H + h] : make_float2(0.f, 0.f);
    LRNN_UNROLL
    for (int u = 0; u < kScanU; ++u) {
      const int64_t t = t1 - 1 - u;
      if (t < tb) break;
      const double x = v[u].x, y = v[u].y;
      if (!a.bonus) acc += x;
      acc -= y;
      if (t == sb) {
        if (!a.s0) acc = 0.0;
        else if (!a.bonus) acc = f0;
      }
      a.dgs[static_cast<size_t>(t) * H + h] = static_cast<float>(acc);
      if (a.bonus) acc += x;
    }
  }
}

constexpr int kSBlk = 256, kSBT = 256;

// Shared memory of a block's scan (doubles): [R][H] sub-block sums (then their carries), [R][H] partial
// carries into the block's end, [R][H] partial sums of F0, [H] F0 summed over keys.
__host__ __device__ __forceinline__ size_t xy_block_smem(int H) { return static_cast<size_t>(3 * (kSBT / H) + 1) * H * sizeof(double); }

// This CTA's block (blockIdx.x of sequence blockIdx.y) and this thread's sub-block.
struct xy_blk {
  int H, R, h, r, b, n, nblk;
  int64_t sb, se, tb, te;
  bool idle, act, first;
  __device__ xy_blk(const xy_scan_args& a) {
    H = a.H, R = kSBT / H, h = static_cast<int>(threadIdx.x) % H, r = static_cast<int>(threadIdx.x) / H;
    b = blockIdx.x, n = blockIdx.y, nblk = gridDim.x;
    sb = a.offsets[n], se = a.offsets[n + 1];
    const int64_t tb0 = sb + static_cast<int64_t>(b) * kSBlk;
    idle = tb0 >= se;
    const int64_t te0 = llmin(se, tb0 + kSBlk), S = (kSBlk + R - 1) / R;
    tb = llmin(te0, tb0 + r * S), te = llmin(te0, tb + S);
    act = r < R;
    first = b == 0 && a.s0 && !a.bonus && a.F0;  // the sequence's first token takes F0
  }
};

// Phase 1 (a block with tokens): the sub-block sums into sbuf; then, after a barrier, the block's
// per-head total into tot [N][nblk][H]. The sums stay in sbuf (the fused tail's phase 2 reuses them).
__device__ __forceinline__ void xy_block_sums(const xy_scan_args& a, const xy_blk& k, double* sbuf) {
  if (k.act) sbuf[k.r * k.H + k.h] = xy_total(a.xy, k.H, k.h, k.tb, k.te);
}
__device__ __forceinline__ void xy_block_total(const xy_blk& k, const double* sbuf, double* tot) {
  const int H = k.H;
  if (static_cast<int>(threadIdx.x) < H) {
    double cur = 0.0;
    for (int x = k.R - 1; x >= 0; --x) cur += sbuf[x * H + threadIdx.x];
    tot[(static_cast<size_t>(k.n) * k.nblk + k.b) * H + threadIdx.x] = cur;
  }
}

// Phase 2 (a block with tokens): the carry into the block's end from F and the later blocks' totals
// (read through L2: the fused tail wrote them in the same launch), each sub-block's carry, and the run
// writing dgs. sums_ready: sbuf holds the sub-block sums already (else they are summed here).
__device__ __forceinline__ void xy_block_scan(const xy_scan_args& a, const xy_blk& k, double* sbuf, const double* tot,
                                              bool sums_ready) {
  const int H = k.H, R = k.R, h = k.h, r = k.r, tid = static_cast<int>(threadIdx.x);
  double* part = sbuf;
  double* carry = sbuf + R * H;
  double* f0p = sbuf + 2 * R * H;
  double* f0s = sbuf + 3 * R * H;
  if (k.act) {
    if (!sums_ready) part[r * H + h] = xy_total(a.xy, H, h, k.tb, k.te);
    // partial carries: F's keys r, r + R, ...; the sequence's later blocks b + 1 + r, + R, ...
    double f = 0.0, f0 = 0.0;
    const size_t fo = (static_cast<size_t>(k.n) * H + h) * a.K;
    if (a.F)
      for (int d = r; d < a.K; d += R) f += a.F[fo + d];
    for (int x = k.b + 1 + r; x < k.nblk && k.sb + static_cast<int64_t>(x) * kSBlk < k.se; x += R)
      f += __ldcg(tot + (static_cast<size_t>(k.n) * k.nblk + x) * H + h);
    if (k.first)
      for (int d = r; d < a.K; d += R) f0 += a.F0[fo + d];
    carry[r * H + h] = f;
    f0p[r * H + h] = f0;
  }
  __syncthreads();
  if (tid < H) {
    double cur = 0.0, f0 = 0.0;
    for (int x = 0; x < R; ++x) cur += carry[x * H + tid], f0 += f0p[x * H + tid];
    f0s[tid] = f0;
    for (int x = R - 1; x >= 0; --x) {
      const double v = part[x * H + tid];
      part[x * H + tid] = cur;
      cur += v;
    }
  }
  __syncthreads();
  if (k.act) xy_run(a, h, k.sb, k.tb, k.te, part[r * H + h], k.first ? f0s[h] : 0.0);
}

// The scan as two launches (chunk_bwd.cu's scalar_scan, H <= kSBT): totals, then the runs.
__global__ void __launch_bounds__(kSBT) scalar_gate_blocks(xy_scan_args a, double* tot, bool totals) {
  LRNN_DYN_SMEM(double, sbuf);
  const xy_blk k(a);
  if (k.idle) return;
  if (totals) {
    xy_block_sums(a, k, sbuf);
    __syncthreads();
    xy_block_total(k, sbuf, tot);
  } else {
    xy_block_scan(a, k, sbuf, tot, false);
  }
}

// The scan as one cooperative launch (the whole grid resident: chunk_bwd.cu's scalar_scan), a grid
// barrier between the phases; with db non-null also db = Y per token (finish_backward's db_from_xy).
__global__ void __launch_bounds__(kSBT, 2) scalar_gate_coop(xy_scan_args a, double* tot, float* db) {
  LRNN_DYN_SMEM(double, sbuf);
  const xy_blk k(a);
  if (!k.idle) {  // (idle CTAs still meet the grid barrier)
    xy_block_sums(a, k, sbuf);
    __syncthreads();
    xy_block_total(k, sbuf, tot);
  }
  cooperative_groups::this_grid().sync();
  if (k.idle) return;
  xy_block_scan(a, k, sbuf, tot, true);
  if (db && k.act)
    for (int64_t t = k.tb; t < k.te; ++t) db[t * k.H + k.h] = a.xy[t * k.H + k.h].y;
}

}  // namespace
}  // namespace lrnn::ops::cuda_chunk
