// decay_attn chunk form on CUDA, tensor-core path (bf16 / f16 inputs, fp32 accumulation): scalar,
// per-head or no decay (optional input scale beta, optional normaliser column), or per-key gates (with
// or without RWKV-6's bonus: KEY, below); K in {64, 128}, V a multiple of 64. One CTA per (sequence,
// head, V tile of VT = 128 columns, or 64 when V is not a multiple of 128) sweeps the chunks with the
// fp32 state tile in registers (mma.sync accumulators; a bf16/f16 copy in shared memory feeds the
// products that read it), loads of the next chunk in flight (cp.async, two stages). No chunk state
// reaches HBM. Kernels:
//   fwd:  O = Qg S + P V,  S = exp(G_L) S + Kd^T V
//   dq:   forward sweep, dQ = Qscale (dO S^T) + dP K
//   dkv:  reverse sweep with dS: dV = Kd dS + P^T dO, dK = Kd-scale (V dS^T) + dP^T Q,
//         dS = exp(G_L) dS + Qg^T dO
// where, in a chunk of 64 tokens with cumulative log decay G (G_L its last), beta the input scale:
//   P_ij = scale q_i.k_j exp(G_i - G_j) beta_j (j <= i),  dP_ij = scale do_i.v_j exp(G_i - G_j) beta_j,
//   Qg_i = scale exp(G_i) q_i,  Kd_j = exp(G_L - G_j) beta_j k_j.
// With one V tile (V = VT) a CTA sees whole rows of dP and dS, so dq and dk are complete there: they
// are written in the input dtype with the per-token sums q.dq and k.dk the gate gradients need (no
// fp32 round trip). With several V tiles they are partial sums, added in fp32 (red.add) for
// finish_backward.
// mLSTM's normaliser column (V = Vin + 1: a value column of ones with its own state n [K]) rides along
// on the CTAs of V tile 0 (template flag NORM; with segments, n is column Vin of the segment states);
// with one V tile the forward also normalises o itself (fwd_out::den).
// Warps: VT / 8 of them; r = warp % 4 is a 16-row block of the chunk, c = warp / 4 a group of 32
// columns of o / dv (K / (VT / 32) columns of dq / dk). The chunk matrices (P, dP) are computed once
// per CTA, as 10 lower-triangle 16 x 16 blocks spread over the warps, into shared memory. The state
// tile is split over warps as (d block warp % (K/16), column group warp / (K/16)).
#include "ops/decay_attn/cuda/chunk_common.cuh"
#include "ops/decay_attn/cuda/chunk_mma.cuh"
#include "ops/decay_attn/cuda/chunk_tc.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

namespace lrnn::ops::cuda_chunk {

namespace {

// Per V tile width VT: warps, threads, padded row stride of V-wide tiles (elements; padding keeps
// ldmatrix conflict-free), 32-column groups.
template <int VT>
struct cfg {
  static constexpr int W = VT / 8;
  static constexpr int T = 32 * W;
  static constexpr int VS = VT + 8;
  static constexpr int CG = VT / 32;
};
constexpr int PS = kC + 8;

// ldmatrix address patterns: pat1 for A (row-major) and B stored [k][n]; pat2 for B stored [n][k]
// and A stored [k][m] (A^T).
__device__ __forceinline__ int rows_left(int64_t rem) { return rem < kC ? static_cast<int>(rem) : kC; }
__device__ __forceinline__ int p1r(int l) { return l & 15; }
__device__ __forceinline__ int p1c(int l) { return (l >> 4) << 3; }
__device__ __forceinline__ int p2r(int l) { return (l & 7) | ((l >> 4) << 3); }
__device__ __forceinline__ int p2c(int l) { return ((l >> 3) & 1) << 3; }

// Per-key gates (KEY): rows of the per-chunk factor table (fp32 [kFac][K], from key_prep), with
// E_m = G at row 16 m + 15 of the chunk (E_-1 = 0):
//   rows 0..5   F(rb, cb) = exp(E_{rb-1} - E_cb) for the off-diagonal blocks rb > cb (offd order)
//   rows 6..9   exp(E_{rb-1}) (Qa -> Qg, row block rb)
//   rows 10..13 exp(E_3 - E_cb) (Kb -> Kd, column block cb)
//   row 14      exp(E_3) (the state's decay)
constexpr int kFac = 15, kFacQ = 6, kFacK = 10, kFacS = 14;
__host__ __device__ constexpr int offd(int rb, int cb) { return rb * (rb - 1) / 2 + cb; }

// One pipeline stage: the chunk's tiles (only those the kernel reads) and its gate table rows
// (KEY: the chunk's factor table and the diagonal 16 x 16 blocks of P, [64][16] 16-bit). HO (the dq
// sweep computing the normaliser's rows, bwd_io::rows): 1 den and m per row, 2 also the normalised o.
template <int K, int VT, bool HQ, bool HDO, bool HDN = false, bool KEY = false, int HO = 0>
struct stage_lay {
  static constexpr int QS = K + 8, VS = cfg<VT>::VS;
  static constexpr size_t q = 0;
  static constexpr size_t k = q + (HQ ? 2 * kC * QS : 0);
  static constexpr size_t v = k + 2 * kC * QS;
  static constexpr size_t dO = v + 2 * kC * VS;
  static constexpr size_t tab = dO + (HDO ? 2 * kC * VS : 0);  // float4 {G, beta, Eq, Ek} per row, or (KEY) factors
  static constexpr size_t pd = tab + (KEY ? 4 * kFac * K : 16 * kC);
  static constexpr size_t dn = pd + (KEY ? 2 * kC * 16 : 0);  // the normaliser column of d_o per row
  static constexpr size_t rs = dn + (HDN ? 4 * kC : 0);        // (HDN) d_o's row scale (bwd_io::rs)
  static constexpr size_t o = rs + (HDN ? 4 * kC : 0);            // (HO 2) the normalised o, V-wide
  static constexpr size_t den = o + (HO == 2 ? 2 * kC * VS : 0);  // (HO) den, then m, per row
  static constexpr size_t bytes = den + (HO ? 8 * kC : 0);
};

// Whole CTA: two stages, the 16-bit state copy, NP 16-bit chunk matrices (P, dP) and NF floats
// (the normaliser's row sums and state).
template <int K, int VT, bool HQ, bool HDO, int NP, int NF = 0, bool HDN = false, bool KEY = false, int HO = 0>
struct cta_lay {
  using st = stage_lay<K, VT, HQ, HDO, HDN, KEY, HO>;
  static constexpr size_t stage0 = 0;
  static constexpr size_t stage1 = st::bytes;
  static constexpr size_t sb = 2 * st::bytes;
  static constexpr size_t ps = sb + 2 * K * cfg<VT>::VS;
  static constexpr size_t fl = ps + NP * 2 * kC * PS;
  static constexpr size_t total = fl + 4 * NF;
};
// The forward's floats with the normaliser column: the 16 x 16 blocks' row sums of P [4][64] (by
// column block; part_rowsum), its state n twice [2][K], the rows' scale exp(G_i) q_i.n [64].
template <int K, bool NORM>
constexpr int norm_floats = NORM ? 5 * kC + 2 * K : 0;
// The dq sweep's: the normaliser state's gradient twice [2][K]; HO: also dp_pre's row sums hsum
// [4][kC] and the column groups' parts of q_i . (S^T d_o_i) [4][kC].
template <int K, bool NORM, bool HO>
constexpr int dq_floats = NORM ? 2 * K + (HO ? 8 * kC : 0) : 0;

// Copies of one chunk into a stage. Each thread copies fixed 16-byte columns of fixed rows (every
// KR-th row of the K-wide tiles, every VR-th of the V-wide ones), so a chunk costs one offset.
// Per-key gates: what key_prep writes for the sweeps (q, k are read as Qa, Kb through core_args).
struct key_io {
  const float* fac = nullptr;  // [N, maxch, H, kFac, K] per-chunk factor table
  const void* pd = nullptr;    // [tokens, H, 16] the diagonal blocks of P (row i: columns 16 (i / 16)..)
  float* dpd = nullptr;        // backward: [tokens, H, 16] fp32, zeroed: the diagonal blocks of dP = dO V^T
  float* tot = nullptr;        // backward: [N, 4 maxch, H, K] the gate gradient's 16-row block totals, then carries
  int maxch = 0;               // chunks of the longest sequence
};

template <typename TI, int K, int VT, bool HQ, bool HDO, bool HDN = false, bool KEY = false, int HO = 0>
struct loader {
  using st = stage_lay<K, VT, HQ, HDO, HDN, KEY, HO>;
  static constexpr int T = cfg<VT>::T, KC8 = K / 8, VC8 = VT / 8, KR = T / KC8, VR = T / VC8;
  static_assert(T % KC8 == 0 && kC % KR == 0 && T % VC8 == 0 && kC % VR == 0, "loader tiling");
  const TI *q, *k, *v, *dO;
  const float4* tab;
  const float* dn;
  const float* rs = nullptr;
  const TI* on = nullptr;                     // (HO 2) the normalised o of bwd_io::rows
  const float *den = nullptr, *mm = nullptr;  // (HO) den and m (or null) of bwd_io::rows; den null: not staged
  int64_t ks, vs;  // token strides (elements) of the K-wide and V-wide inputs
  int H, kr, kc, vr, vc, hh;
  const float* fac = nullptr;
  const TI* pd = nullptr;
  int64_t sb = 0;
  int n = 0, maxch = 0;
  __device__ loader(const core_args& a, const void* d_o, int h, int v0) {
    const int tid = threadIdx.x;
    H = a.H;
    ks = static_cast<int64_t>(a.H) * K, vs = static_cast<int64_t>(a.H) * a.Vin;
    kr = tid / KC8, kc = (tid % KC8) * 8, vr = tid / VC8, vc = (tid % VC8) * 8;
    q = static_cast<const TI*>(a.q) + static_cast<int64_t>(h) * K + kc;
    k = static_cast<const TI*>(a.k) + static_cast<int64_t>(h) * K + kc;
    v = static_cast<const TI*>(a.v) + static_cast<int64_t>(h) * a.Vin + v0 + vc;
    dO = d_o ? static_cast<const TI*>(d_o) + static_cast<int64_t>(h) * a.Vin + v0 + vc : nullptr;
    tab = static_cast<const float4*>(a.gate_tab) + h;
    dn = nullptr;
    hh = h;
  }
  // KEY: the factor table and P's diagonal blocks of sequence n (first token sb).
  __device__ void key_init(const key_io& kio, int n_, int64_t sb_) {
    fac = kio.fac, pd = static_cast<const TI*>(kio.pd), n = n_, sb = sb_, maxch = kio.maxch;
  }
  __device__ loader(const core_args& a, const void* d_o, const float* dn_in, int h, int v0, const float* rs_in = nullptr)
      : loader(a, d_o, h, v0) {
    dn = dn_in ? dn_in + h : nullptr;
    rs = rs_in ? rs_in + h : nullptr;
  }
  // HO: stage den and m of the normaliser's rows (HO 2: and the normalised o, same layout as d_o).
  __device__ void rows_init(const bwd_io::norm_rows& nr, int h, int v0) {
    if constexpr (HO == 2) on = nr.o ? static_cast<const TI*>(nr.o) + static_cast<int64_t>(h) * vs / H + v0 + vc : nullptr;
    den = nr.den ? nr.den + h : nullptr;
    mm = nr.m ? nr.m + h : nullptr;
  }
  // Issues the copies of chunk [t0, t0 + L) into the stage at `base` (rows >= L become zeros).
  __device__ void issue(unsigned char* base, int64_t t0, int L) const {
    constexpr int QS = st::QS, VS = cfg<VT>::VS;
    TI* Qs = reinterpret_cast<TI*>(base + st::q);
    TI* Ks = reinterpret_cast<TI*>(base + st::k);
    TI* Vs = reinterpret_cast<TI*>(base + st::v);
    TI* Ds = reinterpret_cast<TI*>(base + st::dO);
#pragma unroll
    for (int j = 0; j < kC / KR; ++j) {
      const int i = kr + j * KR;
      const bool ok = i < L;
      const int64_t off = (t0 + (ok ? i : 0)) * ks;
      if constexpr (HQ) mma::cp16(Qs + i * QS + kc, q + off, ok);
      mma::cp16(Ks + i * QS + kc, k + off, ok);
    }
#pragma unroll
    for (int j = 0; j < kC / VR; ++j) {
      const int i = vr + j * VR;
      const bool ok = i < L;
      const int64_t off = (t0 + (ok ? i : 0)) * vs;
      mma::cp16(Vs + i * VS + vc, v + off, ok);
      if constexpr (HDO) mma::cp16(Ds + i * VS + vc, dO + off, ok);
      if constexpr (HO == 2) {
        if (on) mma::cp16(reinterpret_cast<TI*>(base + st::o) + i * VS + vc, on + off, ok);
      }
    }
    if constexpr (KEY) {
      const int64_t ci = (t0 - sb) / kC;
      const float* src = fac + ((static_cast<int64_t>(n) * maxch + ci) * H + hh) * kFac * K;
      float* dst = reinterpret_cast<float*>(base + st::tab);
      for (int e = threadIdx.x; e < kFac * K / 4; e += T) mma::cp16(dst + 4 * e, src + 4 * e, true);
      if (threadIdx.x < 2 * kC) {
        const int i = threadIdx.x / 2, half = threadIdx.x % 2;
        const bool ok = i < L;
        mma::cp16(reinterpret_cast<TI*>(base + st::pd) + 16 * i + 8 * half, pd + ((t0 + (ok ? i : 0)) * H + hh) * 16 + 8 * half, ok);
      }
    } else if (threadIdx.x < kC) {
      const int i = threadIdx.x;
      const bool ok = i < L;
      mma::cp16(reinterpret_cast<float4*>(base + st::tab) + i, tab + (t0 + (ok ? i : 0)) * H, ok);
      if constexpr (HDN) {
        mma::cp4(reinterpret_cast<float*>(base + st::dn) + i, dn + (t0 + (ok ? i : 0)) * H, ok && dn);
        if (rs) mma::cp4(reinterpret_cast<float*>(base + st::rs) + i, rs + (t0 + (ok ? i : 0)) * H, ok);
      }
      if constexpr (HO != 0) {
        if (den) {
          mma::cp4(reinterpret_cast<float*>(base + st::den) + i, den + (t0 + (ok ? i : 0)) * H, ok);
          mma::cp4(reinterpret_cast<float*>(base + st::den) + kC + i, mm + (t0 + (ok ? i : 0)) * H, ok && mm);
        }
      }
    }
    mma::cp_commit();
  }
};

// Two-level split of long sequences (when (sequence, head, V tile) CTAs would leave SMs idle): each
// sequence is cut into `nseg` segments of `len` tokens (a multiple of the chunk); tc_seg sweeps each
// segment from a zero state for its state contribution, seg_scan turns those into the state at
// every segment boundary, and the sweeps then run per segment from there.
struct seg_io {
  int nseg = 1;
  int64_t len = 0;
  float* buf = nullptr;    // [N, nseg, H, K, V] forward: contribution of segment s, then the state after it
  float* rbuf = nullptr;   // [N, nseg, H, K, V] reverse: dS contribution of segment s, then dS before it
  float* decay = nullptr;  // [N, nseg, H] exp(sum of the segment's log decays)
  const float* dn = nullptr;  // reverse pass with the normaliser column (NORM): d_o's column Vin [tokens, H]
};

struct seg_range {
  int n, s;
  int64_t sb, se, tb, te;  // sequence [sb, se), segment [tb, te)
};

__device__ __forceinline__ seg_range seg_of(const core_args& a, const seg_io& sg) {
  seg_range r;
  r.n = blockIdx.z / sg.nseg, r.s = blockIdx.z % sg.nseg;
  r.sb = a.offsets[r.n], r.se = a.offsets[r.n + 1];
  if (sg.nseg == 1) {
    r.tb = r.sb, r.te = r.se;
  } else {
    const int64_t x = r.sb + static_cast<int64_t>(r.s) * sg.len;
    r.tb = x < r.se ? x : r.se;
    r.te = r.tb + sg.len < r.se ? r.tb + sg.len : r.se;
  }
  return r;
}

__device__ __forceinline__ size_t seg_off(const core_args& a, const seg_io& sg, int n, int s, int h) {
  return ((static_cast<size_t>(n) * sg.nseg + s) * a.H + h) * static_cast<size_t>(a.K) * a.V;
}

// Per (sequence, chunk of 64, head): the cumulative log decay G_i of the chunk and what the sweeps derive
// from it, per token {G_i, beta_i, scale exp(G_i), exp(G_L - G_i) beta_i} (G_L = G at the chunk's last
// token). One warp per chunk and 16 heads: lane l has head 16 hg + l % 16 and the chunk's rows 32 (l / 16)..
// + 31, so that each load of g and each store of the table is two runs of 16 consecutive heads (a warp per
// chunk and head, reading g at a stride of H floats and writing 16 bytes at a stride of 16 H, took ~13 us
// for 0.5 M tokens x heads on an H100, run 29; this one 6.9 us on an H200, run 30: different machines,
// the same-run gain in whole ops was within the noise, bench/decay_attn_cuda.md). Sums in double,
// sequential per half.
__global__ void gate_table_rows(core_args a, float4* tab) {
  const int n = blockIdx.z, ci = blockIdx.x * 4 + threadIdx.x / 32, l = threadIdx.x % 32, H = a.H;
  const int h = blockIdx.y * 16 + l % 16, r0 = 32 * (l / 16);
  const int64_t t0 = a.offsets[n] + static_cast<int64_t>(ci) * kC, te = a.offsets[n + 1];
  if (t0 >= te) return;  // (the whole warp: t0 is the warp's)
  const int L = rows_left(te - t0);
  const bool on = h < H;
  float x[32];
#pragma unroll
  for (int r = 0; r < 32; ++r) {
    const size_t o = static_cast<size_t>(t0 + r0 + r) * H + h;
    x[r] = on && r0 + r < L ? (a.gmode == g_scalar ? a.g[o] : a.gmode == g_head ? a.g[h] : 0.f) : 0.f;
  }
  double G[32], s = 0.0;
#pragma unroll
  for (int r = 0; r < 32; ++r) s += static_cast<double>(x[r]), G[r] = s;
  // (rows 32.. add the first half's total; the chunk's total is both halves')
  const double first = __shfl_sync(0xffffffffu, s, l % 16), second = __shfl_sync(0xffffffffu, s, l % 16 + 16);
  const double off = r0 > 0 ? first : 0.0, total = first + second;
  // (b and eq_scale loaded 16 rows at a time ahead of the stores: a load after a store to tab, which
  // the compiler cannot prove apart, would wait for it)
#pragma unroll
  for (int r16 = 0; r16 < 32; r16 += 16) {
    float beta[16], es[16];
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const size_t o = static_cast<size_t>(t0 + r0 + r16 + r) * H + h;
      const bool in = on && r0 + r16 + r < L;
      beta[r] = in && a.b ? expf(a.b[o]) : 1.f;
      es[r] = in && a.eq_scale ? a.eq_scale[o] : 1.f;
    }
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      if (!on || r0 + r16 + r >= L) continue;
      const size_t o = static_cast<size_t>(t0 + r0 + r16 + r) * H + h;
      const double g = G[r16 + r] + off;
      tab[o] = make_float4(static_cast<float>(g), beta[r], a.scale * expf(static_cast<float>(g)) * es[r],
                           expf(static_cast<float>(total - g)) * beta[r]);
    }
  }
}

// Block b (0..9) of the lower triangle of a chunk matrix's 16 x 16 blocks: row block rb, column cb.
__device__ __forceinline__ void tri_block(int b, int& rb, int& cb) {
  rb = b >= 6 ? 3 : b >= 3 ? 2 : b >= 1 ? 1 : 0;
  cb = b - rb * (rb + 1) / 2;
}

// An A fragment's columns (its k index) scaled: f points at column qc of the fragment's 16-column
// block (fp32 in shared memory); columns qc, qc + 1 are in a[0], a[1], qc + 8, qc + 9 in a[2], a[3].
template <typename TI>
__device__ __forceinline__ void scale_a_cols(uint32_t (&fa)[4], const float* f) {
  const float2 x = *reinterpret_cast<const float2*>(f), y = *reinterpret_cast<const float2*>(f + 8);
  fa[0] = mma::scale2<TI>(fa[0], x.x, x.y);
  fa[1] = mma::scale2<TI>(fa[1], x.x, x.y);
  fa[2] = mma::scale2<TI>(fa[2], y.x, y.y);
  fa[3] = mma::scale2<TI>(fa[3], y.x, y.y);
}

// acc = block (rb, cb) of X Y^T over KD columns (X, Y [64][stride] in shared memory); fcol given: X's
// columns d scaled by fcol[d] first (in the fragments).
template <typename TI, int KD>
__device__ __forceinline__ void block_mma(float (&acc)[2][4], const TI* X, const TI* Y, int stride, int rb, int cb,
                                          const float* fcol = nullptr) {
  const int l = threadIdx.x % 32, qc = 2 * (l % 4);
#pragma unroll
  for (int t = 0; t < 2; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < KD / 16; ++kk) {
    uint32_t fa[4], fb[4];
    mma::ldsm4(fa, X + (16 * rb + p1r(l)) * stride + 16 * kk + p1c(l));
    if (fcol) scale_a_cols<TI>(fa, fcol + 16 * kk + qc);
    mma::ldsm4(fb, Y + (16 * cb + p2r(l)) * stride + 16 * kk + p2c(l));
    mma::mma16816<TI>(acc[0], fa, fb[0], fb[1]);
    mma::mma16816<TI>(acc[1], fa, fb[2], fb[3]);
  }
}

