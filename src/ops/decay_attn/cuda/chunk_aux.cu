// decay_attn on CUDA: the small per-token pieces around the chunk core (decay_attn.cpp's mapping
// of mLSTM onto the core): the stabiliser scan and its backward, the normaliser, and the
// per-head sum of a per-head-constant decay's gradient.
#include "ops/decay_attn/cuda/chunk_common.cuh"
#include "ops/decay_attn/cuda/chunk_mma.cuh"

namespace lrnn::ops::cuda_chunk {

namespace {

__device__ __forceinline__ float gate_at(const float* g, int gmode, int64_t t, int H, int h) {
  return gmode == g_head ? g[h] : gmode == g_scalar ? g[t * H + h] : 0.f;
}

// The stabiliser's recurrences (decay_attn.cpp) as three-phase scans over blocks of kBL tokens of
// a sequence, all heads at once: a CTA per (block, sequence) splits its block into NS segments per
// head, thread (segment s, head h) with h fastest, so a warp's loads of [tokens, H] rows are
// contiguous (one CTA per (sequence, head) read them H-strided, one sector per token, and left
// B = 2, T = 16384 on 32 SMs: ~100 us per scan). Phase 1 composes each block's map per head
// (forward m -> max(m + A, B), a max-plus affine map; backward carry -> P carry + Q, P in {0, 1}),
// phase 2 runs over a sequence's blocks per head (tiny), phase 3 recomposes the segment maps from
// the block's entry value and runs the segments. Loads in batches of kSB tokens, all issued before
// the batch's sequential steps.
constexpr int kBT = 256;  // threads per CTA
constexpr int kBL = 256;  // tokens per block
constexpr int kSB = 16;
constexpr int kCB = 16;  // blocks per batch of the carry kernels (phase 2)

__host__ __device__ __forceinline__ int stab_segs(int H) { return H >= kBT ? 1 : kBT / H; }

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
  __device__ int64_t seg_begin(int s) const { return bb + s * SL < be ? bb + s * SL : be; }
  __device__ int64_t seg_end(int s) const { return bb + (s + 1) * SL < be ? bb + (s + 1) * SL : be; }
};

// The forward map of tokens [tb, te) of head h; with m non-null also runs them from m_in, writing m, gt, bt.
__device__ __forceinline__ void stab_fwd_segment(const float* __restrict__ g, int gmode, const float* __restrict__ in, int H,
                                                 int h, int64_t tb, int64_t te, float& A, float& B, float m_in,
                                                 float* __restrict__ m, float* __restrict__ gt, float* __restrict__ bt) {
  float gs[kSB], iv[kSB];
  A = 0.f, B = -INFINITY;
  float mp = m_in;
  for (int64_t t0 = tb; t0 < te; t0 += kSB) {
    const int nb = static_cast<int>(te - t0 < kSB ? te - t0 : kSB);
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) gs[r] = gate_at(g, gmode, t0 + r, H, h), iv[r] = in[(t0 + r) * H + h];
#pragma unroll
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

// Phase 1 / 3 of the forward (maps null: phase 3, from entry). maps, entry [N][nblk][H] ({A, B}, m_in).
__global__ void stab_fwd_blocks(int H, const int32_t* __restrict__ offsets, const float* __restrict__ g, int gmode,
                                const float* __restrict__ in, float2* __restrict__ maps, const float* __restrict__ entry,
                                float* __restrict__ m, float* __restrict__ gt, float* __restrict__ bt) {
  const stab_blk k(offsets, H);
  if (k.idle()) return;
  extern __shared__ float sm_st[];
  float* sA = sm_st;                // [NS][H]
  float* sB = sA + k.NS * H;        // [NS][H]
  const int P = k.NS * H;
  const size_t row = (static_cast<size_t>(blockIdx.y) * gridDim.x + blockIdx.x) * H;
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    const int s = p / H, h = p % H;
    stab_fwd_segment(g, gmode, in, H, h, k.seg_begin(s), k.seg_end(s), sA[p], sB[p], 0.f, nullptr, nullptr, nullptr);
  }
  __syncthreads();
  // Per head, the segments in order: the block's map (phase 1) or each segment's entry value (phase 3).
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    float A = 0.f, B = -INFINITY, cur = maps ? 0.f : entry[row + h];
    for (int s = 0; s < k.NS; ++s) {
      const float a = sA[s * H + h], b = sB[s * H + h];
      if (maps) {
        A += a, B = fmaxf(B + a, b);
      } else {
        sA[s * H + h] = cur;
        cur = fmaxf(cur + a, b);
      }
    }
    if (maps) maps[row + h] = make_float2(A, B);
  }
  if (maps) return;
  __syncthreads();
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    const int s = p / H, h = p % H;
    float A, B;
    stab_fwd_segment(g, gmode, in, H, h, k.seg_begin(s), k.seg_end(s), A, B, sA[p], m, gt, bt);
  }
}

