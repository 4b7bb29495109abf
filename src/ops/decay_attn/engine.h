// The linear core shared by the recurrent, parallel and chunk forms: per sequence n and head h,
//   S_t = Diag(exp(g_t)) S_{t-1} + exp(b_t) k_t v_t^T,  o_t = scale * S_t^T q_t
// (with a bonus: o_t = scale * (S_{t-1} + Diag(u) k_t v_t^T)^T q_t). decay_attn.cpp maps every
// spec onto it (mLSTM: stabilised gates, the normaliser as an extra value column of ones).
#pragma once

#include <cstdint>
#include <vector>

namespace lrnn::ops::detail {

template <typename A>
struct engine_problem {
  int64_t N = 0, H = 0, K = 0, V = 0;   // V counts the normaliser column when there is one
  std::vector<int64_t> offsets;         // [N + 1] token offsets of the sequences
  const A* q = nullptr;                 // [tokens, H, K] rows ld_qk apart
  const A* k = nullptr;                 // [tokens, H, K]
  const A* v = nullptr;                 // [tokens, H, V] rows ld_v apart
  int64_t ld_qk = 0, ld_v = 0;
  A scale = 1;
  const A* g = nullptr;                 // log decay: [tokens, H, K] (g_per_key) or [tokens, H]; null: none
  bool g_per_key = false;
  const A* b = nullptr;                 // log input scale [tokens, H]; null: 1
  const A* u = nullptr;                 // bonus [H, K]; null: no bonus
  const A* s0 = nullptr;                // [N, H, K, V]; null: zeros
  int64_t chunk = 64;
};

template <typename A>
struct engine_forward_out {
  A* o = nullptr;        // [tokens, H, V], rows ld_o apart
  int64_t ld_o = 0;
  A* s_final = nullptr;  // [N, H, K, V] or null
};

template <typename A>
struct engine_backward_io {
  const A* d_o = nullptr;        // [tokens, H, V] contiguous
  const A* d_s_final = nullptr;  // [N, H, K, V] or null
  A* dq = nullptr;               // [tokens, H, K] contiguous (gradient of the unscaled q)
  A* dk = nullptr;               // [tokens, H, K]
  A* dv = nullptr;               // [tokens, H, V]
  A* dg = nullptr;               // like g
  A* db = nullptr;               // [tokens, H] or null
  A* du = nullptr;               // [N, H, K] partial sums per sequence, or null
  A* ds0 = nullptr;              // [N, H, K, V] or null
};

template <typename A> void engine_forward_recurrent(const engine_problem<A>& p, const engine_forward_out<A>& out);
template <typename A> void engine_backward_recurrent(const engine_problem<A>& p, const engine_backward_io<A>& io);
template <typename A> void engine_forward_parallel(const engine_problem<A>& p, const engine_forward_out<A>& out);
template <typename A> void engine_backward_parallel(const engine_problem<A>& p, const engine_backward_io<A>& io);
template <typename A> void engine_forward_chunk(const engine_problem<A>& p, const engine_forward_out<A>& out);
template <typename A> void engine_backward_chunk(const engine_problem<A>& p, const engine_backward_io<A>& io);

// Exact values of the per-key gate gradient at anchor tokens a_m = t0 + m * every (m >= 1, a_m < t1)
// of one (n, h), without the bonus: dg_a = rowsum(S_{a-1} * dS), dS = Diag(alpha_a) dS_a the gradient
// of the state before token a (as for the first token, from s0 and dS_0). d: [m - 1][K].
struct gate_anchors {
  const double* d = nullptr;
  int64_t every = 0;
};

// Gate gradients from the state-path gradients of one (n, h) (README.md, "gate gradients"):
// dg_r = F + sum_{t >= r (+1 with bonus)} q_t * dq_t - sum_{s >= r} k_s * dk_s, with F the row
// sums of S_T * dS_T; db_s = k_s . dk_s. dq, dk here are the gradients of the unscaled q and k
// through the state path only (no bonus term). With anchors the sums restart from the exact value
// at each anchor, so they run over at most `every` tokens (a per-head decay's gradient sums dg over
// the whole sequence: long sums of differences lose it in f32, bench/retnet_dgamma_precision.py).
template <typename A>
void engine_gate_grads(const engine_problem<A>& p, int64_t n, int64_t h, const A* f_final /* [K] or null */,
                       const engine_backward_io<A>& io, const gate_anchors& anchors = {});

// rowsum(S * dS) per key into out[K] (double): an anchor's value.
template <typename A>
void engine_anchor_value(int64_t K, int64_t V, const A* S, const A* dS, double* out);

// Bonus terms of one (n, h): adds c_t v_t to o (forward) or their gradients (backward).
template <typename A>
void engine_bonus_forward(const engine_problem<A>& p, int64_t n, int64_t h, const engine_forward_out<A>& out);
template <typename A>
void engine_bonus_backward(const engine_problem<A>& p, int64_t n, int64_t h, const engine_backward_io<A>& io);

// exp for arguments <= 0 (the only kind the forms evaluate), vectorisable, flushes below -87 to 0
// for float so no subnormals reach the matrix products.
inline float exp_nonpos(float x);
inline double exp_nonpos(double x);

}  // namespace lrnn::ops::detail

#include <bit>
#include <cmath>
#include <cstdint>

namespace lrnn::ops::detail {
// Cephes-style expf: 2^n * p(r) with |r| <= ln2/2. n by truncation and a compare (no floor, which
// baseline x86-64 cannot vectorise), so loops over it vectorise.
inline float exp_nonpos(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float y = xc * 1.44269504088896341f + 0.5f;
  const int32_t t = static_cast<int32_t>(y);
  const int32_t ni = t - (static_cast<float>(t) > y ? 1 : 0);
  const float n = static_cast<float>(ni);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float y2 = 1.9875691500e-4f;
  y2 = y2 * r + 1.3981999507e-3f;
  y2 = y2 * r + 8.3334519073e-3f;
  y2 = y2 * r + 4.1665795894e-2f;
  y2 = y2 * r + 1.6666665459e-1f;
  y2 = y2 * r + 5.0000001201e-1f;
  y2 = y2 * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<int32_t>((ni + 127) << 23));
  return x < -87.0f ? 0.0f : y2 * scale;
}
inline double exp_nonpos(double x) { return std::exp(x); }
}  // namespace lrnn::ops::detail