// Block (rb, cb) of acc into Pm [64][PS] (16-bit) as it is.
template <typename TI>
__device__ __forceinline__ void store_block(TI* Pm, const float (&acc)[2][4], int rb, int cb) {
  const int l = threadIdx.x % 32, i0 = 16 * rb + l / 4, qc = 2 * (l % 4);
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int j = 16 * cb + 8 * t + qc;
    *reinterpret_cast<uint32_t*>(Pm + i0 * PS + j) = mma::pack2<TI>(acc[t][0], acc[t][1]);
    *reinterpret_cast<uint32_t*>(Pm + (i0 + 8) * PS + j) = mma::pack2<TI>(acc[t][2], acc[t][3]);
  }
}

// Diagonal block (rb, rb) of Pm from the stage's diagonal blocks pd [64][16] (one warp).
template <typename TI>
__device__ __forceinline__ void copy_diag(TI* Pm, const TI* pd, int rb) {
  const int l = threadIdx.x % 32, row = 16 * rb + l / 2, half = l % 2;
  *reinterpret_cast<uint4*>(Pm + row * PS + 16 * rb + 8 * half) = *reinterpret_cast<const uint4*>(pd + row * 16 + 8 * half);
}

// Diagonal block rb of acc (rows < L) added in fp32 into dst[(t0 + row) H + h][16].
__device__ __forceinline__ void add_diag_f32(const float (&acc)[2][4], float* dst, int64_t t0, int H, int h, int rb, int L) {
  const int l = threadIdx.x % 32, i0 = 16 * rb + l / 4, i1 = i0 + 8, qc = 2 * (l % 4);
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int jj = 8 * t + qc;
    if (i0 < L) mma::red_add2(dst + (static_cast<size_t>(t0 + i0) * H + h) * 16 + jj, acc[t][0], acc[t][1]);
    if (i1 < L) mma::red_add2(dst + (static_cast<size_t>(t0 + i1) * H + h) * 16 + jj, acc[t][2], acc[t][3]);
  }
}

// s0, s1 summed over the four lanes of a quad (the threads holding one row of an m16n8 fragment);
// every lane of the quad gets the sums.
__device__ __forceinline__ void quad_sum2(float& s0, float& s1) {
  s0 += __shfl_xor_sync(0xffffffffu, s0, 1);
  s0 += __shfl_xor_sync(0xffffffffu, s0, 2);
  s1 += __shfl_xor_sync(0xffffffffu, s1, 1);
  s1 += __shfl_xor_sync(0xffffffffu, s1, 2);
}

// The chunk matrix's decay mask on one m16n8 tile's four elements (rows i0, i0 + 8, columns j, j + 1;
// a00 is (i0, j), a01 (i0, j + 1), a10 (i0 + 8, j), a11 (i0 + 8, j + 1)): a_ij scale exp(G_i - G_j)
// beta_j where j <= lim_i, else 0 (lim_i = i, or -1 for rows past the chunk's L: G = 0 there and
// exp(0 - G_j) may overflow; a masked element is a_ij 0 beta_j, so a and the table must be finite there).
// g0, g1: G of the two rows; tab the chunk's gate table.
constexpr float kLog2e = 1.4426950408889634f;  // (exp(x) = ex2_ftz(x kLog2e))
__device__ __forceinline__ float ex2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
// Without branches: a masked element's exponent is -inf (ex2 gives 0), so the four exponentials issue
// back to back (a branch per element, around __expf's denormal handling, serialised the warp).
__device__ __forceinline__ float4 decay_mask4(float a00, float a01, float a10, float a11, const float4* tab, int j, float g0,
                                              float g1, int lim0, int lim1, float scale) {
  const float4 ta = tab[j], tb = tab[j + 1];
  const float ba = ta.y * scale, bb = tb.y * scale;
  const float x00 = j <= lim0 ? (g0 - ta.x) * kLog2e : -INFINITY, x01 = j + 1 <= lim0 ? (g0 - tb.x) * kLog2e : -INFINITY;
  const float x10 = j <= lim1 ? (g1 - ta.x) * kLog2e : -INFINITY, x11 = j + 1 <= lim1 ? (g1 - tb.x) * kLog2e : -INFINITY;
  return make_float4(a00 * ex2_ftz(x00) * ba, a01 * ex2_ftz(x01) * bb, a10 * ex2_ftz(x10) * ba, a11 * ex2_ftz(x11) * bb);
}

// Block (rb, cb) of a chunk matrix into Pm [64][PS] (16-bit): X Y^T over KD columns (X, Y [64][stride]
// in shared memory), element ij scaled by scale exp(G_i - G_j) beta_j for j <= i < L, else 0.
// pair given: *pair += sum_ij (i - j) w_ij m_ij over the block's masked, scaled, unrounded elements
// m_ij (w = the block of Q K^T: the per-head decay gradient's pair sums, with m = dP).
template <typename TI, int KD>
__device__ __forceinline__ void intra_block(TI* Pm, const TI* X, const TI* Y, int stride, int rb, int cb,
                                            const float4* tab, int L, float scale, float* rowsum = nullptr,
                                            const float* rowadd = nullptr, const float (*w)[4] = nullptr,
                                            float* pair = nullptr, const float* rowscale = nullptr) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  float acc[2][4];
  block_mma<TI, KD>(acc, X, Y, stride, rb, cb);
  const int i0 = 16 * rb + qr, i1 = i0 + 8;
  const float g0 = tab[i0].x, g1 = tab[i1].x;
  const int lim0 = i0 < L ? i0 : -1, lim1 = i1 < L ? i1 : -1;
  if (rowadd) {  // + a per-row term (mLSTM's normaliser column: dP_ij gets dn_i)
    const float a0 = rowadd[i0], a1 = rowadd[i1];
#pragma unroll
    for (int t = 0; t < 2; ++t) acc[t][0] += a0, acc[t][1] += a0, acc[t][2] += a1, acc[t][3] += a1;
  }
  if (rowscale) {  // x a per-row factor (the normaliser folded in: d_o' = Diag(rs) d_o)
    const float s0 = rowscale[i0], s1 = rowscale[i1];
#pragma unroll
    for (int t = 0; t < 2; ++t) acc[t][0] *= s0, acc[t][1] *= s0, acc[t][2] *= s1, acc[t][3] *= s1;
  }
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int j = 16 * cb + 8 * t + qc;
    const float4 pm = decay_mask4(acc[t][0], acc[t][1], acc[t][2], acc[t][3], tab, j, g0, g1, lim0, lim1, scale);
    const float p00 = pm.x, p01 = pm.y, p10 = pm.z, p11 = pm.w;
    *reinterpret_cast<uint32_t*>(Pm + i0 * PS + j) = mma::pack2<TI>(p00, p01);
    *reinterpret_cast<uint32_t*>(Pm + i1 * PS + j) = mma::pack2<TI>(p10, p11);
    if (pair)
      *pair += static_cast<float>(i0 - j) * w[t][0] * p00 + static_cast<float>(i0 - j - 1) * w[t][1] * p01 +
               static_cast<float>(i1 - j) * w[t][2] * p10 + static_cast<float>(i1 - j - 1) * w[t][3] * p11;
    acc[t][0] = p00 + p01, acc[t][2] = p10 + p11;
  }
  // Row sums of the (unrounded) block into rowsum[cb kC + i] (shared memory; part_rowsum adds the
  // blocks of a row: no atomics, which compiled to compare-and-swap loops, and a fixed order).
  if (rowsum) {
    float s0 = acc[0][0] + acc[1][0], s1 = acc[0][2] + acc[1][2];
    quad_sum2(s0, s1);
    if (qc == 0) rowsum[cb * kC + i0] = s0, rowsum[cb * kC + i1] = s1;
  }
}

// The dq sweep's normaliser rows without o (tc_dq HO): hd_i = o_i . d_o_i = rs_i (Eq_i q_i . (S^T d_o_i)
// + sum_j P_ij X_ij), X_ij = d_o_i . v_j, P_ij = scale exp(G_i - G_j) beta_j q_i . k_j (the forward's
// terms of o_i before its division). dp_pre: block (rb, cb) of X decayed (X D, D the masked decay
// scale exp(G_i - G_j) beta_j, kept) and the row sums of P X into hsum[cb kC + i]; dp_post, once rs
// and dn' are known: dP = rs (X + dn') D into Pm, as intra_block makes it.
template <typename TI, int K, int VT>
__device__ __forceinline__ void dp_pre(float (&X)[2][4], float (&D)[2][4], const TI* Ds, const TI* Vs, const TI* Qs,
                                       const TI* Ks, int rb, int cb, const float4* tab, int L, float scale, float* hsum) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  float qk[2][4];
  block_mma<TI, VT>(X, Ds, Vs, cfg<VT>::VS, rb, cb);
  block_mma<TI, K>(qk, Qs, Ks, K + 8, rb, cb);
  const int i0 = 16 * rb + qr, i1 = i0 + 8;
  const float g0 = tab[i0].x, g1 = tab[i1].x;
  const int lim0 = i0 < L ? i0 : -1, lim1 = i1 < L ? i1 : -1;
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int j = 16 * cb + 8 * t + qc;
    const float4 dm = decay_mask4(1.f, 1.f, 1.f, 1.f, tab, j, g0, g1, lim0, lim1, scale);
    D[t][0] = dm.x, D[t][1] = dm.y, D[t][2] = dm.z, D[t][3] = dm.w;
#pragma unroll
    for (int e = 0; e < 4; ++e) X[t][e] *= D[t][e];
    s0 += qk[t][0] * X[t][0] + qk[t][1] * X[t][1];
    s1 += qk[t][2] * X[t][2] + qk[t][3] * X[t][3];
  }
  quad_sum2(s0, s1);
  if (qc == 0) hsum[cb * kC + i0] = s0, hsum[cb * kC + i1] = s1;
}
// (r0, a0 = rs dn' of this thread's first row of the block, r1, a1 of its second)
template <typename TI>
__device__ __forceinline__ void dp_post(TI* Pm, const float (&X)[2][4], const float (&D)[2][4], int rb, int cb,
                                        float r0, float a0, float r1, float a1) {
  const int l = threadIdx.x % 32, i0 = 16 * rb + l / 4, i1 = i0 + 8, qc = 2 * (l % 4);
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int j = 16 * cb + 8 * t + qc;
    *reinterpret_cast<uint32_t*>(Pm + i0 * PS + j) = mma::pack2<TI>(r0 * X[t][0] + a0 * D[t][0], r0 * X[t][1] + a0 * D[t][1]);
    *reinterpret_cast<uint32_t*>(Pm + i1 * PS + j) = mma::pack2<TI>(r1 * X[t][2] + a1 * D[t][2], r1 * X[t][3] + a1 * D[t][3]);
  }
}

// acc (16 x 8 NT) += A x B over one 16-deep k block k0..k0 + 15, A in fragment fa, B = Y's columns
// n0..n0 + 8 NT - 1, Y [k][n] (KN) or [n][k] (!KN: the product with Y^T), row stride YS. The inner step
// of every product below.
template <typename TI, int NT, bool KN = true>
__device__ __forceinline__ void mma_b(float (&acc)[NT][4], const uint32_t (&fa)[4], const TI* Y, int YS, int k0, int n0) {
  const int l = threadIdx.x % 32;
#pragma unroll
  for (int p = 0; p < NT / 2; ++p) {
    uint32_t fb[4];
    if constexpr (KN) mma::ldsm4t(fb, Y + (k0 + p1r(l)) * YS + n0 + 16 * p + p1c(l));
    else mma::ldsm4(fb, Y + (n0 + 16 * p + p2r(l)) * YS + k0 + p2c(l));
    mma::mma16816<TI>(acc[2 * p], fa, fb[0], fb[1]);
    mma::mma16816<TI>(acc[2 * p + 1], fa, fb[2], fb[3]);
  }
}

// State-shaped accumulator of this warp (K x VT tile over VT / 8 warps): rows d = 16 db + (qr, qr + 8),
// columns col0 + 8 t + qc (+1).
template <int K, int VT>
struct state_part {
  static constexpr int W = cfg<VT>::W, VS = cfg<VT>::VS;
  static constexpr int DB = K / 16;  // d blocks
  static constexpr int NT = K / 16;  // 8-column tiles per warp: VT * DB / W / 8
  static_assert(W % DB == 0 && NT * 8 * (W / DB) == VT, "state tiling");
  int db, col0;
  float s[NT][4];
  __device__ state_part() {
    const int w = threadIdx.x / 32;
    db = w % DB;
    col0 = (w / DB) * NT * 8;
  }
  template <typename F>
  __device__ void for_each(F&& f) {
    const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int x = 0; x < 4; ++x) f(s[t][x], 16 * db + qr + (x >= 2 ? 8 : 0), col0 + 8 * t + qc + (x & 1));
  }
  // s = e s + (A^T scaled per row a of A) B over the chunk: A = X [64][XS] (columns d), B = Y [64][VS]
  // (columns of the tile); row a of A scaled by ek[a].
  // (ek strided by 4 floats: a column of the per-row table.)
  // mL > 0: row a's scale is (mL - 1 - a) ek[a] (the moment state's new tokens, mL rows in the chunk).
  // With nn (the normaliser's state n [K] in shared memory: n_cur, written to nn): nn = e n_cur +
  // (A^T scaled) f, f [64] per row (null: ones), as one more 8-column mma tile with f in its column 0
  // on the warps of column group 0 (they hold every row d), from the A fragments the state uses.
  // Every warp calls it; nn is written by lanes of those warps (readers need a barrier).
  template <typename TI>
  __device__ void update(float e, const TI* X, int XS, const float* ek, const TI* Y, int mL = 0,
                         const float* n_cur = nullptr, float* nn = nullptr, const float* f = nullptr) {
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int x = 0; x < 4; ++x) s[t][x] *= e;
    const int l = threadIdx.x % 32, qr = l / 4;
    const bool nw = nn != nullptr && col0 == 0;  // (warp-uniform)
    float na[4] = {0.f, 0.f, 0.f, 0.f};          // (column 0 of the tile: lanes l % 4 == 0, na[0] and na[2])
    if (nw && l % 4 == 0) na[0] = e * n_cur[16 * db + qr], na[2] = e * n_cur[16 * db + qr + 8];
#pragma unroll
    for (int kb = 0; kb < kC / 16; ++kb) {
      uint32_t fa[4];
      a_frag(fa, X, XS, ek, kb, mL);
      mma_b<TI, NT>(s, fa, Y, VS, 16 * kb, col0);
      if (nw) {
        uint32_t b0 = 0u, b1 = 0u;  // (B [k][n] = f_k at n = 0: lanes 0..3 hold k = 2 l, 2 l + 1 (+ 8))
        if (l < 4) {
          const int k0 = 16 * kb + 2 * l;
          b0 = f ? mma::pack2<TI>(f[k0], f[k0 + 1]) : mma::pack2<TI>(1.f, 1.f);
          b1 = f ? mma::pack2<TI>(f[k0 + 8], f[k0 + 9]) : mma::pack2<TI>(1.f, 1.f);
        }
        mma::mma16816<TI>(na, fa, b0, b1);
      }
    }
    if (nw && l % 4 == 0) nn[16 * db + qr] = na[0], nn[16 * db + qr + 8] = na[2];
  }
  // The A fragment of update's product for k block kb: X^T's rows d of this warp, columns 16 kb..,
  // column a scaled by ek[4 a] (times mL - 1 - a when mL > 0).
  template <typename TI>
  __device__ void a_frag(uint32_t (&fa)[4], const TI* X, int XS, const float* ek, int kb, int mL) const {
    const int l = threadIdx.x % 32, k0 = 16 * kb + 2 * (l % 4);
    mma::ldsm4t(fa, X + (16 * kb + p2r(l)) * XS + 16 * db + p2c(l));
    float e0 = ek[4 * k0], e1 = ek[4 * (k0 + 1)], e8 = ek[4 * (k0 + 8)], e9 = ek[4 * (k0 + 9)];
    if (mL > 0) {
      const float m = static_cast<float>(mL - 1 - k0);
      e0 *= m, e1 *= m - 1.f, e8 *= m - 8.f, e9 *= m - 9.f;
    }
    fa[0] = mma::scale2<TI>(fa[0], e0, e1);
    fa[1] = mma::scale2<TI>(fa[1], e0, e1);
    fa[2] = mma::scale2<TI>(fa[2], e8, e9);
    fa[3] = mma::scale2<TI>(fa[3], e8, e9);
  }
  // This thread's part of <s, X^T Diag(ek) Y> (update's product, not kept: a 16 x 16 tile at a time).
  template <typename TI>
  __device__ float dot_product(const TI* X, int XS, const float* ek, const TI* Y) const {
    const int l = threadIdx.x % 32;
    uint32_t fa[kC / 16][4];
#pragma unroll
    for (int kb = 0; kb < kC / 16; ++kb) a_frag(fa[kb], X, XS, ek, kb, 0);
    float sum = 0.f;
#pragma unroll
    for (int p = 0; p < NT / 2; ++p) {
      float acc[2][4] = {};
#pragma unroll
      for (int kb = 0; kb < kC / 16; ++kb) {
        uint32_t fb[4];
        mma::ldsm4t(fb, Y + (16 * kb + p1r(l)) * VS + col0 + 16 * p + p1c(l));
        mma::mma16816<TI>(acc[0], fa[kb], fb[0], fb[1]);
        mma::mma16816<TI>(acc[1], fa[kb], fb[2], fb[3]);
      }
#pragma unroll
      for (int x = 0; x < 4; ++x) sum += s[2 * p][x] * acc[0][x] + s[2 * p + 1][x] * acc[1][x];
    }
    return sum;
  }
  // The moment state's carry: s = e (s + L o) (o the state before its update).
  __device__ void moment_carry(float e, const state_part& o, int L) {
    const float fl = static_cast<float>(L);
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int x = 0; x < 4; ++x) s[t][x] = e * (s[t][x] + fl * o.s[t][x]);
  }
  // Per-key gates: s = Diag(dec) s + (A^T, element (d, a) scaled by fk[(a / 16) K + d]) B over the chunk
  // (fk: one factor row per 16-row block of A, K floats apart).
  template <typename TI>
  __device__ void update_key(const float* dec, const TI* X, int XS, const float* fk, const TI* Y) {
    const int l = threadIdx.x % 32, d = 16 * db + l / 4;
    const float s0 = dec[d], s8 = dec[d + 8];
#pragma unroll
    for (int t = 0; t < NT; ++t) s[t][0] *= s0, s[t][1] *= s0, s[t][2] *= s8, s[t][3] *= s8;
#pragma unroll
    for (int kb = 0; kb < kC / 16; ++kb) {
      uint32_t fa[4];
      mma::ldsm4t(fa, X + (16 * kb + p2r(l)) * XS + 16 * db + p2c(l));
      const float e0 = fk[kb * K + d], e8 = fk[kb * K + d + 8];
      fa[0] = mma::scale2<TI>(fa[0], e0, e0);
      fa[1] = mma::scale2<TI>(fa[1], e8, e8);
      fa[2] = mma::scale2<TI>(fa[2], e0, e0);
      fa[3] = mma::scale2<TI>(fa[3], e8, e8);
      mma_b<TI, NT>(s, fa, Y, VS, 16 * kb, col0);
    }
  }
  template <typename TI>
  __device__ void to_smem(TI* Sb) {
    const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const int d = 16 * db + qr, c = col0 + 8 * t + qc;
      *reinterpret_cast<uint32_t*>(Sb + d * VS + c) = mma::pack2<TI>(s[t][0], s[t][1]);
      *reinterpret_cast<uint32_t*>(Sb + (d + 8) * VS + c) = mma::pack2<TI>(s[t][2], s[t][3]);
    }
  }
  // Row sums of s * other (over this warp's columns) added to out[d] (atomics).
  __device__ void rowdot(const float* other, int ld, int v0, float* out) {
    const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
    float r0 = 0.f, r1 = 0.f;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const int d = 16 * db + qr, c = v0 + col0 + 8 * t + qc;
      r0 += s[t][0] * other[d * ld + c] + s[t][1] * other[d * ld + c + 1];
      r1 += s[t][2] * other[(d + 8) * ld + c] + s[t][3] * other[(d + 8) * ld + c + 1];
    }
    r0 += __shfl_xor_sync(0xffffffffu, r0, 1);
    r0 += __shfl_xor_sync(0xffffffffu, r0, 2);
    r1 += __shfl_xor_sync(0xffffffffu, r1, 1);
    r1 += __shfl_xor_sync(0xffffffffu, r1, 2);
    if (qc == 0) {
      atomicAdd(out + 16 * db + qr, r0);
      atomicAdd(out + 16 * db + qr + 8, r1);
    }
  }
};

// acc (16 x 8 NT) += P_r Y over the chunk columns j <= 16 r + 15 (the causal part): P [64][PS] a chunk
// matrix (this warp's 16 rows, block r), Y [64][YS] stored [j][n], columns n0...
// One column block kb of it: acc += P_{r, kb} Y_kb.
template <typename TI, int NT>
__device__ __forceinline__ void mul_p_at(float (&acc)[NT][4], const TI* Pm, int r, int kb, const TI* Y, int YS, int n0) {
  const int l = threadIdx.x % 32;
  uint32_t fa[4];
  mma::ldsm4(fa, Pm + (16 * r + p1r(l)) * PS + 16 * kb + p1c(l));
  mma_b<TI, NT>(acc, fa, Y, YS, 16 * kb, n0);
}
template <typename TI, int NT>
__device__ __forceinline__ void mul_p(float (&acc)[NT][4], const TI* Pm, int r, const TI* Y, int YS, int n0) {
#pragma unroll
  for (int kb = 0; kb < 4; ++kb) {
    if (kb > r) break;
    mul_p_at<TI, NT>(acc, Pm, r, kb, Y, YS, n0);
  }
}