// Phase 2 of the forward: per (sequence, head) over its blocks from m0 (or 0): entry values, m_T.
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
#pragma unroll
    for (int r = 0; r < kCB; ++r)
      if (b0 + r < nb) ab[r] = maps[(static_cast<size_t>(n) * nblk + b0 + r) * H + h];
#pragma unroll
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
  int H;
  const int32_t* offsets;
  const float *g, *in, *m0, *m, *dg, *db, *dm_local;
  int gmode;
  float *dgs_out, *di;
};

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
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        const int64_t t = t1 - 1 - r, o = t * H + h;
        dec[r] = gate_at(a.g, a.gmode, t, H, h) + (t > sb ? a.m[o - H] : mfirst) >= a.in[o];
        dml[r] = a.dm_local[o];
      }
    if (!run) {
#pragma unroll
      for (int r = 0; r < kSB; ++r)
        if (r < nb) {
          if (dec[r]) Q += dml[r];
          else P = Q = 0.f;
        }
      continue;
    }
    float dgv[kSB], dbv[kSB];
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        const int64_t o = (t1 - 1 - r) * H + h;
        dgv[r] = a.dg ? a.dg[o] : 0.f, dbv[r] = a.db[o];
      }
#pragma unroll
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

// Phase 1 / 3 of the backward (maps null: phase 3, from entry = the carry into the block's end).
__global__ void stab_bwd_blocks(stab_bwd_args a, float2* __restrict__ maps, const float* __restrict__ entry) {
  const int H = a.H;
  const stab_blk k(a.offsets, H);
  if (k.idle()) return;
  extern __shared__ float sm_st[];
  float* sP = sm_st;
  float* sQ = sP + k.NS * H;
  const int Pn = k.NS * H;
  const size_t row = (static_cast<size_t>(blockIdx.y) * gridDim.x + blockIdx.x) * H;
  for (int p = threadIdx.x; p < Pn; p += blockDim.x) {
    const int s = p / H, h = p % H;
    stab_bwd_segment(a, k.sb, h, k.seg_begin(s), k.seg_end(s), sP[p], sQ[p], 0.f, false);
  }
  __syncthreads();
  // Per head, the segments from the last: the block's map (phase 1) or each segment's carry in (phase 3).
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    float P = 1.f, Q = 0.f, cur = maps ? 0.f : entry[row + h];
    for (int s = k.NS - 1; s >= 0; --s) {
      const float ps = sP[s * H + h], qs = sQ[s * H + h];
      if (maps) {
        Q = ps * Q + qs, P = ps * P;
      } else {
        sP[s * H + h] = cur;
        cur = ps * cur + qs;
      }
    }
    if (maps) maps[row + h] = make_float2(P, Q);
  }
  if (maps) return;
  __syncthreads();
  for (int p = threadIdx.x; p < Pn; p += blockDim.x) {
    const int s = p / H, h = p % H;
    float P, Q;
    stab_bwd_segment(a, k.sb, h, k.seg_begin(s), k.seg_end(s), P, Q, sP[p], true);
  }
}

// Phase 2 of the backward: per (sequence, head) over its blocks from the last: the carry into each
// block's end, d m0.
__global__ void stab_bwd_carry(int N, int H, int K, int nblk, const int32_t* __restrict__ offsets, const float2* __restrict__ maps,
                               const float* __restrict__ dmT, const float* __restrict__ F, const float* __restrict__ dg,
                               float* __restrict__ entry, float* __restrict__ dm0) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= N * H) return;
  const int n = idx / H, h = idx % H;
  const int64_t sb = offsets[n], se = offsets[n + 1];
  const int nb = static_cast<int>((se - sb + kBL - 1) / kBL);
  const float up = dmT ? dmT[idx] : 0.f;
  float cur = up;
  if (F)
