// Hopper (sm_90a) forward of the per-key gates (log gates g [tokens, H, K]: GLA, and RWKV-6 with its
// bonus; no input scale) on warpgroup MMA with the gating inside the CTA: part of chunk_tc.cu, included there after
// key_prep (it uses the wg:: helpers of chunk_wg.cuh, kKeySplit and the gate-mode types). Where it
// runs, key_prep's round trip of Qa, Kb and the factor table through HBM is gone: the CTA reads q, k,
// v, g once and writes o (src/ops/decay_attn/README.md, "CUDA", per-key forward on wgmma).
//
// One CTA per (sequence or segment, head, 128-column V tile), K = 128, 1 + K / 64 warpgroups (a segment
// starts from the state tc_seg_key_wg and seg_scan left, end of file), chunks of 64 rows
// in 16-row blocks m (E_m: the cumulative log gate per key at the block's last row, E_-1 = 0):
//   the state warpgroups, per chunk ci: S = Diag(exp(E_3)) S + Kd^T V, Kd = Kb scaled per (key, 16-row
//     block cb) by exp(E_3 - E_cb) (wg::state_issue's fragments, factors per fragment row); then they
//     prepare chunk ci + 1 in place in its stage: thread (m, key pair) scans its block's 16 log gates
//     (loaded a chunk ahead into registers), rewrites q, k as Qa = scale q exp(G - E_{m-1}) and Kb =
//     k exp(E_m - G) (both exponents <= 0 for log gates <= 0; rows past the sequence Kb = 0), and
//     writes the chunk's factor table (below) from the blocks' totals;
//   warpgroup 0, per chunk: P's column block cb as an m64n16k128 wgmma with A = Qa F(w, cb) from
//     registers (warp w = row block w; F(w, cb) = exp(E_{w-1} - E_cb) per key, 0 for cb > w), then
//     O = Qg S_prev + P V with Qg = Qa exp(E_{w-1}) per key (A from registers), stored as tc_fwd_wg's.
// P's diagonal block (cb = w) takes F = exp(E_{w-1} - E_w) >= 1: valid where every key's cumulative log
// gate within the block spans at most wg::key_split (bf16: kKeySplit = 60, its range holds e^+-60;
// f16: 6, so that Qa F <= e^6 |scale q| stays far below 65504 and Kb >= e^-6 |k| is normal). A block
// where some key's span is larger is "split": its diagonal factor is 0 and the block's two state warps compute its P_ij (j <= i)
// pairwise from the raw q, k before the rewrite (exp(G_i - G_j) per pair and key, warp sums of their 64
// keys, two partial sums that warpgroup 0 adds).
// Shared memory: three stages of {Q, K} (swizzled slabs as tc_fwd_wg's, rewritten as Qa, Kb), two
// stages of V (V of chunk ci + 1 is loaded while chunk ci is computed; Q, K of ci + 2 then too, as the
// state warpgroups prepare ci + 1), the two 16-bit state copies, and per chunk (two buffers: warpgroup
// 0 reads chunk ci's while ci + 1's are written) the factor table, the split blocks' partial sums and
// their flags; the blocks' totals (one buffer: written and read within a preparation).
namespace wg {

// Factor table rows ([kKeyFR][K] 4-byte words per chunk): F(rb, cb) = exp(E_{rb-1} - E_cb) at kf_p(rb, cb)
// for cb <= rb (0 on a split block's diagonal), exp(E_{rb-1}) at 10 + rb (Qa -> Qg), exp(E_3 - E_cb) at
// 14 + cb (Kb -> Kd), exp(E_3) at 18 (the state's decay). Rows 14.. are fp32 per key (the state warps
// read them per fragment row). Rows 0..13 scale warpgroup 0's A fragments: packed TI pairs (keys 2p,
// 2p + 1) at word kf_pos(p), so that a thread's 16 pairs (keys 16 kk + 2 c + 8 half, kk = 0..7) are
// the 64 bytes from word 16 c, and one HMUL2 scales a fragment register.
constexpr int kKeyFR = 19, kfQ = 10, kfK = 14, kfS = 18;
__host__ __device__ constexpr int kf_p(int rb, int cb) { return rb * (rb + 1) / 2 + cb; }
__host__ __device__ constexpr int kf_pos(int p) { return (p % 4) * 16 + (p / 8) * 2 + (p / 4) % 2; }
constexpr int kPairs = 136;  // pairs j <= i of a 16-row block
// The largest span of a key's cumulative log gate within a 16-row block on the fast path (above: split).
template <typename TI>
__host__ __device__ constexpr float key_split() {
  return std::is_same_v<TI, __nv_bfloat16> ? kKeySplit : 6.f;
}

template <int K>
struct key_lay {
  static constexpr size_t QB = kC * K * 2, VB = kC * 128 * 2;
  static constexpr int NQ = 3, NV = 2;
  static constexpr size_t qk = 0, qks = 2 * QB;  // stage s: Q at qk + s qks, K at + QB
  static constexpr size_t v = NQ * qks;
  static constexpr size_t sb = v + NV * VB, SBB = static_cast<size_t>(K) * 128 * 2;
  static constexpr size_t fac = sb + 2 * SBB, FB = static_cast<size_t>(kKeyFR) * K * 4;
  static constexpr size_t pd = fac + 2 * FB, PB = 4 * 2 * kPairs * 4;  // [buf][block][half][pair]
  static constexpr size_t tot = pd + 2 * PB;                          // [4][K] block totals
  static constexpr size_t bon = tot + 4 * K * 4, BB = 4 * 2 * 16 * 4; // (bonus) [buf][block][half][row]
  static constexpr size_t flg = bon + 2 * BB;                         // [buf][block][half] ints
  static constexpr size_t bars = flg + 2 * 8 * 4;                     // NQ + NV mbarriers
  static constexpr size_t total = bars + 8 * (NQ + NV) + 1024;
  static_assert(qks % 1024 == 0 && v % 1024 == 0 && VB % 1024 == 0 && sb % 1024 == 0, "swizzled tiles need 1024-byte alignment");
};

// m64n16k16 with A in registers (each warp's 16 rows as an m16n8k16 A fragment) and B K-major from
// shared memory (descriptor db): d (8 floats) = A B, or += with acc.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LRNN_WG_RS_N16(T)                                                                                              \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"                                                            \
               "wgmma.mma_async.sync.aligned.m64n16k16.f32." #T "." #T                                                 \
               " {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"                           \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])         \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc))