// acc (16 x 8 NT) += X_r Y over KD: X [64][XS] row-major (this warp's 16 rows, block r); Y read at
// columns n0.., stored [k][n] (KN) or [n][k] (!KN, i.e. the product with Y^T).
// fcol given: X's columns scaled by fcol[column] first (in the fragments).
template <typename TI, int NT, int KD, bool KN>
__device__ __forceinline__ void mul_rows(float (&acc)[NT][4], const TI* X, int XS, int r, const TI* Y, int YS, int n0,
                                         const float* fcol = nullptr) {
  const int l = threadIdx.x % 32, qc = 2 * (l % 4);
#pragma unroll
  for (int kk = 0; kk < KD / 16; ++kk) {
    uint32_t fa[4];
    mma::ldsm4(fa, X + (16 * r + p1r(l)) * XS + 16 * kk + p1c(l));
    if (fcol) scale_a_cols<TI>(fa, fcol + 16 * kk + qc);
    mma_b<TI, NT, KN>(acc, fa, Y, YS, 16 * kk, n0);
  }
}

// acc (16 x 8 NT) += (X^T)_r Y over the chunk rows i >= 16 r (the causal part): X [64][PS] a chunk
// matrix (P or dP, [i][j]), Y [64][YS] stored [i][n], columns n0...
// One row block kb of it: acc += (X_{kb, r})^T Y_kb.
template <typename TI, int NT>
__device__ __forceinline__ void mul_t_at(float (&acc)[NT][4], const TI* X, int r, int kb, const TI* Y, int YS, int n0) {
  const int l = threadIdx.x % 32;
  uint32_t fa[4];
  mma::ldsm4t(fa, X + (16 * kb + p2r(l)) * PS + 16 * r + p2c(l));
  mma_b<TI, NT>(acc, fa, Y, YS, 16 * kb, n0);
}
template <typename TI, int NT>
__device__ __forceinline__ void mul_causal_t(float (&acc)[NT][4], const TI* X, int r, const TI* Y, int YS, int n0) {
#pragma unroll
  for (int kb = 0; kb < 4; ++kb) {
    if (kb < r) continue;
    mul_t_at<TI, NT>(acc, X, r, kb, Y, YS, n0);
  }
}

// Columns c0 + 8 t + qc (+1) of acc times f[column] (fp32 in shared memory).
template <int NT>
__device__ __forceinline__ void scale_cols(float (&acc)[NT][4], const float* f, int c0) {
  const int qc = 2 * (threadIdx.x % 4);
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float2 x = *reinterpret_cast<const float2*>(f + c0 + 8 * t + qc);
    acc[t][0] *= x.x, acc[t][1] *= x.y, acc[t][2] *= x.x, acc[t][3] *= x.y;
  }
}
// acc += (columns of y times f[column]).
template <int NT>
__device__ __forceinline__ void add_scaled_cols(float (&acc)[NT][4], const float (&y)[NT][4], const float* f, int c0) {
  const int qc = 2 * (threadIdx.x % 4);
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float2 x = *reinterpret_cast<const float2*>(f + c0 + 8 * t + qc);
    acc[t][0] += x.x * y[t][0], acc[t][1] += x.y * y[t][1], acc[t][2] += x.x * y[t][2], acc[t][3] += x.y * y[t][3];
  }
}

template <int NT>
__device__ __forceinline__ void zero(float (&acc)[NT][4]) {
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;
}

// Rows of acc (r-block rows qr, qr + 8) times e[4 row] (a column of the per-row table).
template <int NT>
__device__ __forceinline__ void scale_rows(float (&acc)[NT][4], const float* e, int r) {
  const int qr = (threadIdx.x % 32) / 4;
  const float e0 = e[4 * (16 * r + qr)], e1 = e[4 * (16 * r + qr + 8)];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t][0] *= e0, acc[t][1] *= e0, acc[t][2] *= e1, acc[t][3] *= e1;
}

// Stores rows (16 r + qr, + 8) < L of acc, columns c0 + 8 t + qc, into dst[(t0 + row) H + h][ld].
template <typename TI, int NT>
__device__ __forceinline__ void store_rows(const float (&acc)[NT][4], TI* dst, int64_t t0, int H, int h, int ld, int c0,
                                           int r, int L) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  const int i0 = 16 * r + qr, i1 = i0 + 8;
  const bool ok0 = i0 < L, ok1 = i1 < L;
  // (two row pointers, the columns as constant offsets: predicated stores, no per-store address math)
  TI* p0 = dst + (static_cast<size_t>(t0 + i0) * H + h) * ld + c0 + qc;
  TI* p1 = p0 + static_cast<size_t>(8) * H * ld;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (ok0) *reinterpret_cast<uint32_t*>(p0 + 8 * t) = mma::pack2<TI>(acc[t][0], acc[t][1]);
    if (ok1) *reinterpret_cast<uint32_t*>(p1 + 8 * t) = mma::pack2<TI>(acc[t][2], acc[t][3]);
  }
}
template <int NT>
__device__ __forceinline__ void add_rows(const float (&acc)[NT][4], float* dst, int64_t t0, int H, int h, int ld, int c0,
                                         int r, int L) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  const int i0 = 16 * r + qr, i1 = i0 + 8;
  const bool ok0 = i0 < L, ok1 = i1 < L;
  float* p0 = dst + (static_cast<size_t>(t0 + i0) * H + h) * ld + c0 + qc;
  float* p1 = p0 + static_cast<size_t>(8) * H * ld;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (ok0) mma::red_add2(p0 + 8 * t, acc[t][0], acc[t][1]);
    if (ok1) mma::red_add2(p1 + 8 * t, acc[t][2], acc[t][3]);
  }
}

// This thread's parts s0, s1 of rows i0 = 16 r + qr and i1 = i0 + 8 of sum_col acc * X[row][col]
// over its columns c0 + 8 t + qc (+1) (X [64][XS] in shared memory).
template <typename TI, int NT>
__device__ __forceinline__ void row_parts(const float (&acc)[NT][4], const TI* X, int XS, int c0, int i0, int i1,
                                          float& s0, float& s1) {
  const int qc = 2 * (threadIdx.x % 4);
  s0 = s1 = 0.f;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const int c = c0 + 8 * t + qc;
    const float2 x0 = mma::unpack2<TI>(*reinterpret_cast<const uint32_t*>(X + i0 * XS + c));
    const float2 x1 = mma::unpack2<TI>(*reinterpret_cast<const uint32_t*>(X + i1 * XS + c));
    s0 += acc[t][0] * x0.x + acc[t][1] * x0.y;
    s1 += acc[t][2] * x1.x + acc[t][3] * x1.y;
  }
}

// Per row (16 r + qr, + 8) < L of acc: the sum over this warp's columns c0 + 8 t + qc (+1) of
// acc * X[row][col] (X [64][XS] in shared memory), added to dst[2 ((t0 + row) H + h)].
template <typename TI, int NT>
__device__ __forceinline__ void add_rowdot(const float (&acc)[NT][4], const TI* X, int XS, int c0, int r, float* dst,
                                           int64_t t0, int H, int h, int L) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  const int i0 = 16 * r + qr, i1 = i0 + 8;
  float s0, s1;
  row_parts<TI, NT>(acc, X, XS, c0, i0, i1, s0, s1);
  quad_sum2(s0, s1);
  if (qc == 0) {
    if (i0 < L) atomicAdd(dst + 2 * ((t0 + i0) * H + h), s0);
    if (i1 < L) atomicAdd(dst + 2 * ((t0 + i1) * H + h), s1);
  }
}

// This thread's part of sum_i (i + 1) acc_i . X_i over the warp's rows (16 r + qr, + 8) and columns
// c0 + 8 t + qc (+1) (X [64][XS] in shared memory; rows past the chunk are zero there).
template <typename TI, int NT>
__device__ __forceinline__ float rowdot_pos(const float (&acc)[NT][4], const TI* X, int XS, int c0, int r) {
  const int i0 = 16 * r + (threadIdx.x % 32) / 4, i1 = i0 + 8;
  float s0, s1;
  row_parts<TI, NT>(acc, X, XS, c0, i0, i1, s0, s1);
  return static_cast<float>(i0 + 1) * s0 + static_cast<float>(i1 + 1) * s1;
}

// One chunk in a pipeline stage: its gate table (columns Eq = scale exp(G), Ek = exp(G_L - G) beta,
// strided by 4), exp(G_L), and its 16-bit tiles (those the kernel does not load point at unused
// bytes). Taken apart with a structured binding in the sweeps.
template <typename TI, typename st>
struct stage_view {
  const float4* tab;
  const float *Eq, *Ek;
  float gl;
  const TI *Qs, *Ks, *Vs, *Ds;
};
template <typename TI, typename st>
__device__ __forceinline__ stage_view<TI, st> view_of(const unsigned char* stg, int L) {
  const float4* tab = reinterpret_cast<const float4*>(stg + st::tab);
  return {tab, &tab[0].z, &tab[0].w, expf(tab[L - 1].x), reinterpret_cast<const TI*>(stg + st::q),
          reinterpret_cast<const TI*>(stg + st::k), reinterpret_cast<const TI*>(stg + st::v), reinterpret_cast<const TI*>(stg + st::dO)};
}

// Stores rows (16 r + qr, + 8) < L of acc in fp32, columns c0 + 8 t + qc (+1), into
// dst[(t0 + row) H + h][ld] (ld may be odd: scalar stores).
template <int NT>
__device__ __forceinline__ void store_rows_f32(const float (&acc)[NT][4], float* dst, int64_t t0, int H, int h, int ld,
                                               int c0, int r, int L) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  const int i0 = 16 * r + qr, i1 = i0 + 8;
  const bool ok0 = i0 < L, ok1 = i1 < L;
  float* p0 = dst + (static_cast<size_t>(t0 + i0) * H + h) * ld + c0 + qc;
  float* p1 = p0 + static_cast<size_t>(8) * H * ld;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (ok0) p0[8 * t] = acc[t][0], p0[8 * t + 1] = acc[t][1];
    if (ok1) p1[8 * t] = acc[t][2], p1[8 * t + 1] = acc[t][3];
  }
}

// Per-key sweeps: acc += the off-diagonal blocks' products of row block r with the blocks' factor rows
// (fac, K floats apart) per column: sum_{kb < r} F(r, kb) (X_{r, kb} Y_kb), or (TR) sum_{kb > r} F(kb, r)
// ((X_{kb, r})^T Y_kb); X a chunk matrix [64][PS], Y [64][YS], columns c0...
template <typename TI, int NT, bool TR>
__device__ __forceinline__ void add_offdiag(float (&acc)[NT][4], const TI* X, int r, const TI* Y, int YS, int c0,
                                            const float* fac, int K) {
  for (int kb = TR ? r + 1 : 0; kb < (TR ? 4 : r); ++kb) {
    float y[NT][4];
    zero(y);
    if constexpr (TR) mul_t_at<TI, NT>(y, X, r, kb, Y, YS, c0);
    else mul_p_at<TI, NT>(y, X, r, kb, Y, YS, c0);
    add_scaled_cols(acc, y, fac + (TR ? offd(kb, r) : offd(r, kb)) * K, c0);
  }
}

// Per-key sweeps' dQa / dKb rows (fp32): stored with one V tile (the CTA holds whole rows), added over
// several (zeroed by the host first).
template <int NT>
__device__ __forceinline__ void key_rows_out(const float (&acc)[NT][4], float* dst, int64_t t0, int H, int h, int ld,
                                             int c0, int r, int L) {
  if (gridDim.x == 1) store_rows_f32<NT>(acc, dst, t0, H, h, ld, c0, r, L);
  else add_rows<NT>(acc, dst, t0, H, h, ld, c0, r, L);
}

// The state update over a chunk with, on the normaliser's CTAs (nrm), n_next = e n_cur + X^T Diag(ek) f
// on the state's mma (state_part::update).
template <typename TI, int K, int VT>
__device__ __forceinline__ void update_state_n(state_part<K, VT>& S, const core_args& a, bool nrm, float e, const TI* X,
                                               int XS, const float* ek, const TI* Y, const float* n_cur, float* n_next,
                                               const float* f) {
  if (nrm) S.update(e, X, XS, ek, Y, 0, n_cur, n_next, f);
  else S.update(e, X, XS, ek, Y);
}

// acc (rows 16 r + qr, + 8; columns c0 + 8 t + qc, +1) += rowv[row] colv[col] (rowv null: 1).
template <int NT>
__device__ __forceinline__ void add_outer(float (&acc)[NT][4], const float* rowv, const float* colv, int c0, int r) {
  const int l = threadIdx.x % 32, qr = l / 4, qc = 2 * (l % 4);
  const float a0 = rowv ? rowv[16 * r + qr] : 1.f, a1 = rowv ? rowv[16 * r + qr + 8] : 1.f;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float b0 = colv[c0 + 8 * t + qc], b1 = colv[c0 + 8 * t + qc + 1];
    acc[t][0] += a0 * b0, acc[t][1] += a0 * b1, acc[t][2] += a1 * b0, acc[t][3] += a1 * b1;
  }
}

// fn(i, q_i . n) for the chunk's rows i (eight threads per row; every thread calls it). Thread `part`
// of a row reads its 16-byte pieces part, part + 8, ...: a quarter warp's eight loads cover the 32
// banks once (2-byte loads of contiguous pieces conflicted up to 8-way: +7M shared wavefronts per
// forward at B = 8, T = 4096, measured).
template <typename TI, int K, int VT, typename Fn>
__device__ __forceinline__ void rows_dot_n(const TI* Qs, int QS, const float* n, Fn&& fn) {
  static_assert(K % 64 == 0, "rows_dot_n: K a multiple of 64");
  constexpr int T = cfg<VT>::T;
  static_assert((8 * kC) % T == 0, "rows_dot_n: thread layout");
#pragma unroll
  for (int e0 = 0; e0 < 8 * kC; e0 += T) {
    const int e = e0 + threadIdx.x;
    const int i = e / 8, part = e % 8;
    float x = 0.f;
#pragma unroll
    for (int k = 0; k < K / 64; ++k) {
      const int d = 8 * (part + 8 * k);
      const uint4 qv = *reinterpret_cast<const uint4*>(Qs + i * QS + d);
      const float4 n0 = *reinterpret_cast<const float4*>(n + d), n1 = *reinterpret_cast<const float4*>(n + d + 4);
      const float2 a = mma::unpack2<TI>(qv.x), b = mma::unpack2<TI>(qv.y), c = mma::unpack2<TI>(qv.z), w = mma::unpack2<TI>(qv.w);
      x += a.x * n0.x + a.y * n0.y + b.x * n0.z + b.y * n0.w + c.x * n1.x + c.y * n1.y + w.x * n1.z + w.y * n1.w;
    }
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    x += __shfl_xor_sync(0xffffffffu, x, 4);
    if (part == 0) fn(i, x);
  }
}
// Row i's sum of P from intra_block's per-block row sums ps [4][kC] (blocks cb <= i / 16).
__device__ __forceinline__ float part_rowsum(const float* ps, int i) {
  float s = ps[i];
  for (int cb = 1; cb <= i / 16; ++cb) s += ps[cb * kC + i];
  return s;
}

// fn(i, x_i . y_i) for the chunk's rows of two V-wide tiles (row stride S; eight threads per row,
// 16-byte pieces interleaved as in rows_dot_n; every thread of the CTA calls it).
template <typename TI, int VT, typename Fn>
__device__ __forceinline__ void rows_dot_vv(const TI* X, const TI* Y, int S, Fn&& fn) {
  static_assert(VT % 64 == 0, "rows_dot_vv: VT a multiple of 64");
  constexpr int T = cfg<VT>::T;
  static_assert((8 * kC) % T == 0, "rows_dot_vv: thread layout");
#pragma unroll
  for (int e0 = 0; e0 < 8 * kC; e0 += T) {
    const int e = e0 + threadIdx.x, i = e / 8, part = e % 8;
    float x = 0.f;
#pragma unroll
    for (int k = 0; k < VT / 64; ++k) {
      const int d = 8 * (part + 8 * k);
      const uint4 xv = *reinterpret_cast<const uint4*>(X + i * S + d), yv = *reinterpret_cast<const uint4*>(Y + i * S + d);
      const uint32_t xs[4] = {xv.x, xv.y, xv.z, xv.w}, ys[4] = {yv.x, yv.y, yv.z, yv.w};
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float2 a = mma::unpack2<TI>(xs[u]), b = mma::unpack2<TI>(ys[u]);
        x += a.x * b.x + a.y * b.y;
      }
    }
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    x += __shfl_xor_sync(0xffffffffu, x, 4);
    if (part == 0) fn(i, x);
  }
}

// The normaliser's rows of one chunk [t0, t0 + L) from hd = o . d_o (normalise_backward_rows'
// formulas; o and den, m staged by the loader's HO 2 copies, d_o at Ds): into the stage (dn', rs, and
// the table's Eq scaled to Eq' = Eq rs) and to memory (rs_out, dn_out, dm_local, Eq' into the gate
// table: the rows' only other readers are later kernels). Every thread calls it; ends with a barrier.
template <typename TI, typename St, int VT>
__device__ __forceinline__ void norm_rows_chunk(unsigned char* stg, const TI* Ds, const bwd_io::norm_rows& nr, void* gate_tab,
                                                int64_t t0, int L, int H, int h) {
  float* dnw = reinterpret_cast<float*>(stg + St::dn);
  float* rsw = reinterpret_cast<float*>(stg + St::rs);
  float* tabw = reinterpret_cast<float*>(stg + St::tab);
  const float* dv = reinterpret_cast<const float*>(stg + St::den);
  const float* mv = dv + kC;
  rows_dot_vv<TI, VT>(reinterpret_cast<const TI*>(stg + St::o), Ds, cfg<VT>::VS, [&](int i, float hd) {
    const float fl = nr.m ? expf(-mv[i]) : 1.f, dd = norm_divisor(dv[i], fl, nr.eps), rr = 1.f / dd;
    const float dnp = norm_col_num(hd, dv[i], fl), eq = tabw[4 * i + 2] * rr;
    rsw[i] = rr, dnw[i] = dnp, tabw[4 * i + 2] = eq;
    if (i < L) {
      const size_t row = static_cast<size_t>(t0 + i) * H + h;
      nr.rs_out[row] = rr, nr.dn_out[row] = dnp;
      if (nr.dm_local) nr.dm_local[row] = -hd * nr.eps / dd;
      reinterpret_cast<float*>(gate_tab)[4 * row + 2] = eq;
    }
  });
  __syncthreads();
}

// The normaliser column of one chunk (after the barrier that publishes psum, the blocks' row sums
// of P): den_i = scale exp(G_i) q_i.n + sum_j P_ij into column col of o (fp32, row stride ld).
template <typename TI, int K, int VT>
__device__ __forceinline__ void den_column(float* psum, const float* n, const TI* Qs, int QS, const float4* tab, float* o,
                                          int64_t t0, int H, int h, int ld, int col, int L) {
  rows_dot_n<TI, K, VT>(Qs, QS, n, [&](int i, float x) {
    if (i < L) o[(static_cast<size_t>(t0 + i) * H + h) * ld + col] = tab[i].z * x + part_rowsum(psum, i);
  });
}

// Two-stage pipeline step `it` of `nch`: waits for step it's copies, then a CTA barrier (after which
// every warp is done with step it - 1, whose stage is reused), then issues the copies of step it + 1
// (chunk at t_next with L_next rows) into that stage; returns step it's stage.
template <typename LD, typename Lay>
__device__ __forceinline__ unsigned char* pipeline_step(const LD& ld, unsigned char* sm, int it, int nch, int64_t t_next,
                                                        int L_next) {
  mma::cp_wait<0>();
  __syncthreads();
  if (it + 1 < nch) ld.issue(sm + (((it + 1) & 1) ? Lay::stage1 : Lay::stage0), t_next, L_next);
  return sm + ((it & 1) ? Lay::stage1 : Lay::stage0);
}

// Where a sweep CTA works: its segment of a sequence, head h, V tile at v0, warp roles r (16-row
// block) and c (column group), and srow, the first state row of (sequence, head).
template <int K, int VT>
struct sweep_cta {
  seg_range sr;
  int h, v0, r, c;
  size_t srow;
  __device__ sweep_cta(const core_args& a, const seg_io& sg) : sr(seg_of(a, sg)) {
    const int warp = threadIdx.x / 32;
    h = blockIdx.y, v0 = blockIdx.x * VT, r = warp % 4, c = warp / 4;
    srow = (static_cast<size_t>(sr.n) * a.H + h) * K;
  }
  // A segment past its sequence's end (segments are cut to the longest sequence).
  __device__ bool idle() const { return sr.s > 0 && sr.tb >= sr.se; }
};

// The normaliser's state n (or its gradient, rev) at a segment's start (forward: after segment s - 1)
// or end (rev: before segment s + 1): column Vin of the scanned segment boundary; from `first` (n0,
// or dnf) at the sequence's start (end). Threads d < K.
__device__ __forceinline__ float norm_boundary(const core_args& a, const seg_io& sg, const seg_range& sr, size_t srow,
                                               int h, int d, const float* first, bool rev) {
  if (rev ? sr.te == sr.se : sr.s == 0) return first ? first[srow + d] : 0.f;
  const float* b = (rev ? sg.rbuf : sg.buf) + seg_off(a, sg, sr.n, rev ? sr.s + 1 : sr.s - 1, h);
  return b[static_cast<size_t>(d) * a.V + a.Vin];
}