#pragma unroll 16
    for (int d = 0; d < K; ++d) cur -= F[static_cast<size_t>(idx) * K + d];
  for (int b1 = nb - 1; b1 >= 0; b1 -= kCB) {  // (batches of kCB maps, as stab_fwd_carry)
    float2 pq[kCB];
#pragma unroll
    for (int r = 0; r < kCB; ++r)
      if (b1 - r >= 0) pq[r] = maps[(static_cast<size_t>(n) * nblk + b1 - r) * H + h];
#pragma unroll
    for (int r = 0; r < kCB; ++r)
      if (b1 - r >= 0) {
        entry[(static_cast<size_t>(n) * nblk + b1 - r) * H + h] = cur;
        cur = pq[r].x * cur + pq[r].y;
      }
  }
  if (dm0) dm0[idx] = se > sb ? (dg ? dg[sb * H + h] : 0.f) + cur : up;
}

template <typename TO>
__global__ void norm_fwd_kernel(int64_t rows, int Vin, const float* op, const float* m, float eps, TO* o) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= rows * Vin) return;
  const int64_t r = e / Vin;
  const int j = static_cast<int>(e % Vin);
  const float* orow = op + r * (Vin + 1);
  const float fl = m ? expf(-m[r]) : 1.f;
  stf(o + e, orow[j] / norm_divisor(orow[Vin], fl, eps));
}

// The end of a row's normaliser backward (lane 0, hd = o . d_o over the row): dm_local[r] (given), the
// token's own d L / d m_t = -o' . do' + the floor's term = -hd eps / den (decay_attn.cpp), and the
// returned gradient of the normaliser column.
__device__ __forceinline__ float norm_bwd_row_end(float hd, float dv, float fl, float den, float eps, float* dm_local, int64_t r) {
  if (dm_local) dm_local[r] = -hd * eps / den;
  return norm_col_num(hd, dv, fl) / den;
}

// normalise_backward_rows: rs = 1 / divisor, dn = the column's gradient x divisor, dm_local. From the
// normalised o (TS = TD, den given) or from o' fp32 [rows, Vin + 1] (TS = float, den null). VEC: half a
// warp per row, eight columns per lane and 16-byte load (two rows per warp: twice the bytes in flight
// of a warp per row with 8-byte loads, which read o and d_o at 72% of the copy rate); else a warp per
// row, a column per lane and load.
template <typename TD, typename TS, bool VEC>
__global__ void norm_bwd_rows_kernel(int64_t rows, int Vin, const TS* op, const float* den, const float* m, float eps,
                                     const TD* d_o, float* rs, float* dn, float* dm_local) {
  constexpr int LPR = VEC ? 16 : 32;  // lanes per row
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / LPR;
  const int lane = threadIdx.x % LPR;
  const bool live = r < rows;  // (rows past the end keep their half warp's shuffles whole)
  if (!VEC && !live) return;
  const TS* orow = op + r * (den ? Vin : Vin + 1);
  const TD* dh = d_o + r * Vin;
  float fl = 1.f, dv = 0.f, hd = 0.f;
  if (live) {
    fl = m ? expf(-m[r]) : 1.f;
    dv = den ? den[r] : ldf(orow + Vin);
    if constexpr (VEC) {
      for (int j = 8 * lane; j < Vin; j += 8 * LPR) {
        const uint4 ov = *reinterpret_cast<const uint4*>(orow + j), gv = *reinterpret_cast<const uint4*>(dh + j);
        const uint32_t oa[4] = {ov.x, ov.y, ov.z, ov.w}, ga[4] = {gv.x, gv.y, gv.z, gv.w};
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const float2 o2 = mma::unpack2<TD>(oa[u]), g2 = mma::unpack2<TD>(ga[u]);
          hd += o2.x * g2.x + o2.y * g2.y;
        }
      }
    } else {
      for (int j = lane; j < Vin; j += 32) hd += ldf(orow + j) * ldf(dh + j);
    }
  }
#pragma unroll
  for (int x = LPR / 2; x > 0; x >>= 1) hd += __shfl_xor_sync(0xffffffffu, hd, x);
  if (lane != 0 || !live) return;
  const float dd = norm_divisor(dv, fl, eps);
  if (!VEC && !den) hd /= dd;  // (o' -> o)
  rs[r] = 1.f / dd;
  dn[r] = norm_col_num(hd, dv, fl);
  if (dm_local) dm_local[r] = -hd * eps / dd;
}

