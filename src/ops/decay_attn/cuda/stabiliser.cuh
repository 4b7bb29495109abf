// mLSTM's stabiliser scans on CUDA: the block kernels and carry kernels of stabiliser_scan and
// stabiliser_backward (their launchers: chunk_aux.cu). Device code only, on nothing but CUDA's basic
// built-ins, so that tests/ops/decay_attn_cuda_emu_test.cpp runs the same source on the CPU through
// tests/support/cuda_emu.h (threads for a CTA's threads, barriers for __syncthreads and the grid
// barrier) against the sequential recurrences.
#pragma once

#include "ops/decay_attn/cuda/chunk_api.h"
#include "ops/decay_attn/cuda/gate_scan.cuh"
#include "ops/decay_attn/cuda/portable.cuh"

#ifdef __CUDACC__
#include <cooperative_groups.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lrnn::ops::cuda_chunk {
namespace {

__device__ __forceinline__ float gate_at(const float* g, int gmode, int64_t t, int H, int h) {
  return gmode == g_head ? g[h] : gmode == g_scalar ? g[t * H + h] : 0.f;
}

// The stabiliser's recurrences (decay_attn.cpp) as scans over blocks of kBL tokens of a sequence, all
// heads at once: a CTA per (block, sequence) splits its block into NS segments per head, thread
// (segment s, head h) with h fastest, so a warp's loads of [tokens, H] rows are contiguous (one CTA per
// (sequence, head) read them H-strided, one sector per token, and left B = 2, T = 16384 on 32 SMs:
// ~100 us per scan). Phase 1 composes each block's map per head (forward m -> max(m + A, B), a max-plus
// affine map; backward carry -> P carry + Q, P in {0, 1}) and publishes it; phase 3 finds the block's
// entry value from the maps before it, recomposes the segment maps from it and runs the segments.
// Three ways to get from phase 1 to phase 3 (chunk_aux.cu's stab_way; LRNN_DA_STAB_LOOK = 0, 1, 2):
//  * three launches: a carry kernel per (sequence, head) runs over the blocks' maps (phase 2) and
//    writes each block's entry value (modes k_maps, then k_entry);
//  * two: phase 3 composes the maps of the blocks before it itself (look-back: NS ranges of blocks
//    per head composed in parallel, then in order), no phase 2 (k_maps, then k_look);
//  * one cooperative launch: phases 1 and 3 with a grid barrier between them, the segment maps kept
//    in shared memory (k_coop; the whole grid must be resident).
// Loads in batches of kSB tokens (kCB, kLB maps), all issued before the batch's sequential steps.
constexpr int kBT = 256;  // threads per CTA
constexpr int kBL = 256;  // tokens per block
constexpr int kSB = 16;
constexpr int kCB = 16;  // maps per batch of loads (phase 2)
constexpr int kLB = 8;   // maps per batch of the look-back (registers: 2 of its CTAs per SM, __launch_bounds__)

__host__ __device__ __forceinline__ int stab_segs(int H) { return H >= kBT ? 1 : kBT / H; }

// The phases a block kernel runs: k_maps phase 1 only; k_entry phase 3 from entry (three launches);
// k_look phase 3 with the look-back (two); k_coop both, the look-back between them (one). k_tail
// (backward only): k_coop with the scalar gate's scan before it (gate_scan.cuh, phases 1 and 2 beside
// the stabiliser's): mLSTM's whole backward tail after the core in one launch.
enum stab_mode : int { k_maps = 0, k_entry = 1, k_look = 2, k_coop = 3, k_tail = 4 };

struct stab_blk {
  int64_t sb, se, bb, be;  // sequence [sb, se), block [bb, be)
  int NS, SL;              // segments per head, tokens per segment
  __device__ stab_blk(const int32_t* offsets, int H) {
    const int n = blockIdx.y;
    sb = offsets[n], se = offsets[n + 1];
    bb = sb + static_cast<int64_t>(blockIdx.x) * kBL;
    be = bb + kBL < se ? bb + kBL : se;
    NS = stab_segs(H), SL = (kBL + NS - 1) / NS;
  }
  __device__ bool idle() const { return bb >= se; }
  __device__ bool last() const { return be == se; }
  // Blocks of the sequence (0 for an empty one).
  __device__ int count() const { return static_cast<int>((se - sb + kBL - 1) / kBL); }
  __device__ int64_t seg_begin(int s) const { return bb + s * SL < be ? bb + s * SL : be; }
  __device__ int64_t seg_end(int s) const { return bb + (s + 1) * SL < be ? bb + (s + 1) * SL : be; }
};

// Dynamic shared memory of the block kernels: the segment maps [2][NS][H], and for the look-back its
// partial maps [2][NS][H].
__host__ __device__ __forceinline__ size_t stab_smem(int H, bool look) {
  return (look ? 4 : 2) * sizeof(float) * stab_segs(H) * H;
}

// Range s of NS of the blocks [lo, hi) (the look-back's share of thread (s, h)).
__device__ __forceinline__ void look_range(int lo, int hi, int s, int NS, int& rb, int& re) {
  const int L = (hi - lo + NS - 1) / NS;
  rb = lo + s * L < hi ? lo + s * L : hi;
  re = rb + L < hi ? rb + L : hi;
}

// The look-back's share of one thread: maps [rb, re) of head h (a sequence's maps, H apart) into op,
// in order (FWD) or from the last, kLB loads issued at a time (through L2: in a cooperative launch other
// CTAs wrote them).
template <bool FWD, typename Op>
__device__ __forceinline__ void compose_range(const float2* mp, int H, int h, int rb, int re, Op&& op) {
  for (int i = 0; i < re - rb; i += kLB) {
    float2 x[kLB];
LRNN_UNROLL
    for (int r = 0; r < kLB; ++r)
      if (i + r < re - rb) x[r] = __ldcg(mp + static_cast<size_t>(FWD ? rb + i + r : re - 1 - i - r) * H + h);
LRNN_UNROLL
    for (int r = 0; r < kLB; ++r)
      if (i + r < re - rb) op(x[r]);
  }
}

// The forward map of tokens [tb, te) of head h; with m non-null also runs them from m_in, writing m, gt, bt.
__device__ __forceinline__ void stab_fwd_segment(const float* __restrict__ g, int gmode, const float* __restrict__ in, int H,
                                                 int h, int64_t tb, int64_t te, float& A, float& B, float m_in,
                                                 float* __restrict__ m, float* __restrict__ gt, float* __restrict__ bt) {
  float gs[kSB], iv[kSB];
  A = 0.f, B = -INFINITY;
  float mp = m_in;
  for (int64_t t0 = tb; t0 < te; t0 += kSB) {
    const int nb = static_cast<int>(te - t0 < kSB ? te - t0 : kSB);
LRNN_UNROLL
    for (int r = 0; r < kSB; ++r)
      if (r < nb) gs[r] = gate_at(g, gmode, t0 + r, H, h), iv[r] = in[(t0 + r) * H + h];
LRNN_UNROLL
    for (int r = 0; r < kSB; ++r) {
      if (r >= nb) break;
      if (m) {
        const int64_t o = (t0 + r) * H + h;
        const float mt = fmaxf(gs[r] + mp, iv[r]);
        m[o] = mt;
        gt[o] = fminf(0.f, gs[r] + mp - mt);
        bt[o] = fminf(0.f, iv[r] - mt);
        mp = mt;
      } else {
        A += gs[r], B = fmaxf(B + gs[r], iv[r]);
      }
    }
  }
}

struct stab_fwd_args {
  int H;
  const int32_t* offsets;
  const float *g, *in, *m0;
  int gmode;
  float2* maps;         // [N][nblk][H] {A, B} (k_maps, k_coop: written; k_look: read)
  const float* entry;   // [N][nblk][H] m into each block (k_entry)
  float *m, *gt, *bt;   // [tokens, H]
  float* mT;            // [N, H] or null (k_look, k_coop; with three launches the carry kernel writes it)
};

// The forward's block kernel (phases per MODE). maps and entry [N][nblk = gridDim.x][H].
template <int MODE>
__global__ void __launch_bounds__(kBT, MODE >= k_look ? 2 : 1) stab_fwd_blocks(stab_fwd_args a) {
  const int H = a.H, n = blockIdx.y;
  const stab_blk k(a.offsets, H);
  const bool idle = k.idle();  // (uniform in the CTA; k_coop's idle CTAs still meet the grid barrier)
  LRNN_DYN_SMEM(float, sm_st);
  float* sA = sm_st;            // [NS][H] segment maps
  float* sB = sA + k.NS * H;
  const int P = k.NS * H;
  const size_t row = (static_cast<size_t>(n) * gridDim.x + blockIdx.x) * H;
  if (!idle) {
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
      const int s = p / H, h = p % H;
      stab_fwd_segment(a.g, a.gmode, a.in, H, h, k.seg_begin(s), k.seg_end(s), sA[p], sB[p], 0.f, nullptr, nullptr, nullptr);
    }
    __syncthreads();
  }
  if constexpr (MODE == k_maps || MODE == k_coop) {
    if (!idle)
      for (int h = threadIdx.x; h < H; h += blockDim.x) {
        float A = 0.f, B = -INFINITY;
        for (int s = 0; s < k.NS; ++s) {
          const float sa = sA[s * H + h];
          A += sa, B = fmaxf(B + sa, sB[s * H + h]);
        }
        a.maps[row + h] = make_float2(A, B);
      }
    if constexpr (MODE == k_maps) return;
    else cooperative_groups::this_grid().sync();
  }
  if (idle) {
    // (an empty sequence: m_T = m_0)
    if (MODE != k_entry && blockIdx.x == 0 && a.mT)
      for (int h = threadIdx.x; h < H; h += blockDim.x) a.mT[n * H + h] = a.m0 ? a.m0[n * H + h] : 0.f;
    return;
  }
  float* sX = sB + k.NS * H;  // [NS][H] look-back partial maps
  float* sY = sX + k.NS * H;
  if constexpr (MODE == k_look || MODE == k_coop) {
    // Look-back: thread (s, h) composes range s of the blocks before this one (maps through L2: in
    // k_coop other CTAs wrote them in this launch).
    const float2* mp = a.maps + static_cast<size_t>(n) * gridDim.x * H;
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
      const int s = p / H, h = p % H;
      int rb, re;
      look_range(0, static_cast<int>(blockIdx.x), s, k.NS, rb, re);
      float A = 0.f, B = -INFINITY;
      compose_range<true>(mp, H, h, rb, re, [&](float2 x) { A += x.x, B = fmaxf(B + x.x, x.y); });
      sX[p] = A, sY[p] = B;
    }
    __syncthreads();
  }
  // Per head: the block's entry value, then each segment's (into sA), m_T after the last block.
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    float cur;
    if constexpr (MODE == k_entry) {
      cur = a.entry[row + h];
    } else {
      cur = a.m0 ? a.m0[n * H + h] : 0.f;
      for (int s = 0; s < k.NS; ++s) cur = fmaxf(cur + sX[s * H + h], sY[s * H + h]);
    }
    for (int s = 0; s < k.NS; ++s) {
      const float sa = sA[s * H + h], sb = sB[s * H + h];
      sA[s * H + h] = cur;
      cur = fmaxf(cur + sa, sb);
    }
    if (MODE != k_entry && a.mT && k.last()) a.mT[n * H + h] = cur;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    const int s = p / H, h = p % H;
    float A, B;
    stab_fwd_segment(a.g, a.gmode, a.in, H, h, k.seg_begin(s), k.seg_end(s), A, B, sA[p], a.m, a.gt, a.bt);
  }
}

