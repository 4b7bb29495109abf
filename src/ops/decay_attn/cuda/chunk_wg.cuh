// Hopper (sm_90a) forward of the scalar-decay chunk form on warpgroup MMA (wgmma): part of
// chunk_tc.cu, included there inside its namespace (it uses core_args, fwd_out, seg_io, the gate
// table and the cp.async helpers). Design: src/ops/decay_attn/README.md, "CUDA", "wgmma forward".
//
// One CTA per (sequence or segment, head, 128-column V tile), K in {64, 128}, of 1 + K / 64 warpgroups:
//   warpgroup 0: P = Q K^T (masked, decayed: scale exp(G_i - G_j) beta_j, j <= i), then
//                O = Diag(Eq) Q S_prev + P V, stored in the input dtype;
//   warpgroups 1..: the fp32 state in registers, 64 of its K rows each: S = exp(G_L) S + Kd^T V
//                (Kd = Diag(Ek) K, A fragments from ldmatrix.trans scaled in registers), written as a
//                16-bit copy for the next chunk.
// All run on the same chunk at once: warpgroup 0 reads the copy of the state before the chunk, while
// the others write the one after it (two copies). Chunks stream through three stages loaded by the
// tensor memory accelerator (TMA: one thread issues a chunk's seven box copies, an mbarrier per stage
// counts their bytes; no warp spends issue slots or registers on addresses); one CTA barrier per chunk.
// Q, K and V tiles are slabs of 64 rows x 64 columns (128-byte rows, 128-byte swizzle: 16-byte piece p
// of row r at r 128 + 16 (p ^ r % 8), slabs 8 KB apart) — read K-major (Q, K: 1024 B between 8-row
// groups, a k16 block 32 B further) or MN-major (V: 1024 B between 8-token groups, 8 KB between the
// two 64-column slabs). The state copy, written by the state warpgroups, uses the no-swizzle canonical
// layout (MN-major: 8 x 16-byte core matrices of 128 contiguous bytes, 2048 B between 8-row groups of
// the K direction, 128 B between column groups). Rows of a box past the sequence (segment) are
// another sequence's or zeros: masked in P, their Ek taken as 0, their rows of O not stored.

