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

// The stabiliser's recurrences, one CTA of kST threads per (sequence, head), as two-level scans:
// each thread takes a contiguous segment of tokens, its segment's map is composed (forward
// m -> max(m + A, B), a max-plus affine map; backward carry -> P carry + Q with P in {0, 1}), a CTA
// scan of the segment maps gives every segment's incoming value, then each thread runs its segment.
constexpr int kST = 256;

struct seg_span {
  int64_t tb, te;
};
__device__ __forceinline__ seg_span thread_segment(const int32_t* offsets, int n) {
  const int64_t sb = offsets[n], se = offsets[n + 1];
  const int64_t len = (se - sb + kST - 1) / kST;
  const int64_t tb = sb + threadIdx.x * len < se ? sb + threadIdx.x * len : se;
  return {tb, tb + len < se ? tb + len : se};
}

// Each thread walks its segment in batches of kSB tokens whose loads are all issued before the
// batch's sequential steps: the backward 168 -> 139 us at B = 2, T = 16384, the scan unchanged at
// ~98 us (profiles of two device runs). Both are bound by their H-strided loads (one 32-byte sector
// per token) on N x H CTAs; branch wip/stab-tiled reads all heads per CTA instead.
constexpr int kSB = 16;

__global__ void stab_scan_kernel(int H, const int32_t* __restrict__ offsets, const float* __restrict__ g, int gmode,
                                 const float* __restrict__ in, const float* __restrict__ m0, float* __restrict__ m,
                                 float* __restrict__ gt, float* __restrict__ bt, float* __restrict__ mT) {
  const int idx = blockIdx.x, h = idx % H, n = idx / H, j = threadIdx.x;
  const seg_span sp = thread_segment(offsets, n);
  float gs[kSB], iv[kSB];
  auto load = [&](int64_t t0, int nb) {
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) gs[r] = gate_at(g, gmode, t0 + r, H, h), iv[r] = in[(t0 + r) * H + h];
  };
  // This segment's map m -> max(m + A, B).
  float A = 0.f, B = -INFINITY;
  for (int64_t t0 = sp.tb; t0 < sp.te; t0 += kSB) {
    const int nb = static_cast<int>(sp.te - t0 < kSB ? sp.te - t0 : kSB);
    load(t0, nb);
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) A += gs[r], B = fmaxf(B + gs[r], iv[r]);
  }
  __shared__ float sA[kST], sB[kST], sIn[kST];
  sA[j] = A, sB[j] = B;
  __syncthreads();
  if (j == 0) {
    float cur = m0 ? m0[idx] : 0.f;
    for (int x = 0; x < kST; ++x) {
      sIn[x] = cur;
      cur = fmaxf(cur + sA[x], sB[x]);
    }
    if (mT) mT[idx] = cur;
  }
  __syncthreads();
  float mp = sIn[j];
  for (int64_t t0 = sp.tb; t0 < sp.te; t0 += kSB) {
    const int nb = static_cast<int>(sp.te - t0 < kSB ? sp.te - t0 : kSB);
    load(t0, nb);
#pragma unroll
    for (int r = 0; r < kSB; ++r) {
      if (r >= nb) break;
      const int64_t o = (t0 + r) * H + h;
      const float mt = fmaxf(gs[r] + mp, iv[r]);
      m[o] = mt;
      gt[o] = fminf(0.f, gs[r] + mp - mt);
      bt[o] = fminf(0.f, iv[r] - mt);
      mp = mt;
    }
  }
}

