// decay_attn chunk form on CUDA, backward. One CTA per (sequence, head, V tile), two sweeps and
// no stored chunk states (memory O(T D)): a forward sweep recomputes S chunk by chunk for the
// state part of dq (and F = rowsum(S_T * dS_T)); a reverse sweep carries dS for dk, dv, the
// intra-chunk parts and d_initial_state. dq, dk are partial over V tiles and summed with atomics
// in fp32; finish_backward then forms the gate gradients (reverse cumulative sums), the input
// gate's db, the bonus terms, and writes dq, dk in the input dtype (README.md, "CUDA").
#include "ops/decay_attn/cuda/chunk_common.cuh"
#include "ops/decay_attn/cuda/chunk_tc.h"
#include "ops/decay_attn/cuda/gate_scan.cuh"

namespace lrnn::ops::cuda_chunk {

namespace {

constexpr int kVTb = 32;

// With io.dgh (a per-head decay g without the bonus) the decay's gradient as pair sums,
// sum_{i <= s} (s - i) A_si + <M_T, dS_T> with A_si = P_si (do_s . v_i) (chunk_tc.cu, tc_dq's MOM):
// within a chunk in the reverse sweep (from P and dP's dot products), across chunks in the forward
// sweep with the moment state M (Ms) next to S; per-CTA partials into io.dgh_part.
template <typename TI, typename TD>
__global__ void __launch_bounds__(kThreads) bwd_kernel(core_args a, bwd_io io) {
  extern __shared__ __align__(128) unsigned char sm[];
  const bool mom = io.dgh != nullptr;
  cta<TI, kVTb> c(a, sm, true, mom);
  double dg = 0.0;  // mom: this thread's part of the decay gradient
  const int SS = c.SS, KS = c.KS, K = c.K, H = c.H, h = c.h;
  const int tb = a.offsets[c.n], te = a.offsets[c.n + 1];
  const TD* dO = static_cast<const TD*>(io.d_o);
  const int ld_do = io.do_f32 ? a.V : a.Vin;
  const size_t srow = (static_cast<size_t>(c.n) * H + h) * K;
  auto state_at = [&](const float* s, const float* nrm, int d, int col) -> float {
    if (col < a.Vin) return s ? s[(srow + d) * a.Vin + col] : 0.f;
    return nrm ? nrm[srow + d] : 0.f;
  };

  // Forward sweep: dq += scale exp(Gq) * (dO S^T) (mom: and the rows' terms scale exp(g (i + 1))
  // q_i^T ((i + 1) S + M) do_i, M swept next to S).
  c.load_state(a.s0, a.n0);
  if (mom)
    for (int e = threadIdx.x; e < K * kVTb; e += blockDim.x) c.Ms[(e / kVTb) * SS + e % kVTb] = 0.f;
  for (int t0 = tb; t0 < te; t0 += kC) {
    const int L = min(kC, te - t0);
    c.template load_chunk<TD>(t0, L, dO, ld_do);
    __syncthreads();
    float part = 0.f;
    for (int e = threadIdx.x; e < kC * K; e += blockDim.x) {
      const int i = e / K, d = e % K;
      if (i >= L) continue;
      float acc = 0.f;
      const float* doi = c.dOs + i * SS;
      for (int col = 0; col < kVTb; ++col) acc += doi[col] * c.Ss[d * SS + col];
      const float w = a.scale * expf(static_cast<float>(c.Gq(i, d)));
      atomicAdd(io.dq + (static_cast<size_t>(t0 + i) * H + h) * K + d, w * acc);
      if (mom) {
        float accm = 0.f;
        for (int col = 0; col < kVTb; ++col) accm += doi[col] * c.Ms[d * SS + col];
        part += c.Qs[i * KS + d] * w * (static_cast<float>(i + 1) * acc + accm);
      }
    }
    dg += part;
    c.decay_qk(L);
    __syncthreads();
    if (mom) c.update_moment(L);  // (each thread's own elements of S, before update_state)
    c.update_state(L, c.Vs);
    __syncthreads();
  }
  if (mom && (io.dsf || io.dnf)) {
    float part = 0.f;
    for (int e = threadIdx.x; e < K * kVTb; e += blockDim.x) {
      const int d = e / kVTb, col = e % kVTb;
      if (col < c.vw) part += c.Ms[d * SS + col] * state_at(io.dsf, io.dnf, d, c.v0 + col);
    }
    dg += part;
  }
  if (io.F && (io.dsf || io.dnf))
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
      float acc = 0.f;
      for (int col = 0; col < c.vw; ++col) acc += c.Ss[d * SS + col] * state_at(io.dsf, io.dnf, d, c.v0 + col);
      atomicAdd(io.F + srow + d, acc);
    }
  __syncthreads();

