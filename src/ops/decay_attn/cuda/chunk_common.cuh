// Device helpers shared by the decay_attn chunk kernels (no fmt-based headers here).
#pragma once

#include "backend/cuda/stream.h"
#include "ops/decay_attn/cuda/chunk_api.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdlib>
#include <type_traits>

namespace lrnn::ops::cuda_chunk {

constexpr int kC = 64;        // tokens per chunk
constexpr int kThreads = 256;
constexpr int kMaxK = 128;

__device__ __forceinline__ float ldf(const float* p) { return *p; }
__device__ __forceinline__ float ldf(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float ldf(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ void stf(float* p, float x) { *p = x; }
__device__ __forceinline__ void stf(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
__device__ __forceinline__ void stf(__half* p, float x) { *p = __float2half_rn(x); }

// Calls f with a null pointer of the element type for `type`.
template <typename F>
int with_type(int type, F&& f) {
  switch (type) {
    case t_f32: return f(static_cast<float*>(nullptr));
    case t_bf16: return f(static_cast<__nv_bfloat16*>(nullptr));
    case t_f16: return f(static_cast<__half*>(nullptr));
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

// Shared-memory layout of one CTA (floats unless said): cumulative log gates in double, so that
// exp(G_i - G_j) is exact for log gates down to -50 per token (sums to -3200 in a chunk).
// (Per-key gates keep one per key, scalar gates one per row.)
// (mom: the backward's moment state for a per-head decay's gradient, K x SS.)
struct smem_layout {
  int K, KS, SS;
  size_t gd, qs, ks, vs, ss, ps, dos, dps, bs, cb, ms, total;
  __host__ __device__ smem_layout(int K_, int VT, bool bwd, bool key, bool mom = false) : K(K_), KS(K_ + 1), SS(VT + 1) {
    size_t off = 0;
    gd = off; off += sizeof(double) * kC * (key ? KS : 1);
    qs = off; off += sizeof(float) * kC * KS;
    ks = off; off += sizeof(float) * kC * KS;
    vs = off; off += sizeof(float) * kC * SS;
    ss = off; off += sizeof(float) * K * SS;
    ps = off; off += sizeof(float) * kC * (kC + 1);
    dos = off; if (bwd) off += sizeof(float) * kC * SS;
    dps = off; if (bwd) off += sizeof(float) * kC * (kC + 1);
    bs = off; off += sizeof(float) * kC;
    cb = off; off += sizeof(float) * kC;
    ms = off; if (mom) off += sizeof(float) * K * SS;
    total = off;
  }
};

// The shared-memory views of one CTA and the chunk-local steps both directions use.
template <typename TI, int VT>
struct cta {
  const core_args& a;
  int n, h, v0, vw, K, KS, SS, H;
  bool key, bonus;
  double* Gd;
  float *Qs, *Ks, *Vs, *Ss, *Ps, *dOs, *dPs, *bs, *cb, *Ms;

  __device__ cta(const core_args& args, unsigned char* sm, bool bwd, bool mom = false) : a(args) {
    smem_layout lay(a.K, VT, bwd, a.gmode == g_key, mom);
    n = blockIdx.z, h = blockIdx.y, v0 = blockIdx.x * VT;
    vw = min(VT, a.V - v0);
    K = a.K, KS = K + 1, SS = VT + 1, H = a.H;
    key = a.gmode == g_key;
    bonus = a.u != nullptr;
    Gd = reinterpret_cast<double*>(sm + lay.gd);
    Qs = reinterpret_cast<float*>(sm + lay.qs);
    Ks = reinterpret_cast<float*>(sm + lay.ks);
    Vs = reinterpret_cast<float*>(sm + lay.vs);
    Ss = reinterpret_cast<float*>(sm + lay.ss);
    Ps = reinterpret_cast<float*>(sm + lay.ps);
    dOs = reinterpret_cast<float*>(sm + lay.dos);
    dPs = reinterpret_cast<float*>(sm + lay.dps);
    bs = reinterpret_cast<float*>(sm + lay.bs);
    cb = reinterpret_cast<float*>(sm + lay.cb);
    Ms = mom ? reinterpret_cast<float*>(sm + lay.ms) : nullptr;
  }
  __device__ __forceinline__ double G(int i, int d) const { return key ? Gd[i * KS + d] : Gd[i]; }
  __device__ __forceinline__ double Gq(int i, int d) const {
    return bonus ? (i > 0 ? G(i - 1, d) : 0.0) : G(i, d);
  }
  __device__ __forceinline__ bool visible(int i, int j, int L) const { return i < L && (bonus ? j < i : j <= i); }

  // S (or dS) tile from [N, H, K, Vin] + the normaliser column from [N, H, K]; zeros if null.
  __device__ void load_state(const float* s, const float* nrm) {
    for (int e = threadIdx.x; e < K * VT; e += blockDim.x) {
      const int d = e / VT, c = e % VT, col = v0 + c;
      float x = 0.f;
      if (c < vw) {
        const size_t row = (static_cast<size_t>(n) * H + h) * K + d;
        if (col < a.Vin) x = s ? s[row * a.Vin + col] : 0.f;
        else x = nrm ? nrm[row] : 0.f;
      }
      Ss[d * SS + c] = x;
    }
  }
  __device__ void store_state(float* s, float* nrm) const {
    for (int e = threadIdx.x; e < K * VT; e += blockDim.x) {
      const int d = e / VT, c = e % VT, col = v0 + c;
      if (c >= vw) continue;
      const size_t row = (static_cast<size_t>(n) * H + h) * K + d;
      if (col < a.Vin) {
        if (s) s[row * a.Vin + col] = Ss[d * SS + c];
      } else if (nrm) {
        nrm[row] = Ss[d * SS + c];
      }
    }
  }

  // Q, K, the V tile (and, given, the d_o tile), input scales beta, cumulative gates of the chunk.
  template <typename TD>
  __device__ void load_chunk(int t0, int L, const TD* dO, int ld_do) {
    const TI* q = static_cast<const TI*>(a.q);
    const TI* k = static_cast<const TI*>(a.k);
    const TI* v = static_cast<const TI*>(a.v);
    for (int e = threadIdx.x; e < kC * K; e += blockDim.x) {
      const int i = e / K, d = e % K;
      float qv = 0.f, kv = 0.f;
      if (i < L) {
        const size_t off = (static_cast<size_t>(t0 + i) * H + h) * K + d;
        qv = ldf(q + off);
        kv = ldf(k + off);
      }
      Qs[i * KS + d] = qv;
      Ks[i * KS + d] = kv;
    }
    for (int e = threadIdx.x; e < kC * VT; e += blockDim.x) {
      const int i = e / VT, c = e % VT, col = v0 + c;
      float x = 0.f, y = 0.f;
      if (i < L && c < vw) {
        const size_t tok = static_cast<size_t>(t0 + i) * H + h;
        x = col < a.Vin ? ldf(v + tok * a.Vin + col) : 1.f;
        if (dO) y = ldf(dO + tok * ld_do + col);
      }
      Vs[i * SS + c] = x;
      if (dO) dOs[i * SS + c] = y;
    }
    if (threadIdx.x < kC) {
      const int i = threadIdx.x;
      bs[i] = i < L ? (a.b ? expf(a.b[static_cast<size_t>(t0 + i) * H + h]) : 1.f) : 0.f;
    }
    if (key) {
      for (int d = threadIdx.x; d < K; d += blockDim.x) {
        double acc = 0.0;
#pragma unroll 8
        for (int i = 0; i < kC; ++i) {
          if (i < L) acc += static_cast<double>(a.g[(static_cast<size_t>(t0 + i) * H + h) * K + d]);
          Gd[i * KS + d] = acc;
        }
      }
    } else if (threadIdx.x < 32) {
      // Warp scan: lane l holds tokens 2l and 2l + 1.
      const int l = threadIdx.x;
      double x0 = 0.0, x1 = 0.0;
      if (a.gmode != g_none) {
        if (2 * l < L) x0 = a.gmode == g_head ? a.g[h] : a.g[static_cast<size_t>(t0 + 2 * l) * H + h];
        if (2 * l + 1 < L) x1 = a.gmode == g_head ? a.g[h] : a.g[static_cast<size_t>(t0 + 2 * l + 1) * H + h];
      }
      double s = x0 + x1;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(0xffffffffu, s, o);
        if (l >= o) s += y;
      }
      const double before = s - (x0 + x1);
      Gd[2 * l] = before + x0;
      Gd[2 * l + 1] = before + x0 + x1;
    }
  }

  // P_ij = scale sum_d Q_id K_jd exp(Gq_id - G_jd) beta_j on visible pairs, 0 elsewhere.
  __device__ void compute_P(int L) {
    for (int e = threadIdx.x; e < kC * kC; e += blockDim.x) {
      const int i = e / kC, j = e % kC;
      float p = 0.f;
      if (visible(i, j, L)) {
        const float* qi = Qs + i * KS;
        const float* kj = Ks + j * KS;
        if (key) {
          const double* gi = Gd + (bonus ? (i - 1) * KS : i * KS);
          const double* gj = Gd + j * KS;
          for (int d = 0; d < K; ++d) {
            const double gq = (bonus && i == 0) ? 0.0 : gi[d];
            p += qi[d] * kj[d] * expf(static_cast<float>(gq - gj[d]));
          }
        } else {
          for (int d = 0; d < K; ++d) p += qi[d] * kj[d];
          p *= expf(static_cast<float>(Gq(i, 0) - G(j, 0)));
        }
        p *= a.scale * bs[j];
      }
      Ps[i * (kC + 1) + j] = p;
    }
  }

  // cb_i = scale q_i . (u * k_i) (bonus coefficient), one warp per row.
  __device__ void compute_cb(int L) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    const float* u = a.u + static_cast<size_t>(h) * K;
    for (int i = w; i < kC; i += nw) {
      float s = 0.f;
      if (i < L)
        for (int d = l; d < K; d += 32) s += Qs[i * KS + d] * u[d] * Ks[i * KS + d];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (l == 0) cb[i] = s * a.scale;
    }
  }

  // In place: Q -> Qg = scale Q exp(Gq); K -> Kd = K exp(G_L - G) beta.
  __device__ void decay_qk(int L) {
    for (int e = threadIdx.x; e < kC * K; e += blockDim.x) {
      const int i = e / K, d = e % K;
      if (i >= L) continue;
      Qs[i * KS + d] *= a.scale * expf(static_cast<float>(Gq(i, d)));
      Ks[i * KS + d] *= expf(static_cast<float>(G(L - 1, d) - G(i, d))) * bs[i];
    }
  }

  // A per-head decay's moment state (before update_state, after decay_qk; each thread the elements
  // update_state gives it): M = exp(G_L) (M + L S) + sum_j (L - 1 - j) Kd_j^T V_j.
  __device__ void update_moment(int L) {
    const float gl = expf(static_cast<float>(G(L - 1, 0))), fl = static_cast<float>(L);
    for (int e = threadIdx.x; e < K * VT; e += blockDim.x) {
      const int d = e / VT, c = e % VT;
      float acc = 0.f;
      for (int j = 0; j < L; ++j) acc += static_cast<float>(L - 1 - j) * Ks[j * KS + d] * Vs[j * SS + c];
      Ms[d * SS + c] = gl * (Ms[d * SS + c] + fl * Ss[d * SS + c]) + acc;
    }
  }

  // S = Diag(exp(G_L)) S + Kd^T X (X = V in the forward sweep).
  __device__ void update_state(int L, const float* X) {
    for (int e = threadIdx.x; e < K * VT; e += blockDim.x) {
      const int d = e / VT, c = e % VT;
      float acc = expf(static_cast<float>(G(L - 1, d))) * Ss[d * SS + c];
      for (int j = 0; j < L; ++j) acc += Ks[j * KS + d] * X[j * SS + c];
      Ss[d * SS + c] = acc;
    }
  }
};

// The normaliser's divisor of a row: max(|den|, floor) + eps (floor = exp(-m), or 1 without the
// stabiliser); den = o'[Vin], the normaliser column.
__device__ __forceinline__ float norm_divisor(float den, float floor, float eps) { return fmaxf(fabsf(den), floor) + eps; }
// The normaliser column's gradient times the divisor, from hd = o . d_o (o normalised), the row's den
// and floor: d|den| / d den is the sign where |den| wins the max, 0 where the floor does.
__device__ __forceinline__ float norm_col_num(float hd, float dv, float fl) { return fabsf(dv) > fl ? (dv > 0 ? -hd : hd) : 0.f; }

// Sum of v over the CTA into *out (fixed order: deterministic). Every thread calls it (a barrier).
__device__ __forceinline__ void cta_sum(double v, float* out) {
  __shared__ double red[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x / 32, nw = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) red[w] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int i = 0; i < nw; ++i) t += red[i];
    *out = static_cast<float>(t);
  }
}

// This CTA's slot of the per-head decay gradient's partial sums ([slot][H], slot = (blockIdx.z,
// blockIdx.x), h = blockIdx.y; sum_tokens adds them up per head).
__device__ __forceinline__ float* head_partial(float* parts, int H) {
  return parts + (static_cast<size_t>(blockIdx.z) * gridDim.x + blockIdx.x) * H + blockIdx.y;
}

// The stream every chunk kernel, scratch allocation and copy goes to: lrnn's current stream of the
// current device (cuda::set_current_stream, lrnn_cuda_set_stream; null = the legacy default
// stream). chunk_host.cpp makes the tensors' device current first.
inline cudaStream_t launch_stream() {
  int dev = 0;
  cudaGetDevice(&dev);
  return ::lrnn::cuda::current_cuda_stream(dev);
}

// Streaming multiprocessors of the current device (cached; 132 if the query fails).
inline int sm_count() {
  static int n = [] {
    int dev = 0, c = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev);
    return c > 0 ? c : 132;
  }();
  return n;
}

// Shared memory one CTA may use on the current device (opt-in maximum; cached). LRNN_DA_SMEM_LIMIT
// (bytes) lowers it, so that an H100 takes the paths of a GPU with less (sm_80: 166912).
inline size_t smem_limit() {
  static const size_t dev_limit = [] {
    int dev = 0, c = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&c, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    return c > 0 ? static_cast<size_t>(c) : size_t{48 * 1024};
  }();
  if (const char* e = getenv("LRNN_DA_SMEM_LIMIT")) {
    const long long x = atoll(e);
    if (x > 0 && static_cast<size_t>(x) < dev_limit) return static_cast<size_t>(x);
  }
  return dev_limit;
}

// Dynamic shared memory of `bytes` for a kernel; cudaErrorNotSupported when the device has less
// (chunk_host.cpp turns that into a message naming the limit).
template <typename KernelT>
int set_smem(KernelT kernel, size_t bytes) {
  if (bytes > smem_limit()) return static_cast<int>(cudaErrorNotSupported);
  return static_cast<int>(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace lrnn::ops::cuda_chunk