// dop [rows, Vin + 1] fp32 from o' [rows, Vin + 1] fp32 (the fp32 kernels' backward). One warp per
// row (lanes over the columns).
template <typename TD>
__global__ void norm_bwd_kernel(int64_t rows, int Vin, const float* op, const float* m, float eps, const TD* d_o,
                                float* dop, float* dm_local) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* orow = op + r * (Vin + 1);
  const TD* dh = d_o + r * Vin;
  float* dn = dop + r * (Vin + 1);
  const float fl = m ? expf(-m[r]) : 1.f;
  const float dv = orow[Vin];
  const float den = norm_divisor(dv, fl, eps);
  float hd = 0.f;
  for (int j = lane; j < Vin; j += 32) {
    const float x = ldf(dh + j);
    dn[j] = x / den;
    hd += orow[j] / den * x;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) hd += __shfl_xor_sync(0xffffffffu, hd, o);
  if (lane == 0) dn[Vin] = norm_bwd_row_end(hd, dv, fl, den, eps, dm_local, r);
}

__global__ void sum_tokens_kernel(int64_t tokens, int H, const float* x, float* out) {
  const int h = blockIdx.x;
  double s = 0.0;
  for (int64_t t = threadIdx.x; t < tokens; t += blockDim.x) s += x[t * H + h];
  __shared__ double red[256];
  red[threadIdx.x] = s;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (static_cast<int>(threadIdx.x) < o) red[threadIdx.x] += red[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[h] = static_cast<float>(red[0]);
}

__global__ void copy_column_kernel(int64_t rows, int ld, int col, const float* src, float* dst) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < rows) dst[r] = src[r * ld + col];
}

unsigned blocks(int64_t n, int per) { return static_cast<unsigned>((n + per - 1) / per); }

}  // namespace

int64_t stabiliser_scratch_floats(int N, int H, int64_t max_len) {
  return 3 * static_cast<int64_t>(N) * H * std::max<int64_t>(1, (max_len + kBL - 1) / kBL);
}

namespace {
struct stab_grid {
  dim3 grid;
  int nblk;
  size_t smem;
  stab_grid(int N, int H, int64_t max_len)
      : grid(static_cast<unsigned>(std::max<int64_t>(1, (max_len + kBL - 1) / kBL)), static_cast<unsigned>(N)),
        nblk(static_cast<int>(grid.x)), smem(2 * sizeof(float) * stab_segs(H) * H) {}
};
}  // namespace

int stabiliser_scan(int N, int H, int64_t max_len, const int32_t* offsets, const float* g, int gmode, const float* i,
                    const float* m0, float* m, float* gt, float* bt, float* mT, float* scratch) {
  if (N * H == 0) return 0;
  const stab_grid sg(N, H, max_len);
  if (sg.smem > 48 * 1024) return static_cast<int>(cudaErrorInvalidValue);
  float2* maps = reinterpret_cast<float2*>(scratch);
  float* entry = scratch + 2 * static_cast<size_t>(N) * sg.nblk * H;
  stab_fwd_blocks<<<sg.grid, kBT, sg.smem, launch_stream()>>>(H, offsets, g, gmode, i, maps, nullptr, nullptr, nullptr, nullptr);
  stab_fwd_carry<<<blocks(static_cast<int64_t>(N) * H, 128), 128, 0, launch_stream()>>>(N, H, sg.nblk, offsets, maps, m0, entry, mT);
  stab_fwd_blocks<<<sg.grid, kBT, sg.smem, launch_stream()>>>(H, offsets, g, gmode, i, nullptr, entry, m, gt, bt);
  return static_cast<int>(cudaGetLastError());
}