// The forward-direction sweeps' starting state: s0 (first segment) or the scanned segment boundary.
template <int K, int VT>
__device__ __forceinline__ void start_state(state_part<K, VT>& S, const core_args& a, const seg_io& sg,
                                            const seg_range& sr, size_t srow, int h, int v0) {
  if (sr.s == 0) {
    S.for_each([&](float& x, int d, int col) { x = a.s0 ? a.s0[(srow + d) * a.Vin + v0 + col] : 0.f; });
  } else {
    const float* st0 = sg.buf + seg_off(a, sg, sr.n, sr.s - 1, h);
    S.for_each([&](float& x, int d, int col) { x = st0[d * a.V + v0 + col]; });
  }
}

// The forward-direction sweep of tc_fwd and tc_dq: the state from s0 or the segment boundary, then
// the chunks of the segment through the two-stage pipeline, body(stage, t0, rows, chunk index) for
// each. Returns the number of chunks.
template <typename Lay, typename LD, typename TI, int K, int VT, typename Body>
__device__ __forceinline__ int forward_sweep(state_part<K, VT>& S, TI* Sb, const LD& ld, unsigned char* sm,
                                             const core_args& a, const seg_io& sg, const seg_range& sr, size_t srow,
                                             int h, int v0, Body&& body) {
  start_state(S, a, sg, sr, srow, h, v0);
  S.to_smem(Sb);
  const int64_t tb = sr.tb, te = sr.te;
  const int nch = static_cast<int>((te - tb + kC - 1) / kC);
  if (nch > 0) ld.issue(sm + Lay::stage0, tb, rows_left(te - tb));
  for (int ci = 0; ci < nch; ++ci) {
    const int64_t t0 = tb + static_cast<int64_t>(ci) * kC;
    const int L = rows_left(te - t0);
    body(pipeline_step<LD, Lay>(ld, sm, ci, nch, t0 + kC, rows_left(te - t0 - kC)), t0, L, ci);
  }
  return nch;
}

// Per chunk, barriers: one in pipeline_step (the stage has landed; the previous chunk's P, stage and
// state reads are done), one after the chunk matrices are written. The products that read the state
// copy run before the second, so the state copy is rewritten after it without a third.

#include "ops/decay_attn/cuda/chunk_wg.cuh"

// ---- forward ----
// NORM: mLSTM's normaliser column (V = Vin + 1, a value column of ones, state n [K]): o is written in
// fp32 [tokens, H, V], column Vin = scale exp(G_i) q_i.n + sum_j P_ij (by the CTAs of V tile 0), for
// normalise_forward; n = exp(G_L) n + sum_j Kd_j.
// KEY: per-key gates, q and k read as Qa and Kb (key_prep): P's off-diagonal blocks are Qa F Kb^T
// (F the block's factor row, in the fragments), its diagonal blocks come from key_prep; O = Qg S + P V
// with Qg = Qa scaled per column by exp(E_{r-1}); S = Diag(exp(E_3)) S + Kd^T V, Kd = Kb scaled per
// column by exp(E_3 - E_cb).
template <typename TI, int K, int VT, bool NORM = false, bool KEY = false>
__global__ void __launch_bounds__(cfg<VT>::T, 1) tc_fwd(core_args a, fwd_out out, seg_io sg, key_io kio) {
  using C = cfg<VT>;
  using lay = cta_lay<K, VT, true, false, 1, norm_floats<K, NORM>, false, KEY>;
  using st = typename lay::st;
  constexpr int QS = st::QS, VS = C::VS;
  extern __shared__ __align__(128) unsigned char sm[];
  const sweep_cta<K, VT> w(a, sg);
  if (w.idle()) return;
  const seg_range& sr = w.sr;
  const int n = w.sr.n, h = w.h, v0 = w.v0, r = w.r, c = w.c, H = a.H, Vin = a.Vin;
  const size_t srow = w.srow;
  const int64_t te = sr.te;
  TI* Sb = reinterpret_cast<TI*>(sm + lay::sb);
  TI* Ps = reinterpret_cast<TI*>(sm + lay::ps);
  loader<TI, K, VT, true, false, false, KEY> ld(a, nullptr, h, v0);
  if constexpr (KEY) ld.key_init(kio, n, sr.sb);
  // The normaliser (V tile 0 only): row sums of P, and n in two buffers (read one, write the other).
  // Fused (out.den, one V tile): o normalised here, den = o'[Vin] per row into out.den.
  const bool nrm = NORM && blockIdx.x == 0;
  const bool fuse = NORM && out.den != nullptr;
  float* psum = reinterpret_cast<float*>(sm + lay::fl);
  float* nbuf = psum + 4 * kC;
  float* qn = nbuf + 2 * K;
  const int tid = threadIdx.x;
  if (nrm) {
    if (tid < K) nbuf[tid] = norm_boundary(a, sg, sr, srow, h, tid, a.n0, false);
  }

  state_part<K, VT> S;
  const int nch = forward_sweep<lay>(S, Sb, ld, sm, a, sg, sr, srow, h, v0, [&](unsigned char* stg, int64_t t0, int L, int ci) {
    if constexpr (KEY) {
      const float* fac = reinterpret_cast<const float*>(stg + st::tab);
      const TI* Qs = reinterpret_cast<const TI*>(stg + st::q);
      const TI* Ks = reinterpret_cast<const TI*>(stg + st::k);
      const TI* Vs = reinterpret_cast<const TI*>(stg + st::v);
      for (int b = r * C::CG + c; b < 10; b += C::W) {
        int rb, cb;
        tri_block(b, rb, cb);
        if (rb == cb) {
          copy_diag(Ps, reinterpret_cast<const TI*>(stg + st::pd), rb);
        } else {
          float acc[2][4];
          block_mma<TI, K>(acc, Qs, Ks, QS, rb, cb, fac + offd(rb, cb) * K);
          store_block(Ps, acc, rb, cb);
        }
      }
      float o[4][4];
      zero(o);
      mul_rows<TI, 4, K, true>(o, Qs, QS, r, Sb, VS, 32 * c, fac + (kFacQ + r) * K);
      __syncthreads();
      mul_p<TI, 4>(o, Ps, r, Vs, VS, 32 * c);
      store_rows<TI, 4>(o, static_cast<TI*>(out.o), t0, H, h, Vin, v0 + 32 * c, r, L);
      S.update_key(fac + kFacS * K, Ks, QS, fac + kFacK * K, Vs);
      S.to_smem(Sb);
      return;
    }
    const auto [tab, Eq, Ek, gl, Qs, Ks, Vs, Ds] = view_of<TI, st>(stg, L);
    float* ps = psum;  // (every block's row sums are rewritten per chunk, after the barrier that ends the last reads)
    // Fused: this thread's rows' floors exp(-m_i), loaded now (used after P V).
    const int i0 = 16 * r + (tid % 32) / 4, i1 = i0 + 8;
    const size_t t0h = static_cast<size_t>(t0) * H + h;
    float fl0 = 0.f, fl1 = 0.f;  // (m; the floor is exp(-m), or 1 without m)
    if (fuse && out.m) {
      if (i0 < L) fl0 = out.m[t0h + static_cast<size_t>(i0) * H];
      if (i1 < L) fl1 = out.m[t0h + static_cast<size_t>(i1) * H];
    }
    // P blocks (warps of row block 0 first: theirs is the shortest P V product).
    for (int b = r * C::CG + c; b < 10; b += C::W) {
      int rb, cb;
      tri_block(b, rb, cb);
      intra_block<TI, K>(Ps, Qs, Ks, QS, rb, cb, tab, L, a.scale, nrm ? ps : nullptr);
    }
    // Q S (this warp's 32 columns), rows scaled by scale exp(G_i), then + P V.
    float o[4][4];
    zero(o);
    mul_rows<TI, 4, K, true>(o, Qs, QS, r, Sb, VS, 32 * c);
    scale_rows(o, Eq, r);
    if (fuse) rows_dot_n<TI, K, VT>(Qs, QS, nbuf + (ci & 1) * K, [&](int i, float x) { qn[i] = tab[i].z * x; });
    __syncthreads();
    mul_p<TI, 4>(o, Ps, r, Vs, VS, 32 * c);
    if (fuse) {
      // den_i = scale exp(G_i) q_i.n + sum_j P_ij; o_i / (max(|den_i|, exp(-m_i)) + eps).
      const float den0 = qn[i0] + part_rowsum(ps, i0), den1 = qn[i1] + part_rowsum(ps, i1);
      fl0 = out.m ? expf(-fl0) : 1.f, fl1 = out.m ? expf(-fl1) : 1.f;
      const float s0 = 1.f / norm_divisor(den0, fl0, out.eps), s1 = 1.f / norm_divisor(den1, fl1, out.eps);
#pragma unroll
      for (int t = 0; t < 4; ++t) o[t][0] *= s0, o[t][1] *= s0, o[t][2] *= s1, o[t][3] *= s1;
      store_rows<TI, 4>(o, static_cast<TI*>(out.o), t0, H, h, Vin, v0 + 32 * c, r, L);
      if (c == 0 && tid % 4 == 0) {
        if (i0 < L) out.den[t0h + static_cast<size_t>(i0) * H] = den0;
        if (i1 < L) out.den[t0h + static_cast<size_t>(i1) * H] = den1;
      }
    } else if constexpr (NORM) {
      store_rows_f32<4>(o, static_cast<float*>(out.o), t0, H, h, a.V, v0 + 32 * c, r, L);
      if (nrm) den_column<TI, K, VT>(psum, nbuf + (ci & 1) * K, Qs, QS, tab, static_cast<float*>(out.o), t0, H, h, a.V, Vin, L);
    } else {
      store_rows<TI, 4>(o, static_cast<TI*>(out.o), t0, H, h, Vin, v0 + 32 * c, r, L);
    }
    // (NORM: n = exp(G_L) n + sum_j Ek_j k_j on the state's mma, into the other n buffer)
    update_state_n<TI, K, VT>(S, a, nrm, gl, Ks, QS, Ek, Vs, nbuf + (ci & 1) * K, nbuf + ((ci + 1) & 1) * K, nullptr);
    S.to_smem(Sb);
  });
  if (out.sf && te == sr.se) S.for_each([&](float& x, int d, int col) { out.sf[(srow + d) * Vin + v0 + col] = x; });
  if (nrm && out.nf && te == sr.se) {
    __syncthreads();  // (the last chunk's n, written by other warps; racecheck)
    if (tid < K) out.nf[srow + tid] = nbuf[(nch & 1) * K + tid];
  }
}

// ---- backward, forward sweep: dq (DIRECT: written in the input dtype, with q.dq per token) ----
// NORM (mLSTM's normaliser column, V = Vin + 1; io.dn its column of d_o): on V tile 0, dP_ij gets
// dn_i and dq_i gets scale exp(G_i) dn_i n (n the normaliser state, swept alongside).
// KEY: dq~ = exp(E_{r-1}) (dO S^T) + sum_{cb < r} F(r, cb) (dP_{r, cb} Kb_cb) (columnwise factors) into
// io.dq (fp32; key_post makes it dq), P's diagonal blocks of dP into kio.dpd.
// MOM (per-head constant decay g, A_si = scale exp(g (s - i)) (q_s.k_i)(do_s.v_i) for i <= s, the
// initial state a token at -1): dL/dg = sum_{i <= s} (s - i) A_si + <M_T, dS_T>, as pair sums rather
// than per-token sums of q.dq - k.dk (whose terms are ~T times the result): within a chunk from
// the fp32 blocks of Q K^T and dP; across chunks through a moment state swept next to S, M = sum_i
// (d_i) exp(g d_i) k_i v_i^T (d_i the distance of token i to the chunk's start minus one): row r of
// a chunk adds scale exp(g (r + 1)) q_r^T ((r + 1) S + M) do_r, and at a chunk's end M <- exp(g L)
// (M + L S) + sum_j (L - 1 - j) Ek_j k_j v_j^T. With segments M starts at 0 per segment and its last
// value meets dS after the segment (rbuf), which accounts for pairs across segments. Per-CTA partial
// sums into io.dgh_part (bwd_k sums them per head).
// HO (NORM, DIRECT): this sweep computes the normaliser's rows per chunk (bwd_io::rows; one V tile):
// 1 from den, m and its own products (dp_pre; o is not read), 2 from the staged o (norm_rows_chunk;
// o's bytes cost less than the products where there are no segments, H100); without it they come
// from normalise_backward_rows. (tc_seg's reverse pass, which reads them, then runs after this sweep.)
template <typename TI, int K, int VT, bool DIRECT, bool NORM = false, bool KEY = false, bool MOM = false, int HO = 0>
__global__ void __launch_bounds__(cfg<VT>::T, 1) tc_dq(core_args a, bwd_io io, seg_io sg, key_io kio) {
  static_assert(HO == 0 || (NORM && DIRECT), "HO: the normaliser's rows (q staged)");
  using C = cfg<VT>;
  using lay = cta_lay<K, VT, DIRECT || MOM, true, 1, dq_floats<K, NORM, HO == 1>, NORM, KEY, HO>;
  using st = typename lay::st;
  constexpr int QS = st::QS, VS = C::VS, KW = K / C::CG, NQ = KW / 8;  // dq columns / tiles per warp
  extern __shared__ __align__(128) unsigned char sm[];
  const sweep_cta<K, VT> w(a, sg);
  if (w.idle()) return;
  const seg_range& sr = w.sr;
  const int n = w.sr.n, h = w.h, v0 = w.v0, r = w.r, c = w.c, H = a.H, Vin = a.Vin;
  const size_t srow = w.srow;
  const int64_t te = sr.te;
  TI* Sb = reinterpret_cast<TI*>(sm + lay::sb);
  TI* dPs = reinterpret_cast<TI*>(sm + lay::ps);
  const bool rows = HO != 0 && io.rows.den != nullptr;
  loader<TI, K, VT, DIRECT || MOM, true, NORM, KEY, HO> ld(a, io.d_o, rows ? nullptr : io.dn, h, v0, rows ? nullptr : io.rs);
  if constexpr (HO != 0) {
    if (rows) ld.rows_init(io.rows, h, v0);
  }
  if constexpr (KEY) ld.key_init(kio, n, sr.sb);
  const bool nrm = NORM && blockIdx.x == 0;
  float* nbuf = reinterpret_cast<float*>(sm + lay::fl);
  const int tid = threadIdx.x;
  if (nrm && tid < K) nbuf[tid] = norm_boundary(a, sg, sr, srow, h, tid, a.n0, false);

  state_part<K, VT> S, M;  // (M: MOM only)
  double dg = 0.0;         // MOM: this thread's part of the decay gradient
  if constexpr (MOM) M.for_each([](float& x, int, int) { x = 0.f; });
  const int nch = forward_sweep<lay>(S, Sb, ld, sm, a, sg, sr, srow, h, v0, [&](unsigned char* stg, int64_t t0, int L, int ci) {
    if constexpr (KEY) {
      const float* fac = reinterpret_cast<const float*>(stg + st::tab);
      const TI* Ks = reinterpret_cast<const TI*>(stg + st::k);
      const TI* Vs = reinterpret_cast<const TI*>(stg + st::v);
      const TI* Ds = reinterpret_cast<const TI*>(stg + st::dO);
      for (int b = r * C::CG + c; b < 10; b += C::W) {
        int rb, cb;
        tri_block(b, rb, cb);
        float acc[2][4];
        block_mma<TI, VT>(acc, Ds, Vs, VS, rb, cb);
        if (rb == cb) add_diag_f32(acc, kio.dpd, t0, H, h, rb, L);
        else store_block(dPs, acc, rb, cb);
      }
      float dq[NQ][4];
      zero(dq);
      const int d0 = c * KW;
      mul_rows<TI, NQ, VT, false>(dq, Ds, VS, r, Sb, VS, d0);
      scale_cols(dq, fac + (kFacQ + r) * K, d0);
      __syncthreads();
      add_offdiag<TI, NQ, false>(dq, dPs, r, Ks, QS, d0, fac, K);
      key_rows_out<NQ>(dq, io.dq, t0, H, h, K, d0, r, L);
      S.update_key(fac + kFacS * K, Ks, QS, fac + kFacK * K, Vs);
      S.to_smem(Sb);
      return;
    }
    const auto [tab, Eq, Ek, gl, Qs, Ks, Vs, Ds] = view_of<TI, st>(stg, L);
    const float* dns = reinterpret_cast<const float*>(stg + st::dn);
    const float* rss = NORM && (io.rs || rows) ? reinterpret_cast<const float*>(stg + st::rs) : nullptr;
    float* ncur = nbuf + (ci & 1) * K;
    float dq[NQ][4];
    zero(dq);
    const int d0 = c * KW;
    if constexpr (HO == 2) {
      if (rows) norm_rows_chunk<TI, st, VT>(stg, Ds, io.rows, a.gate_tab, t0, L, H, h);
    }
    if constexpr (HO == 1) {
      if (rows) {
        // The normaliser's rows (dp_pre), for this sweep and the dkv sweep and the stabiliser after
        // it: rs, dn' and Eq' = Eq rs (normalise_backward_rows' formulas) in registers and memory.
        constexpr int NB = (10 + C::W - 1) / C::W;  // blocks per warp
        float* hsum = nbuf + 2 * K;
        float* qpart = hsum + 4 * kC;
        float X[NB][2][4], D[NB][2][4];
#pragma unroll
        for (int u = 0; u < NB; ++u) {
          const int b = r * C::CG + c + u * C::W;
          int rb, cb;
          if (b < 10) tri_block(b, rb, cb), dp_pre<TI, K, VT>(X[u], D[u], Ds, Vs, Qs, Ks, rb, cb, tab, L, a.scale, hsum);
        }
        mul_rows<TI, NQ, VT, false>(dq, Ds, VS, r, Sb, VS, d0);
        {
          const int i0 = 16 * r + (tid % 32) / 4, i1 = i0 + 8;
          float s0, s1;
          row_parts<TI, NQ>(dq, Qs, QS, d0, i0, i1, s0, s1);
          quad_sum2(s0, s1);
          if (tid % 4 == 0) qpart[c * kC + i0] = s0, qpart[c * kC + i1] = s1;
        }
        __syncthreads();
        // Every thread forms the rows it needs from the published sums (its blocks' rows for dP, its
        // two rows of block r for dq): no second barrier; the warps c = 0 write the rows out.
        const float* dv = reinterpret_cast<const float*>(stg + st::den);
        const bwd_io::norm_rows& nr = io.rows;
        auto row = [&](int i, float& rr, float& dnp, float& hd, float& dd) {
          float inter = 0.f;
#pragma unroll
          for (int g = 0; g < C::CG; ++g) inter += qpart[g * kC + i];
          const float fl = nr.m ? expf(-dv[kC + i]) : 1.f;
          dd = norm_divisor(dv[i], fl, nr.eps), rr = 1.f / dd;
          hd = rr * (tab[i].z * inter + part_rowsum(hsum, i));
          dnp = norm_col_num(hd, dv[i], fl);
        };
        const int lq = (tid % 32) / 4;
#pragma unroll
        for (int u = 0; u < NB; ++u) {
          const int b = r * C::CG + c + u * C::W;
          if (b < 10) {
            int rb, cb;
            tri_block(b, rb, cb);
            float r0, n0, r1, n1, hd, dd;
            row(16 * rb + lq, r0, n0, hd, dd);
            row(16 * rb + lq + 8, r1, n1, hd, dd);
            dp_post<TI>(dPs, X[u], D[u], rb, cb, r0, r0 * n0, r1, r1 * n1);
          }
        }
        const int i0 = 16 * r + lq, i1 = i0 + 8;
        float r0, n0, hd0, dd0, r1, n1, hd1, dd1;
        row(i0, r0, n0, hd0, dd0);
        row(i1, r1, n1, hd1, dd1);
        const float e0 = tab[i0].z * r0, e1 = tab[i1].z * r1;  // Eq' = Eq rs
#pragma unroll
        for (int t = 0; t < NQ; ++t) {  // dq = Eq' (d_o S^T + dn' n)
          const int col = d0 + 8 * t + 2 * (tid % 4);
          const float b0 = nrm ? ncur[col] : 0.f, b1 = nrm ? ncur[col + 1] : 0.f;
          dq[t][0] = (dq[t][0] + n0 * b0) * e0, dq[t][1] = (dq[t][1] + n0 * b1) * e0;
          dq[t][2] = (dq[t][2] + n1 * b0) * e1, dq[t][3] = (dq[t][3] + n1 * b1) * e1;
        }
        if (c == 0 && tid % 4 == 0) {  // (rs, dn', dm and Eq' for the dkv sweep and the stabiliser)
#pragma unroll
          for (int k2 = 0; k2 < 2; ++k2) {
            const int i = k2 ? i1 : i0;
            if (i < L) {
              const size_t rw = static_cast<size_t>(t0 + i) * H + h;
              nr.rs_out[rw] = k2 ? r1 : r0, nr.dn_out[rw] = k2 ? n1 : n0;
              if (nr.dm_local) nr.dm_local[rw] = -(k2 ? hd1 : hd0) * nr.eps / (k2 ? dd1 : dd0);
              reinterpret_cast<float*>(a.gate_tab)[4 * rw + 2] = k2 ? e1 : e0;
            }
          }
        }
      }
    }
    float part = 0.f;  // MOM: this chunk's terms
    for (int b = r * C::CG + c; b < 10 && !(HO == 1 && rows); b += C::W) {
      int rb, cb;
      tri_block(b, rb, cb);
      if constexpr (MOM) {
        float w[2][4];
        block_mma<TI, K>(w, Qs, Ks, QS, rb, cb);
        intra_block<TI, VT>(dPs, Ds, Vs, VS, rb, cb, tab, L, a.scale, nullptr, nullptr, w, &part);
      } else {
        intra_block<TI, VT>(dPs, Ds, Vs, VS, rb, cb, tab, L, a.scale, nullptr, nrm ? dns : nullptr, nullptr, nullptr, rss);
      }
    }
    if constexpr (MOM) part += M.dot_product(Qs, QS, Eq, Ds);  // <M, sum_r scale exp(g (r + 1)) q_r do_r^T>
    if (!(HO == 1 && rows)) {
      mul_rows<TI, NQ, VT, false>(dq, Ds, VS, r, Sb, VS, d0);
      if (nrm) add_outer(dq, dns, ncur, d0, r);
      scale_rows(dq, Eq, r);
    }
    if constexpr (MOM) {
      part += rowdot_pos<TI, NQ>(dq, Qs, QS, d0, r);  // sum_r (r + 1) scale exp(g (r + 1)) q_r^T S do_r
      dg += part;
    }
    __syncthreads();
    mul_p<TI, NQ>(dq, dPs, r, Ks, QS, d0);
    if constexpr (DIRECT) {
      store_rows<TI, NQ>(dq, static_cast<TI*>(io.dq_out), t0, H, h, K, d0, r, L);
      if (io.xy) add_rowdot<TI, NQ>(dq, Qs, QS, d0, r, io.xy, t0, H, h, L);
    } else {
      add_rows<NQ>(dq, io.dq, t0, H, h, K, d0, r, L);
    }
    if constexpr (MOM) {
      M.moment_carry(gl, S, L);
      M.update(1.f, Ks, QS, Ek, Vs, L);
    }
    update_state_n<TI, K, VT>(S, a, nrm, gl, Ks, QS, Ek, Vs, ncur, nbuf + ((ci + 1) & 1) * K, nullptr);
    S.to_smem(Sb);
  });
  if constexpr (MOM) {
    // <M, dS after the segment>: the final-state gradient, or the next segment's boundary gradient.
    const bool last = te == sr.se;
    const float* dso = last ? (io.dsf ? io.dsf + srow * Vin : nullptr) : sg.rbuf + seg_off(a, sg, n, sr.s + 1, h);
    const int ldo = last ? Vin : a.V;
    if (dso) {
      float x = 0.f;
      M.for_each([&](float& m, int d, int col) { x += m * dso[d * ldo + v0 + col]; });
      dg += x;
    }
    cta_sum(dg, head_partial(io.dgh_part, H));
  }
  if (io.F && te == sr.se) {
    if (io.dsf) S.rowdot(io.dsf + srow * Vin, Vin, v0, io.F + srow);
    if (nrm && io.dnf) {
      __syncthreads();  // (the last chunk's n, written by other warps)
      if (tid < K) atomicAdd(io.F + srow + tid, nbuf[(nch & 1) * K + tid] * io.dnf[srow + tid]);
    }
  }
}

