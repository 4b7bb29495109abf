// decay_attn on CUDA: the small per-token pieces around the chunk core (decay_attn.cpp's mapping
// of mLSTM onto the core): the stabiliser scan and its backward, the normaliser, and the
// per-head sum of a per-head-constant decay's gradient.
#include "ops/decay_attn/cuda/chunk_common.cuh"
#include "ops/decay_attn/cuda/chunk_mma.cuh"
#include "ops/decay_attn/cuda/stabiliser.cuh"

#include <atomic>
#include <map>
#include <mutex>
#include <tuple>

namespace lrnn::ops::cuda_chunk {

namespace {

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
  size_t smem, smem_look;
  stab_grid(int N, int H, int64_t max_len)
      : grid(static_cast<unsigned>(std::max<int64_t>(1, (max_len + kBL - 1) / kBL)), static_cast<unsigned>(N)),
        nblk(static_cast<int>(grid.x)), smem(stab_smem(H, false)), smem_look(stab_smem(H, true)) {}
};

// The ways from phase 1 to phase 3 (stabiliser.cuh): three launches, two (look-back), one (cooperative).
enum stab_way : int { w_three = 0, w_look = 1, w_coop = 2 };
std::atomic<int64_t> stab_launch_count[5];  // (by way; [3] the backward tail, [4] the gate scan's)

// The way where LRNN_DA_STAB_LOOK (0, 1, 2: the way) is unset: three launches, the only way that has
// run on a GPU so far (the look-back and cooperative ways are written and compiled, not yet run: their
// test is decay_attn_cuda.stabiliser_scans).
constexpr int kStabWayDefault = w_three;

// Whether `ctas` CTAs of the cooperative kernel `kern` (kBT threads each) can be resident at once
// (occupancy per device, kernel and shared memory, cached).
bool stab_resident(const void* kern, int64_t ctas, size_t smem) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, size_t>, int64_t> cache;  // -> CTAs resident on the device
  std::lock_guard<std::mutex> lock(mu);
  auto [it, fresh] = cache.try_emplace(std::make_tuple(dev, kern, smem), 0);
  if (fresh) {
    int coop = 0, sms = 0, per = 0;
    if (cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev) == cudaSuccess && coop &&
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess &&
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, kern, kBT, smem) == cudaSuccess)
      it->second = static_cast<int64_t>(per) * sms;
    else
      cudaGetLastError();  // (a failed query: no cooperative launch)
  }
  return ctas <= it->second;
}

// The way for a call: LRNN_DA_STAB_LOOK or kStabWayDefault; the look-back only where each thread composes
// at most 8 batches of maps (kLB; H = 16: sequences up to 1024 blocks) and its shared memory fits 48 KiB,
// else three launches; the cooperative launch only where the grid is resident, else the look-back.
int stab_way_for(const stab_grid& sg, int H, const void* coop_kernel, size_t coop_smem) {
  const char* e = getenv("LRNN_DA_STAB_LOOK");
  int w = e && e[0] >= '0' && e[0] <= '2' && e[1] == 0 ? e[0] - '0' : kStabWayDefault;
  const int NS = stab_segs(H);
  if (w != w_three && ((sg.nblk + NS - 1) / NS > 8 * kLB || sg.smem_look > 48 * 1024)) w = w_three;
  if (w == w_coop && !stab_resident(coop_kernel, static_cast<int64_t>(sg.grid.x) * sg.grid.y, coop_smem)) w = w_look;
  return w;
}

// A cooperative launch of kern on the grid (kBT threads per CTA), counted in stab_launch_count[count]:
// 0, -1 where the GPU refused the grid as too large after all (e.g. under MPS; the error is cleared,
// the caller takes its other way), else the CUDA error.
int coop_launch(const void* kern, dim3 grid, void** args, size_t smem, cudaStream_t st, int count) {
  const cudaError_t e = cudaLaunchCooperativeKernel(kern, grid, dim3(kBT), args, smem, st);
  if (e == cudaErrorCooperativeLaunchTooLarge) {
    cudaGetLastError();
    return -1;
  }
  if (e == cudaSuccess) ++stab_launch_count[count];
  return static_cast<int>(e);
}

// Phases 1 and 3 of a scan (ks: its block kernel per stab_mode) by `way`; carry() launches phase 2 (w_three).
template <typename Args, typename Carry>
int stab_run(int way, const stab_grid& sg, Args a, void (*const ks[4])(Args), Carry&& carry) {
  const cudaStream_t st = launch_stream();
  if (way == w_coop) {
    void* args[] = {&a};
    const int r = coop_launch(reinterpret_cast<const void*>(ks[k_coop]), sg.grid, args, sg.smem_look, st, w_coop);
    if (r != -1) return r;
    way = w_look;  // (refused: two launches)
  }
  ks[k_maps]<<<sg.grid, kBT, sg.smem, st>>>(a);
  if (way == w_look) {
    ks[k_look]<<<sg.grid, kBT, sg.smem_look, st>>>(a);
  } else {
    carry(st);
    ks[k_entry]<<<sg.grid, kBT, sg.smem, st>>>(a);
  }
  ++stab_launch_count[way];
  return static_cast<int>(cudaGetLastError());
}
}  // namespace