// Backward through the stabiliser, per token from the last (decay_attn.cpp): dm = carry + dm_local,
// the carry into token T being dmT - <S_T, dS_T> (F summed over keys); the token's decay gradient
// gets dm where m took the decay branch (g + m_prev >= i), else the input gate's does; the carry to
// the previous token is dm on the decay branch, else 0. d m0 = dg at the first token (its exact
// anchor <S_0, dS_0>) + the carry out of it; dmT for an empty sequence.
__global__ void stab_bwd_kernel(int H, int K, const int32_t* __restrict__ offsets, const float* __restrict__ g, int gmode,
                                const float* __restrict__ in, const float* __restrict__ m0, const float* __restrict__ m,
                                const float* __restrict__ dg, const float* __restrict__ db, const float* __restrict__ dm_local,
                                const float* __restrict__ dmT, const float* __restrict__ F, float* __restrict__ dgs_out,
                                float* __restrict__ di, float* __restrict__ dm0) {
  const int idx = blockIdx.x, h = idx % H, n = idx / H, j = threadIdx.x;
  const int64_t sb = offsets[n], se = offsets[n + 1];
  const float mfirst = m0 ? m0[idx] : 0.f;
  const seg_span sp = thread_segment(offsets, n);
  // Batches from the segment's end: token t1 - 1 - r for r < nb.
  bool dec[kSB];
  float dml[kSB];
  auto load = [&](int64_t t1, int nb) {
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        const int64_t t = t1 - 1 - r, o = t * H + h;
        dec[r] = gate_at(g, gmode, t, H, h) + (t > sb ? m[o - H] : mfirst) >= in[o];
        dml[r] = dm_local[o];
      }
  };
  // This segment's map carry_in (after its last token) -> P carry_in + Q (before its first).
  float P = 1.f, Q = 0.f;
  for (int64_t t1 = sp.te; t1 > sp.tb; t1 -= kSB) {
    const int nb = static_cast<int>(t1 - sp.tb < kSB ? t1 - sp.tb : kSB);
    load(t1, nb);
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        if (dec[r]) Q += dml[r];
        else P = Q = 0.f;
      }
  }
  __shared__ float sP[kST], sQ[kST], sIn[kST];
  sP[j] = P, sQ[j] = Q;
  __syncthreads();
  if (j == 0) {
    const float up = dmT ? dmT[idx] : 0.f;
    float cur = up;
    if (F)
      for (int d = 0; d < K; ++d) cur -= F[static_cast<size_t>(idx) * K + d];
    for (int x = kST - 1; x >= 0; --x) {
      sIn[x] = cur;
      cur = sP[x] * cur + sQ[x];
    }
    if (dm0) dm0[idx] = se > sb ? (dg ? dg[sb * H + h] : 0.f) + cur : up;
  }
  __syncthreads();
  float carry = sIn[j];
  for (int64_t t1 = sp.te; t1 > sp.tb; t1 -= kSB) {
    const int nb = static_cast<int>(t1 - sp.tb < kSB ? t1 - sp.tb : kSB);
    load(t1, nb);
    float dgv[kSB], dbv[kSB];
#pragma unroll
    for (int r = 0; r < kSB; ++r)
      if (r < nb) {
        const int64_t o = (t1 - 1 - r) * H + h;
        dgv[r] = dg ? dg[o] : 0.f, dbv[r] = db[o];
      }
#pragma unroll
    for (int r = 0; r < kSB; ++r) {
      if (r >= nb) break;
      const int64_t o = (t1 - 1 - r) * H + h;
      const float dm = carry + dml[r];
      dgs_out[o] = dgv[r] + (dec[r] ? dm : 0.f);
      di[o] = dbv[r] + (dec[r] ? 0.f : dm);
      carry = dec[r] ? dm : 0.f;
    }
  }
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
  return fabsf(dv) > fl ? (dv > 0 ? -hd : hd) / den : 0.f;
}

// dop [rows, Vin + 1] fp32 (TO = float, ld Vin + 1), or split (TO = the input type, ld Vin, column
// Vin into dncol). From o' (TS = float: op [rows, Vin + 1], dsrc null) or from the normalised o
// (TS = the input type: op [rows, Vin], dsrc = den [rows]).
// One warp per row (lanes over the columns).
template <typename TD, typename TO, typename TS = float>
__global__ void norm_bwd_kernel(int64_t rows, int Vin, const TS* op, const float* m, float eps, const TD* d_o,
                                TO* dop, float* dncol, float* dm_local, const float* dsrc = nullptr) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const bool split = dncol != nullptr;
  const TS* orow = op + r * (dsrc ? Vin : Vin + 1);
  const TD* dh = d_o + r * Vin;
  TO* dn = dop + r * (split ? Vin : Vin + 1);
  const float fl = m ? expf(-m[r]) : 1.f;
  const float dv = dsrc ? dsrc[r] : ldf(orow + Vin);  // o'[Vin]
  const float den = norm_divisor(dv, fl, eps);
  const float os = dsrc ? 1.f : 1.f / den;  // o'[j] -> o[j]
  float hd = 0.f;
  for (int j = lane; j < Vin; j += 32) {
    const float x = ldf(dh + j);
    stf(dn + j, x / den);
    hd += ldf(orow + j) * os * x;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) hd += __shfl_xor_sync(0xffffffffu, hd, o);
  if (lane != 0) return;
  const float last = norm_bwd_row_end(hd, dv, fl, den, eps, dm_local, r);
  if (split) dncol[r] = last;
  else stf(dn + Vin, last);
}