#endif
template <typename TI>
__device__ __forceinline__ void rs_n16(float (&d)[8], const uint32_t (&a)[4], uint64_t db, int acc) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if constexpr (std::is_same_v<TI, __nv_bfloat16>)
    LRNN_WG_RS_N16(bf16);
  else
    LRNN_WG_RS_N16(f16);
#endif
}
#undef LRNN_WG_RS_N16

// This warp's A fragments of rows 16 w.. of a swizzled K-major tile (K / 16 k16 blocks), each key column
// d scaled by its factor in the packed factor row f (kf_pos order; f null: 0, without reading the tile).
template <typename TI, int K>
__device__ __forceinline__ void a_scaled(uint32_t (&A)[K / 16][4], const TI* Qs, const uint32_t* f) {
  static_assert(K == 128, "kf_pos: 64 key pairs");
  const int l = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, c = l % 4, mi = l / 8;
  if (f == nullptr) {
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) A[kk][0] = A[kk][1] = A[kk][2] = A[kk][3] = 0u;
    return;
  }
  uint32_t fv[K / 8];
#pragma unroll
  for (int x = 0; x < K / 32; ++x) {
    const uint4 v = reinterpret_cast<const uint4*>(f + 16 * c)[x];
    fv[4 * x] = v.x, fv[4 * x + 1] = v.y, fv[4 * x + 2] = v.z, fv[4 * x + 3] = v.w;
  }
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    mma::ldsm4(A[kk], Qs + sw(16 * w + 8 * (mi % 2) + l % 8, 16 * kk + 8 * (mi / 2)));
    A[kk][0] = mma::mul2<TI>(A[kk][0], fv[2 * kk]);
    A[kk][1] = mma::mul2<TI>(A[kk][1], fv[2 * kk]);
    A[kk][2] = mma::mul2<TI>(A[kk][2], fv[2 * kk + 1]);
    A[kk][3] = mma::mul2<TI>(A[kk][3], fv[2 * kk + 1]);
    keep(A[kk]);
  }
}

// A state warpgroup's chunk with per-key gates: S = Diag(e) S + Kd^T V issued (one commit group), Kd =
// Kb with rows of 16-row block kk scaled per key by exp(E_3 - E_kk), e = exp(E_3): as state_issue, the
// factors per fragment row instead of per token: f0, f1 for this thread's rows dr = 64 hh + 16 w + l / 4
// and dr + 8 ([kk] Kd's, [4] e).
template <typename TI>
__device__ __forceinline__ void state_issue_key(float (&S)[64], const TI* Ks, const TI* Vs, const float (&f0)[5], const float (&f1)[5],
                                                int hh) {
  const int l = threadIdx.x % 32, w = (threadIdx.x / 32) % 4;
  uint32_t fa[4][4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const int m = l / 8, j = 16 * kk + 8 * (m / 2) + l % 8, d0 = 64 * hh + 16 * w + 8 * (m % 2);
    mma::ldsm4t(fa[kk], Ks + sw(j, d0));
    fa[kk][0] = mma::scale2<TI>(fa[kk][0], f0[kk], f0[kk]);
    fa[kk][1] = mma::scale2<TI>(fa[kk][1], f1[kk], f1[kk]);
    fa[kk][2] = mma::scale2<TI>(fa[kk][2], f0[kk], f0[kk]);
    fa[kk][3] = mma::scale2<TI>(fa[kk][3], f1[kk], f1[kk]);
    keep(fa[kk]);
  }
  const float e0 = f0[4], e1 = f1[4];
#pragma unroll
  for (int t = 0; t < 16; ++t) S[4 * t] *= e0, S[4 * t + 1] *= e0, S[4 * t + 2] *= e1, S[4 * t + 3] *= e1;
  keep(S);
  const uint64_t dv = desc(Vs, strides<128>::VL, strides<128>::VS, true);
  fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) rs_n128_t<TI>(S, fa[kk], dv + 128 * kk, 1);
  commit();
}

// One stage of a warp's reduce-scatter of 16 values per lane: lanes with bit 2 NH set keep rows NH..2 NH - 1
// of bp[0..2 NH), the others rows 0..NH - 1, each summed with its partner lane's (in bp[0..NH)).
template <int NH>
__device__ __forceinline__ void halve_sum(float (&bp)[16], int l) {
  const bool up = (l & (2 * NH)) != 0;
#pragma unroll
  for (int k2 = 0; k2 < NH; ++k2) {
    const float send = up ? bp[k2] : bp[k2 + NH], keep = up ? bp[k2 + NH] : bp[k2];
    bp[k2] = keep + __shfl_xor_sync(0xffffffffu, send, 2 * NH);
  }
}