// Phase 2 of the forward (three launches): per (sequence, head) over its blocks from m0 (or 0): entry values, m_T.
__global__ void stab_fwd_carry(int N, int H, int nblk, const int32_t* __restrict__ offsets, const float2* __restrict__ maps,
                               const float* __restrict__ m0, float* __restrict__ entry, float* __restrict__ mT) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= N * H) return;
  const int n = idx / H, h = idx % H;
  const int nb = static_cast<int>((offsets[n + 1] - offsets[n] + kBL - 1) / kBL);
  float cur = m0 ? m0[idx] : 0.f;
  // (the maps in batches of kCB, all loaded before the batch's steps: one memory round trip a batch)
  for (int b0 = 0; b0 < nb; b0 += kCB) {
    float2 ab[kCB];
LRNN_UNROLL
    for (int r = 0; r < kCB; ++r)
      if (b0 + r < nb) ab[r] = maps[(static_cast<size_t>(n) * nblk + b0 + r) * H + h];
LRNN_UNROLL
    for (int r = 0; r < kCB; ++r)
      if (b0 + r < nb) {
        entry[(static_cast<size_t>(n) * nblk + b0 + r) * H + h] = cur;
        cur = fmaxf(cur + ab[r].x, ab[r].y);
      }
  }
  if (mT) mT[idx] = cur;
}