  // Reverse sweep with dS (in Ss).
  c.load_state(io.dsf, io.dnf);
  const int nchunks = (te - tb + kC - 1) / kC;
  for (int ci = nchunks - 1; ci >= 0; --ci) {
    const int t0 = tb + ci * kC, L = min(kC, te - t0);
    c.template load_chunk<TD>(t0, L, dO, ld_do);
    __syncthreads();
    c.compute_P(L);
    if (c.bonus) c.compute_cb(L);
    // dP = dO V^T on visible pairs; scalar gates: times the decay (M = dP * D / scale). mom: the
    // pairs' (i - j) P_ij (do_i . v_j) (P_ij written by this thread in compute_P).
    float part = 0.f;
    for (int e = threadIdx.x; e < kC * kC; e += blockDim.x) {
      const int i = e / kC, j = e % kC;
      float p = 0.f;
      if (c.visible(i, j, L)) {
        const float* doi = c.dOs + i * SS;
        const float* vj = c.Vs + j * SS;
        for (int col = 0; col < kVTb; ++col) p += doi[col] * vj[col];
        if (mom) part += static_cast<float>(i - j) * c.Ps[i * (kC + 1) + j] * p;
        if (!c.key) p *= expf(static_cast<float>(c.Gq(i, 0) - c.G(j, 0))) * c.bs[j];
      }
      c.dPs[i * (kC + 1) + j] = p;
    }
    dg += part;
    if (c.bonus) {
      const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
      for (int i = w; i < L; i += nw) {
        float s = 0.f;
        for (int col = l; col < kVTb; col += 32) s += c.Vs[i * SS + col] * c.dOs[i * SS + col];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (l == 0) atomicAdd(io.rho + static_cast<size_t>(t0 + i) * H + h, s);
      }
    }
    __syncthreads();
    // Intra-chunk dq, dk (raw Q, K) and the state part of dk.
    for (int e = threadIdx.x; e < kC * K; e += blockDim.x) {
      const int i = e / K, d = e % K;
      if (i >= L) continue;
      float dq = 0.f, dk = 0.f;
      const float* dpi = c.dPs + i * (kC + 1);
      if (c.key) {
        const double gqi = c.Gq(i, d), gi = c.G(i, d);
        const int jmax = c.bonus ? i - 1 : i;
        for (int j = 0; j <= jmax; ++j)
          dq += dpi[j] * c.bs[j] * c.Ks[j * KS + d] * expf(static_cast<float>(gqi - c.G(j, d)));
        for (int r = c.bonus ? i + 1 : i; r < L; ++r)
          dk += c.dPs[r * (kC + 1) + i] * c.Qs[r * KS + d] * expf(static_cast<float>(c.Gq(r, d) - gi));
        dk *= c.bs[i];
      } else {
        for (int j = 0; j <= i; ++j) dq += dpi[j] * c.Ks[j * KS + d];
        for (int r = i; r < L; ++r) dk += c.dPs[r * (kC + 1) + i] * c.Qs[r * KS + d];
      }
      float vds = 0.f;
      const float* vi = c.Vs + i * SS;
      for (int col = 0; col < kVTb; ++col) vds += vi[col] * c.Ss[d * SS + col];
      dk = a.scale * dk + expf(static_cast<float>(c.G(L - 1, d) - c.G(i, d))) * c.bs[i] * vds;
      const size_t off = (static_cast<size_t>(t0 + i) * H + h) * K + d;
      atomicAdd(io.dq + off, a.scale * dq);
      atomicAdd(io.dk + off, dk);
    }
    __syncthreads();
    c.decay_qk(L);
    __syncthreads();
    // dv = P^T dO + Kd dS (+ bonus).
    for (int e = threadIdx.x; e < kC * kVTb; e += blockDim.x) {
      const int j = e / kVTb, col = e % kVTb;
      if (j >= L || col >= c.vw || c.v0 + col >= a.Vin) continue;
      float acc = 0.f;
      for (int i = j; i < L; ++i) acc += c.Ps[i * (kC + 1) + j] * c.dOs[i * SS + col];
      const float* kj = c.Ks + j * KS;
      for (int d = 0; d < K; ++d) acc += kj[d] * c.Ss[d * SS + col];
      if (c.bonus) acc += c.cb[j] * c.dOs[j * SS + col];
      stf(static_cast<TI*>(io.dv) + (static_cast<size_t>(t0 + j) * H + h) * a.Vin + c.v0 + col, acc);
    }
    __syncthreads();
    // dS = Diag(exp(G_L)) dS + Qg^T dO.
    for (int e = threadIdx.x; e < K * kVTb; e += blockDim.x) {
      const int d = e / kVTb, col = e % kVTb;
      float acc = expf(static_cast<float>(c.G(L - 1, d))) * c.Ss[d * SS + col];
      for (int i = 0; i < L; ++i) acc += c.Qs[i * KS + d] * c.dOs[i * SS + col];
      c.Ss[d * SS + col] = acc;
    }
    __syncthreads();
  }
  if (io.ds0 || io.dn0) c.store_state(io.ds0, io.dn0);
  if (io.F0 && a.s0)
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
      float acc = 0.f;
      for (int col = 0; col < c.vw; ++col) acc += c.Ss[d * SS + col] * state_at(a.s0, a.n0, d, c.v0 + col);
      atomicAdd(io.F0 + srow + d, acc);
    }
  if (mom) cta_sum(dg, head_partial(io.dgh_part, H));
}