// ---- backward, reverse sweep: dk, dv, dS (io.dk_out set: dk in the input dtype with k.dk per token) ----
// NORM: on V tile 0, dP_ij gets dn_i, dk_j gets exp(G_L - G_j) beta_j dn_s (dn_s the normaliser
// state's gradient, swept alongside: dn_s = exp(G_L) dn_s + sum_i scale exp(G_i) dn_i q_i).
// KEY: dv = Kd dS + P^T dO; dk~ = exp(E_3 - E_r) (V dS^T) + sum_{rb > r} F(rb, r) (dP_{rb, r}^T Qa_rb)
// into io.dk (fp32; key_post makes it dk); dS = Diag(exp(E_3)) dS + Qg^T dO.
template <typename TI, int K, int VT, bool NORM = false, bool KEY = false>
__global__ void __launch_bounds__(cfg<VT>::T, 1) tc_dkv(core_args a, bwd_io io, seg_io sg, key_io kio) {
  using C = cfg<VT>;
  using lay = cta_lay<K, VT, true, true, 2, NORM ? 2 * K : 0, NORM, KEY>;
  using st = typename lay::st;
  constexpr int QS = st::QS, VS = C::VS, KW = K / C::CG, NQ = KW / 8;
  extern __shared__ __align__(128) unsigned char sm[];
  const sweep_cta<K, VT> w(a, sg);
  if (w.idle()) return;
  const seg_range& sr = w.sr;
  const int n = w.sr.n, h = w.h, v0 = w.v0, r = w.r, c = w.c, H = a.H, Vin = a.Vin;
  const size_t srow = w.srow;
  const bool direct = io.dk_out != nullptr;
  const int64_t tb = sr.tb, te = sr.te;
  TI* dSb = reinterpret_cast<TI*>(sm + lay::sb);
  TI* Ps = reinterpret_cast<TI*>(sm + lay::ps);
  TI* dPs = Ps + kC * PS;
  loader<TI, K, VT, true, true, NORM, KEY> ld(a, io.d_o, io.dn, h, v0, io.rs);
  if constexpr (KEY) ld.key_init(kio, n, sr.sb);
  const bool nrm = NORM && blockIdx.x == 0;
  float* nbuf = reinterpret_cast<float*>(sm + lay::fl);
  const int tid = threadIdx.x;
  if (nrm && tid < K) nbuf[tid] = norm_boundary(a, sg, sr, srow, h, tid, io.dnf, true);

  state_part<K, VT> dS;
  if (te == sr.se) {
    dS.for_each([&](float& x, int d, int col) { x = io.dsf ? io.dsf[(srow + d) * Vin + v0 + col] : 0.f; });
  } else {
    const float* st0 = sg.rbuf + seg_off(a, sg, n, sr.s + 1, h);
    dS.for_each([&](float& x, int d, int col) { x = st0[d * a.V + v0 + col]; });
  }
  dS.to_smem(dSb);
  const int nch = static_cast<int>((te - tb + kC - 1) / kC);
  auto chunk_t0 = [&](int ci) { return tb + static_cast<int64_t>(ci) * kC; };
  auto chunk_L = [&](int ci) { return rows_left(te - chunk_t0(ci)); };
  if (nch > 0) ld.issue(sm + lay::stage0, chunk_t0(nch - 1), chunk_L(nch - 1));
  for (int it = 0; it < nch; ++it) {
    const int ci = nch - 1 - it;
    const int64_t t0 = chunk_t0(ci);
    const int L = chunk_L(ci);
    const int cn = ci > 0 ? ci - 1 : 0;
    unsigned char* stg = pipeline_step<decltype(ld), lay>(ld, sm, it, nch, chunk_t0(cn), chunk_L(cn));
    if constexpr (KEY) {
      const float* fac = reinterpret_cast<const float*>(stg + st::tab);
      const TI* Qs = reinterpret_cast<const TI*>(stg + st::q);
      const TI* Ks = reinterpret_cast<const TI*>(stg + st::k);
      const TI* Vs = reinterpret_cast<const TI*>(stg + st::v);
      const TI* Ds = reinterpret_cast<const TI*>(stg + st::dO);
      float dv[4][4], dk[NQ][4];
      zero(dv);
      zero(dk);
      const int d0 = c * KW;
      mul_rows<TI, 4, K, true>(dv, Ks, QS, r, dSb, VS, 32 * c, fac + (kFacK + r) * K);
      mul_rows<TI, NQ, VT, false>(dk, Vs, VS, r, dSb, VS, d0);
      scale_cols(dk, fac + (kFacK + r) * K, d0);
      for (int b = (3 - r) * C::CG + c; b < 20; b += C::W) {
        int rb, cb;
        tri_block(b % 10, rb, cb);
        float acc[2][4];
        if (b < 10) {
          if (rb == cb) {
            copy_diag(Ps, reinterpret_cast<const TI*>(stg + st::pd), rb);
            continue;
          }
          block_mma<TI, K>(acc, Qs, Ks, QS, rb, cb, fac + offd(rb, cb) * K);
          store_block(Ps, acc, rb, cb);
        } else if (rb != cb) {
          block_mma<TI, VT>(acc, Ds, Vs, VS, rb, cb);
          store_block(dPs, acc, rb, cb);
        }
      }
      __syncthreads();
      mul_causal_t<TI, 4>(dv, Ps, r, Ds, VS, 32 * c);
      store_rows<TI, 4>(dv, static_cast<TI*>(io.dv), t0, H, h, Vin, v0 + 32 * c, r, L);
      add_offdiag<TI, NQ, true>(dk, dPs, r, Qs, QS, d0, fac, K);
      key_rows_out<NQ>(dk, io.dk, t0, H, h, K, d0, r, L);
      dS.update_key(fac + kFacS * K, Qs, QS, fac + kFacQ * K, Ds);
      dS.to_smem(dSb);
      continue;
    }
    const auto [tab, Eq, Ek, gl, Qs, Ks, Vs, Ds] = view_of<TI, st>(stg, L);
    const float* dns = reinterpret_cast<const float*>(stg + st::dn);
    // (Normaliser folded: d_o' = Diag(rs) d_o, so P^T d_o' = (Diag(rs) P)^T d_o and dP gets rs too.)
    const float* rss = NORM && io.rs ? reinterpret_cast<const float*>(stg + st::rs) : nullptr;
    float* ncur = nbuf + (it & 1) * K;
    // The products with dS first: dV rows j (block r), columns 32 c..: Ek_j (K dS)_j; dK rows j,
    // columns d0..d0 + KW: Ek_j (V dS^T)_j.
    float dv[4][4], dk[NQ][4];
    zero(dv);
    zero(dk);
    const int d0 = c * KW;
    mul_rows<TI, 4, K, true>(dv, Ks, QS, r, dSb, VS, 32 * c);
    mul_rows<TI, NQ, VT, false>(dk, Vs, VS, r, dSb, VS, d0);
    if (nrm) add_outer(dk, nullptr, ncur, d0, r);
    scale_rows(dv, Ek, r);
    scale_rows(dk, Ek, r);
    // P and dP blocks (warps of row block 3 first: theirs are the shortest P^T products).
    for (int b = (3 - r) * C::CG + c; b < 20; b += C::W) {
      int rb, cb;
      tri_block(b % 10, rb, cb);
      if (b < 10) intra_block<TI, K>(Ps, Qs, Ks, QS, rb, cb, tab, L, a.scale, nullptr, nullptr, nullptr, nullptr, rss);
      else intra_block<TI, VT>(dPs, Ds, Vs, VS, rb, cb, tab, L, a.scale, nullptr, nrm ? dns : nullptr, nullptr, nullptr, rss);
    }
    __syncthreads();
    // + sum_{i >= j} P_ij dO_i and + sum_{i >= j} dP_ij q_i.
    mul_causal_t<TI, 4>(dv, Ps, r, Ds, VS, 32 * c);
    store_rows<TI, 4>(dv, static_cast<TI*>(io.dv), t0, H, h, Vin, v0 + 32 * c, r, L);
    mul_causal_t<TI, NQ>(dk, dPs, r, Qs, QS, d0);
    if (direct) {
      store_rows<TI, NQ>(dk, static_cast<TI*>(io.dk_out), t0, H, h, K, d0, r, L);
      if (io.xy) add_rowdot<TI, NQ>(dk, Ks, QS, d0, r, io.xy + 1, t0, H, h, L);
    } else {
      add_rows<NQ>(dk, io.dk, t0, H, h, K, d0, r, L);
    }
    // dS = exp(G_L) dS + Qg^T dO.
    update_state_n<TI, K, VT>(dS, a, nrm, gl, Qs, QS, Eq, Ds, ncur, nbuf + ((it + 1) & 1) * K, dns);
    dS.to_smem(dSb);
  }
  if (sr.s > 0) return;
  if (io.ds0) dS.for_each([&](float& x, int d, int col) { io.ds0[(srow + d) * Vin + v0 + col] = x; });
  if (io.F0 && a.s0) dS.rowdot(a.s0 + srow * Vin, Vin, v0, io.F0 + srow);
  if (nrm) __syncthreads();  // (the last chunk's n, written by other warps)
  if (nrm && tid < K) {
    const float dn0 = nbuf[(nch & 1) * K + tid];
    if (io.dn0) io.dn0[srow + tid] = dn0;
    if (io.F0 && a.n0) atomicAdd(io.F0 + srow + tid, a.n0[srow + tid] * dn0);
  }
}

// Segment pass: FWD sweeps segment s (< nseg - 1) from S = 0: S = exp(G_L) S + Kd^T V; the reverse
// pass (s > 0, chunks last to first, with a.k = q and a.v = d_o) sweeps dS = exp(G_L) dS + Qg^T dO.
// KEY: per-key gates (q, k read as Qa, Kb; the reverse pass's Qg from Qa with the factor rows), the
// segment's decay per key into sg.decay [N, nseg, H, K].
// NORM: V tile 0 also sweeps the normaliser's state (n = exp(G_L) n + sum_j Ek_j k_j; reverse: dn_s =
// exp(G_L) dn_s + sum_i Eq_i dn_i q_i with dn = sg.dn) into column Vin of the segment's state.
// Three stages (seg_lay): the pass only streams its chunks through the state, so two are in flight.
template <int K, int VT, bool FWD, bool KEY, bool NORM>
struct seg_lay {
  using st = stage_lay<K, VT, false, false, NORM && !FWD, KEY>;
  static constexpr int NS = 3;
  static constexpr size_t fl = NS * st::bytes;          // (NORM: n twice)
  static constexpr size_t total = fl + (NORM ? 8 * K : 0);
};

template <typename TI, int K, int VT, bool FWD, bool KEY = false, bool NORM = false>
__global__ void __launch_bounds__(cfg<VT>::T, 1) tc_seg(core_args a, seg_io sg, key_io kio) {
  using lay = seg_lay<K, VT, FWD, KEY, NORM>;
  using st = typename lay::st;
  constexpr int NS = lay::NS;
  constexpr int QS = st::QS;
  extern __shared__ __align__(128) unsigned char sm[];
  const seg_range sr = seg_of(a, sg);
  if (FWD ? sr.s == sg.nseg - 1 : sr.s == 0) return;
  const int n = sr.n, h = blockIdx.y, v0 = blockIdx.x * VT;
  loader<TI, K, VT, false, false, NORM && !FWD, KEY> ld(a, nullptr, sg.dn, h, v0);
  if constexpr (KEY) ld.key_init(kio, n, sr.sb);
  float kdec = 1.f;  // KEY: this thread's key (threads < K)
  const bool nrm = NORM && blockIdx.x == 0;
  float* nbuf = reinterpret_cast<float*>(sm + lay::fl);  // (NORM: n twice)
  if (nrm && threadIdx.x < K) nbuf[threadIdx.x] = 0.f;
  state_part<K, VT> S;
  S.for_each([](float& x, int, int) { x = 0.f; });
  const int nch = static_cast<int>((sr.te - sr.tb + kC - 1) / kC);
  auto chunk_t0 = [&](int ci) { return sr.tb + static_cast<int64_t>(ci) * kC; };
  auto chunk_L = [&](int ci) { return rows_left(sr.te - chunk_t0(ci)); };
  auto chunk_at = [&](int it) { return FWD ? it : nch - 1 - it; };
  double glsum = 0.0;
  // (one commit group per chunk, empty past the last, so that waiting for all but the newest NS - 2
  // groups means chunk it has landed)
#pragma unroll
  for (int j = 0; j < NS - 1; ++j) {
    if (j < nch) ld.issue(sm + j * st::bytes, chunk_t0(chunk_at(j)), chunk_L(chunk_at(j)));
    else mma::cp_commit();
  }
  for (int it = 0; it < nch; ++it) {
    const int L = chunk_L(chunk_at(it));
    mma::cp_wait<NS - 2>();
    __syncthreads();  // (every warp is done with chunk it - 1, whose stage the next copies reuse)
    const int nx = it + NS - 1;
    if (nx < nch) ld.issue(sm + (nx % NS) * st::bytes, chunk_t0(chunk_at(nx)), chunk_L(chunk_at(nx)));
    else mma::cp_commit();
    unsigned char* stg = sm + (it % NS) * st::bytes;
    if constexpr (KEY) {
      const float* fac = reinterpret_cast<const float*>(stg + st::tab);
      if (threadIdx.x < K) kdec *= fac[kFacS * K + threadIdx.x];
      S.update_key(fac + kFacS * K, reinterpret_cast<const TI*>(stg + st::k), QS, fac + (FWD ? kFacK : kFacQ) * K,
                   reinterpret_cast<const TI*>(stg + st::v));
      continue;
    }
    const float4* tab = reinterpret_cast<const float4*>(stg + st::tab);
    const float gL = tab[L - 1].x;
    glsum += gL;
    const TI* Ks = reinterpret_cast<const TI*>(stg + st::k);
    update_state_n<TI, K, VT>(S, a, nrm, expf(gL), Ks, QS, FWD ? &tab[0].w : &tab[0].z, reinterpret_cast<const TI*>(stg + st::v),
                              nbuf + (it & 1) * K, nbuf + ((it + 1) & 1) * K,
                              FWD ? nullptr : reinterpret_cast<const float*>(stg + st::dn));
  }
  float* dst = (FWD ? sg.buf : sg.rbuf) + seg_off(a, sg, n, sr.s, h);
  S.for_each([&](float& x, int d, int col) { dst[d * a.V + v0 + col] = x; });
  if (nrm) {
    __syncthreads();  // (the last chunk's n, written by other warps)
    if (threadIdx.x < K) dst[threadIdx.x * a.V + a.Vin] = nbuf[(nch & 1) * K + threadIdx.x];
  }
  if constexpr (KEY) {
    if (blockIdx.x == 0 && threadIdx.x < K) sg.decay[((static_cast<size_t>(n) * sg.nseg + sr.s) * a.H + h) * K + threadIdx.x] = kdec;
  } else if (blockIdx.x == 0 && threadIdx.x == 0) {
    sg.decay[(static_cast<size_t>(n) * sg.nseg + sr.s) * a.H + h] = static_cast<float>(exp(glsum));
  }
}

// Segment boundaries, one thread per state element: forward buf[s] <- state after segment s (from
// s0), reverse rbuf[s] <- dS before segment s (from the final-state gradient).
// (init [N, H, K, Vin] and, with the normaliser column (V = Vin + 1), ninit [N, H, K].)
__global__ void seg_scan(core_args a, seg_io sg, const float* init, const float* ninit, bool fwd) {
  const int64_t KV = static_cast<int64_t>(a.K) * a.V;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= a.N * a.H * KV) return;
  const int n = static_cast<int>(idx / (a.H * KV)), h = static_cast<int>((idx / KV) % a.H);
  const int64_t e = idx % KV, d = e / a.V, col = e % a.V;
  const int64_t row = (static_cast<int64_t>(n) * a.H + h) * a.K + d;
  float cur = col < a.Vin ? (init ? init[row * a.Vin + col] : 0.f) : (ninit ? ninit[row] : 0.f);
  float* buf = fwd ? sg.buf : sg.rbuf;
  for (int x = 0; x < sg.nseg - 1; ++x) {
    const int s = fwd ? x : sg.nseg - 1 - x;
    const size_t off = seg_off(a, sg, n, s, h) + e;
    const size_t di = (static_cast<size_t>(n) * sg.nseg + s) * a.H + h;
    cur = (a.gmode == g_key ? sg.decay[di * a.K + e / a.V] : sg.decay[di]) * cur + buf[off];
    buf[off] = cur;
  }
}

// ---- per-key gates: the elementwise parts around the sweeps (CUDA cores, fp32) ----
// key_prep: one CTA of kKT threads per (chunk, head, sequence). Thread (m, x, dg): row x of the chunk's 16-row
// block m, key columns [dg DS, dg DS + DS). Within block m the cumulative log gates are kept relative
// to E_{m-1} (the block's start), in fp32: Gr_i = G_i - E_{m-1}, so exp(Gq_i - G_j) = exp(Gqr_i - Gr_j)
// for i, j in one block (Gq_i = G_i, or with the bonus G_{i-1}).
constexpr int kKT = 512;

template <int K>
struct key_lay {
  static constexpr int GS = K + 4, DS = K / 8;
  static constexpr size_t q = 0, k = q + 4 * kC * GS, gr = k + 4 * kC * GS, beta = gr + 4 * kC * GS, total = beta + 4 * kC;
};