// Backward through the stabiliser, per token from the last (decay_attn.cpp): dm = carry + dm_local,
// the carry into token T being dmT - <S_T, dS_T> (F summed over keys); the token's decay gradient
// gets dm where m took the decay branch (g + m_prev >= i), else the input gate's does; the carry to
// the previous token is dm on the decay branch, else 0. d m0 = dg at the first token (its exact
// anchor <S_0, dS_0>) + the carry out of it; dmT for an empty sequence.
struct stab_bwd_args {
  int H, K;
  const int32_t* offsets;
  const float *g, *in, *m0, *m, *dg, *db, *dm_local;
  int gmode;
  float *dgs_out, *di;
  float2* maps;             // [N][nblk][H] {P, Q} (as stab_fwd_args)
  const float* entry;       // [N][nblk][H] the carry into each block's end (k_entry)
  const float *dmT, *F;     // [N, H], [N, H, K] or null (k_look, k_coop)
  float* dm0;               // [N, H] or null (k_look, k_coop)
  int db_stride = 1;        // db[t H + h] at db[(t H + h) db_stride] (k_tail: Y of the (X, Y) pairs)
  xy_scan_args xs{};        // k_tail: the gate scan, into xs.dgs = dg
  double* tot = nullptr;    // k_tail: its block totals [N][nblk][H]
};