namespace wg {

// Shared-memory matrix descriptor; sw128: 128-byte swizzle (layout type 1), else none (0).
__device__ __forceinline__ uint64_t desc(const void* p, uint32_t lbo, uint32_t sbo, bool sw128 = false) {
  return static_cast<uint64_t>((mma::smem_u32(p) & 0x3FFFFu) >> 4) | (static_cast<uint64_t>(lbo >> 4) << 16) |
         (static_cast<uint64_t>(sbo >> 4) << 32) | (static_cast<uint64_t>(sw128 ? 1 : 0) << 62);
}
// Element offset of (row r, column col) in a swizzled tile of 64-column slabs (64 rows each).
__device__ __forceinline__ int sw(int r, int col) {
  return (col / 64) * 4096 + r * 64 + ((((col % 64) / 8) ^ (r % 8)) * 8) + col % 8;
}
// (The wgmma instructions exist in sm_90a code only: elsewhere these are empty, and so is the kernel.)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LRNN_WG_ASM(text) asm volatile(text ::: "memory")
#else
#define LRNN_WG_ASM(text)
#endif
__device__ __forceinline__ void fence() { LRNN_WG_ASM("wgmma.fence.sync.aligned;\n"); }
__device__ __forceinline__ void commit() { LRNN_WG_ASM("wgmma.commit_group.sync.aligned;\n"); }
__device__ __forceinline__ void wait0() { LRNN_WG_ASM("wgmma.wait_group.sync.aligned 0;\n"); }
// Generic-proxy writes to shared memory (stores, cp.async) made visible to the async proxy (wgmma).
__device__ __forceinline__ void proxy_fence() { LRNN_WG_ASM("fence.proxy.async.shared::cta;\n"); }
__device__ __forceinline__ void mbar_init_fence() { LRNN_WG_ASM("fence.mbarrier_init.release.cluster;\n"); }
// The TMA stores' bulk groups: commit, then wait until they have read shared memory (store_wait_read)
// or finished (store_wait).
__device__ __forceinline__ void store_commit() { LRNN_WG_ASM("cp.async.bulk.commit_group;\n"); }
__device__ __forceinline__ void store_wait_read() { LRNN_WG_ASM("cp.async.bulk.wait_group.read 0;\n"); }
__device__ __forceinline__ void store_wait() { LRNN_WG_ASM("cp.async.bulk.wait_group 0;\n"); }
#undef LRNN_WG_ASM
// (The ones with operands: used only in tc_fwd_wg's sm_90a body, so defined for sm_90a only.)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// The producer's arrival with the bytes its copies will bring.
__device__ __forceinline__ void mbar_expect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
  } while (!done);
}
// One box of a 3-d tensor map (coordinates innermost first) into shared memory at dst, counted on bar.
__device__ __forceinline__ void tma3(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
// A box of shared memory at src to a 3-d tensor map (one bulk group per store_commit).
__device__ __forceinline__ void tma3_store(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2) {
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%1, %2, %3}], [%4];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1), "r"(c2), "r"(src)
               : "memory");
}
#endif
// Keeps the compiler from moving accesses of accumulator registers across wgmma's fence / wait.
template <int N>
__device__ __forceinline__ void keep(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int N>
__device__ __forceinline__ void keep(uint32_t (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// wgmma with fp32 accumulators d (m64nN: N / 2 floats a thread), acc 0: d = A B, else d += A B, over
// one k16 block; 16-bit inputs of type TI. ss_n64: A and B from shared memory, both K-major
// (descriptors da, db). ss_n128_t: A K-major, B MN-major. rs_n128_t: A in registers (each warp's 16
// rows as an m16n8k16 A fragment), B MN-major. (The instructions exist in sm_90a code only;
// elsewhere these are empty, and so is the kernel.)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LRNN_WG_R32 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define LRNN_WG_R64 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define LRNN_WG_D32 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define LRNN_WG_D64 \
  LRNN_WG_D32, \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
// One wgmma: type T, shape m64nN k16, the scale-d predicate from operand P, accumulator list RL and
// constraints DL, the rest of the operand text OPS and the inputs.
#define LRNN_WG_MMA(T, N, P, RL, OPS, DL, ...) \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #P ", 0;\n" \
               "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." #T "." #T " " RL OPS ";\n}\n" \
               : DL \
               : __VA_ARGS__)
#define LRNN_WG_SS_N64(T) LRNN_WG_MMA(T, 64, 34, LRNN_WG_R32, ", %32, %33, p, 1, 1, 0, 0", LRNN_WG_D32, "l"(da), "l"(db), "r"(acc))
#define LRNN_WG_SS_N128_T(T) \
  LRNN_WG_MMA(T, 128, 66, LRNN_WG_R64, ", %64, %65, p, 1, 1, 0, 1", LRNN_WG_D64, "l"(da), "l"(db), "r"(acc))
#define LRNN_WG_RS_N128_T(T)                                                                              \
  LRNN_WG_MMA(T, 128, 69, LRNN_WG_R64, ", {%64, %65, %66, %67}, %68, p, 1, 1, 1", LRNN_WG_D64, "r"(a[0]), "r"(a[1]), \
              "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc))
#define LRNN_WG_TYPED(M) \
  if constexpr (std::is_same_v<TI, __nv_bfloat16>) \
    M(bf16); \
  else \
    M(f16)
#else
#define LRNN_WG_TYPED(M)
#endif
template <typename TI>
__device__ __forceinline__ void ss_n64(float (&d)[32], uint64_t da, uint64_t db, int acc) {
  LRNN_WG_TYPED(LRNN_WG_SS_N64);
}
template <typename TI>
__device__ __forceinline__ void ss_n128_t(float (&d)[64], uint64_t da, uint64_t db, int acc) {
  LRNN_WG_TYPED(LRNN_WG_SS_N128_T);
}
template <typename TI>
__device__ __forceinline__ void rs_n128_t(float (&d)[64], const uint32_t (&a)[4], uint64_t db, int acc) {
  LRNN_WG_TYPED(LRNN_WG_RS_N128_T);
}
#undef LRNN_WG_TYPED
#undef LRNN_WG_MMA
#undef LRNN_WG_SS_N64
#undef LRNN_WG_SS_N128_T
#undef LRNN_WG_RS_N128_T
#undef LRNN_WG_D64
#undef LRNN_WG_D32
#undef LRNN_WG_R64
#undef LRNN_WG_R32


// Shared memory (from a 1024-byte aligned base: the swizzle's atoms): three stages of {Q [64][K],
// K [64][K], V [64][128] 16-bit (swizzled slabs), the gate table's 64 rows}, then two 16-bit copies of
// the state [K][128], then (the normaliser) two copies of n [K] in fp32 and two of the rows' divisor
// floors exp(-m) [64], then the stages' mbarriers.
template <int K>
struct lay {
  static constexpr size_t QB = kC * K * 2, VB = kC * 128 * 2;
  static constexpr size_t q = 0, k = QB, v = 2 * QB, tab = 2 * QB + VB, stage = tab + 16 * kC;
  static constexpr int NS = 3;
  static constexpr size_t sb = NS * stage, SBB = static_cast<size_t>(K) * 128 * 2;
  static constexpr size_t nb = sb + 2 * SBB;
  static constexpr size_t fb = nb + 8 * K;
  static constexpr size_t bars = fb + 8 * kC;
  static constexpr uint32_t tx = static_cast<uint32_t>(tab + 16 * kC);  // bytes a stage receives
  static constexpr size_t total = bars + 8 * NS + 1024;               // (+ the base's alignment)
  static_assert(stage % 1024 == 0 && QB % 1024 == 0, "swizzled tiles need 1024-byte alignment");
};

// Descriptor byte offsets. Q, K (K-major, swizzled): SBO between 8-row groups (LBO unused); V
// (MN-major, swizzled): LBO between 64-column slabs, SBO between 8-token groups; the state copy
// (MN-major, no swizzle): LBO between 8-row groups (K direction), SBO between column groups.
template <int K>
struct strides {
  static constexpr uint32_t QL = 16, QS = 1024;
  static constexpr uint32_t VL = 8192, VS = 1024;
  static constexpr uint32_t SL = 2048, SS = 128;
};

// (The host's tensor maps: q, k [tokens][H][K] and v [tokens][H][Vin] in boxes of 64 x 1 x 64, the gate
// table [tokens][H] float4 in boxes of 4 x 1 x 64; with ost, o [tokens][H][Vin] in the input dtype as v:
// K = 128 writes a whole chunk's O through the stage's Q slabs with TMA stores — full 32-byte sectors,
// where the threads' own stores fill half of one each.)
struct maps {
  CUtensorMap q, k, v, tab, o;
  int ost;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// ns mbarriers at bar0 (8 bytes apart), one arrival each (the producer's); the caller then syncs the CTA.
__device__ __forceinline__ void init_bars(uint32_t bar0, int ns) {
  for (int i = 0; i < ns; ++i) mbar_init(bar0 + 8 * i, 1);
  mbar_init_fence();
}
// The TMA copies of the chunk at token t0 into a stage (shared addresses): (HQ) Q's K / 64 slabs at q,
// K's at k, V's two 64-column slabs from column v0 at v, the gate table's 64 rows at tab; the stage's
// mbarrier bar expects tx bytes.
template <int K, bool HQ>
__device__ __forceinline__ void load_chunk(const maps& mp, uint32_t q, uint32_t k, uint32_t v, uint32_t tab, int h, int v0,
                                           int t0, uint32_t bar, uint32_t tx) {
  mbar_expect(bar, tx);
#pragma unroll
  for (int sl = 0; sl < K / 64; ++sl) {
    if constexpr (HQ) tma3(q + 8192 * sl, &mp.q, 64 * sl, h, t0, bar);
    tma3(k + 8192 * sl, &mp.k, 64 * sl, h, t0, bar);
  }
  tma3(v, &mp.v, v0, h, t0, bar);
  tma3(v + 8192, &mp.v, v0 + 64, h, t0, bar);
  tma3(tab, &mp.tab, 0, h, t0, bar);
}
#endif

// fn(x, d, col) for a state warpgroup thread's 64 accumulator elements S[x] (rows d of the state,
// columns col of its 128-column tile; warpgroup hh holds rows 64 hh..).
template <typename Fn>
__device__ __forceinline__ void for_each_state(int hh, Fn&& fn) {
  const int l = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, g = l / 4, c = l % 4;
#pragma unroll
  for (int t = 0; t < 16; ++t)
#pragma unroll
    for (int x = 0; x < 4; ++x) fn(4 * t + x, 64 * hh + 16 * w + g + (x >= 2 ? 8 : 0), 8 * t + 2 * c + (x & 1));
}

// A state warpgroup's 16-bit copy of its rows 64 hh.. of S (this thread's accumulator elements) at dst,
// the layout warpgroup 0's wgmma reads as B: element (d, col) at piece (d / 8) 128 + 8 (col / 8) + d % 8
// (MN-major).
template <typename TI>
__device__ __forceinline__ void write_state_copy(TI* dst, const float (&S)[64], int hh) {
  const int l = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, g = l / 4, c = l % 4;
  auto sb_at = [](int d, int col) { return (d / 8) * 1024 + (col / 8) * 64 + (d % 8) * 8 + col % 8; };
#pragma unroll
  for (int t = 0; t < 16; ++t) {
    const int d = 64 * hh + 16 * w + g, col = 8 * t + 2 * c;
    *reinterpret_cast<uint32_t*>(dst + sb_at(d, col)) = mma::pack2<TI>(S[4 * t], S[4 * t + 1]);
    *reinterpret_cast<uint32_t*>(dst + sb_at(d + 8, col)) = mma::pack2<TI>(S[4 * t + 2], S[4 * t + 3]);
  }
}

// This thread's element (row, column) of an m64nN accumulator (warp w of the warpgroup, lane l):
// index 4 t + x is row 16 w + l / 4 (+ 8 for x >= 2), column 8 t + 2 (l % 4) + (x & 1).

// A state warpgroup's chunk (rows d = 64 hh + 16 w + (0..15) of the state, warp w): S = e S + Kd^T V
// issued (one commit group: the caller waits), Kd = Diag(Ek) K with rows j >= L weighing 0 (Ek: the
// gate table's column, stride 4 floats); with nrm also x0, x1 = sum_j Ek_j f_j k_jd for the quad's
// rows d = 64 hh + 16 w + l / 4 and d + 8 (f: a value per row j, null: ones; from the k of its own
// fragments, exact, before their scaling to 16 bits; fp32 products, summed over the quad). K, V: the
// stage's swizzled slabs (the reverse segment pass passes Q and d_o, Eq, and d_o's normaliser column).
template <typename TI>
__device__ __forceinline__ void state_issue(float (&S)[64], float& x0, float& x1, const TI* Ks, const TI* Vs, const float* Ek,
                                            int L, float e, int hh, bool nrm, const float* f = nullptr) {
  const int l = threadIdx.x % 32, w = (threadIdx.x / 32) % 4, c = l % 4;
  uint32_t fa[4][4];
  x0 = 0.f, x1 = 0.f;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    // Kd^T rows d = 64 hh + 16 w + (0..15), columns j = 16 kk + (0..15): matrix m = l / 8 of the x4
    // load is rows j = 16 kk + 8 (m / 2) + l % 8 of K at key columns 64 hh + 16 w + 8 (m % 2).
    // Fragment: [0] row g, j = k0, k0 + 1; [1] row g + 8, same j; [2], [3] the same rows at j + 8.
    const int m = l / 8, j = 16 * kk + 8 * (m / 2) + l % 8, d0 = 64 * hh + 16 * w + 8 * (m % 2);
    mma::ldsm4t(fa[kk], Ks + sw(j, d0));
    const int k0 = 16 * kk + 2 * c;
    const float e0 = k0 < L ? Ek[4 * k0] : 0.f, e1 = k0 + 1 < L ? Ek[4 * (k0 + 1)] : 0.f;
    const float e8 = k0 + 8 < L ? Ek[4 * (k0 + 8)] : 0.f, e9 = k0 + 9 < L ? Ek[4 * (k0 + 9)] : 0.f;
    if (nrm) {
      const float2 f0 = mma::unpack2<TI>(fa[kk][0]), f1 = mma::unpack2<TI>(fa[kk][1]);
      const float2 f2 = mma::unpack2<TI>(fa[kk][2]), f3 = mma::unpack2<TI>(fa[kk][3]);
      float w0 = e0, w1 = e1, w8 = e8, w9 = e9;
      if (f) w0 *= f[k0], w1 *= f[k0 + 1], w8 *= f[k0 + 8], w9 *= f[k0 + 9];
      x0 += w0 * f0.x + w1 * f0.y + w8 * f2.x + w9 * f2.y;
      x1 += w0 * f1.x + w1 * f1.y + w8 * f3.x + w9 * f3.y;
    }
    fa[kk][0] = mma::scale2<TI>(fa[kk][0], e0, e1);
    fa[kk][1] = mma::scale2<TI>(fa[kk][1], e0, e1);
    fa[kk][2] = mma::scale2<TI>(fa[kk][2], e8, e9);
    fa[kk][3] = mma::scale2<TI>(fa[kk][3], e8, e9);
    keep(fa[kk]);
  }
#pragma unroll
  for (int x = 0; x < 64; ++x) S[x] *= e;
  keep(S);
  const uint64_t dv = desc(Vs, strides<128>::VL, strides<128>::VS, true);
  fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) rs_n128_t<TI>(S, fa[kk], dv + 128 * kk, 1);
  commit();
  if (nrm) quad_sum2(x0, x1);
}

}  // namespace wg

template <int K>
constexpr int wg_threads = 128 * (1 + K / 64);

// NORM: mLSTM's normaliser column (V = Vin + 1; the CTAs of V tile 0): n = exp(G_L) n + sum_j Ek_j k_j
// by the state warpgroups on CUDA cores in fp32 (each thread from the k of its Kd^T fragments, a quad's
// sum for its two rows d, while the wgmma runs), two fp32
// copies in shared memory as for the state; warpgroup 0 adds den_i = Eq_i q_i.n + sum_j P_ij (P's
// unrounded fp32 rows) and then, fused (out.den, one V tile), divides its rows of O by
// max(|den_i|, exp(-m_i)) + eps and writes den; otherwise o in fp32 [tokens, H, V] with den in column Vin.
template <typename TI, int K, bool NORM = false>
__global__ void __launch_bounds__(wg_threads<K>, 1)
    tc_fwd_wg(core_args a, fwd_out out, seg_io sg, const __grid_constant__ wg::maps mp) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Ly = wg::lay<K>;
  constexpr int NT = wg_threads<K>;
  extern __shared__ __align__(128) unsigned char sm_raw[];
  unsigned char* sm = sm_raw + ((1024 - (mma::smem_u32(sm_raw) & 1023)) & 1023);
  const seg_range sr = seg_of(a, sg);
  if (sr.s > 0 && sr.tb >= sr.se) return;
  const int h = blockIdx.y, v0 = blockIdx.x * 128, H = a.H, Vin = a.Vin;
  const size_t srow = (static_cast<size_t>(sr.n) * H + h) * K;
  const int tid = threadIdx.x, warp = tid / 32, w = warp % 4, l = tid % 32, g = l / 4, c = l % 4;
  const bool state_wg = warp >= 4;
  const bool nrm = NORM && blockIdx.x == 0;
  const bool fuse = NORM && out.den != nullptr;
  float* nbuf = reinterpret_cast<float*>(sm + Ly::nb);  // (NORM) n before / after the chunk, [2][K]
  // (fused, with the stabiliser) exp(-m) of chunk ci's rows in fbuf[ci % 2], loaded a chunk ahead by the
  // state warpgroup 0's threads tw < 64 (warpgroup 0 would wait for the load on its critical path)
  float* fbuf = reinterpret_cast<float*>(sm + Ly::fb);
  const int tw = tid % 128;
  const bool ldm = fuse && out.m && warp >= 4 && warp < 8 && tw < kC;
  const int hh = warp / 4 - 1;  // (state warpgroups) rows 64 hh.. of the state
  const int64_t tb = sr.tb, te = sr.te;
  const int nch = static_cast<int>((te - tb + kC - 1) / kC);
  const uint32_t smb = mma::smem_u32(sm), bar0 = smb + static_cast<uint32_t>(Ly::bars);
  constexpr int producer = 128;  // (thread 0 of warpgroup 1 issues the copies)
  if (tid == producer) wg::init_bars(bar0, Ly::NS);
  __syncthreads();
  // Copies of chunk ci into its stage (none past the last chunk).
  auto issue = [&](int ci) {
    if (tid != producer || ci >= nch) return;
    const uint32_t st = smb + static_cast<uint32_t>((ci % Ly::NS) * Ly::stage), bar = bar0 + 8 * (ci % Ly::NS);
    const int t0 = static_cast<int>(tb + static_cast<int64_t>(ci) * kC);
    wg::load_chunk<K, true>(mp, st + Ly::q, st + Ly::k, st + Ly::v, st + Ly::tab, h, v0, t0, bar, Ly::tx);
  };
  issue(0);
  issue(1);
  TI* sbuf = reinterpret_cast<TI*>(sm + Ly::sb);
  float S[64];
  auto write_copy = [&](TI* dst) { wg::write_state_copy<TI>(dst, S, hh); };
  // Per chunk: its copies landed (the stage's mbarrier), then the CTA barrier (every warp is done with
  // chunk ci - 1: its stage and the older state copy; the state warpgroups fenced their copy for the
  // async proxy before it), then the copies of chunk ci + 2 into the stage of ci - 1. The two roles
  // below run their own loops with the same barriers (one CTA barrier per chunk; a loop shared by both
  // kept warpgroup 1's state live in warpgroup 0's registers: spills).
  using Sd = wg::strides<K>;
  struct chunk_view {
    int64_t t0;
    int L;
    const TI *Qs, *Ks, *Vs;
    const float4* tab;
  };
  auto step = [&](int ci) {
    if (tid == 0) wg::store_wait_read();  // (the O stores of chunk ci - 1 have read their stage)
    wg::mbar_wait(bar0 + 8 * (ci % Ly::NS), (ci / Ly::NS) & 1);
    // (non-aligned: both roles pass it, each at its own instruction; chunk_key_wg.cuh's sync_issue)
    asm volatile("barrier.sync 0, %0;\n" ::"n"(NT) : "memory");
    issue(ci + 2);
    const unsigned char* st = sm + (ci % Ly::NS) * Ly::stage;
    const int64_t t0 = tb + static_cast<int64_t>(ci) * kC;
    return chunk_view{t0, rows_left(te - t0), reinterpret_cast<const TI*>(st + Ly::q),
                      reinterpret_cast<const TI*>(st + Ly::k), reinterpret_cast<const TI*>(st + Ly::v),
                      reinterpret_cast<const float4*>(st + Ly::tab)};
  };
  if (!state_wg) {
    for (int ci = 0; ci < nch; ++ci) {
      const chunk_view ch = step(ci);
      const int64_t t0 = ch.t0;
      const int L = ch.L;
      const TI *Qs = ch.Qs, *Ks = ch.Ks, *Vs = ch.Vs;
      const float4* tab = ch.tab;
      const TI* Sprev = sbuf + ((ci + 1) & 1) * (Ly::SBB / 2);
      float P[32], O[64];
      // (this thread's rows of the chunk and their [tokens, H] offsets)
      const int i0 = 16 * w + g, i1 = i0 + 8;
      const size_t r0h = static_cast<size_t>(t0 + i0) * H + h, r1h = r0h + static_cast<size_t>(8) * H;
      // (descriptors advanced in their address field: 16-byte units)
      const uint64_t dq = wg::desc(Qs, Sd::QL, Sd::QS, true), dk = wg::desc(Ks, Sd::QL, Sd::QS, true);
      const uint64_t ds = wg::desc(Sprev, Sd::SL, Sd::SS);
      // (k16 block kk of a swizzled K-major tile: slab kk / 4, 32 bytes per block within its rows)
      auto kb = [](int kk) { return static_cast<uint64_t>((kk / 4) * 512 + (kk % 4) * 2); };
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) wg::ss_n64<TI>(P, dq + kb(kk), dk + kb(kk), kk > 0);
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) wg::ss_n128_t<TI>(O, dq + kb(kk), ds + 256 * kk, kk > 0);
      wg::commit();
      // (NORM, while the products run) q_i . n for rows i0, i1: thread c of a row's quad takes keys
      // [K c / 4, K (c + 1) / 4), then the quad's sum.
      float qn0 = 0.f, qn1 = 0.f;
      if (nrm) {
        const float* nv = nbuf + ((ci + 1) & 1) * K;
#pragma unroll
        for (int u = 0; u < K / 32; ++u) {
          const int d = (K / 4) * c + 8 * u;
          const uint4 x0 = *reinterpret_cast<const uint4*>(Qs + wg::sw(i0, d));
          const uint4 x1 = *reinterpret_cast<const uint4*>(Qs + wg::sw(i1, d));
          const float4 na = *reinterpret_cast<const float4*>(nv + d);
          const float4 nb2 = *reinterpret_cast<const float4*>(nv + d + 4);
          const float nn[8] = {na.x, na.y, na.z, na.w, nb2.x, nb2.y, nb2.z, nb2.w};
          const uint32_t xs0[4] = {x0.x, x0.y, x0.z, x0.w}, xs1[4] = {x1.x, x1.y, x1.z, x1.w};
#pragma unroll
          for (int e2 = 0; e2 < 4; ++e2) {
            const float2 f0 = mma::unpack2<TI>(xs0[e2]), f1 = mma::unpack2<TI>(xs1[e2]);
            qn0 += f0.x * nn[2 * e2] + f0.y * nn[2 * e2 + 1];
            qn1 += f1.x * nn[2 * e2] + f1.y * nn[2 * e2 + 1];
          }
        }
        quad_sum2(qn0, qn1);
      }
      wg::wait0();
      wg::keep(P);
      wg::keep(O);
      // P's mask and decay (rows past L are masked: G = 0 there), O's rows scaled by Eq.
      const float4 r0 = tab[i0], r1 = tab[i1];
      const int lim0 = i0 < L ? i0 : -1, lim1 = i1 < L ? i1 : -1;
      const float sc = a.scale;
#pragma unroll
      for (int t = 0; t < 8; ++t) {
        const float4 pm = decay_mask4(P[4 * t], P[4 * t + 1], P[4 * t + 2], P[4 * t + 3], tab, 8 * t + 2 * c, r0.x, r1.x, lim0,
                                      lim1, sc);
        P[4 * t] = pm.x, P[4 * t + 1] = pm.y, P[4 * t + 2] = pm.z, P[4 * t + 3] = pm.w;
      }
#pragma unroll
      for (int t = 0; t < 16; ++t) O[4 * t] *= r0.z, O[4 * t + 1] *= r0.z, O[4 * t + 2] *= r1.z, O[4 * t + 3] *= r1.z;
      float den0 = 0.f, den1 = 0.f;  // (NORM) den of rows i0, i1 (P's unrounded row sums)
      if (nrm) {
        float s0 = 0.f, s1 = 0.f;
#pragma unroll
        for (int t = 0; t < 8; ++t) s0 += P[4 * t] + P[4 * t + 1], s1 += P[4 * t + 2] + P[4 * t + 3];
        quad_sum2(s0, s1);
        den0 = r0.z * qn0 + s0, den1 = r1.z * qn1 + s1;
      }
      const uint64_t dv = wg::desc(Vs, Sd::VL, Sd::VS, true);
      uint32_t pa[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        pa[kk][0] = mma::pack2<TI>(P[8 * kk], P[8 * kk + 1]);
        pa[kk][1] = mma::pack2<TI>(P[8 * kk + 2], P[8 * kk + 3]);
        pa[kk][2] = mma::pack2<TI>(P[8 * kk + 4], P[8 * kk + 5]);
        pa[kk][3] = mma::pack2<TI>(P[8 * kk + 6], P[8 * kk + 7]);
        wg::keep(pa[kk]);
      }
      wg::keep(O);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wg::rs_n128_t<TI>(O, pa[kk], dv + 128 * kk, 1);
      wg::commit();
      wg::wait0();
      wg::keep(O);
      if (NORM && !fuse) {
        // o' in fp32 with den in column Vin (normalise_forward divides)
        float* of = static_cast<float*>(out.o);
        float* p0 = of + r0h * a.V + v0 + 2 * c;
        float* p1 = of + r1h * a.V + v0 + 2 * c;
#pragma unroll
        for (int t = 0; t < 16; ++t) {
          if (i0 < L) p0[8 * t] = O[4 * t], p0[8 * t + 1] = O[4 * t + 1];
          if (i1 < L) p1[8 * t] = O[4 * t + 2], p1[8 * t + 1] = O[4 * t + 3];
        }
        if (nrm && c == 0) {
          if (i0 < L) of[r0h * a.V + Vin] = den0;
          if (i1 < L) of[r1h * a.V + Vin] = den1;
        }
        continue;
      }
      if (fuse) {
        const float* fl = fbuf + (ci & 1) * kC;
        const float fl0 = out.m ? fl[i0] : 1.f, fl1 = out.m ? fl[i1] : 1.f;
        const float s0 = 1.f / norm_divisor(den0, fl0, out.eps), s1 = 1.f / norm_divisor(den1, fl1, out.eps);
#pragma unroll
        for (int t = 0; t < 16; ++t) O[4 * t] *= s0, O[4 * t + 1] *= s0, O[4 * t + 2] *= s1, O[4 * t + 3] *= s1;
        if (c == 0) {
          if (i0 < L) out.den[r0h] = den0;
          if (i1 < L) out.den[r1h] = den1;
        }
      }
      if (K == 128 && mp.ost && L == kC) {
        // Whole chunk: O into the stage's Q slabs (free: Q K^T, Q S and q.n have read them) in the
        // swizzled layout, then two TMA stores by thread 0; it waits for them to have read the slabs
        // before the next chunk's barrier (after which the stage is reloaded).
        TI* Os = const_cast<TI*>(Qs);
        __syncwarp();  // (the normaliser's q.n read these rows of Q: the warp's own, no other warp's)
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
    }
    if (tid == 0) wg::store_wait();
    return;
  }
  {
    const float* st0 = sr.s == 0 ? a.s0 : sg.buf + seg_off(a, sg, sr.n, sr.s - 1, h);
    const int64_t ld = sr.s == 0 ? Vin : a.V;
    const size_t base = sr.s == 0 ? srow * Vin + v0 : v0;
    wg::for_each_state(hh, [&](int x, int d, int col) { S[x] = st0 ? st0[base + d * ld + col] : 0.f; });
    write_copy(sbuf + Ly::SBB / 2);  // copy 1: the state before chunk 0
    wg::proxy_fence();
  }
  // (NORM) the quad's thread c = 0 keeps n of its fragment rows d = 64 hh + 16 w + g and d + 8 in registers
  const int dn0 = 64 * hh + 16 * w + g, dn1 = dn0 + 8;
  float nr0 = 0.f, nr1 = 0.f;
  // (ldm) exp(-m) of chunk cj's row tw (1 past the segment)
  auto floor_of = [&](int cj) {
    const int64_t t = tb + static_cast<int64_t>(cj) * kC + tw;
    return t < te ? expf(-out.m[static_cast<size_t>(t) * H + h]) : 1.f;
  };
  if (ldm) fbuf[tw] = floor_of(0);
  if (nrm && c == 0) {
    nr0 = norm_boundary(a, sg, sr, srow, h, dn0, a.n0, false);
    nr1 = norm_boundary(a, sg, sr, srow, h, dn1, a.n0, false);
    nbuf[K + dn0] = nr0, nbuf[K + dn1] = nr1;
  }
  for (int ci = 0; ci < nch; ++ci) {
    const chunk_view ch = step(ci);
    const TI *Ks = ch.Ks, *Vs = ch.Vs;
    const float4* tab = ch.tab;
    const float e = expf(tab[ch.L - 1].x);
    const float* Ek = &tab[0].w;
    const float fnext = ldm && ci + 1 < nch ? floor_of(ci + 1) : 1.f;  // (stored after the products)
    const int L = ch.L;  // (rows from L on are not this chunk's: their Ek is taken as 0)
    float x0, x1;  // (NORM) sum_j Ek_j k_jd for this quad's rows d = dn0, dn1
    wg::state_issue<TI>(S, x0, x1, Ks, Vs, Ek, L, e, hh, nrm);
    if (nrm) {
      // n = e n + sum_j Ek_j k_j, while the products run
      if (c == 0) {
        nr0 = e * nr0 + x0, nr1 = e * nr1 + x1;
        nbuf[(ci & 1) * K + dn0] = nr0, nbuf[(ci & 1) * K + dn1] = nr1;
      }
    }
    wg::wait0();
    wg::keep(S);
    if (ldm) fbuf[((ci + 1) & 1) * kC + tw] = fnext;  // (warpgroup 0 last read this buffer in chunk ci - 1)
    write_copy(sbuf + (ci & 1) * (Ly::SBB / 2));
    wg::proxy_fence();
  }
  if (nrm && out.nf && te == sr.se && c == 0) out.nf[srow + dn0] = nr0, out.nf[srow + dn1] = nr1;
  if (out.sf && te == sr.se)
    wg::for_each_state(hh, [&](int x, int d, int col) { out.sf[(srow + d) * Vin + v0 + col] = S[x]; });