// The log gates of 16 rows from token t0 (0 from te on), keys d0, d0 + 1, into registers.
__device__ __forceinline__ void load_gates(float2 (&gv)[16], const core_args& a, int64_t t0, int64_t te, int h, int d0) {
  const float2* p = reinterpret_cast<const float2*>(a.g + (static_cast<size_t>(t0) * a.H + h) * a.K + d0);
  const size_t st = static_cast<size_t>(a.H) * a.K / 2;  // (a row, in float2; K is even)
  const int64_t n = te - t0;
#pragma unroll
  for (int r = 0; r < 16; ++r) gv[r] = r < n ? __ldg(p + r * st) : make_float2(0.f, 0.f);
}

// The cumulative log gates of 16 rows in base 2 (each exponential of them is then one ex2), in place,
// from 0; their range per key in lo, hi (from 0 too). Returns the last row's (the block's total).
__device__ __forceinline__ float2 scan_gates(float2 (&gv)[16], float2& lo, float2& hi) {
  float2 acc = make_float2(0.f, 0.f);
  lo = acc, hi = acc;
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    acc.x = fmaf(gv[r].x, kLog2e, acc.x), acc.y = fmaf(gv[r].y, kLog2e, acc.y);
    gv[r] = acc;
    lo.x = fminf(lo.x, acc.x), lo.y = fminf(lo.y, acc.y), hi.x = fmaxf(hi.x, acc.x), hi.y = fmaxf(hi.y, acc.y);
  }
  return acc;
}

}  // namespace wg