// The carry into the end of sequence n, head h: dmT - sum over keys of F (where the carry kernel and
// the look-back start).
__device__ __forceinline__ float stab_bwd_start(const float* dmT, const float* F, int K, int idx) {
  float cur = dmT ? dmT[idx] : 0.f;
  if (F)
LRNN_UNROLL_16
    for (int d = 0; d < K; ++d) cur -= F[static_cast<size_t>(idx) * K + d];
  return cur;
}

// Tokens [tb, te) of head h from the last: the map carry -> P carry + Q (out null), or the run from
// carry writing dgs_out, di.
__device__ __forceinline__ void stab_bwd_segment(const stab_bwd_args& a, int64_t sb, int h, int64_t tb, int64_t te,
                                                 float& P, float& Q, float carry, bool run) {
  const int H = a.H;
  const float mfirst = a.m0 ? a.m0[blockIdx.y * H + h] : 0.f;
  bool dec[kSB];
  float dml[kSB];
  P = 1.f, Q = 0.f;
  for (int64_t t1 = te; t1 > tb; t1 -= kSB) {
    const int nb = static_cast<int>(t1 - tb < kSB ? t1 - tb : kSB);
LRNN_UNROLL
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        const int64_t t = t1 - 1 - r, o = t * H + h;
        dec[r] = gate_at(a.g, a.gmode, t, H, h) + (t > sb ? a.m[o - H] : mfirst) >= a.in[o];
        dml[r] = a.dm_local[o];
      }
    if (!run) {
LRNN_UNROLL
      for (int r = 0; r < kSB; ++r)
        if (r < nb) {
          if (dec[r]) Q += dml[r];
          else P = Q = 0.f;
        }
      continue;
    }
    float dgv[kSB], dbv[kSB];
LRNN_UNROLL
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        const int64_t o = (t1 - 1 - r) * H + h;
        dgv[r] = a.dg ? a.dg[o] : 0.f, dbv[r] = a.db[o * a.db_stride];
      }