void stabiliser_launches(int64_t out[5]) {
  for (int w = 0; w < 5; ++w) out[w] = stab_launch_count[w].load();
}

int stabiliser_scan(int N, int H, int64_t max_len, const int32_t* offsets, const float* g, int gmode, const float* i,
                    const float* m0, float* m, float* gt, float* bt, float* mT, float* scratch) {
  if (N * H == 0) return 0;
  const stab_grid sg(N, H, max_len);
  if (sg.smem > 48 * 1024) return static_cast<int>(cudaErrorInvalidValue);
  float2* maps = reinterpret_cast<float2*>(scratch);
  float* entry = scratch + 2 * static_cast<size_t>(N) * sg.nblk * H;
  static void (*const ks[4])(stab_fwd_args) = {stab_fwd_blocks<k_maps>, stab_fwd_blocks<k_entry>, stab_fwd_blocks<k_look>,
                                               stab_fwd_blocks<k_coop>};
  const int way = stab_way_for(sg, H, reinterpret_cast<const void*>(ks[k_coop]), sg.smem_look);
  const stab_fwd_args a{H, offsets, g, i, m0, gmode, maps, entry, m, gt, bt, mT};
  return stab_run(way, sg, a, ks, [&](cudaStream_t st) {
    stab_fwd_carry<<<blocks(static_cast<int64_t>(N) * H, 128), 128, 0, st>>>(N, H, sg.nblk, offsets, maps, m0, entry, mT);
  });
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
  static void (*const ks[4])(stab_bwd_args) = {stab_bwd_blocks<k_maps>, stab_bwd_blocks<k_entry>, stab_bwd_blocks<k_look>,
                                               stab_bwd_blocks<k_coop>};
  const int way = stab_way_for(sg, H, reinterpret_cast<const void*>(ks[k_coop]), sg.smem_look);
  const stab_bwd_args a{H, K, offsets, g, i, m0, m, dg, db, dm_local, gmode, dgs_out, di, maps, entry, dmT, F, dm0};
  return stab_run(way, sg, a, ks, [&](cudaStream_t st) {
    stab_bwd_carry<<<blocks(static_cast<int64_t>(N) * H, 128), 128, 0, st>>>(N, H, K, sg.nblk, offsets, maps, dmT, F, dg, entry,
                                                                             dm0);
  });
}

int stabilised_backward_tail(const core_args& a, const finish_io& fi, const float* g, int gmode, const float* i, const float* m0,
                             const float* m, const float* dm_local, const float* dmT, float* dgs_out, float* di, float* dm0,
                             float* scratch) {
  if (a.N * a.H == 0 || a.tokens == 0) return -1;
  if (!fi.core_wrote_dqdk || !fi.scratch || !fi.dgs || fi.gk || a.u || a.H > kSBT || !dm_local) return -1;
  const stab_grid sg(a.N, a.H, a.max_len);
  const size_t smem = sg.smem_look + xy_block_smem(a.H);
  if (smem > 48 * 1024) return -1;
  auto kern = stab_bwd_blocks<k_tail>;
  if (stab_way_for(sg, a.H, reinterpret_cast<const void*>(kern), smem) != w_coop) return -1;
  const float* xy = fi.scratch;  // (X, Y) per token and head, then the scan's block totals (finish_scratch_floats)
  stab_bwd_args sa{a.H, a.K, a.offsets, g, i, m0, m, fi.dgs, xy + 1, dm_local, gmode, dgs_out, di,
                   reinterpret_cast<float2*>(scratch), nullptr, dmT, fi.F, dm0};
  sa.db_stride = 2;
  sa.xs = xy_args_of(a, fi);
  sa.tot = reinterpret_cast<double*>(fi.scratch + a.tokens * a.H * 2);
  void* args[] = {&sa};
  return coop_launch(reinterpret_cast<const void*>(kern), sg.grid, args, smem, launch_stream(), 3);
}

int scalar_scan_cooperative(const core_args& a, const finish_io& io, float* db) {
  if (a.N * a.H == 0 || a.tokens == 0 || a.H > kSBT || !io.dgs || !io.scratch) return -1;
  const stab_grid sg(a.N, a.H, a.max_len);  // (the scan's blocks are the stabiliser's: kSBlk = kBL)
  const size_t smem = xy_block_smem(a.H);
  const void* kern = reinterpret_cast<const void*>(scalar_gate_coop);
  if (stab_way_for(sg, a.H, kern, smem) != w_coop) return -1;
  xy_scan_args xa = xy_args_of(a, io);
  double* tot = reinterpret_cast<double*>(io.scratch + a.tokens * a.H * 2);
  void* args[] = {&xa, &tot, &db};
  static_assert(kSBT == kBT, "scalar_gate_coop's CTAs are the stabiliser's");
  return coop_launch(kern, sg.grid, args, smem, launch_stream(), 4);
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