// BONUS: RWKV-6 (a.u: P_ii = scale q_i . (u k_i), P_ij for j < i with Gq_i = G_{i-1}: Qa from the row
// before's cumulative gate; the bonus terms summed by the state warps as their pair sums).
// VAR (LRNN_DA_KW_VAR, chunk_tc.cu), two bits: 1 the register split, warpgroup 0 hands registers to the
// state warpgroups (setmaxnreg: kKwRegs0 and kKwRegsState below, within the CTA's launch allocation of
// 168 per thread, which is the pool setmaxnreg.inc draws from: it waits for registers until there are
// enough, so a split over that total would hang); 2 the overlap, the state warpgroups prepare chunk ci +
// 1 while their wgmmas of chunk ci run (waiting for them afterwards). 0: neither, every warp at 168
// (bench/decay_attn_cuda.md, sessions 19 and 20: SASS spill counts).
#if defined(LRNN_KW_REGS0)
constexpr int kKwRegs0 = LRNN_KW_REGS0, kKwRegsState = LRNN_KW_REGSS;  // (SASS experiments)
#else
constexpr int kKwRegs0 = 152, kKwRegsState = 176;
#endif
static_assert(kKwRegs0 % 8 == 0 && kKwRegsState % 8 == 0 && kKwRegs0 >= 24 && kKwRegsState <= 256, "setmaxnreg's operand");
static_assert(128 * kKwRegs0 + 256 * kKwRegsState <= 384 * 168, "the CTA's registers at launch (wg_threads<128> x 168)");
template <typename TI, int K, bool BONUS, int VAR = 0>
__global__ void __launch_bounds__(wg_threads<K>, 1)
    tc_key_wg(core_args a, fwd_out out, seg_io sg, const __grid_constant__ wg::maps mp) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(K == 128, "two state warpgroups: a key pair per thread and 16-row block");
  using Ly = wg::key_lay<K>;
  constexpr int NT = wg_threads<K>;
  extern __shared__ __align__(128) unsigned char sm_raw[];
  unsigned char* sm = sm_raw + ((1024 - (mma::smem_u32(sm_raw) & 1023)) & 1023);
  const seg_range sr = seg_of(a, sg);
  if (sr.s > 0 && sr.tb >= sr.se) return;
  const int n = sr.n, h = blockIdx.y, v0 = blockIdx.x * 128, H = a.H, Vin = a.Vin;
  const int64_t tb = sr.tb, te = sr.te;
  const size_t srow = (static_cast<size_t>(n) * H + h) * K;
  const int tid = threadIdx.x, warp = tid / 32, w = warp % 4, l = tid % 32, g = l / 4, c = l % 4;
  const bool state_wg = warp >= 4;
  const int hh = warp / 4 - 1;
  const int nch = static_cast<int>((te - tb + kC - 1) / kC);
  const uint32_t smb = mma::smem_u32(sm), bar0 = smb + static_cast<uint32_t>(Ly::bars);
  const uint32_t vbar0 = bar0 + 8 * Ly::NQ;
  constexpr int producer = 128;
  if (tid == producer) wg::init_bars(bar0, Ly::NQ + Ly::NV);
  __syncthreads();
  auto qk_stage = [&](int ci) { return smb + static_cast<uint32_t>(Ly::qk + (ci % Ly::NQ) * Ly::qks); };
  auto v_stage = [&](int ci) { return smb + static_cast<uint32_t>(Ly::v + (ci % Ly::NV) * Ly::VB); };
  auto issue_qk = [&](int ci) {
    if (tid != producer || ci >= nch) return;
    const uint32_t st = qk_stage(ci), bar = bar0 + 8 * (ci % Ly::NQ);
    const int t0 = static_cast<int>(tb + static_cast<int64_t>(ci) * kC);
    wg::mbar_expect(bar, static_cast<uint32_t>(2 * Ly::QB));
#pragma unroll
    for (int s = 0; s < K / 64; ++s) {
      wg::tma3(st + 8192 * s, &mp.q, 64 * s, h, t0, bar);
      wg::tma3(st + static_cast<uint32_t>(Ly::QB) + 8192 * s, &mp.k, 64 * s, h, t0, bar);
    }
  };
  auto issue_v = [&](int ci) {
    if (tid != producer || ci >= nch) return;
    const uint32_t st = v_stage(ci), bar = vbar0 + 8 * (ci % Ly::NV);
    const int t0 = static_cast<int>(tb + static_cast<int64_t>(ci) * kC);
    wg::mbar_expect(bar, static_cast<uint32_t>(Ly::VB));
    wg::tma3(st, &mp.v, v0, h, t0, bar);
    wg::tma3(st + 8192, &mp.v, v0 + 64, h, t0, bar);
  };
  auto wait_qk = [&](int ci) { wg::mbar_wait(bar0 + 8 * (ci % Ly::NQ), (ci / Ly::NQ) & 1); };
  auto wait_v = [&](int ci) { wg::mbar_wait(vbar0 + 8 * (ci % Ly::NV), (ci / Ly::NV) & 1); };
  auto Qs_of = [&](int ci) { return reinterpret_cast<TI*>(sm + Ly::qk + (ci % Ly::NQ) * Ly::qks); };
  auto Ks_of = [&](int ci) { return reinterpret_cast<TI*>(sm + Ly::qk + (ci % Ly::NQ) * Ly::qks + Ly::QB); };
  auto Vs_of = [&](int ci) { return reinterpret_cast<const TI*>(sm + Ly::v + (ci % Ly::NV) * Ly::VB); };
  auto fac_of = [&](int ci) { return reinterpret_cast<float*>(sm + Ly::fac + (ci & 1) * Ly::FB); };
  auto pd_of = [&](int ci) { return reinterpret_cast<float*>(sm + Ly::pd + (ci & 1) * Ly::PB); };
  auto bon_of = [&](int ci) { return reinterpret_cast<float*>(sm + Ly::bon + (ci & 1) * Ly::BB); };
  auto flg_of = [&](int ci) { return reinterpret_cast<int*>(sm + Ly::flg) + (ci & 1) * 8; };
  issue_qk(0);
  issue_qk(1);
  issue_v(0);
  TI* sbuf = reinterpret_cast<TI*>(sm + Ly::sb);
  using Sd = wg::strides<K>;
  // Per chunk: the CTA barrier (chunk ci prepared, its state copy written; every warp done with chunk
  // ci - 1), then Q, K of ci + 2 and V of ci + 1 into the stages ci - 1 used.
  auto sync_issue = [&](int ci) {
    if (tid == 0) wg::store_wait_read();  // (the O stores of chunk ci - 1 have read their stage)
    // (non-aligned: both roles pass it, each at its own instruction, which bar.sync =
    // barrier.sync.aligned does not allow: run 31's synccheck)
    asm volatile("barrier.sync 0, %0;\n" ::"n"(NT) : "memory");
    issue_qk(ci + 2);
    issue_v(ci + 1);
  };
  constexpr bool kSplit = (VAR & 1) != 0, kOverlap = (VAR & 2) != 0;
  static_assert(!kSplit || NT == 384, "the register split's numbers are for three warpgroups");
  if (!state_wg) {
    if constexpr (kSplit) asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kKwRegs0));
    // One barrier of warpgroup 0's own first, so that both roles have passed equally many barriers (of
    // any id) wherever one writes what the other reads: the state warps pass `bar.sync 2` in each
    // preparation, warpgroup 0 `bar.sync 1` after each chunk (in both ways of storing O). Nothing needs
    // it for ordering (`bar.sync 0` does that); it is for racecheck, whose RAW reports on this kernel
    // (run 29) pair exactly the accesses that such a count would put in one interval (session 19:
    // probe modes 4 and 5 of scripts/gpu/probes/racecheck_barrier.cu test that reading of the tool).
    asm volatile("bar.sync 1, 128;\n" ::: "memory");
    for (int ci = 0; ci < nch; ++ci) {
      sync_issue(ci);
      const int64_t t0 = tb + static_cast<int64_t>(ci) * kC;
      const int L = rows_left(te - t0);
      const TI* Qs = Qs_of(ci);
      const TI* Ks = Ks_of(ci);
      const uint32_t* fac = reinterpret_cast<const uint32_t*>(fac_of(ci));
      const TI* Sprev = sbuf + ((ci + 1) & 1) * (Ly::SBB / 2);
      const int i0 = 16 * w + g, i1 = i0 + 8;
      const size_t r0h = static_cast<size_t>(t0 + i0) * H + h, r1h = r0h + static_cast<size_t>(8) * H;
      const uint64_t dk = wg::desc(Ks, Sd::QL, Sd::QS, true), ds = wg::desc(Sprev, Sd::SL, Sd::SS);
      auto kb = [](int kk) { return static_cast<uint64_t>((kk / 4) * 512 + (kk % 4) * 2); };
      float O[64];
      uint32_t A[K / 16][4];
      // P's column blocks cb: A = Qa F(w, cb) (0 above the diagonal), B = Kb's rows 16 cb.. (2048 bytes
      // each); the diagonal block masked (a split one from the state warps' pair sums), and packed as the
      // A fragment of P V's k16 block cb. (Below the diagonal nothing is masked: Kb is 0 past the
      // sequence; above it A is 0.)
      const int* fl = flg_of(ci);
      const bool split = (fl[2 * w] | fl[2 * w + 1]) != 0;
      const float* pd = pd_of(ci) + w * 2 * wg::kPairs;
      const float* bn = bon_of(ci) + w * 32;  // (BONUS) the two halves' sums of rows 16 w..
      uint32_t pa[4][4];
#pragma unroll
      for (int cb = 0; cb < 4; ++cb) {
        wg::a_scaled<TI, K>(A, Qs, cb <= w ? fac + wg::kf_p(w, cb) * K : nullptr);
        float Pc[8];
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < K / 16; ++kk) wg::rs_n16<TI>(Pc, A[kk], dk + 128 * cb + kb(kk), kk > 0);
        wg::commit();
        wg::wait0();
        wg::keep(Pc);
        if (cb == w) {
#pragma unroll
          for (int x = 0; x < 8; ++x) {
            const int j = 16 * cb + 8 * (x / 4) + 2 * c + (x & 1), i = x % 4 < 2 ? i0 : i1;
            const bool past = BONUS ? j < i : j <= i;
            float p = past && j < L ? Pc[x] : 0.f;
            if (split && past) {
              const int pr = (i % 16) * (i % 16 + 1) / 2 + j % 16;
              p = j < L ? pd[pr] + pd[wg::kPairs + pr] : 0.f;
            }
            if (BONUS && j == i) p = bn[i % 16] + bn[16 + i % 16];
            Pc[x] = p;
          }
        }
        pa[cb][0] = mma::pack2<TI>(Pc[0], Pc[1]);
        pa[cb][1] = mma::pack2<TI>(Pc[2], Pc[3]);
        pa[cb][2] = mma::pack2<TI>(Pc[4], Pc[5]);
        pa[cb][3] = mma::pack2<TI>(Pc[6], Pc[7]);
        wg::keep(pa[cb]);
      }
      // O = Qg S_prev + P V: A = Qa exp(E_{w-1}), then P's fragments (one commit group).
      wg::a_scaled<TI, K>(A, Qs, fac + (wg::kfQ + w) * K);
      wait_v(ci);
      const uint64_t dv = wg::desc(Vs_of(ci), Sd::VL, Sd::VS, true);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) wg::rs_n128_t<TI>(O, A[kk], ds + 256 * kk, kk > 0);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wg::rs_n128_t<TI>(O, pa[kk], dv + 128 * kk, 1);
      wg::commit();
      wg::wait0();
      wg::keep(O);
      if (mp.ost && L == kC) {
        // Whole chunk: O into the stage's Qa slabs (read by this warpgroup only, all reads done), then two
        // TMA stores by thread 0, as tc_fwd_wg. (The same lines as tc_fwd_wg's stores of O: a helper for
        // both, tried in session 16, made tc_fwd_wg<NORM> spill 12 bytes where it had none, ptxas.)
        TI* Os = const_cast<TI*>(Qs);
        __syncwarp();
#pragma unroll
        for (int t = 0; t < 16; ++t) {
          *reinterpret_cast<uint32_t*>(Os + wg::sw(i0, 8 * t + 2 * c)) = mma::pack2<TI>(O[4 * t], O[4 * t + 1]);
          *reinterpret_cast<uint32_t*>(Os + wg::sw(i1, 8 * t + 2 * c)) = mma::pack2<TI>(O[4 * t + 2], O[4 * t + 3]);
        }
        wg::proxy_fence();
        asm volatile("bar.sync 1, 128;\n" ::: "memory");
        if (tid == 0) {
          const uint32_t os = mma::smem_u32(Os);
          wg::tma3_store(&mp.o, os, v0, h, static_cast<int>(t0));
          wg::tma3_store(&mp.o, os + 8192, v0 + 64, h, static_cast<int>(t0));
          wg::store_commit();
        }
        continue;
      }
      TI* o = static_cast<TI*>(out.o);
      TI* p0 = o + r0h * Vin + v0 + 2 * c;
      TI* p1 = o + r1h * Vin + v0 + 2 * c;