int stabiliser_backward(int N, int H, int K, int64_t max_len, const int32_t* offsets, const float* g, int gmode,
                        const float* i, const float* m0, const float* m, const float* dg, const float* db,
                        const float* dm_local, const float* dmT, const float* F, float* dgs_out, float* di, float* dm0,
                        float* scratch) {
  if (N * H == 0) return 0;
  if (!dm_local || !db) return static_cast<int>(cudaErrorInvalidValue);
  const stab_grid sg(N, H, max_len);
  if (sg.smem > 48 * 1024) return static_cast<int>(cudaErrorInvalidValue);
  float2* maps = reinterpret_cast<float2*>(scratch);
  float* entry = scratch + 2 * static_cast<size_t>(N) * sg.nblk * H;
  stab_bwd_args a{H, offsets, g, i, m0, m, dg, db, dm_local, gmode, dgs_out, di};
  stab_bwd_blocks<<<sg.grid, kBT, sg.smem, launch_stream()>>>(a, maps, nullptr);
  stab_bwd_carry<<<blocks(static_cast<int64_t>(N) * H, 128), 128, 0, launch_stream()>>>(N, H, K, sg.nblk, offsets, maps, dmT, F,
                                                                                        dg, entry, dm0);
  stab_bwd_blocks<<<sg.grid, kBT, sg.smem, launch_stream()>>>(a, nullptr, entry);
  return static_cast<int>(cudaGetLastError());
}

int normalise_forward(int64_t rows, int Vin, const float* op, const float* m, float eps, void* o, int type) {
  if (rows * Vin == 0) return 0;
  return with_type(type, [&](auto* tag) {
    using TO = std::remove_pointer_t<decltype(tag)>;
    norm_fwd_kernel<TO><<<blocks(rows * Vin, 256), 256, 0, launch_stream()>>>(rows, Vin, op, m, eps, static_cast<TO*>(o));
    return static_cast<int>(cudaGetLastError());
  });
}

int normalise_backward(int64_t rows, int Vin, const float* op, const float* m, float eps, const void* d_o, int type,
                       float* dop, float* dm_local) {
  if (rows == 0) return 0;
  return with_type(type, [&](auto* tag) {
    using TD = std::remove_pointer_t<decltype(tag)>;
    norm_bwd_kernel<TD><<<blocks(rows * 32, 128), 128, 0, launch_stream()>>>(rows, Vin, op, m, eps, static_cast<const TD*>(d_o),
                                                                            dop, dm_local);
    return static_cast<int>(cudaGetLastError());
  });
}

int normalise_backward_rows(int64_t rows, int Vin, const void* o, const float* den, const float* m, float eps,
                            const void* d_o, int type, float* rs, float* dn, float* dm_local) {
  if (rows == 0) return 0;
  if (!rs || !dn) return static_cast<int>(cudaErrorInvalidValue);
  return with_type(type, [&](auto* tag) {
    using TD = std::remove_pointer_t<decltype(tag)>;
    const unsigned nb = blocks(rows * 32, 128);
    const TD* g = static_cast<const TD*>(d_o);
    if (!den) {
      norm_bwd_rows_kernel<TD, float, false><<<nb, 128, 0, launch_stream()>>>(rows, Vin, static_cast<const float*>(o), nullptr, m,
                                                                             eps, g, rs, dn, dm_local);
      return static_cast<int>(cudaGetLastError());
    }
    if constexpr (sizeof(TD) == 2) {
      auto al16 = [](const void* x) { return reinterpret_cast<uintptr_t>(x) % 16 == 0; };
      if (Vin % 8 == 0 && al16(o) && al16(d_o)) {
        norm_bwd_rows_kernel<TD, TD, true><<<blocks(rows * 16, 256), 256, 0, launch_stream()>>>(
            rows, Vin, static_cast<const TD*>(o), den, m, eps, g, rs, dn, dm_local);
        return static_cast<int>(cudaGetLastError());
      }
    }
    norm_bwd_rows_kernel<TD, TD, false><<<nb, 128, 0, launch_stream()>>>(rows, Vin, static_cast<const TD*>(o), den, m, eps, g,
                                                                        rs, dn, dm_local);
    return static_cast<int>(cudaGetLastError());
  });
}

int copy_column(int64_t rows, int ld, int col, const float* src, float* dst) {
  if (rows == 0) return 0;
  copy_column_kernel<<<blocks(rows, 256), 256, 0, launch_stream()>>>(rows, ld, col, src, dst);
  return static_cast<int>(cudaGetLastError());
}

int64_t shared_memory_limit() { return static_cast<int64_t>(smem_limit()); }

int sum_tokens(int64_t tokens, int H, const float* x, float* out) {
  if (H == 0) return 0;
  sum_tokens_kernel<<<H, 256, 0, launch_stream()>>>(tokens, H, x, out);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace lrnn::ops::cuda_chunk