// Gate gradients per key (README "gate gradients"): per sequence, head and key, a reverse running
// sum over tokens, acc_t = F + sum_{s >= t} (q_s dq_s) - sum_{s >= t} (k_s dk_s) (with the bonus the
// q term of token t itself comes after it), replaced at the first token by F0 (or 0 without an
// initial state). Done in blocks of kScanB tokens: block totals first (gate_block_sums), then each
// block's scan from the totals of the blocks after it (gate_scan_kernel), so all SMs take part.
constexpr int kScanB = 256;

int64_t scan_blocks(const core_args& a) { return (a.max_len + kScanB - 1) / kScanB; }

template <typename TI>
__global__ void gate_block_sums(core_args a, finish_io io) {
  const int h = blockIdx.x, n = blockIdx.y, blk = blockIdx.z, d = threadIdx.x, H = a.H, K = a.K;
  if (d >= K) return;
  const int64_t tb = a.offsets[n] + static_cast<int64_t>(blk) * kScanB, te = llmin(a.offsets[n + 1], tb + kScanB);
  const TI* q = static_cast<const TI*>(a.q);
  const TI* k = static_cast<const TI*>(a.k);
  double acc = 0.0;
  for (int64_t t = tb; t < te; ++t) {
    const size_t off = (static_cast<size_t>(t) * H + h) * K + d;
    acc += ldf(q + off) * io.dq[off] - ldf(k + off) * io.dk[off];
  }
  io.scratch[((static_cast<size_t>(n) * H + h) * gridDim.z + blk) * K + d] = static_cast<float>(acc);
}