#pragma unroll
      for (int t = 0; t < 16; ++t) {
        if (i0 < L) *reinterpret_cast<uint32_t*>(p0 + 8 * t) = mma::pack2<TI>(O[4 * t], O[4 * t + 1]);
        if (i1 < L) *reinterpret_cast<uint32_t*>(p1 + 8 * t) = mma::pack2<TI>(O[4 * t + 2], O[4 * t + 3]);
      }
      asm volatile("bar.sync 1, 128;\n" ::: "memory");  // (as the TMA path's: one per chunk, for racecheck, above)
    }
    if (tid == 0) wg::store_wait();
    return;
  }
  // ---- the state warpgroups ----
  if constexpr (kSplit) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kKwRegsState));
  const int st = tid - 128, m = st / (K / 2), kp = st % (K / 2), d0 = 2 * kp, half = kp / 32;
  float2 gv[16];  // log gates of rows 16 m.. of the next chunk to prepare, keys d0, d0 + 1 (0 past the sequence)
  auto load_g = [&](int cj) { wg::load_gates(gv, a, tb + static_cast<int64_t>(cj) * kC + 16 * m, te, h, d0); };
  float* tot = reinterpret_cast<float*>(sm + Ly::tot);
  const float2 ub = BONUS ? *reinterpret_cast<const float2*>(a.u + static_cast<size_t>(h) * K + d0) : make_float2(0.f, 0.f);
  // Chunk cj's preparation in place (its Q, K landed): gv holds its log gates.
  auto prepare = [&](int cj) {
    const int64_t t0 = tb + static_cast<int64_t>(cj) * kC;
    const int L = rows_left(te - t0);
    TI* Qs = Qs_of(cj);
    TI* Ks = Ks_of(cj);
    float* fac = fac_of(cj);
    int* fl = flg_of(cj);
    // The block's cumulative log gates (relative to E_{m-1}) in base 2, in place; their span per key.
    float2 lo, hi;
    const float2 T = wg::scan_gates(gv, lo, hi);
    *reinterpret_cast<float2*>(tot + m * K + d0) = T;
    constexpr float split2 = wg::key_split<TI>() * kLog2e;
    const bool far = hi.x - lo.x > split2 || hi.y - lo.y > split2;
    const bool wfar = __any_sync(0xffffffffu, far);
    if (l == 0) fl[2 * m + half] = wfar ? 1 : 0;
    asm volatile("bar.sync 2, 256;\n" ::: "memory");
    if ((fl[2 * m] | fl[2 * m + 1]) != 0) {
      // P_ij = scale sum_d q_id k_jd exp(Gq_id - G_jd), j <= i (BONUS: j < i) in block m, j < L: this
      // warp's 64 keys (each thread reads only its own keys' q, k: the rewrite below needs no barrier).
      float* pd = pd_of(cj) + (m * 2 + half) * wg::kPairs;
#pragma unroll
      for (int i = BONUS ? 1 : 0; i < 16; ++i) {
        const float2 qi = mma::unpack2<TI>(*reinterpret_cast<const uint32_t*>(Qs + wg::sw(16 * m + i, d0)));
        const float2 gq = gv[BONUS ? i - 1 : i];
#pragma unroll
        for (int j = 0; j < (BONUS ? i : i + 1); ++j) {
          const float2 kj = mma::unpack2<TI>(*reinterpret_cast<const uint32_t*>(Ks + wg::sw(16 * m + j, d0)));
          float x = 16 * m + j < L ? qi.x * kj.x * ex2_ftz(gq.x - gv[j].x) + qi.y * kj.y * ex2_ftz(gq.y - gv[j].y) : 0.f;
#pragma unroll
          for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
          if (l == 0) pd[i * (i + 1) / 2 + j] = a.scale * x;
        }
      }
    }
    // Qa = scale q exp(Gq - E_{m-1}), Kb = k exp(E_m - G) (0 past the sequence); (BONUS) this thread's
    // part of q_i . (u k_i) from the raw q, k.
    float bp[16];
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int i = 16 * m + r;
      uint32_t* qp = reinterpret_cast<uint32_t*>(Qs + wg::sw(i, d0));
      uint32_t* kp2 = reinterpret_cast<uint32_t*>(Ks + wg::sw(i, d0));
      const uint32_t q2 = *qp, k2 = *kp2;
      if constexpr (BONUS) {
        const float2 qf = mma::unpack2<TI>(q2), kf = mma::unpack2<TI>(k2);
        bp[r] = qf.x * ub.x * kf.x + qf.y * ub.y * kf.y;
      }
      const float2 gq = BONUS ? (r > 0 ? gv[r - 1] : make_float2(0.f, 0.f)) : gv[r];
      *qp = mma::scale2<TI>(q2, a.scale * ex2_ftz(gq.x), a.scale * ex2_ftz(gq.y));
      *kp2 = i < L ? mma::scale2<TI>(k2, ex2_ftz(T.x - gv[r].x), ex2_ftz(T.y - gv[r].y)) : 0u;
    }
    if constexpr (BONUS) {
      // The warp's sums of bp, reduced and scattered: lane l ends with row (l / 2) % 16's.
      // (one template instance per stage: with the stage as a loop counter the compiler kept bp in local
      // memory, 40 local loads and stores per chunk in session 18's SASS)
      wg::halve_sum<8>(bp, l);
      wg::halve_sum<4>(bp, l);
      wg::halve_sum<2>(bp, l);
      wg::halve_sum<1>(bp, l);
      bp[0] += __shfl_xor_sync(0xffffffffu, bp[0], 1);
      if (l % 2 == 0) bon_of(cj)[(2 * m + half) * 16 + (l / 2) % 16] = a.scale * bp[0];
    }
    // The factor table from the blocks' totals T_b: exponents E[x] - E[y] (E[b + 1] = E_b = T_0 + .. + T_b,
    // E[0] = E_-1 = 0) as sums of the totals between (no cancellation of large E): rows m, m + 4, ..
    float2 Tb[4];
