// decay_attn chunk form on CUDA, forward: one CTA per (sequence, head, V tile) sweeps the chunks
// in order with the state tile S [K, VT] in fp32 shared memory (no chunk state reaches HBM):
//   O = Qg S + P V' (+ bonus),  S = Diag(exp(G_L)) S + Kd^T V'   (README.md, "CUDA").
#include "ops/decay_attn/cuda/chunk_common.cuh"
#include "ops/decay_attn/cuda/chunk_tc.h"


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


}  // namespace

int core_forward(const core_args& a, const fwd_out& o) {
  if (a.K > kMaxK || a.K < 1) return static_cast<int>(cudaErrorInvalidValue);
  if (a.N == 0 || a.H == 0 || a.V == 0) return 0;
  if (tc_forward_eligible(a, o)) return tc_forward(a, o);
  if (o.den) return static_cast<int>(cudaErrorInvalidValue);  // (the fused normaliser is the tensor cores' only)
  return with_type(a.type, [&](auto* tag) {
    using TI = std::remove_pointer_t<decltype(tag)>;
    return launch<TI>(a, o);
  });
}

}  // namespace lrnn::ops::cuda_chunk