LRNN_UNROLL
    for (int r = 0; r < kSB; ++r) {
      if (r >= nb) break;
      const int64_t o = (t1 - 1 - r) * H + h;
      const float dm = carry + dml[r];
      a.dgs_out[o] = dgv[r] + (dec[r] ? dm : 0.f);
      a.di[o] = dbv[r] + (dec[r] ? 0.f : dm);
      carry = dec[r] ? dm : 0.f;
    }
  }
}

// The backward's block kernel (phases per MODE, as stab_fwd_blocks; the look-back composes the blocks
// after this one, from the last).
// (k_tail: H <= kSBT, one thread per (segment, head), the gate scan's (sub-block, head) the same
// tokens; shared memory stab_smem(H, true) floats then xy_block_smem(H).)
template <int MODE>
__global__ void __launch_bounds__(kBT, MODE >= k_look ? 2 : 1) stab_bwd_blocks(stab_bwd_args a) {
  static_assert(kBT == kSBT && kBL == kSBlk, "k_tail: the gate scan's blocks and rows are the stabiliser's");
  const int H = a.H, n = blockIdx.y;
  const stab_blk k(a.offsets, H);
  const bool idle = k.idle();
  LRNN_DYN_SMEM(float, sm_st);
  float* sP = sm_st;
  float* sQ = sP + k.NS * H;
  const int Pn = k.NS * H;
  const size_t row = (static_cast<size_t>(n) * gridDim.x + blockIdx.x) * H;
  double* xbuf = reinterpret_cast<double*>(sm_st + 4 * Pn);  // (k_tail)
  if (!idle) {
    for (int p = threadIdx.x; p < Pn; p += blockDim.x) {
      const int s = p / H, h = p % H;
      stab_bwd_segment(a, k.sb, h, k.seg_begin(s), k.seg_end(s), sP[p], sQ[p], 0.f, false);
    }
    if constexpr (MODE == k_tail) xy_block_sums(a.xs, xy_blk(a.xs), xbuf);
    __syncthreads();
  }
  if constexpr (MODE == k_maps || MODE == k_coop || MODE == k_tail) {
    if (!idle) {
      for (int h = threadIdx.x; h < H; h += blockDim.x) {
        float P = 1.f, Q = 0.f;
        for (int s = k.NS - 1; s >= 0; --s) {
          const float ps = sP[s * H + h];
          Q = ps * Q + sQ[s * H + h], P = ps * P;
        }
        a.maps[row + h] = make_float2(P, Q);
      }
      if constexpr (MODE == k_tail) xy_block_total(xy_blk(a.xs), xbuf, a.tot);
    }
    if constexpr (MODE == k_maps) return;
    else cooperative_groups::this_grid().sync();
  }
  if (idle) {
    // (an empty sequence: d m0 = dmT)
    if (MODE != k_entry && blockIdx.x == 0 && a.dm0)
      for (int h = threadIdx.x; h < H; h += blockDim.x) a.dm0[n * H + h] = a.dmT ? a.dmT[n * H + h] : 0.f;
    return;
  }
  // (k_tail: the gate scan's runs write dg = xs.dgs of this block's tokens, each thread the tokens its
  // stabiliser run reads next)
  if constexpr (MODE == k_tail) xy_block_scan(a.xs, xy_blk(a.xs), xbuf, a.tot, true);
  float* sX = sQ + k.NS * H;
  float* sY = sX + k.NS * H;
  if constexpr (MODE != k_entry) {
    // Look-back (here: ahead): thread (s, h) composes range s of the blocks after this one, its last
    // block first.
    const float2* mp = a.maps + static_cast<size_t>(n) * gridDim.x * H;
    for (int p = threadIdx.x; p < Pn; p += blockDim.x) {
      const int s = p / H, h = p % H;
      int rb, re;
      look_range(static_cast<int>(blockIdx.x) + 1, k.count(), s, k.NS, rb, re);
      float P = 1.f, Q = 0.f;
      compose_range<false>(mp, H, h, rb, re, [&](float2 x) { Q = x.x * Q + x.y, P = x.x * P; });
      sX[p] = P, sY[p] = Q;
    }
    __syncthreads();
  }
  // Per head: the carry into the block's end, then into each segment's end (into sP); d m0 after block 0.
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    float cur;
    if constexpr (MODE == k_entry) {
      cur = a.entry[row + h];
    } else {
      cur = stab_bwd_start(a.dmT, a.F, a.K, n * H + h);
      for (int s = k.NS - 1; s >= 0; --s) cur = sX[s * H + h] * cur + sY[s * H + h];
    }
    for (int s = k.NS - 1; s >= 0; --s) {
      const float ps = sP[s * H + h], qs = sQ[s * H + h];
      sP[s * H + h] = cur;
      cur = ps * cur + qs;
    }
    if (MODE != k_entry && a.dm0 && blockIdx.x == 0) a.dm0[n * H + h] = (a.dg ? a.dg[k.sb * H + h] : 0.f) + cur;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < Pn; p += blockDim.x) {
    const int s = p / H, h = p % H;
    float P, Q;
    stab_bwd_segment(a, k.sb, h, k.seg_begin(s), k.seg_end(s), P, Q, sP[p], true);
  }
}