#pragma unroll
    for (int b = 0; b < 4; ++b) Tb[b] = *reinterpret_cast<const float2*>(tot + b * K + d0);
    auto span = [&](int x, int y) {
      float2 r = make_float2(0.f, 0.f);
      const int lo2 = x < y ? x : y, hi2 = x < y ? y : x;
#pragma unroll
      for (int b = 0; b < 4; ++b)
        if (b >= lo2 && b < hi2) r.x += Tb[b].x, r.y += Tb[b].y;
      return x >= y ? r : make_float2(-r.x, -r.y);
    };
#pragma unroll
    for (int row = 0; row < wg::kKeyFR; ++row) {
      if (row % 4 != m) continue;
      // (x, y by the row's kind)
      int x = 4, y = 0;  // (exp(E_3), the state's decay)
      bool zero = false;
      if (row < wg::kfQ) {
        const int rb = row < 1 ? 0 : row < 3 ? 1 : row < 6 ? 2 : 3, cb = row - wg::kf_p(rb, 0);
        x = rb, y = cb + 1;
        zero = rb == cb && (fl[2 * rb] | fl[2 * rb + 1]) != 0;
      } else if (row < wg::kfK) {
        x = row - wg::kfQ;
      } else if (row < wg::kfS) {
        y = row - wg::kfK + 1;
      }
      const float2 ex = span(x, y);
      const float2 f = zero ? make_float2(0.f, 0.f) : make_float2(ex2_ftz(ex.x), ex2_ftz(ex.y));
      if (row < wg::kfK)
        reinterpret_cast<uint32_t*>(fac + row * K)[wg::kf_pos(kp)] = mma::pack2<TI>(f.x, f.y);
      else
        *reinterpret_cast<float2*>(fac + row * K + d0) = f;
    }
    wg::proxy_fence();  // (Kb is read by warpgroup 0's wgmma)
  };
  float S[64];
  {
    // (segment s > 0 starts from the state the segment passes left in sg.buf)
    const float* st0 = sr.s == 0 ? a.s0 : sg.buf + seg_off(a, sg, sr.n, sr.s - 1, h);
    const int64_t ld = sr.s == 0 ? Vin : a.V;
    const size_t base = sr.s == 0 ? srow * Vin + v0 : v0;
    wg::for_each_state(hh, [&](int x, int d, int col) { S[x] = st0 ? st0[base + d * ld + col] : 0.f; });
    wg::write_state_copy<TI>(sbuf + Ly::SBB / 2, S, hh);  // copy 1: the state before chunk 0
    wg::proxy_fence();
  }
  if (nch > 0) {
    load_g(0);
    wait_qk(0);
    prepare(0);
    if (nch > 1) load_g(1);
  }
  for (int ci = 0; ci < nch; ++ci) {
    sync_issue(ci);
    wait_v(ci);
    {
      const float* fk = fac_of(ci) + wg::kfK * K;
      const int dr = 64 * hh + 16 * w + g;
      float f0[5], f1[5];
#pragma unroll
      for (int x = 0; x < 5; ++x) f0[x] = fk[x * K + dr], f1[x] = fk[x * K + dr + 8];
      wg::state_issue_key<TI>(S, Ks_of(ci), Vs_of(ci), f0, f1, hh);
    }
    // (kOverlap: chunk ci + 1 is prepared while the state's wgmmas run: they read V of ci and their A
    // fragments from registers, prepare writes ci + 1's stage and buffers; ptxas keeps the wgmmas'
    // registers, no wait between them in the SASS)
    if (kOverlap && ci + 1 < nch) {
      wait_qk(ci + 1);
      prepare(ci + 1);
    }
    wg::wait0();
    wg::keep(S);
    wg::write_state_copy<TI>(sbuf + (ci & 1) * (Ly::SBB / 2), S, hh);
    wg::proxy_fence();
    if (!kOverlap && ci + 1 < nch) {
      wait_qk(ci + 1);
      prepare(ci + 1);
    }
    if (ci + 2 < nch) load_g(ci + 2);
  }
  if (out.sf && te == sr.se) wg::for_each_state(hh, [&](int x, int d, int col) { out.sf[(srow + d) * Vin + v0 + col] = S[x]; });