template <typename TI, int K>
struct key_cta {
  using lay = key_lay<K>;
  static constexpr int GS = lay::GS, DS = lay::DS;
  float *qs, *ks, *gr, *beta;
  int n, h, ci, m, x, dg, L;
  int64_t t0;
  bool bonus;
  // Loads the chunk (q, k in fp32, beta, rows >= L zero) and the relative cumulative gates (each
  // 16-row block scanned by its own 128 threads, one column each); false: the chunk is past its
  // sequence. Ends with a barrier.
  __device__ bool load(const core_args& a, unsigned char* sm) {
    qs = reinterpret_cast<float*>(sm + lay::q), ks = reinterpret_cast<float*>(sm + lay::k);
    gr = reinterpret_cast<float*>(sm + lay::gr), beta = reinterpret_cast<float*>(sm + lay::beta);
    ci = blockIdx.x, h = blockIdx.y, n = blockIdx.z;
    const int tid = threadIdx.x, H = a.H;
    m = tid / 128, x = (tid / 8) % 16, dg = tid % 8;
    bonus = a.u != nullptr;
    t0 = a.offsets[n] + static_cast<int64_t>(ci) * kC;
    const int64_t te = a.offsets[n + 1];
    if (t0 >= te) return false;
    L = rows_left(te - t0);
    const TI* q = static_cast<const TI*>(a.q);
    const TI* k = static_cast<const TI*>(a.k);
    for (int e = tid; e < kC * K / 4; e += kKT) {
      const int i = e / (K / 4), c4 = (e % (K / 4)) * 4;
      float2 q0 = {}, q1 = {}, k0 = {}, k1 = {};
      if (i < L) {
        const size_t off = (static_cast<size_t>(t0 + i) * H + h) * K + c4;
        const uint2 qq = *reinterpret_cast<const uint2*>(q + off), kk = *reinterpret_cast<const uint2*>(k + off);
        q0 = mma::unpack2<TI>(qq.x), q1 = mma::unpack2<TI>(qq.y), k0 = mma::unpack2<TI>(kk.x), k1 = mma::unpack2<TI>(kk.y);
      }
      *reinterpret_cast<float4*>(qs + i * GS + c4) = make_float4(q0.x, q0.y, q1.x, q1.y);
      *reinterpret_cast<float4*>(ks + i * GS + c4) = make_float4(k0.x, k0.y, k1.x, k1.y);
    }
    if (tid < kC) beta[tid] = tid < L ? (a.b ? expf(a.b[static_cast<size_t>(t0 + tid) * H + h]) : 1.f) : 0.f;
    const int col = tid % 128;
    if (col < K) {
      float gv[16];
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const int i = 16 * m + r;
        gv[r] = i < L ? a.g[(static_cast<size_t>(t0 + i) * H + h) * K + col] : 0.f;
      }
      float acc = 0.f;
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        acc += gv[r];
        gr[(16 * m + r) * GS + col] = acc;
      }
    }
    __syncthreads();
    return true;
  }
  // Key column of this thread's e-th value (e < DS): float4 groups interleaved over the 8 lanes of a
  // row, so that a row's lanes read 128 contiguous bytes of shared memory.
  __device__ int cl(int e) const { return 32 * (e / 4) + 4 * dg + e % 4; }
  // This thread's DS values of a shared-memory row (p: its key 0) in 16-byte reads (rows are 16-byte
  // aligned: GS = K + 4).
  __device__ void lds(float (&t)[DS], const float* p) const {
#pragma unroll
    for (int u = 0; u < DS / 4; ++u) {
      const float4 v = *reinterpret_cast<const float4*>(p + 32 * u + 4 * dg);
      t[4 * u] = v.x, t[4 * u + 1] = v.y, t[4 * u + 2] = v.z, t[4 * u + 3] = v.w;
    }
  }
  // Gqr of row i (this thread's keys).
  __device__ void gq_row(float (&t)[DS], int i) const {
    if (bonus && i % 16 == 0) {
#pragma unroll
      for (int e = 0; e < DS; ++e) t[e] = 0.f;
    } else {
      lds(t, gr + (bonus ? i - 1 : i) * GS);
    }
  }
};

// Per chunk: Qa = scale q exp(Gq - E_{m-1}), Kb = k exp(E_m - G) beta (the sweeps' q and k), the factor
// table (threads d < K, from the blocks' sums of log gates) and the diagonal blocks of P:
// P_ij = scale beta_j sum_d q_id k_jd exp(Gq_id - G_jd) for j <= i in one block (j < i with the bonus,
// whose P_ii = scale q_i . (u k_i)).
// P's diagonal blocks: where every key's log decay over the 16-row block stays above -kKeySplit, as
// sum_d Qs_id Ks_jd with Qs_i = q_i exp(Gq_i - Gr_15) <= e^kKeySplit |q_i| and Ks_j = k_j exp(Gr_15 -
// Gr_j) >= e^-kKeySplit |k_j| (fp32 holds both: no exp per pair; Ks in place of k in shared memory);
// otherwise one exp per pair and key.
constexpr float kKeySplit = 60.f;

template <typename TI, int K>
__global__ void __launch_bounds__(kKT, 2) key_prep(core_args a, key_io kio, TI* qa, TI* kb) {
  extern __shared__ __align__(128) unsigned char sm[];
  using KC = key_cta<TI, K>;
  constexpr int GS = KC::GS, DS = KC::DS;
  __shared__ int split_off[4];  // per 16-row block: some key decays past -kKeySplit
  __shared__ __align__(16) float pbuf[kC * 16];  // P's diagonal blocks (not in registers: 64 is the cap)
  if (threadIdx.x < 4) split_off[threadIdx.x] = 0;
  KC c;
  if (!c.load(a, sm)) return;
  const int H = a.H, h = c.h, tid = threadIdx.x;
  if (tid < K) {
    double E[5] = {0.0, 0.0, 0.0, 0.0, 0.0};  // E[m + 1] = E_m
    for (int m = 0; m < 4; ++m) E[m + 1] = E[m] + static_cast<double>(c.gr[(16 * m + 15) * GS + tid]);
    float* f = const_cast<float*>(kio.fac) + ((static_cast<int64_t>(c.n) * kio.maxch + c.ci) * H + h) * kFac * K + tid;
    for (int rb = 1; rb < 4; ++rb)
      for (int cb = 0; cb < rb; ++cb) f[offd(rb, cb) * K] = expf(static_cast<float>(E[rb] - E[cb + 1]));
    for (int rb = 0; rb < 4; ++rb) f[(kFacQ + rb) * K] = expf(static_cast<float>(E[rb]));
    for (int cb = 0; cb < 4; ++cb) f[(kFacK + cb) * K] = expf(static_cast<float>(E[4] - E[cb + 1]));
    f[kFacS * K] = expf(static_cast<float>(E[4]));
  }
  const int i = 16 * c.m + c.x;
  const bool live = i < c.L;  // (rows past L compute on zeros: the shuffles below take whole warps)
  float qi[DS], gqi[DS];
  const float* ge = c.gr + (16 * c.m + 15) * GS;
  c.lds(qi, c.qs + i * GS);
  c.gq_row(gqi, i);
  {
    // Qa, Kb (Kb / beta = Ks) four keys at a time, and whether the block's decays allow the split.
    bool far = false;
    const size_t off = (static_cast<size_t>(c.t0 + i) * H + h) * K;
    const float bi = c.beta[i], sq = a.scale;
#pragma unroll
    for (int u = 0; u < DS / 4; ++u) {
      const int d0 = 32 * u + 4 * c.dg;
      const float4 kv = *reinterpret_cast<const float4*>(c.ks + i * GS + d0);
      const float4 gv = *reinterpret_cast<const float4*>(c.gr + i * GS + d0);
      const float4 ev = *reinterpret_cast<const float4*>(ge + d0);
      const float* gq = gqi + 4 * u;
      far |= fabsf(ev.x - gv.x) > kKeySplit || fabsf(ev.y - gv.y) > kKeySplit || fabsf(ev.z - gv.z) > kKeySplit ||
             fabsf(ev.w - gv.w) > kKeySplit || fabsf(gq[0] - ev.x) > kKeySplit || fabsf(gq[1] - ev.y) > kKeySplit ||
             fabsf(gq[2] - ev.z) > kKeySplit || fabsf(gq[3] - ev.w) > kKeySplit;
      if (live) {
        const float* qv = qi + 4 * u;
        *reinterpret_cast<uint2*>(qa + off + d0) =
            make_uint2(mma::pack2<TI>(sq * qv[0] * __expf(gq[0]), sq * qv[1] * __expf(gq[1])),
                       mma::pack2<TI>(sq * qv[2] * __expf(gq[2]), sq * qv[3] * __expf(gq[3])));
        *reinterpret_cast<uint2*>(kb + off + d0) =
            make_uint2(mma::pack2<TI>(kv.x * __expf(ev.x - gv.x) * bi, kv.y * __expf(ev.y - gv.y) * bi),
                       mma::pack2<TI>(kv.z * __expf(ev.z - gv.z) * bi, kv.w * __expf(ev.w - gv.w) * bi));
      }
    }
    if (__any_sync(0xffffffffu, far) && threadIdx.x % 32 == 0) atomicOr(&split_off[c.m], 1);
  }
  __syncthreads();  // (split_off complete)
  const bool split = !split_off[c.m];
  if (split) {
    // Ks over this thread's own k values (row i, its keys: no other thread reads them before the
    // barrier below; formed again rather than kept across the barrier, for registers), Qs in qi.
#pragma unroll
    for (int u = 0; u < DS / 4; ++u) {
      float* kp = c.ks + i * GS + 32 * u + 4 * c.dg;
      const float4 kv = *reinterpret_cast<const float4*>(kp);
      const float4 gv = *reinterpret_cast<const float4*>(c.gr + i * GS + 32 * u + 4 * c.dg);
      const float4 ev = *reinterpret_cast<const float4*>(ge + 32 * u + 4 * c.dg);
      *reinterpret_cast<float4*>(kp) = make_float4(kv.x * __expf(ev.x - gv.x), kv.y * __expf(ev.y - gv.y),
                                                   kv.z * __expf(ev.z - gv.z), kv.w * __expf(ev.w - gv.w));
      qi[4 * u] *= __expf(gqi[4 * u] - ev.x), qi[4 * u + 1] *= __expf(gqi[4 * u + 1] - ev.y);
      qi[4 * u + 2] *= __expf(gqi[4 * u + 2] - ev.z), qi[4 * u + 3] *= __expf(gqi[4 * u + 3] - ev.w);
    }
  }
  __syncthreads();
#pragma unroll 2
  for (int jj = 0; jj < 16; ++jj) {  // (not unrolled fully: 64 registers)
    const int j = 16 * c.m + jj;
    float s = 0.f;
    if (c.bonus ? jj < c.x : jj <= c.x) {
      if (split) {
#pragma unroll
        for (int e = 0; e < DS; ++e) s += qi[e] * c.ks[j * GS + c.cl(e)];
      } else {
        // (Gq_i from shared memory: gqi is not kept through the loop, for registers)
        const float* gq = c.bonus ? (c.x ? c.gr + (i - 1) * GS : nullptr) : c.gr + i * GS;
#pragma unroll
        for (int e = 0; e < DS; ++e)
          s += qi[e] * c.ks[j * GS + c.cl(e)] * __expf((gq ? gq[c.cl(e)] : 0.f) - c.gr[j * GS + c.cl(e)]);
      }
    } else if (c.bonus && jj == c.x) {
      // q_i u k_i from the unscaled q (shared memory) and k (Ks_i exp(Gr_i - Gr_15) where split).
#pragma unroll
      for (int e = 0; e < DS; ++e) {
        const int d = c.cl(e);
        const float kd = split ? c.ks[i * GS + d] * __expf(c.gr[i * GS + d] - ge[d]) : c.ks[i * GS + d];
        s += c.qs[i * GS + d] * a.u[static_cast<size_t>(h) * K + d] * kd;
      }
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    s += __shfl_xor_sync(0xffffffffu, s, 4);
    if (c.dg == 0) pbuf[i * 16 + jj] = s * a.scale * (c.bonus && jj == c.x ? 1.f : c.beta[j]);
  }
  __syncwarp();  // (row i's lanes are one warp's)
  if (live && c.dg < 2) {
    TI* dst = static_cast<TI*>(const_cast<void*>(kio.pd)) + (static_cast<size_t>(c.t0 + i) * H + h) * 16 + 8 * c.dg;
    uint32_t w[4];
    const float* pr = pbuf + i * 16 + 8 * c.dg;
#pragma unroll
    for (int u = 0; u < 4; ++u) w[u] = mma::pack2<TI>(pr[2 * u], pr[2 * u + 1]);
    *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// After the sweeps (io.dq holds dQa, io.dk dKb, fp32), the backward's finish for per-key gates, per
// 16-row block m of a chunk with Gr its cumulative log gates relative to the block's start (Gq = Gr,
// or with the bonus Gr of the row before):
//   dq_i = scale exp(Gq_i) dQa_i + sum_{j <= i} scale dP_ij beta_j exp(Gq_i - Gr_j) k_j,
//   dk_j = beta_j exp(Gr_15 - Gr_j) dKb_j + sum_{i >= j} scale dP_ij beta_j exp(Gq_i - Gr_j) q_i
// (j < i with the bonus; dP's diagonal blocks from kio.dpd); then as finish_backward does: db = k . dk,
// the bonus terms (rho = scale dP_ii: dq += rho u k, dk += rho u q, du += rho q k), dq and dk written in
// the input dtype (io.dq_out, io.dk_out), and the gate gradient's part within the block, gk_t =
// sum_{s >= t} (q_s dq_s - k_s dk_s) (with the bonus, q_t dq_t of token t itself excluded), into io.gk,
// the block's total into kio.tot for key_carry / key_gk.
// One CTA of K threads per block (grid x: 4 maxch), thread d holding key d of the block's 16 rows in
// registers: each pair's exp(Gq_i - Gr_j) is computed once for both dq_i and dk_j, q, k, g are read
// straight into registers, and the only barrier follows the staging of dP's block. (A first version
// with a CTA per chunk and a row per 8 threads spilled at its 64-register cap and computed each pair
// twice: 0.25 ms slower at B=8, T=4096, bench/decay_attn_cuda.md.)
template <typename TI, int K, bool BONUS>
__global__ void __launch_bounds__(K) key_post(core_args a, bwd_io io, key_io kio) {
  __shared__ __align__(16) float dps[16 * 16];  // scale dP_ij beta_j of the block (0 past L)
  __shared__ float rho[16];                     // scale dP_ii (the bonus)
  __shared__ float dbs[16];                     // db row sums
  const int mb = blockIdx.x, h = blockIdx.y, n = blockIdx.z, d = threadIdx.x, H = a.H;
  const int64_t t0 = a.offsets[n] + static_cast<int64_t>(mb) * 16, te = a.offsets[n + 1];
  if (t0 >= te) return;
  const int L = te - t0 < 16 ? static_cast<int>(te - t0) : 16;
  const float sc = a.scale;
  for (int e = d; e < 256; e += K) {
    const int i = e / 16, j = e % 16;
    float v = 0.f;
    if (i < L && j < L) {
      v = sc * kio.dpd[(static_cast<size_t>(t0 + i) * H + h) * 16 + j];
      if (BONUS && i == j) rho[i] = v;
      if (a.b) v *= expf(a.b[static_cast<size_t>(t0 + j) * H + h]);
    }
    dps[e] = v;
  }
  if (d < 16) dbs[d] = 0.f;
  const TI* qp = static_cast<const TI*>(a.q);
  const TI* kp = static_cast<const TI*>(a.k);
  float q[16], k[16], G[16], dq[16], dk[16];
  float acc = 0.f;
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const size_t off = (static_cast<size_t>(t0 + r) * H + h) * K + d;
    const bool live = r < L;
    q[r] = live ? ldf(qp + off) : 0.f;
    k[r] = live ? ldf(kp + off) : 0.f;
    acc += live ? a.g[off] : 0.f;
    G[r] = acc;
    dq[r] = live ? io.dq[off] : 0.f;
    dk[r] = live ? io.dk[off] : 0.f;
  }
  __syncthreads();
  // The state parts: dq = scale exp(Gq) dQa, dk = beta exp(G_15 - G) dKb (beta: the row's dps column
  // factor is not at hand here, so dKb's beta comes from b directly).
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const float gq = BONUS ? (r ? G[r - 1] : 0.f) : G[r];
    const float br = a.b && r < L ? expf(a.b[static_cast<size_t>(t0 + r) * H + h]) : 1.f;
    dq[r] *= sc * __expf(gq);
    dk[r] *= br * __expf(G[15] - G[r]);
  }
  // The diagonal block. Where this key's log decays over the block stay within kKeySplit of G_15
  // (key_prep), exp(Gq_i - G_j) = ea_i eb_j with ea_i = exp(Gq_i - G_15), eb_j = exp(G_15 - G_j): dq_i +=
  // ea_i sum_j P_ij (eb_j k_j), dk_j += eb_j sum_i P_ij (ea_i q_i), 32 exps a block; otherwise each
  // pair's factor once, into dq_i and dk_j.
  bool far = false;
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const float gq = BONUS ? (r ? G[r - 1] : 0.f) : G[r];
    far |= fabsf(G[15] - G[r]) > kKeySplit || fabsf(gq - G[15]) > kKeySplit;
  }
  auto p_row = [&](float (&p)[16], int i) {
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const float4 v = *reinterpret_cast<const float4*>(dps + 16 * i + 4 * u);
      p[4 * u] = v.x, p[4 * u + 1] = v.y, p[4 * u + 2] = v.z, p[4 * u + 3] = v.w;
    }
  };
  if (!far) {
    const float g15 = G[15];
    float ea[16], kb[16], acc_k[16];
#pragma unroll
    for (int r = 15; r >= 0; --r) {  // (from the last: G[r - 1] is still the log gate sum)
      const float gq = BONUS ? (r ? G[r - 1] : 0.f) : G[r];
      ea[r] = __expf(gq - g15);
      G[r] = __expf(g15 - G[r]);  // eb_r
      kb[r] = G[r] * k[r];
      acc_k[r] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      float p[16];
      p_row(p, i);
      float sq = 0.f;
      const float qa = ea[i] * q[i];
#pragma unroll
      for (int j = 0; j < (BONUS ? i : i + 1); ++j) {
        sq += p[j] * kb[j];
        acc_k[j] += p[j] * qa;
      }
      dq[i] += ea[i] * sq;
    }
#pragma unroll
    for (int j = 0; j < 16; ++j) dk[j] += G[j] * acc_k[j];
  } else {
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const float gq = BONUS ? (i ? G[i - 1] : 0.f) : G[i];
      float p[16];
      p_row(p, i);
#pragma unroll
      for (int j = 0; j < (BONUS ? i : i + 1); ++j) {
        const float t = p[j] * __expf(gq - G[j]);
        dq[i] += t * k[j];
        dk[j] += t * q[i];
      }
    }
  }
  // Per-token sums, the bonus, dq and dk out, the gate gradient's suffix sums within the block.
  const float ud = BONUS ? a.u[static_cast<size_t>(h) * K + d] : 0.f;
  float du = 0.f, suffix = 0.f;
  float gk[16];
#pragma unroll
  for (int r = 15; r >= 0; --r) {
    const bool live = r < L;
    const float xq = q[r] * dq[r], ky = k[r] * dk[r];
    if (io.db) {
      float s = ky;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (d % 32 == 0) atomicAdd(dbs + r, s);
    }
    suffix += live ? xq - ky : 0.f;
    gk[r] = BONUS ? suffix - xq : suffix;
    if (BONUS && live) {
      const float rr = rho[r];
      dq[r] += ud * k[r] * rr;
      dk[r] += ud * q[r] * rr;
      du += q[r] * k[r] * rr;
    }
  }
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    if (r >= L) break;
    const size_t off = (static_cast<size_t>(t0 + r) * H + h) * K + d;
    stf(static_cast<TI*>(io.dq_out) + off, dq[r]);
    stf(static_cast<TI*>(io.dk_out) + off, dk[r]);
    io.gk[off] = gk[r];
  }
  kio.tot[((static_cast<int64_t>(n) * kio.maxch * 4 + mb) * H + h) * K + d] = suffix;
  if (BONUS) atomicAdd(io.du + static_cast<size_t>(h) * K + d, du);
  if (io.db) {
    __syncthreads();
    if (d < L) io.db[static_cast<size_t>(t0 + d) * H + h] = dbs[d];
  }
}

// The gate gradient's carry into each 16-row block, per (sequence, head, key): F (rowsum(S_T dS_T), or
// 0) plus the totals of the blocks after it; kio.tot becomes that carry in place. The totals are read
// 16 at a time (their loads in flight together).
__global__ void key_carry(core_args a, bwd_io io, key_io kio) {
  const int h = blockIdx.x, n = blockIdx.y, d = threadIdx.x, H = a.H, K = a.K;
  if (d >= K) return;
  const int nb = static_cast<int>((a.offsets[n + 1] - a.offsets[n] + 15) / 16);
  double c = io.F ? io.F[(static_cast<size_t>(n) * H + h) * K + d] : 0.0;
  float* base = kio.tot + (static_cast<int64_t>(n) * kio.maxch * 4 * H + h) * K + d;
  const int64_t step = static_cast<int64_t>(H) * K;
  for (int hi = nb - 1; hi >= 0; hi -= 16) {
    float x[16];
#pragma unroll
    for (int z = 0; z < 16; ++z) x[z] = hi - z >= 0 ? base[(hi - z) * step] : 0.f;
#pragma unroll
    for (int z = 0; z < 16; ++z) {
      if (hi - z < 0) break;
      base[(hi - z) * step] = static_cast<float>(c);
      c += x[z];
    }
  }
}

// gk += the carry of its block; the sequence's first token: 0 without an initial state, F0 with one
// (and no bonus). One CTA per chunk.
__global__ void key_gk(core_args a, bwd_io io, key_io kio) {
  const int ci = blockIdx.x, h = blockIdx.y, n = blockIdx.z, H = a.H, K = a.K;
  const int64_t sb = a.offsets[n], t0 = sb + static_cast<int64_t>(ci) * kC, te = a.offsets[n + 1];
  if (t0 >= te) return;
  const int L = rows_left(te - t0);
  const float* carry = kio.tot + ((static_cast<int64_t>(n) * kio.maxch + ci) * 4 * H + h) * K;
  for (int e = threadIdx.x; e < L * K; e += blockDim.x) {
    const int i = e / K, d = e % K;
    float* g = io.gk + (static_cast<size_t>(t0 + i) * H + h) * K + d;
    float v = *g + carry[static_cast<int64_t>(i / 16) * H * K + d];
    if (t0 + i == sb) {
      if (!a.s0) v = 0.f;
      else if (!a.u) v = io.F0[(static_cast<size_t>(n) * H + h) * K + d];
    }
    *g = v;
  }
}

