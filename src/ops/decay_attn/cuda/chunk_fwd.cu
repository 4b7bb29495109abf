// decay_attn chunk form on CUDA, forward: one CTA per (sequence, head, V tile) sweeps the chunks
// in order with the state tile S [K, VT] in fp32 shared memory (no chunk state reaches HBM):
//   O = Qg S + P V' (+ bonus),  S = Diag(exp(G_L)) S + Kd^T V'   (README.md, "CUDA").
#include "ops/decay_attn/cuda/chunk_common.cuh"
#include "ops/decay_attn/cuda/chunk_tc.h"

#include <mma.h>

#include <cstdlib>

namespace lrnn::ops::cuda_chunk {

namespace {

constexpr int kVTf = 64;

template <typename TI, typename TO>
__global__ void __launch_bounds__(kThreads) fwd_kernel(core_args a, fwd_out out) {
  extern __shared__ __align__(128) unsigned char sm[];
  cta<TI, kVTf> c(a, sm, false);
  const int SS = c.SS, KS = c.KS, K = c.K, H = c.H, h = c.h;
  const int tb = a.offsets[c.n], te = a.offsets[c.n + 1];
  c.load_state(a.s0, a.n0);
  for (int t0 = tb; t0 < te; t0 += kC) {
    const int L = min(kC, te - t0);
    c.template load_chunk<float>(t0, L, nullptr, 0);
    __syncthreads();
    c.compute_P(L);
    if (c.bonus) c.compute_cb(L);
    __syncthreads();
    c.decay_qk(L);
    __syncthreads();
    for (int e = threadIdx.x; e < kC * kVTf; e += blockDim.x) {
      const int i = e / kVTf, col = e % kVTf;
      if (i >= L || col >= c.vw) continue;
      float acc = 0.f;
      const float* qi = c.Qs + i * KS;
      for (int d = 0; d < K; ++d) acc += qi[d] * c.Ss[d * SS + col];
      const float* pi = c.Ps + i * (kC + 1);
      for (int j = 0; j <= i; ++j) acc += pi[j] * c.Vs[j * SS + col];
      if (c.bonus) acc += c.cb[i] * c.Vs[i * SS + col];
      const size_t tok = static_cast<size_t>(t0 + i) * H + h;
      if (out.o_f32) static_cast<float*>(out.o)[tok * a.V + c.v0 + col] = acc;
      else if (c.v0 + col < a.Vin) stf(static_cast<TO*>(out.o) + tok * a.Vin + c.v0 + col, acc);
    }
    __syncthreads();
    c.update_state(L, c.Vs);
    __syncthreads();
  }
  if (out.sf || out.nf) c.store_state(out.sf, out.nf);
}

template <typename TI>
int launch(const core_args& a, const fwd_out& o) {
  const size_t bytes = smem_layout(a.K, kVTf, false, a.gmode == g_key).total;
  auto kern = fwd_kernel<TI, TI>;
  if (int e = set_smem(kern, bytes)) return e;
  const dim3 grid((a.V + kVTf - 1) / kVTf, a.H, a.N);
  kern<<<grid, kThreads, bytes, launch_stream()>>>(a, o);
  return static_cast<int>(cudaGetLastError());
}


// ---- WMMA tensor-core path for per-key gates (bf16 / f16; no bonus, no normaliser column; K in
// {64, 128}, V a multiple of 64; the other decays take chunk_tc.cu): WMMA 16x16x16 with fp32
// accumulators; the fp32 master state lives in shared memory, a bf16/f16 copy of it feeds the Q S
// product (as fla's chunk_fwd_o).
namespace wm = nvcuda::wmma;

template <typename TI, int K, int VT_>
struct tc_layout {
  static constexpr int VT = VT_, QS = K + 8, VS = VT + 8, PS = kC + 8, FS = VT + 4, FFS = kC + 4, GS = K + 4;
  static constexpr size_t q = 0;
  static constexpr size_t k = q + sizeof(TI) * kC * QS;
  static constexpr size_t v = k + sizeof(TI) * kC * QS;
  static constexpr size_t p = v + sizeof(TI) * kC * VS;
  static constexpr size_t sb = p + sizeof(TI) * kC * PS;
  static constexpr size_t sf = sb + sizeof(TI) * K * VS;
  static constexpr size_t f = sf + sizeof(float) * K * FS;
  static constexpr size_t beta = f + sizeof(float) * kC * FFS;
  // Cumulative log gates [kC][GS] fp32, and two 16-row scratch tiles per warp.
  static constexpr size_t gk = beta + sizeof(float) * kC;
  static constexpr size_t wq = gk + sizeof(float) * kC * GS;
  static constexpr size_t wk = wq + sizeof(TI) * 4 * 16 * QS;
  static constexpr size_t total = wk + sizeof(TI) * 4 * 16 * QS;
};

template <typename TI>
__device__ __forceinline__ TI to_in(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 to_in<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half to_in<__half>(float x) { return __float2half_rn(x); }

template <typename TI, int K, int VT_>
__global__ void __launch_bounds__(128) tc_fwd_kernel(core_args a, fwd_out out) {
  using Lay = tc_layout<TI, K, VT_>;
  constexpr int VT = Lay::VT, QS = Lay::QS, VS = Lay::VS, PS = Lay::PS, FS = Lay::FS, FFS = Lay::FFS, GS = Lay::GS;
  constexpr int NF = VT / 16;  // 16-column fragments of the V tile
  extern __shared__ __align__(128) unsigned char sm[];
  TI* Qs = reinterpret_cast<TI*>(sm + Lay::q);
  TI* Ks = reinterpret_cast<TI*>(sm + Lay::k);
  TI* Vs = reinterpret_cast<TI*>(sm + Lay::v);
  TI* Ps = reinterpret_cast<TI*>(sm + Lay::p);
  TI* Sb = reinterpret_cast<TI*>(sm + Lay::sb);
  float* Sf = reinterpret_cast<float*>(sm + Lay::sf);
  float* Ff = reinterpret_cast<float*>(sm + Lay::f);
  float* Bs = reinterpret_cast<float*>(sm + Lay::beta);
  float* Gk = reinterpret_cast<float*>(sm + Lay::gk);
  const int n = blockIdx.z, h = blockIdx.y, v0 = blockIdx.x * VT, H = a.H, Vin = a.Vin;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int tb = a.offsets[n], te = a.offsets[n + 1];
  const TI* q = static_cast<const TI*>(a.q);
  const TI* k = static_cast<const TI*>(a.k);
  const TI* v = static_cast<const TI*>(a.v);
  const size_t srow = (static_cast<size_t>(n) * H + h) * K;
  for (int e = tid; e < K * VT; e += blockDim.x) {
    const int d = e / VT, c = e % VT;
    const float x = a.s0 ? a.s0[(srow + d) * Vin + v0 + c] : 0.f;
    Sf[d * FS + c] = x;
    Sb[d * VS + c] = to_in<TI>(x);
  }
  // Software pipeline: the next chunk's Q, K, V tiles travel into registers while this one computes.
  constexpr int NQ = kC * (K / 8) / 128, NV = kC * (VT / 8) / 128;
  uint4 pq[NQ], pk[NQ], pv[NV];
  auto fetch = [&](int t0n, int Ln) {
#pragma unroll
    for (int r = 0; r < NQ; ++r) {
      const int e = tid + 128 * r, i = e / (K / 8), c8 = (e % (K / 8)) * 8;
      pq[r] = pk[r] = make_uint4(0, 0, 0, 0);
      if (i < Ln) {
        const size_t off = (static_cast<size_t>(t0n + i) * H + h) * K + c8;
        pq[r] = *reinterpret_cast<const uint4*>(q + off);
        pk[r] = *reinterpret_cast<const uint4*>(k + off);
      }
    }
#pragma unroll
    for (int r = 0; r < NV; ++r) {
      const int e = tid + 128 * r, i = e / (VT / 8), c8 = (e % (VT / 8)) * 8;
      pv[r] = make_uint4(0, 0, 0, 0);
      if (i < Ln) pv[r] = *reinterpret_cast<const uint4*>(v + (static_cast<size_t>(t0n + i) * H + h) * Vin + v0 + c8);
    }
  };
  if (tb < te) fetch(tb, min(kC, te - tb));
  for (int t0 = tb; t0 < te; t0 += kC) {
    const int L = min(kC, te - t0);
#pragma unroll
    for (int r = 0; r < NQ; ++r) {
      const int e = tid + 128 * r, i = e / (K / 8), c8 = (e % (K / 8)) * 8;
      *reinterpret_cast<uint4*>(Qs + i * QS + c8) = pq[r];
      *reinterpret_cast<uint4*>(Ks + i * QS + c8) = pk[r];
    }
#pragma unroll
    for (int r = 0; r < NV; ++r) {
      const int e = tid + 128 * r, i = e / (VT / 8), c8 = (e % (VT / 8)) * 8;
      *reinterpret_cast<uint4*>(Vs + i * VS + c8) = pv[r];
    }
    if (t0 + kC < te) fetch(t0 + kC, min(kC, te - t0 - kC));
    if (warp == 1) {
      for (int i = lane; i < kC; i += 32) Bs[i] = i < L ? (a.b ? expf(a.b[static_cast<size_t>(t0 + i) * H + h]) : 1.f) : 0.f;
    }
    {
      for (int d = tid; d < K; d += blockDim.x) {
        float acc = 0.f;
#pragma unroll 8
        for (int i = 0; i < kC; ++i) {
          if (i < L) acc += a.g[(static_cast<size_t>(t0 + i) * H + h) * K + d];
          Gk[i * GS + d] = acc;
        }
      }
    }
    __syncthreads();
    {
      // Per-key P for this warp's 16 rows I: off-diagonal blocks J < I as one product each,
      // (Q_I exp(G_I - R)) (K_J exp(R - G_J) beta_J)^T with R = G at I's first row (both
      // exponents <= 0, as fla); the diagonal block pairwise.
      TI* Wq = reinterpret_cast<TI*>(sm + Lay::wq) + warp * 16 * QS;
      TI* Wk = reinterpret_cast<TI*>(sm + Lay::wk) + warp * 16 * QS;
      const int r0 = warp * 16;
      for (int e = lane; e < 16 * K; e += 32) {
        const int r = e / K, d = e % K;
        Wq[r * QS + d] = to_in<TI>(static_cast<float>(Qs[(r0 + r) * QS + d]) * expf(Gk[(r0 + r) * GS + d] - Gk[r0 * GS + d]));
      }
      for (int J = 0; J < warp; ++J) {
        __syncwarp();
        for (int e = lane; e < 16 * K; e += 32) {
          const int r = e / K, d = e % K, j = J * 16 + r;
          Wk[r * QS + d] = to_in<TI>(static_cast<float>(Ks[j * QS + d]) * expf(Gk[r0 * GS + d] - Gk[j * GS + d]) * Bs[j]);
        }
        __syncwarp();
        wm::fragment<wm::accumulator, 16, 16, 16, float> acc;
        wm::fill_fragment(acc, 0.f);
#pragma unroll
        for (int kk = 0; kk < K; kk += 16) {
          wm::fragment<wm::matrix_a, 16, 16, 16, TI, wm::row_major> fa;
          wm::load_matrix_sync(fa, Wq + kk, QS);
          wm::fragment<wm::matrix_b, 16, 16, 16, TI, wm::col_major> fb;
          wm::load_matrix_sync(fb, Wk + kk, QS);
          wm::mma_sync(acc, fa, fb, acc);
        }
        wm::store_matrix_sync(Ff + r0 * FFS + J * 16, acc, FFS, wm::mem_row_major);
      }
      // Diagonal block: lane pairs (r, c) with c <= r.
      for (int e = lane; e < 16 * 16; e += 32) {
        const int r = e / 16, cc = e % 16, i = r0 + r, j = r0 + cc;
        float p = 0.f;
        if (cc <= r) {
          const TI* qi = Qs + i * QS;
          const TI* kj = Ks + j * QS;
          const float* gi = Gk + i * GS;
          const float* gj = Gk + j * GS;
          for (int d = 0; d < K; ++d) p += static_cast<float>(qi[d]) * static_cast<float>(kj[d]) * expf(gi[d] - gj[d]);
          p *= Bs[j];
        }
        Ff[i * FFS + j] = p;
      }
      __syncwarp();
      for (int e = lane; e < 16 * kC; e += 32) {
        const int i = r0 + e / kC, j = e % kC;
        const float p = (i < L && j <= i) ? Ff[i * FFS + j] * a.scale : 0.f;
        Ps[i * PS + j] = to_in<TI>(p);
      }
    }
    __syncthreads();
    // In place: Q -> scale Q exp(G_i); K -> K exp(G_L - G_j) beta_j; S -> Diag(exp(G_L)) S.
    {
      for (int e = tid; e < kC * K; e += blockDim.x) {
        const int i = e / K, d = e % K;
        if (i >= L) continue;
        const float g = Gk[i * GS + d], gl = Gk[(L - 1) * GS + d];
        Qs[i * QS + d] = to_in<TI>(static_cast<float>(Qs[i * QS + d]) * a.scale * expf(g));
        Ks[i * QS + d] = to_in<TI>(static_cast<float>(Ks[i * QS + d]) * expf(gl - g) * Bs[i]);
      }
      for (int e = tid; e < K * VT; e += blockDim.x) {
        const int d = e / VT, c = e % VT;
        Sf[d * FS + c] *= expf(Gk[(L - 1) * GS + d]);
      }
    }
    __syncthreads();
    // O = Qg Sb + P V for this warp's 16 rows.
    {
      wm::fragment<wm::accumulator, 16, 16, 16, float> acc[NF];
#pragma unroll
      for (int f = 0; f < NF; ++f) wm::fill_fragment(acc[f], 0.f);
#pragma unroll
      for (int kk = 0; kk < K; kk += 16) {
        wm::fragment<wm::matrix_a, 16, 16, 16, TI, wm::row_major> fa;
        wm::load_matrix_sync(fa, Qs + warp * 16 * QS + kk, QS);
#pragma unroll
        for (int f = 0; f < NF; ++f) {
          wm::fragment<wm::matrix_b, 16, 16, 16, TI, wm::row_major> fb;
          wm::load_matrix_sync(fb, Sb + kk * VS + f * 16, VS);
          wm::mma_sync(acc[f], fa, fb, acc[f]);
        }
      }
#pragma unroll
      for (int kk = 0; kk < kC; kk += 16) {
        if (kk > warp * 16) break;
        wm::fragment<wm::matrix_a, 16, 16, 16, TI, wm::row_major> fa;
        wm::load_matrix_sync(fa, Ps + warp * 16 * PS + kk, PS);
#pragma unroll
        for (int f = 0; f < NF; ++f) {
          wm::fragment<wm::matrix_b, 16, 16, 16, TI, wm::row_major> fb;
          wm::load_matrix_sync(fb, Vs + kk * VS + f * 16, VS);
          wm::mma_sync(acc[f], fa, fb, acc[f]);
        }
      }
#pragma unroll
      for (int f = 0; f < NF; ++f) wm::store_matrix_sync(Ff + warp * 16 * FFS + f * 16, acc[f], FFS, wm::mem_row_major);
      __syncwarp();
      TI* o = static_cast<TI*>(out.o);
      for (int e = lane; e < 16 * (VT / 8); e += 32) {
        const int i = warp * 16 + e / (VT / 8), c8 = (e % (VT / 8)) * 8;
        if (i >= L) continue;
        alignas(16) TI pack[8];
#pragma unroll
        for (int x = 0; x < 8; ++x) pack[x] = to_in<TI>(Ff[i * FFS + c8 + x]);
        *reinterpret_cast<uint4*>(o + (static_cast<size_t>(t0 + i) * H + h) * Vin + v0 + c8) = *reinterpret_cast<const uint4*>(pack);
      }
    }
    // S += Kd^T V (S already decayed in place): this warp's K/4 rows of S.
    {
#pragma unroll
      for (int rf = 0; rf < K / 64; ++rf) {
        const int d0 = warp * (K / 4) + rf * 16;
#pragma unroll
        for (int f = 0; f < NF; ++f) {
          wm::fragment<wm::accumulator, 16, 16, 16, float> acc;
          wm::load_matrix_sync(acc, Sf + d0 * FS + f * 16, FS, wm::mem_row_major);
#pragma unroll
          for (int kk = 0; kk < kC; kk += 16) {
            wm::fragment<wm::matrix_a, 16, 16, 16, TI, wm::col_major> fa;
            wm::load_matrix_sync(fa, Ks + kk * QS + d0, QS);
            wm::fragment<wm::matrix_b, 16, 16, 16, TI, wm::row_major> fb;
            wm::load_matrix_sync(fb, Vs + kk * VS + f * 16, VS);
            wm::mma_sync(acc, fa, fb, acc);
          }
          wm::store_matrix_sync(Sf + d0 * FS + f * 16, acc, FS, wm::mem_row_major);
        }
      }
    }
    __syncthreads();
    for (int e = tid; e < K * VT; e += blockDim.x) {
      const int d = e / VT, c = e % VT;
      Sb[d * VS + c] = to_in<TI>(Sf[d * FS + c]);
    }
    __syncthreads();
  }
  if (out.sf)
    for (int e = tid; e < K * VT; e += blockDim.x) {
      const int d = e / VT, c = e % VT;
      out.sf[(srow + d) * Vin + v0 + c] = Sf[d * FS + c];
    }
}

template <typename TI, int K, int VT>
int launch_tc_vt(const core_args& a, const fwd_out& o) {
  const size_t bytes = tc_layout<TI, K, VT>::total;
  auto kern = tc_fwd_kernel<TI, K, VT>;
  if (int e = set_smem(kern, bytes)) return e;
  kern<<<dim3(a.V / VT, a.H, a.N), 128, bytes, launch_stream()>>>(a, o);
  return static_cast<int>(cudaGetLastError());
}

// Tile heuristic: V tiles of 64, or of 32 when (sequence, head, 64-tile) CTAs would not fill the SMs.
template <typename TI, int K>
int launch_tc(const core_args& a, const fwd_out& o) {
  bool narrow = static_cast<int64_t>(a.N) * a.H * (a.V / 64) < sm_count();
  if (const char* e = getenv("LRNN_DA_VT")) narrow = e[0] == '3';  // tests and timing: force 32 or 64
  return narrow ? launch_tc_vt<TI, K, 32>(a, o) : launch_tc_vt<TI, K, 64>(a, o);
}

bool tc_eligible(const core_args& a, const fwd_out& o) {
  if (const char* e = getenv("LRNN_DA_NO_TC"); e && e[0] == '1') return false;
  return a.gmode == g_key && (a.type == t_bf16 || a.type == t_f16) && !o.o_f32 && !o.nf && a.u == nullptr && a.V == a.Vin &&
         a.V % 64 == 0 && (a.K == 64 || a.K == 128);
}

}  // namespace

int core_forward(const core_args& a, const fwd_out& o) {
  if (a.K > kMaxK || a.K < 1) return static_cast<int>(cudaErrorInvalidValue);
  if (a.N == 0 || a.H == 0 || a.V == 0) return 0;
  if (tc_forward_eligible(a, o)) return tc_forward(a, o);
  if (tc_eligible(a, o)) {
    if (a.type == t_bf16) return a.K == 64 ? launch_tc<__nv_bfloat16, 64>(a, o) : launch_tc<__nv_bfloat16, 128>(a, o);
    return a.K == 64 ? launch_tc<__half, 64>(a, o) : launch_tc<__half, 128>(a, o);
  }
  return with_type(a.type, [&](auto* tag) {
    using TI = std::remove_pointer_t<decltype(tag)>;
    return launch<TI>(a, o);
  });
}

}  // namespace lrnn::ops::cuda_chunk