#endif
}

// The forward-direction segment pass for tc_key_wg (per-key gates on wgmma, gating in the CTA): per
// (segment, head, 128-column V tile), every segment but the last, the state the segment hands on from a
// zero start into sg.buf and its decay per key exp(sum of its log gates) into sg.decay [N, nseg, H, K]
// (seg_scan then chains them). Two state warpgroups as tc_key_wg's, no warpgroup 0: per chunk K and V by
// TMA (four stages), the log gates in registers a chunk ahead, then in place Kb = k exp(E_m - G) (thread
// (16-row block m, key pair)), the blocks' totals through shared memory, and S = Diag(exp(E_3)) S + Kd^T V
// with each thread's factors for its own fragment rows formed from the totals.
namespace wg {
template <int K>
struct seg_key_lay {
  static constexpr size_t KB = kC * K * 2, VB = kC * 128 * 2;
  static constexpr int NS = 4;
  static constexpr size_t stage = KB + VB;  // K at 0, V at KB
  static constexpr size_t tot = NS * stage;
  static constexpr size_t bars = tot + 4 * K * 4;
  static constexpr size_t total = bars + 8 * NS + 1024;
  static_assert(stage % 1024 == 0 && KB % 1024 == 0, "swizzled tiles need 1024-byte alignment");
};
}  // namespace wg

