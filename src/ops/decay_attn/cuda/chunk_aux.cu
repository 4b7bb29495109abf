// decay_attn on CUDA: the small per-token pieces around the chunk core (decay_attn.cpp's mapping
// of mLSTM onto the core): the stabiliser scan and its backward, the normaliser, and the
// per-head sum of a per-head-constant decay's gradient.
#include "ops/decay_attn/cuda/chunk_common.cuh"

namespace lrnn::ops::cuda_chunk {

namespace {

__device__ __forceinline__ float gate_at(const float* g, int gmode, int64_t t, int H, int h) {
  return gmode == g_head ? g[h] : gmode == g_scalar ? g[t * H + h] : 0.f;
}

// One thread per (sequence, head); loads go out in batches of kB tokens ahead of the sequential max.
constexpr int kB = 16;

__global__ void stab_scan_kernel(int N, int H, const int32_t* offsets, const float* g, int gmode, const float* in,
                                 const float* m0, float* m, float* gt, float* bt, float* mT) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= N * H) return;
  const int n = idx / H, h = idx % H;
  float mp = m0 ? m0[idx] : 0.f;
  const int64_t tb = offsets[n], te = offsets[n + 1];
  for (int64_t t0 = tb; t0 < te; t0 += kB) {
    float gs[kB], it[kB];
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      const int64_t t = t0 + r;
      gs[r] = t < te ? gate_at(g, gmode, t, H, h) : 0.f;
      it[r] = t < te ? in[t * H + h] : 0.f;
    }
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      const int64_t t = t0 + r;
      if (t >= te) break;
      const int64_t o = t * H + h;
      const float mt = fmaxf(gs[r] + mp, it[r]);
      m[o] = mt;
      gt[o] = fminf(0.f, gs[r] + mp - mt);
      bt[o] = fminf(0.f, it[r] - mt);
      mp = mt;
    }
  }
  if (mT) mT[idx] = mp;
}

__global__ void stab_bwd_kernel(int N, int H, const int32_t* offsets, const float* g, int gmode, const float* in,
                                const float* m0, const float* m, const float* dg, const float* db, const float* dm_local,
                                const float* dmT, float* dgs_out, float* di, float* dm0) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= N * H) return;
  const int n = idx / H, h = idx % H;
  const int64_t tb = offsets[n], te = offsets[n + 1];
  const float mfirst = m0 ? m0[idx] : 0.f;
  float carry = dmT ? dmT[idx] : 0.f;
  for (int64_t t1 = te - 1; t1 >= tb; t1 -= kB) {
    float dgv[kB], dbv[kB], dml[kB], mpv[kB], gv[kB], iv[kB];
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      const int64_t t = t1 - r;
      const bool ok = t >= tb;
      const int64_t o = t * H + h;
      dgv[r] = ok && dg ? dg[o] : 0.f;
      dbv[r] = ok ? db[o] : 0.f;
      dml[r] = ok && dm_local ? dm_local[o] : 0.f;
      mpv[r] = ok ? (t > tb ? m[o - H] : mfirst) : 0.f;
      gv[r] = ok ? gate_at(g, gmode, t, H, h) : 0.f;
      iv[r] = ok ? in[o] : 0.f;
    }
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      const int64_t t = t1 - r;
      if (t < tb) break;
      const int64_t o = t * H + h;
      const float dm = carry + dml[r] - dgv[r] - dbv[r];
      float dgo = dgv[r], dio = dbv[r];
      carry = dgv[r];
      if (gv[r] + mpv[r] >= iv[r]) {
        dgo += dm;
        carry += dm;
      } else {
        dio += dm;
      }
      dgs_out[o] = dgo;
      di[o] = dio;
    }
  }
  if (dm0) dm0[idx] = carry;
}

template <typename TO>
__global__ void norm_fwd_kernel(int64_t rows, int Vin, const float* op, const float* m, float eps, TO* o) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= rows * Vin) return;
  const int64_t r = e / Vin;
  const int j = static_cast<int>(e % Vin);
  const float* orow = op + r * (Vin + 1);
  const float fl = m ? expf(-m[r]) : 1.f;
  const float den = fmaxf(fabsf(orow[Vin]), fl) + eps;
  stf(o + e, orow[j] / den);
}