#endif
}

// The segment passes on warpgroup MMA (tc_seg's, for the scalar decays): per (segment, head,
// 128-column V tile) the state a segment hands on from a zero start, chunk by chunk,
//   FWD (every segment but the last): S = exp(G_L) S + Kd^T V, Kd = Diag(Ek) K, into sg.buf;
//   reverse (every segment but the first, its chunks from the last): S = exp(G_L) S + Qe^T dO,
//     Qe = Diag(Eq) Q (the caller passes q and d_o as k and v), into sg.rbuf;
// [K][V] floats each (NORM, V tile 0: n into column Vin, from ones or, reverse, from d_o's normaliser
// column sg.dn), and the segment's decay exp(sum of its log decays) into sg.decay. K / 64 state
// warpgroups, 64 rows of S each (wg::state_issue, as tc_fwd_wg's); no output rows, so no warpgroup 0
// and no state copy: the chunks' K and V stream through four TMA stages (thread 0 issues them; one
// CTA barrier a chunk before a stage is refilled). The reverse pass's sg.dn rows of the next chunk are
// loaded a chunk ahead by threads 0..63 into shared memory (two buffers), as tc_fwd_wg's divisor floors.
namespace wg {
template <int K>
struct seg_lay {
  static constexpr size_t KB = kC * K * 2, VB = kC * 128 * 2;
  static constexpr size_t k = 0, v = KB, tab = KB + VB, stage = tab + 16 * kC;
  static constexpr int NS = 4;
  static constexpr size_t dn = NS * stage;  // (reverse, NORM) [2][64] floats
  static constexpr size_t bars = dn + 8 * kC;
  static constexpr uint32_t tx = static_cast<uint32_t>(stage);
  static constexpr size_t total = bars + 8 * NS + 1024;
  static_assert(stage % 1024 == 0 && KB % 1024 == 0, "swizzled tiles need 1024-byte alignment");
};
}  // namespace wg