template <typename TI, int K>
__global__ void __launch_bounds__(128 * (K / 64), 1) tc_seg_key_wg(core_args a, seg_io sg, const __grid_constant__ wg::maps mp) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(K == 128, "a key pair per thread and 16-row block");
  using Ly = wg::seg_key_lay<K>;
  constexpr int NT = 128 * (K / 64);
  extern __shared__ __align__(128) unsigned char sm_raw[];
  unsigned char* sm = sm_raw + ((1024 - (mma::smem_u32(sm_raw) & 1023)) & 1023);
  const seg_range sr = seg_of(a, sg);
  if (sr.s == sg.nseg - 1) return;  // (nobody starts from the last segment's state)
  const int h = blockIdx.y, v0 = blockIdx.x * 128, H = a.H;
  const int tid = threadIdx.x, warp = tid / 32, w = warp % 4, l = tid % 32, g = l / 4, c = l % 4, hh = warp / 4;
  const int m = tid / (K / 2), kp = tid % (K / 2), d0 = 2 * kp;
  const int64_t tb = sr.tb, te = sr.te;
  const int nch = static_cast<int>((te - tb + kC - 1) / kC);
  const uint32_t smb = mma::smem_u32(sm), bar0 = smb + static_cast<uint32_t>(Ly::bars);
  float* tot = reinterpret_cast<float*>(sm + Ly::tot);
  if (tid == 0) wg::init_bars(bar0, Ly::NS);
  __syncthreads();
  auto issue = [&](int it) {
    if (tid != 0 || it >= nch) return;
    const uint32_t st = smb + static_cast<uint32_t>((it % Ly::NS) * Ly::stage), bar = bar0 + 8 * (it % Ly::NS);
    const int t0 = static_cast<int>(tb + static_cast<int64_t>(it) * kC);
    wg::mbar_expect(bar, static_cast<uint32_t>(Ly::stage));
#pragma unroll
    for (int s2 = 0; s2 < K / 64; ++s2) wg::tma3(st + 8192 * s2, &mp.k, 64 * s2, h, t0, bar);
    wg::tma3(st + static_cast<uint32_t>(Ly::KB), &mp.v, v0, h, t0, bar);
    wg::tma3(st + static_cast<uint32_t>(Ly::KB) + 8192, &mp.v, v0 + 64, h, t0, bar);
  };
#pragma unroll
  for (int i = 0; i < Ly::NS - 1; ++i) issue(i);
  float2 gv[16];
  auto load_g = [&](int cj) { wg::load_gates(gv, a, tb + static_cast<int64_t>(cj) * kC + 16 * m, te, h, d0); };
  if (nch > 0) load_g(0);
  float S[64];
#pragma unroll
  for (int x = 0; x < 64; ++x) S[x] = 0.f;
  const int dr = 64 * hh + 16 * w + g;  // this thread's fragment rows dr, dr + 8
  double ls0 = 0.0, ls1 = 0.0;           // the segment's log decay of keys dr, dr + 8 (base 2)
  for (int it = 0; it < nch; ++it) {
    wg::mbar_wait(bar0 + 8 * (it % Ly::NS), (it / Ly::NS) & 1);
    asm volatile("bar.sync 0, %0;\n" ::"n"(NT) : "memory");  // (every warp is done with iteration it - 1)
    issue(it + Ly::NS - 1);
    const int64_t t0 = tb + static_cast<int64_t>(it) * kC;
    const int L = rows_left(te - t0);
    TI* Ks = reinterpret_cast<TI*>(sm + (it % Ly::NS) * Ly::stage);
    const TI* Vs = reinterpret_cast<const TI*>(sm + (it % Ly::NS) * Ly::stage + Ly::KB);
    // Kb in place (0 past the segment), the block's totals.
    float2 lo, hi;  // (unused here)
    const float2 acc = wg::scan_gates(gv, lo, hi);  // (base 2, as tc_key_wg's)
    *reinterpret_cast<float2*>(tot + m * K + d0) = acc;
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int i = 16 * m + r;
      uint32_t* kq = reinterpret_cast<uint32_t*>(Ks + wg::sw(i, d0));
      *kq = i < L ? mma::scale2<TI>(*kq, ex2_ftz(acc.x - gv[r].x), ex2_ftz(acc.y - gv[r].y)) : 0u;
    }
    wg::proxy_fence();  // (the stage's next TMA load comes after these generic writes)
    if (it + 1 < nch) load_g(it + 1);
    asm volatile("bar.sync 0, %0;\n" ::"n"(NT) : "memory");  // (Kb and the totals complete)
    // This thread's factors: exp(E_3 - E_cb) = exp(T_{cb+1} + .. + T_3), exp(E_3).
    float f0[5], f1[5];
    {
      float t0r[4], t1r[4];
#pragma unroll
      for (int b = 0; b < 4; ++b) t0r[b] = tot[b * K + dr], t1r[b] = tot[b * K + dr + 8];
      float s0 = 0.f, s1 = 0.f;
#pragma unroll
      for (int cb = 3; cb >= 0; --cb) {
        f0[cb] = ex2_ftz(s0), f1[cb] = ex2_ftz(s1);
        s0 += t0r[cb], s1 += t1r[cb];
      }
      f0[4] = ex2_ftz(s0), f1[4] = ex2_ftz(s1);
      ls0 += static_cast<double>(s0), ls1 += static_cast<double>(s1);
    }
    wg::state_issue_key<TI>(S, Ks, Vs, f0, f1, hh);
    wg::wait0();
    wg::keep(S);
  }
  float* dst = sg.buf + seg_off(a, sg, sr.n, sr.s, h);
  wg::for_each_state(hh, [&](int x, int d, int col) { dst[static_cast<size_t>(d) * a.V + v0 + col] = S[x]; });
  if (blockIdx.x == 0 && c == 0) {
    float* dec = sg.decay + ((static_cast<size_t>(sr.n) * sg.nseg + sr.s) * H + h) * K;
    dec[dr] = static_cast<float>(exp2(ls0)), dec[dr + 8] = static_cast<float>(exp2(ls1));
  }
#endif
}