// dop [rows, Vin + 1] fp32 (TO = float, ld Vin + 1), or split (TO = the input type, ld Vin, column
// Vin into dncol).
template <typename TD, typename TO>
__global__ void norm_bwd_kernel(int64_t rows, int Vin, const float* op, const float* m, float eps, const TD* d_o,
                                TO* dop, float* dncol, float* dm_local) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const bool split = dncol != nullptr;
  const float* orow = op + r * (Vin + 1);
  const TD* dh = d_o + r * Vin;
  TO* dn = dop + r * (split ? Vin : Vin + 1);
  const float fl = m ? expf(-m[r]) : 1.f;
  const float den = fmaxf(fabsf(orow[Vin]), fl) + eps;
  float hd = 0.f;
  for (int j = 0; j < Vin; ++j) {
    const float x = ldf(dh + j);
    stf(dn + j, x / den);
    hd += orow[j] / den * x;
  }
  float last = 0.f;
  if (fabsf(orow[Vin]) > fl) {
    last = (orow[Vin] > 0 ? -hd : hd) / den;
    if (dm_local) dm_local[r] = 0.f;
  } else {
    if (dm_local) dm_local[r] = hd / den * fl;
  }
  if (split) dncol[r] = last;
  else stf(dn + Vin, last);
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

unsigned blocks(int64_t n, int per) { return static_cast<unsigned>((n + per - 1) / per); }

}  // namespace

int stabiliser_scan(int N, int H, const int32_t* offsets, const float* g, int gmode, const float* i, const float* m0,
                    float* m, float* gt, float* bt, float* mT) {
  if (N * H == 0) return 0;
  stab_scan_kernel<<<blocks(N * H, 128), 128, 0, launch_stream()>>>(N, H, offsets, g, gmode, i, m0, m, gt, bt, mT);
  return static_cast<int>(cudaGetLastError());
}

int stabiliser_backward(int N, int H, const int32_t* offsets, const float* g, int gmode, const float* i,
                        const float* m0, const float* m, const float* dg, const float* db, const float* dm_local,
                        const float* dmT, float* dgs_out, float* di, float* dm0) {
  if (N * H == 0) return 0;
  stab_bwd_kernel<<<blocks(N * H, 128), 128, 0, launch_stream()>>>(N, H, offsets, g, gmode, i, m0, m, dg, db, dm_local, dmT, dgs_out, di, dm0);
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
    norm_bwd_kernel<TD, float><<<blocks(rows, 128), 128, 0, launch_stream()>>>(rows, Vin, op, m, eps, static_cast<const TD*>(d_o),
                                                                              dop, nullptr, dm_local);
    return static_cast<int>(cudaGetLastError());
  });
}

int normalise_backward_split(int64_t rows, int Vin, const float* op, const float* m, float eps, const void* d_o,
                             int type, void* dop_t, float* dn, float* dm_local) {
  if (rows == 0) return 0;
  if (!dn) return static_cast<int>(cudaErrorInvalidValue);
  return with_type(type, [&](auto* tag) {
    using TD = std::remove_pointer_t<decltype(tag)>;
    norm_bwd_kernel<TD, TD><<<blocks(rows, 128), 128, 0, launch_stream()>>>(rows, Vin, op, m, eps, static_cast<const TD*>(d_o),
                                                                           static_cast<TD*>(dop_t), dn, dm_local);
    return static_cast<int>(cudaGetLastError());
  });
}

int64_t shared_memory_limit() { return static_cast<int64_t>(smem_limit()); }

int sum_tokens(int64_t tokens, int H, const float* x, float* out) {
  if (H == 0) return 0;
  sum_tokens_kernel<<<H, 256, 0, launch_stream()>>>(tokens, H, x, out);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace lrnn::ops::cuda_chunk