template <typename TI, int K, bool FWD, bool NORM = false>
__global__ void __launch_bounds__(128 * (K / 64), 1)
    tc_seg_wg(core_args a, seg_io sg, const __grid_constant__ wg::maps mp) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Ly = wg::seg_lay<K>;
  constexpr int NT = 128 * (K / 64);
  extern __shared__ __align__(128) unsigned char sm_raw[];
  unsigned char* sm = sm_raw + ((1024 - (mma::smem_u32(sm_raw) & 1023)) & 1023);
  const seg_range sr = seg_of(a, sg);
  if (FWD ? sr.s == sg.nseg - 1 : sr.s == 0) return;  // (nobody starts from that segment's state)
  const int h = blockIdx.y, v0 = blockIdx.x * 128, H = a.H;
  const int tid = threadIdx.x, warp = tid / 32, w = warp % 4, l = tid % 32, g = l / 4, c = l % 4, hh = warp / 4;
  const bool nrm = NORM && blockIdx.x == 0;
  const bool ldn = nrm && !FWD && tid < kC;  // (loads d_o's normaliser column a chunk ahead)
  float* dnb = reinterpret_cast<float*>(sm + Ly::dn);
  const int64_t tb = sr.tb, te = sr.te;
  const int nch = static_cast<int>((te - tb + kC - 1) / kC);
  auto chunk_t0 = [&](int it) { return tb + static_cast<int64_t>(FWD ? it : nch - 1 - it) * kC; };
  const uint32_t smb = mma::smem_u32(sm), bar0 = smb + static_cast<uint32_t>(Ly::bars);
  if (tid == 0) wg::init_bars(bar0, Ly::NS);
  // (ldn) d_o's normaliser column at row tid of iteration it's chunk (0 past the segment)
  auto dn_of = [&](int it) {
    const int64_t t = chunk_t0(it) + tid;
    return t < te && sg.dn ? sg.dn[static_cast<size_t>(t) * H + h] : 0.f;
  };
  if (ldn && nch > 0) dnb[tid] = dn_of(0);
  __syncthreads();
  auto issue = [&](int it) {
    if (tid != 0 || it >= nch) return;
    const uint32_t st = smb + static_cast<uint32_t>((it % Ly::NS) * Ly::stage), bar = bar0 + 8 * (it % Ly::NS);
    wg::load_chunk<K, false>(mp, 0, st + Ly::k, st + Ly::v, st + Ly::tab, h, v0, static_cast<int>(chunk_t0(it)), bar, Ly::tx);
  };