#include "ops/decay_attn/cuda/chunk_key_wg.cuh"

// Dynamic shared memory of `bytes` and the largest shared-memory carveout.
template <typename KernelT>
int tc_smem(KernelT kern, size_t bytes) {
  if (int e = set_smem(kern, bytes)) return e;
  return static_cast<int>(cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
}

template <typename KernelT>
int blocks_per_sm(KernelT kern, int threads, size_t bytes) {
  int n = 0;
  if (tc_smem(kern, bytes) || cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, threads, bytes)) return -1;
  return n;
}

// blocks_per_sm of one kernel, asked once per process (like sm_count: the first device's answer).
template <auto Kern>
int cached_blocks_per_sm(int threads, size_t bytes) {
  static const int n = blocks_per_sm(Kern, threads, bytes);
  return n;
}

// Segments per sequence: enough (sequence, head, V tile, segment) CTAs to fill every SM with
// `per_sm` CTAs, each segment at least 8 chunks (LRNN_DA_SEGMENTS overrides, for tests and timing).
seg_io choose_segments(const core_args& a, int vt, int per_sm) {
  seg_io sg;
  const int64_t ctas = static_cast<int64_t>(a.N) * a.H * (a.Vin / vt);
  const int64_t chunks = (a.max_len + kC - 1) / kC;
  int64_t nseg = ctas > 0 ? (static_cast<int64_t>(per_sm > 0 ? per_sm : 1) * sm_count()) / ctas : 1;
  nseg = nseg < chunks / 8 ? nseg : chunks / 8;
  if (const char* e = getenv("LRNN_DA_SEGMENTS")) nseg = atoi(e);
  nseg = nseg < 1 ? 1 : nseg > 64 ? 64 : nseg;
  if (nseg > chunks) nseg = chunks > 0 ? chunks : 1;
  sg.nseg = static_cast<int>(nseg);
  sg.len = ((chunks + nseg - 1) / nseg) * kC;
  return sg;
}

// The scratch memory pool of the current device: a pool of lrnn's own that keeps what it has
// (release threshold: unlimited), so that repeated calls do not map and unmap their segment buffers
// (cudaMallocAsync from the default pool returned them at every synchronisation: ~0.1 ms a call).
cudaMemPool_t scratch_pool(int& err) {
  static std::mutex mu;
  static std::map<int, cudaMemPool_t> pools;
  int dev = 0;
  if ((err = static_cast<int>(cudaGetDevice(&dev)))) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  auto it = pools.find(dev);
  if (it != pools.end()) return it->second;
  cudaMemPoolProps props = {};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = dev;
  cudaMemPool_t pool = nullptr;
  if ((err = static_cast<int>(cudaMemPoolCreate(&pool, &props)))) return nullptr;
  uint64_t keep = UINT64_MAX;
  if ((err = static_cast<int>(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep)))) return nullptr;
  pools[dev] = pool;
  return pool;
}

// Stream-ordered scratch (gate table when the caller gave none, segment buffers, the per-key
// prologue's outputs), freed at scope end.
struct scratch_scope {
  std::vector<void*> p;
  int err = 0;
  void* get(size_t bytes) {
    cudaMemPool_t pool = scratch_pool(err);
    if (err) return nullptr;
    void* x = nullptr;
    if (int e = static_cast<int>(cudaMallocFromPoolAsync(&x, bytes, pool, launch_stream()))) {
      err = e;
      return nullptr;
    }
    p.push_back(x);
    return x;
  }
  ~scratch_scope() {
    for (auto* x : p) cudaFreeAsync(x, launch_stream());
  }
};

// With segments (choose_segments), their buffers: states (forward: `states` where given, the
// forward's context), and the segments' decays (per key for per-key gates).
int segment_buffers(const core_args& a, seg_io& sg, scratch_scope& sc, bool reverse, float* states_in = nullptr) {
  if (sg.nseg == 1) return 0;
  const size_t states = static_cast<size_t>(a.N) * sg.nseg * a.H * a.K * a.V * sizeof(float);
  sg.buf = states_in ? states_in : static_cast<float*>(sc.get(states));
  if (reverse) sg.rbuf = static_cast<float*>(sc.get(states));
  sg.decay = static_cast<float*>(sc.get(static_cast<size_t>(a.N) * sg.nseg * a.H * (a.gmode == g_key ? a.K : 1) * sizeof(float)));
  return sc.err;
}

// The segments the forward chooses for this call (fwd_cfg::plan; defined below, after dispatch).
seg_io forward_plan(const core_args& a);

// A backward's use of the forward's segment-boundary states (bwd_io::seg_ctx, read only): the
// context where its segments sg are the forward's, else null (its forward segment pass then runs).
float* forward_states(const core_args& a, const seg_io& sg, const float* ctx) {
  if (!ctx || sg.nseg == 1) return nullptr;
  const seg_io f = forward_plan(a);
  return f.nseg == sg.nseg && f.len == sg.len ? const_cast<float*>(ctx) : nullptr;
}

// Per kind, the launches of the forward, the segment passes and the gate tables (tc_forward_launches).
std::atomic<int64_t> fwd_launches[kLaunchKinds];

// Gate table (into a.gate_tab or scratch) and, with segments, their buffers: the forward's states go
// to fwd_ctx (fwd_out::seg_ctx) where given; a backward passes bwd_ctx (bwd_io::seg_ctx, forward_states).
int prepare_tc(core_args& a, seg_io& sg, scratch_scope& sc, bool reverse, int vt, int per_sm, float* fwd_ctx = nullptr,
               const float* bwd_ctx = nullptr) {
  if (!a.gate_tab) {
    a.gate_tab = sc.get(static_cast<size_t>(tc_table_bytes(a)));
    if (sc.err) return sc.err;
  }
  const unsigned chunks = static_cast<unsigned>((a.max_len + kC - 1) / kC);
  if (chunks > 0) {
    gate_table_rows<<<dim3((chunks + 3) / 4, (a.H + 15) / 16, a.N), 128, 0, launch_stream()>>>(a, static_cast<float4*>(a.gate_tab));
    ++fwd_launches[9];
  }
  if (int e = static_cast<int>(cudaGetLastError())) return e;
  sg = choose_segments(a, vt, per_sm);
  return segment_buffers(a, sg, sc, reverse, fwd_ctx ? fwd_ctx : forward_states(a, sg, bwd_ctx));
}

// A segment pass on warpgroup MMA where it runs (defined below): 0 launched, -1 not usable here (the
// caller runs tc_seg), else a CUDA error.
template <typename TI, int K, bool FWD, bool NORM>
int seg_pass_wg(const core_args& a, const seg_io& sg);

// seg_scan over every state element (init / ninit: the first segment's, fwd: the forward chain).
void scan_segments(const core_args& a, const seg_io& sg, const float* init, const float* ninit, bool fwd) {
  const int64_t elems = static_cast<int64_t>(a.N) * a.H * a.K * a.V;
  seg_scan<<<static_cast<unsigned>((elems + 255) / 256), 256, 0, launch_stream()>>>(a, sg, init, ninit, fwd);
}

// The segment passes: forward (fwd), and with io (the backward) the reverse one (rev).
template <typename TI, int K, int VT, bool KEY = false, bool NORM = false>
int seg_passes(const core_args& a, const seg_io& sg_in, const bwd_io* io, const key_io& kio = {}, bool fwd = true,
               bool rev = true) {
  if (sg_in.nseg == 1) return 0;
  seg_io sg = sg_in;
  const dim3 grid(a.Vin / VT, a.H, a.N * sg.nseg);
  // One direction's pass: on wgmma where it runs, else tc_seg (launch counts [3] / [5]).
  auto pass = [&](auto dir, const core_args& x) -> int {
    constexpr bool F = decltype(dir)::value;
    int w = -1;
    if constexpr (VT == 128 && !KEY) w = seg_pass_wg<TI, K, F, NORM>(x, sg);
    if (w >= 0) return w;
    constexpr size_t bytes = seg_lay<K, VT, F, KEY, NORM>::total;
    auto kern = tc_seg<TI, K, VT, F, KEY, NORM>;
    if (int e = tc_smem(kern, bytes)) return e;
    kern<<<grid, cfg<VT>::T, bytes, launch_stream()>>>(x, sg, kio);
    ++fwd_launches[F ? 3 : 5];
    return 0;
  };
  if (fwd) {
    if (int e = pass(std::true_type{}, a)) return e;
    scan_segments(a, sg, a.s0, a.n0, true);
  }
  if (io && rev) {
    core_args r = a;
    r.k = a.q, r.v = io->d_o;  // the reverse pass reads q and d_o through the loader's k and v slots
    sg.dn = io->dn;
    if (int e = pass(std::false_type{}, r)) return e;
    scan_segments(a, sg, io->dsf, io->dnf, false);
  }
  return static_cast<int>(cudaGetLastError());
}

// The forward's shared memory and CTAs per SM, which choose its segments (fwd_plan: what
// fwd_out::seg_ctx holds).
template <typename TI, int K, int VT, bool NORM, bool KEY>
struct fwd_cfg {
  static constexpr size_t bytes = KEY ? cta_lay<K, VT, true, false, 1, 0, false, true>::total
                                      : cta_lay<K, VT, true, false, 1, norm_floats<K, NORM>>::total;
  static int per_sm() { return cached_blocks_per_sm<tc_fwd<TI, K, VT, NORM, KEY>>(cfg<VT>::T, bytes); }
  static seg_io plan(const core_args& a) { return choose_segments(a, VT, per_sm()); }
};

// LRNN_DA_WG, the wgmma forward's switch: 0 off (the mma.sync forward), 1 on with the threads' own stores
// of O, s only without the normaliser column; unset (or 2): on, whole chunks of O through TMA stores
// (the default since run 23: 1.10-1.20x faster forwards than 1).
inline char wg_switch() {
  const char* e = getenv("LRNN_DA_WG");
  return e ? e[0] : '2';
}

// Whether this build's sm_90a code loads on this GPU (Hopper; the kernel is empty elsewhere: LRNN_CUDA_SM90A
// from CMake, and the loaded image must not be JIT-compiled from older PTX). tc_fwd_wg's image stands
// for tc_seg_wg's: both come from this translation unit's one sm_90a fatbin entry.
template <typename TI, int K, bool NORM>
bool wg_kernel_loads() {
#ifdef LRNN_CUDA_SM90A
  static const bool ok = [] {
    int dev = 0, major = 0;
    cudaFuncAttributes fa{};
    if (cudaGetDevice(&dev) || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) return false;
    if (major != 9 || cudaFuncGetAttributes(&fa, tc_fwd_wg<TI, K, NORM>) != cudaSuccess) return false;
    return fa.ptxVersion >= 90 && fa.binaryVersion >= 90;
  }();
  return ok;
#else
  return false;
#endif
}

// The wgmma forward (tc_fwd_wg, with or without the normaliser column) where it runs: a Hopper GPU,
// its sm_90a code (wg_kernel_loads), room for its shared memory (checked per call:
// LRNN_DA_SMEM_LIMIT may lower it), and tensor maps for its TMA copies (wg_maps_for). The default there
// since run 22 (forward 1.14-1.28x faster than the mma.sync one, every test passing; wg_switch), with
// TMA stores of O since run 23.
template <typename TI, int K, bool NORM>
bool wg_forward_usable() {
#ifdef LRNN_CUDA_SM90A
  const bool ok = wg_kernel_loads<TI, K, NORM>();
  const char w = wg_switch();
  return ok && wg::lay<K>::total <= smem_limit() && w != '0' && !(NORM && w == 's');
#else
  return false;
#endif
}