// norm_bwd_kernel from (o, den) for 16-bit types with Vin % 4 == 0: four columns per lane and load.
template <typename T>
__global__ void norm_bwd_den_vec(int64_t rows, int Vin, const T* o, const float* den, const float* m, float eps,
                                 const T* d_o, T* dop, float* dncol, float* dm_local) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float fl = m ? expf(-m[r]) : 1.f;
  const float dv = den[r], dd = norm_divisor(dv, fl, eps), inv = 1.f / dd;
  float hd = 0.f;
  for (int j = 4 * lane; j < Vin; j += 128) {
    const size_t off = static_cast<size_t>(r) * Vin + j;
    const uint2 ov = *reinterpret_cast<const uint2*>(o + off), gv = *reinterpret_cast<const uint2*>(d_o + off);
    const float2 o0 = mma::unpack2<T>(ov.x), o1 = mma::unpack2<T>(ov.y);
    const float2 g0 = mma::unpack2<T>(gv.x), g1 = mma::unpack2<T>(gv.y);
    hd += o0.x * g0.x + o0.y * g0.y + o1.x * g1.x + o1.y * g1.y;
    *reinterpret_cast<uint2*>(dop + off) = make_uint2(mma::pack2<T>(g0.x * inv, g0.y * inv), mma::pack2<T>(g1.x * inv, g1.y * inv));
  }
#pragma unroll
  for (int x = 16; x > 0; x >>= 1) hd += __shfl_xor_sync(0xffffffffu, hd, x);
  if (lane == 0) dncol[r] = norm_bwd_row_end(hd, dv, fl, dd, eps, dm_local, r);
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

int stabiliser_scan(int N, int H, const int32_t* offsets, const float* g, int gmode, const float* i, const float* m0,
                    float* m, float* gt, float* bt, float* mT) {
  if (N * H == 0) return 0;
  stab_scan_kernel<<<static_cast<unsigned>(N * H), kST, 0, launch_stream()>>>(H, offsets, g, gmode, i, m0, m, gt, bt, mT);
  return static_cast<int>(cudaGetLastError());
}

int stabiliser_backward(int N, int H, int K, const int32_t* offsets, const float* g, int gmode, const float* i,
                        const float* m0, const float* m, const float* dg, const float* db, const float* dm_local,
                        const float* dmT, const float* F, float* dgs_out, float* di, float* dm0) {
  if (N * H == 0) return 0;
  if (!dm_local || !db) return static_cast<int>(cudaErrorInvalidValue);
  stab_bwd_kernel<<<static_cast<unsigned>(N * H), kST, 0, launch_stream()>>>(H, K, offsets, g, gmode, i, m0, m, dg, db, dm_local,
                                                                             dmT, F, dgs_out, di, dm0);
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
    norm_bwd_kernel<TD, float><<<blocks(rows * 32, 128), 128, 0, launch_stream()>>>(rows, Vin, op, m, eps, static_cast<const TD*>(d_o),
                                                                              dop, nullptr, dm_local);
    return static_cast<int>(cudaGetLastError());
  });
}

int normalise_backward_den(int64_t rows, int Vin, const void* o, const float* den, const float* m, float eps,
                           const void* d_o, int type, void* dop_t, float* dn, float* dm_local) {
  if (rows == 0) return 0;
  if (!dn || !den) return static_cast<int>(cudaErrorInvalidValue);
  return with_type(type, [&](auto* tag) {
    using TD = std::remove_pointer_t<decltype(tag)>;
    if constexpr (sizeof(TD) == 2) {
      auto al8 = [](const void* x) { return reinterpret_cast<uintptr_t>(x) % 8 == 0; };
      if (Vin % 4 == 0 && al8(o) && al8(d_o) && al8(dop_t)) {
        norm_bwd_den_vec<TD><<<blocks(rows * 32, 128), 128, 0, launch_stream()>>>(
            rows, Vin, static_cast<const TD*>(o), den, m, eps, static_cast<const TD*>(d_o), static_cast<TD*>(dop_t), dn, dm_local);
        return static_cast<int>(cudaGetLastError());
      }
    }
    norm_bwd_kernel<TD, TD, TD><<<blocks(rows * 32, 128), 128, 0, launch_stream()>>>(
        rows, Vin, static_cast<const TD*>(o), m, eps, static_cast<const TD*>(d_o), static_cast<TD*>(dop_t), dn, dm_local, den);
    return static_cast<int>(cudaGetLastError());
  });
}

int normalise_backward_split(int64_t rows, int Vin, const float* op, const float* m, float eps, const void* d_o,
                             int type, void* dop_t, float* dn, float* dm_local) {
  if (rows == 0) return 0;
  if (!dn) return static_cast<int>(cudaErrorInvalidValue);
  return with_type(type, [&](auto* tag) {
    using TD = std::remove_pointer_t<decltype(tag)>;
    norm_bwd_kernel<TD, TD><<<blocks(rows * 32, 128), 128, 0, launch_stream()>>>(rows, Vin, op, m, eps, static_cast<const TD*>(d_o),
                                                                           static_cast<TD*>(dop_t), dn, dm_local);
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