#pragma unroll
  for (int i = 0; i < Ly::NS - 1; ++i) issue(i);
  float S[64];
#pragma unroll
  for (int x = 0; x < 64; ++x) S[x] = 0.f;
  float nr0 = 0.f, nr1 = 0.f;  // (nrm, c == 0) n of rows 64 hh + 16 w + g and + 8
  double glsum = 0.0;          // (thread 0) the segment's log decay
  for (int it = 0; it < nch; ++it) {
    wg::mbar_wait(bar0 + 8 * (it % Ly::NS), (it / Ly::NS) & 1);
    asm volatile("bar.sync 0, %0;\n" ::"n"(NT) : "memory");  // (every warp is done with iteration it - 1's stage)
    issue(it + Ly::NS - 1);
    const float dnext = ldn && it + 1 < nch ? dn_of(it + 1) : 0.f;  // (stored after the products)
    const unsigned char* st = sm + (it % Ly::NS) * Ly::stage;
    const float4* tab = reinterpret_cast<const float4*>(st + Ly::tab);
    const int L = rows_left(te - chunk_t0(it));
    const float gL = tab[L - 1].x, e = expf(gL);
    if (tid == 0) glsum += gL;
    float x0, x1;
    wg::state_issue<TI>(S, x0, x1, reinterpret_cast<const TI*>(st + Ly::k), reinterpret_cast<const TI*>(st + Ly::v),
                        FWD ? &tab[0].w : &tab[0].z, L, e, hh, nrm, FWD ? nullptr : dnb + (it & 1) * kC);
    if (nrm && c == 0) nr0 = e * nr0 + x0, nr1 = e * nr1 + x1;
    wg::wait0();
    wg::keep(S);
    if (ldn) dnb[((it + 1) & 1) * kC + tid] = dnext;  // (buffer (it + 1) % 2 was last read in iteration it - 1)
  }
  float* dst = (FWD ? sg.buf : sg.rbuf) + seg_off(a, sg, sr.n, sr.s, h);
  wg::for_each_state(hh, [&](int x, int d, int col) { dst[static_cast<size_t>(d) * a.V + v0 + col] = S[x]; });
  if (nrm && c == 0) {
    const int d = 64 * hh + 16 * w + g;
    dst[static_cast<size_t>(d) * a.V + a.Vin] = nr0;
    dst[static_cast<size_t>(d + 8) * a.V + a.Vin] = nr1;
  }
  if (blockIdx.x == 0 && tid == 0) sg.decay[(static_cast<size_t>(sr.n) * sg.nseg + sr.s) * H + h] = static_cast<float>(exp(glsum));
#endif
}