template <typename TI>
__global__ void gate_scan_kernel(core_args a, finish_io io) {
  const int h = blockIdx.x, n = blockIdx.y, blk = blockIdx.z, d = threadIdx.x, H = a.H, K = a.K;
  if (d >= K) return;
  const int64_t sb = a.offsets[n], se = a.offsets[n + 1];
  const int64_t tb = sb + static_cast<int64_t>(blk) * kScanB, te = llmin(se, tb + kScanB);
  if (tb >= te) return;
  const bool bonus = a.u != nullptr;
  const size_t row = (static_cast<size_t>(n) * H + h) * K + d;
  const TI* q = static_cast<const TI*>(a.q);
  const TI* k = static_cast<const TI*>(a.k);
  double acc = io.F ? io.F[row] : 0.0;
  const int nblk = static_cast<int>((se - sb + kScanB - 1) / kScanB);
  for (int b = blk + 1; b < nblk; ++b) acc += io.scratch[((static_cast<size_t>(n) * H + h) * gridDim.z + b) * K + d];
  // Reverse over tokens in batches whose loads are all issued before the sequential sums.
  constexpr int kB = 16;
  for (int64_t t = te - 1; t >= tb; t -= kB) {
    const int nb = static_cast<int>(llmin(kB, t - tb + 1));
    float xs[kB], ys[kB];
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      xs[r] = ys[r] = 0.f;
      if (r < nb) {
        const size_t off = (static_cast<size_t>(t - r) * H + h) * K + d;
        xs[r] = ldf(q + off) * io.dq[off];
        ys[r] = ldf(k + off) * io.dk[off];
      }
    }
#pragma unroll
    for (int r = 0; r < kB; ++r) {
      if (r >= nb) break;
      const int64_t tt = t - r;
      if (!bonus) acc += xs[r];
      acc -= ys[r];
      if (tt == sb) {
        if (!a.s0) acc = 0.0;
        else if (!bonus) acc = io.F0[row];
      }
      io.gk[(static_cast<size_t>(tt) * H + h) * K + d] = static_cast<float>(acc);
      if (bonus) acc += xs[r];
    }
  }
}

// Scalar or per-head decay: the same reverse running sum as gate_scan_kernel on per-token sums
// over keys (X_t = q_t . dq_t, Y_t = k_t . dk_t, from token_kernel), F and F0 summed over keys.
// One CTA per (sequence, head); each thread scans a contiguous segment after a CTA-wide suffix sum
// of the segment totals. The (X, Y) pairs are read kScanU tokens at a time (the loads issue together:
// one token per iteration waited out a load each, 50 us at B=2 T=16384 with 32 CTAs, H100), the
// suffix sum is a warp-shuffle scan, F and F0 are summed by a warp each.
constexpr int kScalarScanT = 512;

__global__ void __launch_bounds__(kScalarScanT) scalar_gate_scan(xy_scan_args a) {
  const int h = blockIdx.x, n = blockIdx.y, H = a.H, K = a.K, j = threadIdx.x, lane = j % 32, warp = j / 32;
  constexpr int NW = kScalarScanT / 32;
  const int64_t sb = a.offsets[n], se = a.offsets[n + 1];
  const int64_t seg = (se - sb + kScalarScanT - 1) / kScalarScanT;
  const int64_t tb = llmin(se, sb + j * seg), te = llmin(se, tb + seg);
  __shared__ double wsum[NW];
  __shared__ double base[2];
  if (warp < 2) {
    const float* F = warp == 0 ? a.F : a.F0;
    double f = 0.0;
    if (F)
      for (int d = lane; d < K; d += 32) f += F[(static_cast<size_t>(n) * H + h) * K + d];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) f += __shfl_xor_sync(0xffffffffu, f, o);
    if (lane == 0) base[warp] = f;
  }
  const double tot = xy_total(a.xy, H, h, tb, te);
  // Exclusive suffix sum of the threads' totals: within the warp by shuffles, then the later warps'.
  double inc = tot;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_down_sync(0xffffffffu, inc, o);
    if (lane + o < 32) inc += y;
  }
  double exc = __shfl_down_sync(0xffffffffu, inc, 1);
  if (lane == 31) exc = 0.0;
  if (lane == 0) wsum[warp] = inc;
  __syncthreads();
  for (int w = warp + 1; w < NW; ++w) exc += wsum[w];
  xy_run(a, h, sb, tb, te, base[0] + exc, base[1]);
}

// The same scan over blocks of kSBlk tokens of every sequence, all heads in one CTA (gate_scan.cuh's
// scalar_gate_blocks: 32 CTAs at B=2 T=16384 left 100 SMs idle, 37 us on an H100).
int scalar_blocks(const core_args& a) { return static_cast<int>((a.max_len + kSBlk - 1) / kSBlk); }

