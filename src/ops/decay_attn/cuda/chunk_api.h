// Plain-C++ interface between the host glue (chunk_host.cpp, which may use lrnn/status.h) and the
// CUDA chunk kernels (chunk_fwd.cu, chunk_bwd.cu, chunk_aux.cu, which must not: nvcc rejects fmt's
// consteval checks). Every launcher returns a cudaError_t as int (0 = success). All pointers are
// device pointers; activations are [tokens, H, D] contiguous, gates and states fp32.
#pragma once

#include <cstdint>

namespace lrnn::ops::cuda_chunk {

enum in_type : int { t_f32 = 0, t_bf16 = 1, t_f16 = 2 };
// How the core reads its log decay: none, [tokens, H], [tokens, H, K], or one value per head [H].
enum gate_mode : int { g_none = 0, g_scalar = 1, g_key = 2, g_head = 3 };

// The linear core of engine.h on the GPU: S_t = Diag(exp(g_t)) S_{t-1} + exp(b_t) k_t v'^T_t,
// o_t = scale S_t^T q_t (bonus: scale (S_{t-1} + Diag(u) k_t v_t^T)^T q_t). v' is v with, when
// V > Vin, one more column of ones (the mLSTM normaliser), so states are [K, V] with column Vin
// kept in separate n tensors [N, H, K].
struct core_args {
  int N = 0, H = 0, K = 0, V = 0, Vin = 0;
  int64_t tokens = 0;
  int64_t max_len = 0;               // longest sequence (tokens)
  const int32_t* offsets = nullptr;  // [N + 1]
  int type = t_f32;                  // dtype of q, k, v (and of o, dv, d_o unless said otherwise)
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  float scale = 1.f;
  const float* g = nullptr;
  int gmode = g_none;
  const float* b = nullptr;   // [tokens, H] log input scale, or null
  const float* u = nullptr;   // [H, K] bonus, or null
  const float* s0 = nullptr;  // [N, H, K, Vin] or null
  const float* n0 = nullptr;  // [N, H, K] (normaliser column of s0) or null
  // Device scratch of tc_table_bytes(*this) bytes for the tensor-core path's per-token gate table;
  // null: the call allocates it (stream-ordered).
  void* gate_tab = nullptr;
  // Backward with the normaliser folded into the tensor-core kernels (bwd_io::rs): [tokens, H] factors
  // of the gate table's query-side column (scale exp(G) r_i), or null.
  const float* eq_scale = nullptr;
};

struct fwd_out {
  void* o = nullptr;   // [tokens, H, Vin] in `type`, or (o_f32) [tokens, H, V] fp32
  bool o_f32 = false;
  float* sf = nullptr;  // [N, H, K, Vin] or null
  float* nf = nullptr;  // [N, H, K] or null
  // The normaliser applied in the core (V = Vin + 1, only where tc_forward_fused_norm): o in `type`
  // is o'[:Vin] / (max(|o'[Vin]|, floor) + eps), floor = exp(-m) (m [tokens, H] or null: 1), and
  // den [tokens, H] gets o'[Vin] (for normalise_backward_rows and decay_attn_output::den).
  float* den = nullptr;
  const float* m = nullptr;
  float eps = 0.f;
  // The forward's context for the backward (tensor-core path with segments, tc_ctx_floats(a) floats):
  // the states at the segment boundaries, written there by the segment pass; with seg_ready already
  // there (an earlier forward of the same inputs wrote them) and the pass is skipped.
  float* seg_ctx = nullptr;
  bool seg_ready = false;
};

struct bwd_io {
  const void* d_o = nullptr;  // [tokens, H, Vin] in `type`, or (do_f32) [tokens, H, V] fp32
  bool do_f32 = false;
  const float* dsf = nullptr;  // [N, H, K, Vin] or null
  const float* dn = nullptr;   // [tokens, H]: with V = Vin + 1 and d_o in `type` [tokens, H, Vin], its column Vin
  // Tensor-core path, normaliser folded: d_o' = Diag(rs) d_o with d_o the normalised output's gradient
  // (io.d_o), dn = d_o' 's column Vin / rs, and a.eq_scale = rs (see normalise_backward_rows).
  const float* rs = nullptr;
  // The rows above computed by the core itself (bf16/f16 with the saved, normalised o): rs and dn
  // above are then its outputs rs_out, dn_out (with dm_local), and a.eq_scale = rs_out. With one V
  // tile the dq sweep computes them per chunk from the staged o (or, where that stage does not fit,
  // from its own products; with segments the reverse segment pass runs after it); otherwise (several
  // V tiles, or a stage too large for the GPU) normalise_backward_rows runs first, from o and d_o.
  struct norm_rows {
    const void* o = nullptr;  // [tokens, H, Vin] in `type`; null: rs, dn are inputs
    const float* den = nullptr;
    const float* m = nullptr;  // stabiliser or null
    float eps = 0.f;
    float* rs_out = nullptr;
    float* dn_out = nullptr;
    float* dm_local = nullptr;  // or null
  } rows;
  const float* dnf = nullptr;  // [N, H, K] or null
  float* dq = nullptr;         // [tokens, H, K] fp32, zeroed (accumulated with atomics)
  float* dk = nullptr;         // [tokens, H, K] fp32, zeroed
  // Instead of dq, dk (only where tc_backward_direct): dq, dk written in `type`, and per token
  // xy = (q . dq, k . dk) [tokens, H, 2] fp32, zeroed (accumulated with atomics).
  void* dq_out = nullptr;
  void* dk_out = nullptr;
  float* xy = nullptr;
  // Per-key gates on tensor cores (tc_backward_key): the core also finishes the backward itself:
  // dq_out, dk_out in `type` (dq, dk then its fp32 scratch, need not be zeroed), the gate gradient gk [tokens, H, K],
  // db [tokens, H] (or null) and, with the bonus, du [H, K] (zeroed); no finish_backward.
  float* gk = nullptr;
  float* db = nullptr;
  float* du = nullptr;
  // Per-head constant decay without the bonus (head_gradient_in_core): the log decay's gradient dgh
  // [H], written complete (pair sums with a moment state rather than per-token sums; F, F0 unused,
  // xy only for db then), with dgh_part scratch of head_partials(a) floats.
  float* dgh = nullptr;
  float* dgh_part = nullptr;
  void* dv = nullptr;          // [tokens, H, Vin] in `type`
  float* F = nullptr;          // [N, H, K] zeroed: rowsum(S_T * dS_T)
  float* F0 = nullptr;         // [N, H, K] zeroed: rowsum(S_0 * dS_0)
  float* rho = nullptr;        // [tokens, H] zeroed: v_t . do_t (bonus only)
  float* ds0 = nullptr;        // [N, H, K, Vin] or null
  float* dn0 = nullptr;        // [N, H, K] or null
  // A forward's fwd_out::seg_ctx for the same inputs, or null: the backward then skips its forward
  // segment pass (where its segments are the forward's; otherwise it is not read).
  const float* seg_ctx = nullptr;
};

// Shared memory per CTA the kernels may use on the current device (bytes; LRNN_DA_SMEM_LIMIT lowers
// it). A kernel that needs more returns cudaErrorNotSupported.
int64_t shared_memory_limit();

int core_forward(const core_args& a, const fwd_out& o);
int core_backward(const core_args& a, const bwd_io& io);
// Whether core_backward takes a per-head decay's gradient itself (bwd_io::dgh): g_head without the bonus.
inline bool head_gradient_in_core(const core_args& a) { return a.gmode == g_head && a.u == nullptr; }
// Floats of bwd_io::dgh_part: per head, one per CTA of either backward (SIMT: V tiles of 32 per
// sequence; tensor cores: V tiles of >= 64, up to 64 segments per sequence).
inline int64_t head_partials(const core_args& a) {
  const int64_t simt = (a.V + 31) / 32, tc = 64 * ((a.Vin + 63) / 64);
  return static_cast<int64_t>(a.N) * a.H * (simt > tc ? simt : tc);
}

// After core_backward: gate gradients per key (README "gate gradients") into gk [tokens, H, K]
// (null when the core has no decay), then per token: db = k . dk (state path), the scalar decay's
// gradient dgs = sum_d gk, the bonus terms (dq, dk, du), and dq, dk written in `type`.
struct finish_io {
  const float* F = nullptr;   // null: no d_final_state
  const float* F0 = nullptr;
  const float* rho = nullptr;
  float* dq = nullptr;        // fp32 accumulators (read; the bonus is not added in place)
  float* dk = nullptr;
  float* gk = nullptr;        // [tokens, H, K] (per-key decays) or null
  float* dgs = nullptr;       // [tokens, H] or null (scalar / per-head decays: computed from per-token sums)
  float* db = nullptr;        // [tokens, H] or null
  float* du = nullptr;        // [H, K] zeroed, or null
  void* dq_out = nullptr;     // [tokens, H, K] in `type`
  void* dk_out = nullptr;
  float* scratch = nullptr;   // finish_scratch_floats(a) floats (needed with gk or dgs)
  // core_backward wrote dq, dk itself (bwd_io::dq_out): dq, dk, dq_out, dk_out unused; scratch is its
  // bwd_io::xy.
  bool core_wrote_dqdk = false;
};
int finish_backward(const core_args& a, const finish_io& io);
// Scratch the gate-gradient scan needs: per sequence, head, block of tokens and key, one float.
int64_t finish_scratch_floats(const core_args& a);

// mLSTM stabiliser: m_t = max(gs_t + m_{t-1}, i_t); g~ = min(0, gs + m_{t-1} - m_t), b~ = min(0, i - m_t).
// gs from g per gate mode (g_none: 0, g_scalar: [tokens, H], g_head: [H]). mT [N, H] or null.
int stabiliser_scan(int N, int H, int64_t max_len, const int32_t* offsets, const float* g, int gmode, const float* i,
                    const float* m0, float* m, float* gt, float* bt, float* mT, float* scratch);
// Backward through the stabiliser (decay_attn.cpp's loop): dgs_out, di per token, dm0 [N, H].
// dm_local [tokens, H]: each token's own d L / d m_t (normaliser backward); F [N, H, K] (bwd_io::F,
// <S_T, dS_T> per key) or null without a final-state gradient.
int stabiliser_backward(int N, int H, int K, int64_t max_len, const int32_t* offsets, const float* g, int gmode,
                        const float* i, const float* m0, const float* m, const float* dg, const float* db,
                        const float* dm_local, const float* dmT, const float* F, float* dgs_out, float* di, float* dm0,
                        float* scratch);
// Floats of either's scratch (max_len: the longest sequence).
int64_t stabiliser_scratch_floats(int N, int H, int64_t max_len);
// mLSTM's backward after a core that wrote dq, dk itself (finish_io::core_wrote_dqdk, H <= 256, no
// bonus) in one cooperative launch: what finish_backward does there (db = Y of the (X, Y) pairs, the
// scalar gate's scan into fi.dgs) and stabiliser_backward (its other arguments as there; db unused).
// -1 where it does not run (the cooperative way not chosen: LRNN_DA_STAB_LOOK, the grid not resident):
// the caller runs finish_backward and stabiliser_backward instead.
int stabilised_backward_tail(const core_args& a, const finish_io& fi, const float* g, int gmode, const float* i, const float* m0,
                             const float* m, const float* dm_local, const float* dmT, float* dgs_out, float* di, float* dm0,
                             float* scratch);
// finish_backward's scalar gate scan (and, with db non-null, db = Y of the (X, Y) pairs) in one
// cooperative launch (gate_scan.cuh) where the cooperative way is chosen (LRNN_DA_STAB_LOOK=2) and the
// grid is resident; -1 where it does not run (the caller takes the two-launch scan).
int scalar_scan_cooperative(const core_args& a, const finish_io& io, float* db);
// Launches of the small scans in this process, by the way they ran (chunk_aux.cu, LRNN_DA_STAB_LOOK):
// stabiliser_scan and stabiliser_backward [0] three launches (the carry kernel), [1] two (look-back),
// [2] one cooperative launch; [3] stabilised_backward_tail's, [4] scalar_scan_cooperative's launches.
void stabiliser_launches(int64_t out[5]);
// The normaliser's backward folded into the tensor-core kernels: per row only rs = 1 / divisor,
// dn = the gradient of the normaliser column / rs (+-(h . d_o) or 0), dm_local (m non-null); from the
// normalised o in `type` and den (den non-null) or from o' [rows, Vin + 1] fp32 (den null).
int normalise_backward_rows(int64_t rows, int Vin, const void* o, const float* den, const float* m, float eps,
                            const void* d_o, int type, float* rs, float* dn, float* dm_local);
// dst[r] = src[r * ld + col] for r < rows (the normaliser column of o').
int copy_column(int64_t rows, int ld, int col, const float* src, float* dst);
// Normaliser: o = o'[:V] / (max(|o'[V]|, floor) + eps), floor = exp(-m) (m non-null) or 1.
int normalise_forward(int64_t rows, int Vin, const float* op, const float* m, float eps, void* o, int type);
// Its backward: dop [rows, Vin + 1] fp32, dm_local [rows] (m non-null).
int normalise_backward(int64_t rows, int Vin, const float* op, const float* m, float eps, const void* d_o, int type,
                       float* dop, float* dm_local);
// out[h] = sum over tokens of x[t, h] (per-head-constant decay gradient).
int sum_tokens(int64_t tokens, int H, const float* x, float* out);
// out[j] = sum over n of x[n, j] (bonus gradient per sequence -> per head): not needed, du is summed in place.

}  // namespace lrnn::ops::cuda_chunk