// The driver's cuTensorMapEncodeTiled (through the runtime: no link to libcuda), or null.
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// Tensor maps of q, k, v (swizzled 64 x 64 boxes) and the gate table for tc_fwd_wg, and of o for its
// TMA stores of whole chunks (m.ost: unless LRNN_DA_WG=1; o in the input
// dtype, 16-byte aligned); false where the loads' maps cannot be made (no encoder, a pointer not
// 16-byte aligned, too many tokens): the caller falls back.
template <typename TI>
bool wg_maps_for(const core_args& a, const fwd_out& out, wg::maps& m, bool tab = true) {
  const auto enc = tensor_map_encoder();
  const auto al = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  if (!enc || !al(a.q) || !al(a.k) || !al(a.v) || !al(a.gate_tab) || a.tokens >= (int64_t{1} << 31)) return false;
  const CUtensorMapDataType dt =
      std::is_same_v<TI, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const cuuint32_t ones[3] = {1, 1, 1};
  auto tile = [&](CUtensorMap* t, const void* p, int cols) {
    const cuuint64_t dims[3] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(a.H), static_cast<cuuint64_t>(a.tokens)};
    const cuuint64_t strides[2] = {static_cast<cuuint64_t>(cols) * 2, static_cast<cuuint64_t>(cols) * 2 * a.H};
    const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(kC)};
    return enc(t, dt, 3, const_cast<void*>(p), dims, strides, box, ones, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  const cuuint64_t tdims[3] = {4, static_cast<cuuint64_t>(a.H), static_cast<cuuint64_t>(a.tokens)};
  const cuuint64_t tstrides[2] = {16, static_cast<cuuint64_t>(16) * a.H};
  const cuuint32_t tbox[3] = {4, 1, static_cast<cuuint32_t>(kC)};
  m.ost = wg_switch() != '1' && a.K == 128 && out.o && !out.o_f32 && al(out.o) && tile(&m.o, out.o, a.Vin);
  return tile(&m.q, a.q, a.K) && tile(&m.k, a.k, a.K) && tile(&m.v, a.v, a.Vin) &&
         (!tab || enc(&m.tab, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 3, a.gate_tab, tdims, tstrides, tbox, ones, CU_TENSOR_MAP_INTERLEAVE_NONE,
             CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS);
}

// LRNN_DA_SEG_WG, the segment passes' switch where tc_fwd_wg runs (Hopper, LRNN_DA_WG not 0): 0 keeps
// tc_seg for both, 1 runs the forward-direction pass on wgmma, unset or 2 the reverse one too (the
// default since device run 28: tests, memcheck and racecheck clean; B=2, T=16384 forward+backward
// 1.26 vs 1.29 ms simple GLA, 1.49-1.50 vs 1.57 mLSTM against 0). Read per call (tests switch it).
template <typename TI, int K, bool FWD, bool NORM>
int seg_pass_wg(const core_args& a, const seg_io& sg) {
  const char* e = getenv("LRNN_DA_SEG_WG");
  const char sw = e ? e[0] : '2';
  wg::maps mp;
  if (sw == '0' || (!FWD && sw != '2') || a.Vin % 128 != 0 || !wg_kernel_loads<TI, K, NORM>() || wg_switch() == '0' ||
      wg::seg_lay<K>::total > smem_limit() || !wg_maps_for<TI>(a, fwd_out{}, mp))
    return -1;
  constexpr size_t bytes = wg::seg_lay<K>::total;
  auto kern = tc_seg_wg<TI, K, FWD, NORM>;
  if (int err = tc_smem(kern, bytes)) return err;
  kern<<<dim3(a.Vin / 128, a.H, a.N * sg.nseg), 128 * (K / 64), bytes, launch_stream()>>>(a, sg, mp);
  ++fwd_launches[FWD ? 4 : 6];
  return static_cast<int>(cudaGetLastError());
}

template <typename TI, int K, int VT, bool NORM>
int fwd_k(const core_args& args, const fwd_out& o) {
  core_args a = args;
  using fc = fwd_cfg<TI, K, VT, NORM, false>;
  constexpr size_t bytes = fc::bytes;
  auto kern = tc_fwd<TI, K, VT, NORM>;
  seg_io sg;
  scratch_scope sc;
  // (The segments are the mma.sync forward's plan either way: one CTA per SM for both kernels, and a
  // backward matches its segments to forward_plan's.)
  if (int e = prepare_tc(a, sg, sc, false, VT, fc::per_sm(), o.seg_ctx)) return e;
  const bool ready = o.seg_ctx && o.seg_ready;  // (the states are there: no pass)
  if (int e = seg_passes<TI, K, VT, false, NORM>(a, sg, nullptr, {}, !ready)) return e;
  if constexpr (VT == 128) {
    wg::maps mp;
    if (wg_forward_usable<TI, K, NORM>() && wg_maps_for<TI>(a, o, mp)) {
      constexpr size_t wbytes = wg::lay<K>::total;
      auto wkern = tc_fwd_wg<TI, K, NORM>;
      if (int e = tc_smem(wkern, wbytes)) return e;
      wkern<<<dim3(a.Vin / 128, a.H, a.N * sg.nseg), wg_threads<K>, wbytes, launch_stream()>>>(a, o, sg, mp);
      ++fwd_launches[mp.ost ? 2 : 1];
      return static_cast<int>(cudaGetLastError());
    }
  }
  if (int e = tc_smem(kern, bytes)) return e;
  kern<<<dim3(a.Vin / VT, a.H, a.N * sg.nseg), cfg<VT>::T, bytes, launch_stream()>>>(a, o, sg, key_io{});
  ++fwd_launches[0];
  return static_cast<int>(cudaGetLastError());
}

// MOM: a per-head constant decay, its gradient from the dq sweep's pair sums (io.dgh).
template <typename TI, int K, int VT, bool DIRECT, bool NORM, bool MOM = false>
int bwd_k(const core_args& args, const bwd_io& io_in) {
  core_args a = args;
  bwd_io io = io_in;
  // The normaliser's rows in the dq sweep (they need q staged): from its products (H1) or the staged o (H2).
  constexpr bool HOK = NORM && DIRECT;
  constexpr int H1 = HOK ? 1 : 0, H2 = HOK ? 2 : 0;
  constexpr size_t qbytes = cta_lay<K, VT, DIRECT || MOM, true, 1, dq_floats<K, NORM, false>, NORM>::total;
  constexpr size_t h1bytes = cta_lay<K, VT, DIRECT || MOM, true, 1, dq_floats<K, NORM, HOK>, NORM, false, H1>::total;
  constexpr size_t h2bytes = cta_lay<K, VT, DIRECT || MOM, true, 1, dq_floats<K, NORM, false>, NORM, false, H2>::total;
  constexpr size_t kbytes = cta_lay<K, VT, true, true, 2, NORM ? 2 * K : 0, NORM>::total;
  auto qkern = tc_dq<TI, K, VT, DIRECT, NORM, false, MOM>;
  auto h1kern = tc_dq<TI, K, VT, DIRECT, NORM, false, MOM, H1>;
  auto h2kern = tc_dq<TI, K, VT, DIRECT, NORM, false, MOM, H2>;
  auto kkern = tc_dkv<TI, K, VT, NORM>;
  const int occ_k = cached_blocks_per_sm<tc_dkv<TI, K, VT, NORM>>(cfg<VT>::T, kbytes);
  int occ_q = cached_blocks_per_sm<tc_dq<TI, K, VT, DIRECT, NORM, false, MOM>>(cfg<VT>::T, qbytes);
  if (int e = tc_smem(qkern, qbytes)) return e;
  if (int e = tc_smem(kkern, kbytes)) return e;
  seg_io sg;
  scratch_scope sc;
  int mode = 0;  // the normaliser's rows: 0 a pass of their own (or none), 1 / 2 in the dq sweep (H1 / H2)
  if constexpr (NORM) {
    // The normaliser's rows (bwd_io::rows): in the dq sweep where one CTA sees whole rows (one V tile,
    // q staged: DIRECT), from the staged o (H2; with segments the reverse segment pass, which reads
    // the rows, runs after it), or from its own products where the larger stage of o does not fit
    // (H1: o not read; tc_dq ~80 us slower at both B=2, T=16384 and B=8, T=4096: device runs 17 and
    // 15, one build, LRNN_DA_ROWS_MODE=1 against the default in alternating processes); else a pass
    // of their own over o and d_o. The gate table's Eq' = Eq rs comes from any of them.
    if (io.rows.o) {
      if (!io.rows.den || !io.rows.rs_out || !io.rows.dn_out) return static_cast<int>(cudaErrorInvalidValue);
      io.rs = io.rows.rs_out, io.dn = io.rows.dn_out;  // (the dkv sweep reads them)
      // (For tests and A/B timing: LRNN_DA_ROWS_PASS=1 always the pass; LRNN_DA_ROWS_MODE=1 or 2 that
      // sweep where it can run.) The sweep's larger stage must fit the GPU; -1: it does not.
      const char* pass = getenv("LRNN_DA_ROWS_PASS");
      const char* force = getenv("LRNN_DA_ROWS_MODE");
      const int fm = force ? atoi(force) : 0;
      const bool can = HOK && !(pass && pass[0] == '1') && a.Vin == VT;
      const int occ_1 = can && h1bytes <= smem_limit() ? cached_blocks_per_sm<tc_dq<TI, K, VT, DIRECT, NORM, false, MOM, H1>>(cfg<VT>::T, h1bytes) : 0;
      const int occ_2 = can && h2bytes <= smem_limit() ? cached_blocks_per_sm<tc_dq<TI, K, VT, DIRECT, NORM, false, MOM, H2>>(cfg<VT>::T, h2bytes) : 0;
      if (occ_2 > 0 && fm != 1) mode = 2;
      else if (occ_1 > 0 && fm != 2) mode = 1;
      if (mode != 0) {
        if (int e = mode == 1 ? tc_smem(h1kern, h1bytes) : tc_smem(h2kern, h2bytes)) return e;
        occ_q = mode == 1 ? occ_1 : occ_2;
        a.eq_scale = nullptr;
      } else {
        if (int e = normalise_backward_rows(a.tokens * a.H, a.Vin, io.rows.o, io.rows.den, io.rows.m, io.rows.eps, io.d_o,
                                            a.type, io.rows.rs_out, io.rows.dn_out, io.rows.dm_local))
          return e;
        a.eq_scale = io.rows.rs_out;
        io.rows = bwd_io::norm_rows{};
      }
    }
  }
  // The forward's segment-boundary states (bwd_io::seg_ctx) where the segments are the forward's.
  if (int e = prepare_tc(a, sg, sc, true, VT, occ_q < occ_k ? occ_q : occ_k, nullptr, io.seg_ctx)) return e;
  const bool have = io.seg_ctx && sg.nseg > 1 && sg.buf == io.seg_ctx;
  // (With the rows in the dq sweep, the reverse segment pass, which reads them, runs after it; only
  // MOM's dq sweep reads the reverse pass's boundaries.)
  if (int e = seg_passes<TI, K, VT, false, NORM>(a, sg, &io, {}, !have, mode == 0)) return e;
  const dim3 grid(a.Vin / VT, a.H, a.N * sg.nseg);
  const int64_t np = static_cast<int64_t>(grid.x) * grid.z;  // partials per head
  if constexpr (MOM) {
    if (np > head_partials(a) / a.H) return static_cast<int>(cudaErrorInvalidValue);
    // (Idle CTAs, segments past their sequence's end, leave their partial at 0.)
    if (int e = static_cast<int>(cudaMemsetAsync(io.dgh_part, 0, np * a.H * sizeof(float), launch_stream()))) return e;
  }
  if (mode == 1) h1kern<<<grid, cfg<VT>::T, h1bytes, launch_stream()>>>(a, io, sg, key_io{});
  else if (mode == 2) h2kern<<<grid, cfg<VT>::T, h2bytes, launch_stream()>>>(a, io, sg, key_io{});
  else qkern<<<grid, cfg<VT>::T, qbytes, launch_stream()>>>(a, io, sg, key_io{});
  if (int e = static_cast<int>(cudaGetLastError())) return e;
  if constexpr (MOM) {
    if (int e = sum_tokens(np, a.H, io.dgh_part, io.dgh)) return e;
  }
  if (mode != 0) {
    if (int e = seg_passes<TI, K, VT, false, NORM>(a, sg, &io, {}, false, true)) return e;
  }
  kkern<<<grid, cfg<VT>::T, kbytes, launch_stream()>>>(a, io, sg, key_io{});
  return static_cast<int>(cudaGetLastError());
}

// Per-key gates: key_prep's outputs in scratch (backward: also dP's diagonal blocks, zeroed, and the
// gate gradient's block totals); q and k of `a` then point at Qa and Kb.
template <typename TI, int K>
int key_prepare(core_args& a, key_io& kio, scratch_scope& sc, bool bwd) {
  kio.maxch = static_cast<int>((a.max_len + kC - 1) / kC);
  const size_t rows = static_cast<size_t>(a.tokens) * a.H + 1;
  TI* qa = static_cast<TI*>(sc.get(rows * K * sizeof(TI)));
  TI* kb = static_cast<TI*>(sc.get(rows * K * sizeof(TI)));
  kio.fac = static_cast<float*>(sc.get((static_cast<size_t>(a.N) * kio.maxch * a.H * kFac + 1) * K * sizeof(float)));
  kio.pd = sc.get(rows * 16 * sizeof(TI));
  if (bwd) kio.dpd = static_cast<float*>(sc.get(rows * 16 * sizeof(float)));
  if (bwd) kio.tot = static_cast<float*>(sc.get((static_cast<size_t>(a.N) * kio.maxch * 4 * a.H + 1) * K * sizeof(float)));
  if (sc.err) return sc.err;
  if (bwd) {
    if (int e = static_cast<int>(cudaMemsetAsync(kio.dpd, 0, rows * 16 * sizeof(float), launch_stream()))) return e;
  }
  if (kio.maxch > 0) {
    auto kern = key_prep<TI, K>;
    if (int e = tc_smem(kern, key_lay<K>::total)) return e;
    kern<<<dim3(kio.maxch, a.H, a.N), kKT, key_lay<K>::total, launch_stream()>>>(a, kio, qa, kb);
    if (int e = static_cast<int>(cudaGetLastError())) return e;
  }
  a.q = qa, a.k = kb;
  return 0;
}

// LRNN_DA_KEY_WG, the fused per-key forward's switch (tc_key_wg): 0 off (key_prep + the sweep), 1 on
// where it runs: GLA's or RWKV-6's gates (no input scale), bf16 or f16, K = V tile = 128, a Hopper GPU with its
// sm_90a code, LRNN_DA_WG not 0, its shared memory and tensor maps. Segments as the mma.sync per-key
// forward's plan (what fwd_out::seg_ctx holds for the backward): their states from tc_seg_key_wg (the
// gating in the CTA too) and seg_scan. Unset: kKeyWgDefault, on since run 31 (H100): the GPU suite passes
// with it, memcheck and racecheck are clean (run 29's racecheck report was the tool matching accesses by
// barrier counts: probe modes 4 / 5 of scripts/gpu/probes/racecheck_barrier.cu), and it takes the
// forward from 0.81 to 0.31 ms (GLA, B=8; bench/gpu/decay_attn_h100.md).
// Read per call (tests switch it).
constexpr bool kKeyWgDefault = true;
// LRNN_DA_KW_VAR: tc_key_wg's variant (its VAR, chunk_key_wg.cuh: 1 the register split, 2 the overlap, 3
// both; default kw_var_default (chunk_tc.h), the only one f16 builds; bf16 builds 0..3 for A/B runs); var:
// the one chosen.
template <typename TI, int K>
auto key_wg_kernel(bool bonus, int& var) {
  const char* e = getenv("LRNN_DA_KW_VAR");
  var = std::is_same_v<TI, __nv_bfloat16> && e && e[0] >= '0' && e[0] <= '3' && e[1] == 0 ? e[0] - '0' : kw_var_default(bonus);
  if constexpr (std::is_same_v<TI, __nv_bfloat16>) {
    if (var == 0) return bonus ? tc_key_wg<TI, K, true, 0> : tc_key_wg<TI, K, false, 0>;
    if (var == 1) return bonus ? tc_key_wg<TI, K, true, 1> : tc_key_wg<TI, K, false, 1>;
    if (var == 2) return bonus ? tc_key_wg<TI, K, true, 2> : tc_key_wg<TI, K, false, 2>;
    return bonus ? tc_key_wg<TI, K, true, 3> : tc_key_wg<TI, K, false, 3>;
  } else {
    return bonus ? tc_key_wg<TI, K, true, kw_var_default(true)> : tc_key_wg<TI, K, false, kw_var_default(false)>;
  }
}

template <typename TI, int K, int VT>
int key_pass_wg(const core_args& a, const fwd_out& o) {
  if constexpr (VT == 128 && K == 128) {
    const char* e = getenv("LRNN_DA_KEY_WG");
    wg::maps mp;
    if (!(e ? e[0] == '1' : kKeyWgDefault) || a.b || !wg_kernel_loads<TI, K, false>() || wg_switch() == '0' ||
        wg::key_lay<K>::total > smem_limit() || wg::seg_key_lay<K>::total > smem_limit() || !wg_maps_for<TI>(a, o, mp, false))
      return -1;
    seg_io sg = fwd_cfg<TI, K, VT, false, true>::plan(a);
    scratch_scope sc;
    if (int err = segment_buffers(a, sg, sc, false, o.seg_ctx)) return err;
    if (sg.nseg > 1 && !(o.seg_ctx && o.seg_ready)) {
      constexpr size_t sbytes = wg::seg_key_lay<K>::total;
      auto skern = tc_seg_key_wg<TI, K>;
      if (int err = tc_smem(skern, sbytes)) return err;
      skern<<<dim3(a.Vin / 128, a.H, a.N * sg.nseg), 128 * (K / 64), sbytes, launch_stream()>>>(a, sg, mp);
      ++fwd_launches[8];
      scan_segments(a, sg, a.s0, a.n0, true);
    }
    constexpr size_t bytes = wg::key_lay<K>::total;
    int var = 0;
    auto kern = key_wg_kernel<TI, K>(a.u != nullptr, var);
    if (int err = tc_smem(kern, bytes)) return err;
    kern<<<dim3(a.Vin / 128, a.H, a.N * sg.nseg), wg_threads<K>, bytes, launch_stream()>>>(a, o, sg, mp);
    ++fwd_launches[7];
    ++fwd_launches[10 + var];
    return static_cast<int>(cudaGetLastError());
  } else {
    (void)a, (void)o;
    return -1;
  }
}

template <typename TI, int K, int VT>
int fwd_key(const core_args& args, const fwd_out& o) {
  core_args a = args;
  if (a.tokens > 0) {
    const int w = key_pass_wg<TI, K, VT>(a, o);
    if (w >= 0) return w;
  }
  constexpr size_t bytes = cta_lay<K, VT, true, false, 1, 0, false, true>::total;
  key_io kio;
  seg_io sg;
  scratch_scope sc;
  if (int e = key_prepare<TI, K>(a, kio, sc, false)) return e;
  auto kern = tc_fwd<TI, K, VT, false, true>;
  if (int e = tc_smem(kern, bytes)) return e;
  sg = fwd_cfg<TI, K, VT, false, true>::plan(a);
  if (int e = segment_buffers(a, sg, sc, false, o.seg_ctx)) return e;
  if (int e = seg_passes<TI, K, VT, true>(a, sg, nullptr, kio, !(o.seg_ctx && o.seg_ready))) return e;
  kern<<<dim3(a.Vin / VT, a.H, a.N * sg.nseg), cfg<VT>::T, bytes, launch_stream()>>>(a, o, sg, kio);
  return static_cast<int>(cudaGetLastError());
}

template <typename TI, int K, int VT>
int bwd_key(const core_args& args, const bwd_io& io) {
  core_args a = args;
  constexpr size_t qbytes = cta_lay<K, VT, false, true, 1, 0, false, true>::total;
  constexpr size_t kbytes = cta_lay<K, VT, true, true, 2, 0, false, true>::total;
  if (!io.dq || !io.dk || !io.dq_out || !io.dk_out || !io.gk || (a.u && !io.du) || (a.s0 && !a.u && !io.F0))
    return static_cast<int>(cudaErrorInvalidValue);
  key_io kio;
  seg_io sg;
  scratch_scope sc;
  if (int e = key_prepare<TI, K>(a, kio, sc, true)) return e;
  auto qkern = tc_dq<TI, K, VT, false, false, true>;
  auto kkern = tc_dkv<TI, K, VT, false, true>;
  if (int e = tc_smem(qkern, qbytes)) return e;
  if (int e = tc_smem(kkern, kbytes)) return e;
  const int occ_q = cached_blocks_per_sm<tc_dq<TI, K, VT, false, false, true>>(cfg<VT>::T, qbytes);
  const int occ_k = cached_blocks_per_sm<tc_dkv<TI, K, VT, false, true>>(cfg<VT>::T, kbytes);
  sg = choose_segments(a, VT, occ_q < occ_k ? occ_q : occ_k);
  // The forward's segment-boundary states (bwd_io::seg_ctx) where the segments are the forward's.
  float* fstates = forward_states(a, sg, io.seg_ctx);
  const bool have = fstates != nullptr;
  if (int e = segment_buffers(a, sg, sc, true, fstates)) return e;
  // dQa, dKb: stored by the sweeps with one V tile, summed over several (then zeroed here first).
  if (a.Vin > VT) {
    const size_t bytes = static_cast<size_t>(a.tokens) * a.H * K * sizeof(float);
    if (int e = static_cast<int>(cudaMemsetAsync(io.dq, 0, bytes, launch_stream()))) return e;
    if (int e = static_cast<int>(cudaMemsetAsync(io.dk, 0, bytes, launch_stream()))) return e;
  }
  if (int e = seg_passes<TI, K, VT, true>(a, sg, &io, kio, !have)) return e;
  const dim3 grid(a.Vin / VT, a.H, a.N * sg.nseg);
  qkern<<<grid, cfg<VT>::T, qbytes, launch_stream()>>>(a, io, sg, kio);
  if (int e = static_cast<int>(cudaGetLastError())) return e;
  kkern<<<grid, cfg<VT>::T, kbytes, launch_stream()>>>(a, io, sg, kio);
  if (int e = static_cast<int>(cudaGetLastError())) return e;
  if (kio.maxch > 0) {
    const dim3 cgrid(kio.maxch, a.H, a.N);
    const dim3 bgrid(4 * kio.maxch, a.H, a.N);
    if (a.u) key_post<TI, K, true><<<bgrid, K, 0, launch_stream()>>>(args, io, kio);
    else key_post<TI, K, false><<<bgrid, K, 0, launch_stream()>>>(args, io, kio);
    key_carry<<<dim3(a.H, a.N), K, 0, launch_stream()>>>(args, io, kio);
    key_gk<<<cgrid, 256, 0, launch_stream()>>>(args, io, kio);
  }
  return static_cast<int>(cudaGetLastError());
}

bool tc_off() {
  const char* e = getenv("LRNN_DA_NO_TC");
  return e && e[0] == '1';
}

// Inputs the tensor-core kernels take (V may carry the normaliser column: V = Vin + 1; per-key gates
// and the bonus without it).
bool tc_shape(const core_args& a) {
  const bool key = a.gmode == g_key;
  return !tc_off() && (a.type == t_bf16 || a.type == t_f16) && (key || a.u == nullptr) &&
         (a.V == a.Vin || (!key && a.V == a.Vin + 1)) && a.Vin % 64 == 0 && a.Vin > 0 && (a.K == 64 || a.K == 128);
}

// Shared memory of the kernels at V tile 128: the forward, or the larger of the backward sweeps.
template <int K, bool KEY>
size_t bytes128(bool bwd) {
  constexpr size_t q = cta_lay<K, 128, !KEY, true, 1, 0, false, KEY>::total, kv = cta_lay<K, 128, true, true, 2, 0, false, KEY>::total;
  return bwd ? (q > kv ? q : kv) : cta_lay<K, 128, true, false, 1, 0, false, KEY>::total;
}

// V tile: 128 columns when V is a multiple of 128 and the kernels fit the device's shared memory
// (the backward at K = 128 needs 190 KB, 212 KB with per-key gates: Hopper), else 64.
int vt_of(const core_args& a, bool bwd) {
  const bool key = a.gmode == g_key;
  const size_t need = a.K == 64 ? (key ? bytes128<64, true>(bwd) : bytes128<64, false>(bwd))
                                : (key ? bytes128<128, true>(bwd) : bytes128<128, false>(bwd));
  return a.Vin % 128 == 0 && need <= smem_limit() ? 128 : 64;
}

// Calls fn(TI*, K, VT) with the compile-time input type, head size and V tile of `a`.
template <typename Fn>
int dispatch(const core_args& a, bool bwd, Fn&& fn) {
  auto with_vt = [&](auto* ti, auto k) {
    return vt_of(a, bwd) == 128 ? fn(ti, k, std::integral_constant<int, 128>{}) : fn(ti, k, std::integral_constant<int, 64>{});
  };
  auto with_k = [&](auto* ti) {
    return a.K == 64 ? with_vt(ti, std::integral_constant<int, 64>{}) : with_vt(ti, std::integral_constant<int, 128>{});
  };
  return a.type == t_bf16 ? with_k(static_cast<__nv_bfloat16*>(nullptr)) : with_k(static_cast<__half*>(nullptr));
}

seg_io forward_plan(const core_args& a) {
  seg_io r;
  dispatch(a, false, [&](auto* ti, auto k, auto vt) {
    using TI = std::remove_pointer_t<decltype(ti)>;
    constexpr int Kc = decltype(k)::value, VTc = decltype(vt)::value;
    if (a.gmode == g_key) r = fwd_cfg<TI, Kc, VTc, false, true>::plan(a);
    else if (a.V == a.Vin) r = fwd_cfg<TI, Kc, VTc, false, false>::plan(a);
    else r = fwd_cfg<TI, Kc, VTc, true, false>::plan(a);
    return 0;
  });
  return r;
}

}  // namespace

int64_t tc_ctx_floats(const core_args& a) {
  if (!tc_shape(a)) return 0;
  const seg_io sg = forward_plan(a);
  return sg.nseg > 1 ? static_cast<int64_t>(a.N) * sg.nseg * a.H * a.K * a.V : 0;
}

// With the normaliser column: o in fp32 (o', for normalise_forward), or normalised in the input
// dtype with den (tc_forward_fused_norm); without: o in the input dtype.
bool tc_forward_eligible(const core_args& a, const fwd_out& o) {
  if (!tc_shape(a)) return false;
  if (a.V == a.Vin) return !o.o_f32 && !o.nf && !o.den;
  return o.den ? !o.o_f32 && tc_forward_fused_norm(a) : o.o_f32;
}
bool tc_forward_fused_norm(const core_args& a) { return tc_shape(a) && a.V == a.Vin + 1 && vt_of(a, false) == a.Vin; }
// A per-head constant decay (RetNet) without the normaliser column: its gradient comes from the dq
// sweep's pair sums (MOM; bwd_io::dgh). Through per-token sums of q.dq - k.dk, the way of the other
// gates, the tensor-core dq, dk (P, dP, S, dS rounded to the input dtype for the products, as fla)
// left it with a relative error that grows with T (measured on an H100: rms 1.6e-2 at T = 1000 in
// f16, 0.41 for two sequences of 1000 in bf16), as the terms are ~T times the result.
bool tc_backward_eligible(const core_args& a, const bwd_io& io) {
  if (!tc_shape(a) || io.do_f32 || (a.gmode == g_head && a.V != a.Vin)) return false;
  return a.V == a.Vin ? !io.dnf && !io.dn0 : io.dn != nullptr;
}
bool tc_backward_normaliser(const core_args& a) { return tc_shape(a) && a.V == a.Vin + 1 && a.gmode != g_head; }
bool tc_backward_key(const core_args& a, const bwd_io& io) { return tc_backward_eligible(a, io) && a.gmode == g_key; }
bool tc_backward_direct(const core_args& a, const bwd_io& io) {
  return tc_backward_eligible(a, io) && a.gmode != g_key && a.Vin == vt_of(a, true);
}

int tc_forward(const core_args& args, const fwd_out& o) {
  core_args a = args;
  return dispatch(a, false, [&](auto* ti, auto k, auto vt) {
    using TI = std::remove_pointer_t<decltype(ti)>;
    constexpr int Kc = decltype(k)::value, VTc = decltype(vt)::value;
    if (a.gmode == g_key) return fwd_key<TI, Kc, VTc>(a, o);
    return a.V == a.Vin ? fwd_k<TI, Kc, VTc, false>(a, o) : fwd_k<TI, Kc, VTc, true>(a, o);
  });
}

int tc_backward(const core_args& args, const bwd_io& io) {
  core_args a = args;
  const bool direct = io.dq_out != nullptr && a.gmode != g_key;
  const bool head = a.gmode == g_head;
  if (direct && (!io.dk_out || (!io.xy && !head) || !tc_backward_direct(a, io))) return static_cast<int>(cudaErrorInvalidValue);
  if (head && (!io.dgh || !io.dgh_part)) return static_cast<int>(cudaErrorInvalidValue);
  return dispatch(a, true, [&](auto* ti, auto k, auto vt) {
    using TI = std::remove_pointer_t<decltype(ti)>;
    constexpr int Kc = decltype(k)::value, VTc = decltype(vt)::value;
    if (a.gmode == g_key) return bwd_key<TI, Kc, VTc>(a, io);
    if (head) return direct ? bwd_k<TI, Kc, VTc, true, false, true>(a, io) : bwd_k<TI, Kc, VTc, false, false, true>(a, io);
    if (a.V != a.Vin) return direct ? bwd_k<TI, Kc, VTc, true, true>(a, io) : bwd_k<TI, Kc, VTc, false, true>(a, io);
    return direct ? bwd_k<TI, Kc, VTc, true, false>(a, io) : bwd_k<TI, Kc, VTc, false, false>(a, io);
  });
}

void tc_forward_launches(int64_t out[kLaunchKinds]) {
  for (int i = 0; i < kLaunchKinds; ++i) out[i] = fwd_launches[i].load();
}

bool tc_forward_wg_available() { return wg_kernel_loads<__nv_bfloat16, 128, false>(); }

void tc_occupancy(int K, int out[3]) {
  using T = __nv_bfloat16;
  constexpr int VT = 128, NT = cfg<VT>::T;
  if (K == 64) {
    out[0] = blocks_per_sm(tc_fwd<T, 64, VT>, NT, cta_lay<64, VT, true, false, 1>::total);
    out[1] = blocks_per_sm(tc_dq<T, 64, VT, true>, NT, cta_lay<64, VT, true, true, 1>::total);
    out[2] = blocks_per_sm(tc_dkv<T, 64, VT>, NT, cta_lay<64, VT, true, true, 2>::total);
  } else {
    out[0] = blocks_per_sm(tc_fwd<T, 128, VT>, NT, cta_lay<128, VT, true, false, 1>::total);
    out[1] = blocks_per_sm(tc_dq<T, 128, VT, true>, NT, cta_lay<128, VT, true, true, 1>::total);
    out[2] = blocks_per_sm(tc_dkv<T, 128, VT>, NT, cta_lay<128, VT, true, true, 2>::total);
  }
}

}  // namespace lrnn::ops::cuda_chunk
