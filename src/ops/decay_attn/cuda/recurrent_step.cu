// decay_attn decoding step on CUDA: one block per (sequence, head); 32 x KS threads, each thread
// owns W consecutive value columns (16-byte accesses when W = 4) of every KS-th key row, so the
// state streams through once, coalesced, with U rows of loads in flight per thread. The read-out
// is reduced over the KS row slices in shared memory. Math: OPS.md 1 and ../README.md (recurrent).
#include "ops/decay_attn/cuda/recurrent_step.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace lrnn::ops::cuda_step {

namespace {

constexpr int KS = 8;  // row slices (blockDim.y)
constexpr int U = 4;   // rows per thread in flight

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }

template <int W> struct vec;
template <> struct vec<4> {
  using type = float4;
  __device__ static float get(const float4& x, int w) { return w == 0 ? x.x : w == 1 ? x.y : w == 2 ? x.z : x.w; }
  __device__ static void set(float4& x, int w, float y) {
    if (w == 0) x.x = y; else if (w == 1) x.y = y; else if (w == 2) x.z = y; else x.w = y;
  }
};
template <> struct vec<1> {
  using type = float;
  __device__ static float get(const float& x, int) { return x; }
  __device__ static void set(float& x, int, float y) { x = y; }
};

__device__ __forceinline__ float warp_sum(float x) {
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

template <typename T, int W>
__global__ void __launch_bounds__(32 * KS) step_kernel(const step_params p) {
  using VT = typename vec<W>::type;
  extern __shared__ float smem[];
  const int K = static_cast<int>(p.K), V = static_cast<int>(p.V);
  float* qs = smem;          // [K] scale * q
  float* kb = qs + K;        // [K] beta * k
  float* al = kb + K;        // [K] alpha = exp(log decay)
  float* red = al + K;       // [KS, 32 * W] partial read-outs
  __shared__ float s_den, s_c;
  const int64_t nh = blockIdx.x;
  const int h = static_cast<int>(nh % p.H);
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 32 + tx;
  const T* q = static_cast<const T*>(p.q) + nh * K;
  const T* k = static_cast<const T*>(p.k) + nh * K;
  const T* v = static_cast<const T*>(p.v) + nh * V;

  // Gates (every thread reads m before thread 0 writes it after the first barrier).
  const float m_prev = p.gate == 1 ? p.m[nh] : 0.0f;
  const float gs = p.decay == 1 ? p.g[h] : p.decay == 2 ? p.g[nh] : 0.0f;
  float log_alpha = gs, log_beta = 0.0f, m_new = 0.0f;
  if (p.gate == 1) {
    const float it = p.i[nh];
    m_new = fmaxf(gs + m_prev, it);
    log_alpha = gs + m_prev - m_new;
    log_beta = it - m_new;
  } else if (p.gate == 2) {
    log_beta = p.i[nh];
  }
  const float beta = expf(log_beta);
  for (int d = tid; d < K; d += 32 * KS) {
    qs[d] = p.scale * to_f(q[d]);
    kb[d] = beta * to_f(k[d]);
    al[d] = expf(p.decay == 3 ? p.g[nh * K + d] : log_alpha);
  }
  __syncthreads();
  if (ty == 0) {  // normaliser update and read-out, bonus coefficient: one warp
    float acc_n = 0.0f, acc_c = 0.0f;
    for (int d = tx; d < K; d += 32) {
      if (p.normalizer) {
        const float nn = al[d] * p.n[nh * K + d] + kb[d];
        p.n[nh * K + d] = nn;
        acc_n += qs[d] * nn;
      }
      if (p.bonus) acc_c += qs[d] * p.u[h * K + d] * to_f(k[d]);
    }
    acc_n = warp_sum(acc_n);
    acc_c = warp_sum(acc_c);
    if (tx == 0) {
      const float floor_ = p.gate == 1 ? expf(-m_new) : 1.0f;
      s_den = p.normalizer ? fmaxf(fabsf(acc_n), floor_) + p.eps : 1.0f;
      s_c = acc_c;
      if (p.gate == 1) p.m[nh] = m_new;
    }
  }
  __syncthreads();

  float* S = p.s + nh * K * V;
  T* o = static_cast<T*>(p.o) + nh * V;
  for (int c0 = 0; c0 < V; c0 += 32 * W) {
    const int col = c0 + tx * W;
    const bool active = col < V;  // W = 4 only when V % 4 == 0
    float vv[W], acc[W];
#pragma unroll
    for (int w = 0; w < W; ++w) {
      vv[w] = active ? to_f(v[col + w]) : 0.0f;
      acc[w] = 0.0f;
    }
    if (active) {
      int d = ty;
      for (; d + (U - 1) * KS < K; d += U * KS) {
        VT sv[U];
#pragma unroll
        for (int r = 0; r < U; ++r) sv[r] = *reinterpret_cast<const VT*>(S + (int64_t)(d + r * KS) * V + col);
#pragma unroll
        for (int r = 0; r < U; ++r) {
          const int row = d + r * KS;
          const float a = al[row], kk = kb[row], qq = qs[row];
#pragma unroll
          for (int w = 0; w < W; ++w) {
            const float old = vec<W>::get(sv[r], w);
            const float nw = fmaf(a, old, kk * vv[w]);
            acc[w] = fmaf(qq, p.bonus ? old : nw, acc[w]);
            vec<W>::set(sv[r], w, nw);
          }
        }
#pragma unroll
        for (int r = 0; r < U; ++r) *reinterpret_cast<VT*>(S + (int64_t)(d + r * KS) * V + col) = sv[r];
      }
      for (; d < K; d += KS) {
        VT sv = *reinterpret_cast<const VT*>(S + (int64_t)d * V + col);
        const float a = al[d], kk = kb[d], qq = qs[d];
#pragma unroll
        for (int w = 0; w < W; ++w) {
          const float old = vec<W>::get(sv, w);
          const float nw = fmaf(a, old, kk * vv[w]);
          acc[w] = fmaf(qq, p.bonus ? old : nw, acc[w]);
          vec<W>::set(sv, w, nw);
        }
        *reinterpret_cast<VT*>(S + (int64_t)d * V + col) = sv;
      }
    }
#pragma unroll
    for (int w = 0; w < W; ++w) red[ty * 32 * W + tx * W + w] = acc[w];
    __syncthreads();
    if (ty == 0 && active) {
#pragma unroll
      for (int w = 0; w < W; ++w) {
        float sum = 0.0f;
#pragma unroll
        for (int y = 0; y < KS; ++y) sum += red[y * 32 * W + tx * W + w];
        if (p.bonus) sum += s_c * vv[w];
        o[col + w] = from_f<T>(sum / s_den);
      }
    }
    __syncthreads();
  }
}

template <typename T>
::lrnn::cuda::cuda_error launch_typed(const step_params& p, cudaStream_t stream) {
  const bool vec4 = p.V % 4 == 0 && reinterpret_cast<uintptr_t>(p.s) % 16 == 0;
  const dim3 block(32, KS);
  const unsigned grid = static_cast<unsigned>(p.N * p.H);
  const size_t smem = (3 * p.K + KS * 32 * (vec4 ? 4 : 1)) * sizeof(float);
  if (vec4) {
    if (smem > 48 * 1024) LRNN_CUDA_CHECK_RAW(cudaFuncSetAttribute(step_kernel<T, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    step_kernel<T, 4><<<grid, block, smem, stream>>>(p);
    LRNN_CUDA_CHECK_LAUNCH_RAW("decay_attn step_kernel<W=4>");
  } else {
    if (smem > 48 * 1024) LRNN_CUDA_CHECK_RAW(cudaFuncSetAttribute(step_kernel<T, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    step_kernel<T, 1><<<grid, block, smem, stream>>>(p);
    LRNN_CUDA_CHECK_LAUNCH_RAW("decay_attn step_kernel<W=1>");
  }
  return {};
}

}  // namespace

::lrnn::cuda::cuda_error launch_decay_attn_step(const step_params& p, cudaStream_t stream) {
  if (p.N * p.H == 0) return {};
  switch (p.type) {
    case elem::f32: return launch_typed<float>(p, stream);
    case elem::bf16: return launch_typed<__nv_bfloat16>(p, stream);
    case elem::f16: return launch_typed<__half>(p, stream);
  }
  return {cudaErrorInvalidValue, "launch_decay_attn_step: unknown element type", __FILE__, __LINE__};
}

}  // namespace lrnn::ops::cuda_step