// By blocks (run 20, H100: two passes 19.4 us at B=8 T=4096 and 20.2 at B=2 T=16384, against 18.2 and
// 37.7 with one CTA per sequence and head); one CTA per sequence and head past kSBT heads.
int scalar_scan(const core_args& a, const finish_io& io) {
  const xy_scan_args xa = xy_args_of(a, io);
  if (a.H > kSBT) {
    scalar_gate_scan<<<dim3(a.H, a.N), kScalarScanT, 0, launch_stream()>>>(xa);
    return static_cast<int>(cudaGetLastError());
  }
  double* tot = reinterpret_cast<double*>(io.scratch + a.tokens * a.H * 2);
  const size_t smem = xy_block_smem(a.H);
  const dim3 grid(static_cast<unsigned>(scalar_blocks(a)), a.N);
  scalar_gate_blocks<<<grid, kSBT, smem, launch_stream()>>>(xa, tot, true);
  scalar_gate_blocks<<<grid, kSBT, smem, launch_stream()>>>(xa, tot, false);
  return static_cast<int>(cudaGetLastError());
}

// Per token: db, the scalar decay's gradient, the bonus terms; dq, dk in the input dtype.
template <typename TI>
__global__ void token_kernel(core_args a, finish_io io) {
  constexpr int kTok = 32;
  const int h = blockIdx.y, H = a.H, K = a.K;
  const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
  const bool bonus = a.u != nullptr;
  const bool scalar_gate = !io.gk && io.dgs;  // per-token (X, Y) into scratch for scalar_gate_scan
  const TI* q = static_cast<const TI*>(a.q);
  const TI* k = static_cast<const TI*>(a.k);
  float du[kMaxK / 32] = {};
  for (int r = w; r < kTok; r += nw) {
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kTok + r;
    if (t >= a.tokens) break;
    const size_t base = (static_cast<size_t>(t) * H + h) * K;
    const float rho = bonus ? io.rho[static_cast<size_t>(t) * H + h] * a.scale : 0.f;
    float dbv = 0.f, dgv = 0.f, xv = 0.f, yv = 0.f;
#pragma unroll
    for (int m = 0; m < kMaxK / 32; ++m) {
      const int d = l + 32 * m;
      if (d >= K) continue;
      float dq = io.dq[base + d], dk = io.dk[base + d];
      const float qv = ldf(q + base + d), kv = ldf(k + base + d);
      dbv += kv * dk;
      if (io.gk) dgv += io.gk[base + d];
      xv += qv * dq;
      yv += kv * dk;
      if (bonus) {
        const float ud = a.u[static_cast<size_t>(h) * K + d];
        dq += ud * kv * rho;
        dk += ud * qv * rho;
        du[m] += qv * kv * rho;
      }
      stf(static_cast<TI*>(io.dq_out) + base + d, dq);
      stf(static_cast<TI*>(io.dk_out) + base + d, dk);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      dbv += __shfl_xor_sync(0xffffffffu, dbv, o);
      dgv += __shfl_xor_sync(0xffffffffu, dgv, o);
    }
    if (scalar_gate) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        xv += __shfl_xor_sync(0xffffffffu, xv, o);
        yv += __shfl_xor_sync(0xffffffffu, yv, o);
      }
    }
    if (l == 0) {
      if (io.db) io.db[static_cast<size_t>(t) * H + h] = dbv;
      if (scalar_gate) {
        io.scratch[2 * (static_cast<size_t>(t) * H + h)] = xv;
        io.scratch[2 * (static_cast<size_t>(t) * H + h) + 1] = yv;
      } else if (io.dgs) {
        io.dgs[static_cast<size_t>(t) * H + h] = dgv;
      }
    }
  }
  if (bonus && io.du)
#pragma unroll
    for (int m = 0; m < kMaxK / 32; ++m) {
      const int d = l + 32 * m;
      if (d < K) atomicAdd(io.du + static_cast<size_t>(h) * K + d, du[m]);
    }
}

// db = k . dk per token from the core's per-token sums (direct mode: xy = (q . dq, k . dk)).
__global__ void db_from_xy(int64_t n, const float* xy, float* db) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < n) db[e] = xy[2 * e + 1];
}