// Phase 2 of the backward (three launches): per (sequence, head) over its blocks from the last: the carry into
// each block's end, d m0.
__global__ void stab_bwd_carry(int N, int H, int K, int nblk, const int32_t* __restrict__ offsets, const float2* __restrict__ maps,
                               const float* __restrict__ dmT, const float* __restrict__ F, const float* __restrict__ dg,
                               float* __restrict__ entry, float* __restrict__ dm0) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= N * H) return;
  const int n = idx / H, h = idx % H;
  const int64_t sb = offsets[n], se = offsets[n + 1];
  const int nb = static_cast<int>((se - sb + kBL - 1) / kBL);
  const float up = dmT ? dmT[idx] : 0.f;
  float cur = stab_bwd_start(dmT, F, K, idx);
  for (int b1 = nb - 1; b1 >= 0; b1 -= kCB) {  // (batches of kCB maps, as stab_fwd_carry)
    float2 pq[kCB];
LRNN_UNROLL
    for (int r = 0; r < kCB; ++r)
      if (b1 - r >= 0) pq[r] = maps[(static_cast<size_t>(n) * nblk + b1 - r) * H + h];
LRNN_UNROLL
    for (int r = 0; r < kCB; ++r)
      if (b1 - r >= 0) {
        entry[(static_cast<size_t>(n) * nblk + b1 - r) * H + h] = cur;
        cur = pq[r].x * cur + pq[r].y;
      }
  }
  if (dm0) dm0[idx] = se > sb ? (dg ? dg[sb * H + h] : 0.f) + cur : up;
}

}  // namespace
}  // namespace lrnn::ops::cuda_chunk