template <typename TI>
int launch_bwd(const core_args& a, const bwd_io& io) {
  const bool mom = io.dgh != nullptr;
  if (mom && (!head_gradient_in_core(a) || !io.dgh_part)) return static_cast<int>(cudaErrorInvalidValue);
  const size_t bytes = smem_layout(a.K, kVTb, true, a.gmode == g_key, mom).total;
  const dim3 grid((a.V + kVTb - 1) / kVTb, a.H, a.N);
  if (io.do_f32) {
    auto kern = bwd_kernel<TI, float>;
    if (int e = set_smem(kern, bytes)) return e;
    kern<<<grid, kThreads, bytes, launch_stream()>>>(a, io);
  } else {
    auto kern = bwd_kernel<TI, TI>;
    if (int e = set_smem(kern, bytes)) return e;
    kern<<<grid, kThreads, bytes, launch_stream()>>>(a, io);
  }
  if (int e = static_cast<int>(cudaGetLastError())) return e;
  return mom ? sum_tokens(static_cast<int64_t>(grid.x) * grid.z, a.H, io.dgh_part, io.dgh) : 0;
}

}  // namespace

int core_backward(const core_args& a, const bwd_io& io) {
  if (a.K > kMaxK || a.K < 1) return static_cast<int>(cudaErrorInvalidValue);
  if (a.N == 0 || a.H == 0 || a.V == 0) return 0;
  if (tc_backward_eligible(a, io)) return tc_backward(a, io);
  return with_type(a.type, [&](auto* tag) {
    using TI = std::remove_pointer_t<decltype(tag)>;
    return launch_bwd<TI>(a, io);
  });
}

int64_t finish_scratch_floats(const core_args& a) {
  if (a.gmode == g_key) return static_cast<int64_t>(a.N) * a.H * scan_blocks(a) * a.K;
  // (X, Y) per token and head, then scalar_scan's block totals (doubles)
  return a.tokens * a.H * 2 + 2 * static_cast<int64_t>(a.N) * scalar_blocks(a) * a.H;
}

int finish_backward(const core_args& a, const finish_io& io) {
  if (a.K > kMaxK || a.K < 1) return static_cast<int>(cudaErrorInvalidValue);
  if (a.tokens == 0 || a.H == 0) return 0;
  if (io.core_wrote_dqdk) {
    // dq, dk are final; the per-token sums are in scratch (per-key gates and the bonus never get here).
    if (io.gk || a.u || !io.scratch) return static_cast<int>(cudaErrorInvalidValue);
    const int64_t n = a.tokens * a.H;
    if (io.dgs) {  // (the scan and db in one launch where it can)
      const int r = scalar_scan_cooperative(a, io, io.db);
      if (r != -1) return r;
    }
    if (io.db) db_from_xy<<<static_cast<unsigned>((n + 255) / 256), 256, 0, launch_stream()>>>(n, io.scratch, io.db);
    if (int e = static_cast<int>(cudaGetLastError())) return e;
    return io.dgs ? scalar_scan(a, io) : 0;
  }
  return with_type(a.type, [&](auto* tag) {
    using TI = std::remove_pointer_t<decltype(tag)>;
    if (io.gk) {
      if (!io.scratch || a.max_len <= 0) return static_cast<int>(cudaErrorInvalidValue);
      const dim3 grid(a.H, a.N, static_cast<unsigned>(scan_blocks(a)));
      gate_block_sums<TI><<<grid, kMaxK, 0, launch_stream()>>>(a, io);
      gate_scan_kernel<TI><<<grid, kMaxK, 0, launch_stream()>>>(a, io);
    }
    if (int e = static_cast<int>(cudaGetLastError())) return e;
    if (!io.gk && io.dgs && !io.scratch) return static_cast<int>(cudaErrorInvalidValue);
    token_kernel<TI><<<dim3(static_cast<unsigned>((a.tokens + 31) / 32), a.H), 128, 0, launch_stream()>>>(a, io);
    if (int e = static_cast<int>(cudaGetLastError())) return e;
    return !io.gk && io.dgs ? scalar_scan(a, io) : 0;
  });
}

}  // namespace lrnn::ops::cuda_chunk
