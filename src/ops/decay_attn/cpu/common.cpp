// Pieces every CPU form of decay_attn shares: gate gradients from the state-path gradients of
// q and k (README.md, "gate gradients") and the RWKV bonus term, per sequence and head.
#include "ops/decay_attn/engine.h"

namespace lrnn::ops::detail {

template <typename A>
void engine_gate_grads(const engine_problem<A>& p, int64_t n, int64_t h, const A* f_final, const engine_backward_io<A>& io,
                       const gate_anchors& anchors) {
  const int64_t H = p.H, K = p.K, t0 = p.offsets[n], t1 = p.offsets[n + 1];
  const bool bonus = p.u != nullptr;
  if (io.db && p.b)
    for (int64_t t = t0; t < t1; ++t) {
      const A* kt = p.k + t * p.ld_qk + h * K;
      const A* dkt = io.dk + (t * H + h) * K;
      A s = 0;
      for (int64_t d = 0; d < K; ++d) s += kt[d] * dkt[d];
      io.db[t * H + h] = s;
    }
  if (!io.dg || !p.g) return;
  std::vector<double> acc(K, 0.0);  // F + sum q dq - sum k dk per key; double: long sums of differences
  if (f_final)
    for (int64_t d = 0; d < K; ++d) acc[d] = f_final[d];
  for (int64_t t = t1 - 1; t >= t0; --t) {
    const A* qt = p.q + t * p.ld_qk + h * K;
    const A* kt = p.k + t * p.ld_qk + h * K;
    const A* dqt = io.dq + (t * H + h) * K;
    const A* dkt = io.dk + (t * H + h) * K;
    if (!bonus)
      for (int64_t d = 0; d < K; ++d) acc[d] += qt[d] * dqt[d];
    for (int64_t d = 0; d < K; ++d) acc[d] -= kt[d] * dkt[d];
    if (anchors.d && !bonus && t > t0 && (t - t0) % anchors.every == 0) {
      const double* exact = anchors.d + ((t - t0) / anchors.every - 1) * K;
      std::copy(exact, exact + K, acc.begin());
    } else if (t == t0 && !p.s0) {
      // The first gate decays a zero state: its gradient is exactly 0, where the sums above
      // would leave their rounding.
      std::fill(acc.begin(), acc.end(), 0.0);
    } else if (t == t0 && !bonus && io.ds0) {
      // dg_first = rowsum(dS_0 * S_0) (dS_0 = Diag(alpha_1) dS_1): exact, not a long difference.
      engine_anchor_value(K, p.V, p.s0 + (n * H + h) * K * p.V, io.ds0 + (n * H + h) * K * p.V, acc.data());
    }
    if (p.g_per_key) {
      A* dg = io.dg + (t * H + h) * K;
      for (int64_t d = 0; d < K; ++d) dg[d] = static_cast<A>(acc[d]);
    } else {
      double s = 0;
      for (int64_t d = 0; d < K; ++d) s += acc[d];
      io.dg[t * H + h] = static_cast<A>(s);
    }
    if (bonus)
      for (int64_t d = 0; d < K; ++d) acc[d] += qt[d] * dqt[d];
  }
}

template <typename A>
void engine_anchor_value(int64_t K, int64_t V, const A* S, const A* dS, double* out) {
  for (int64_t d = 0; d < K; ++d) {
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += static_cast<double>(S[d * V + j]) * dS[d * V + j];
    out[d] = s;
  }
}

template <typename A>
void engine_bonus_forward(const engine_problem<A>& p, int64_t n, int64_t h, const engine_forward_out<A>& out) {
  const int64_t K = p.K, V = p.V;
  const A* u = p.u + h * K;
  for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
    const A* qt = p.q + t * p.ld_qk + h * K;
    const A* kt = p.k + t * p.ld_qk + h * K;
    const A* vt = p.v + t * p.ld_v + h * V;
    A c = 0;
    for (int64_t d = 0; d < K; ++d) c += qt[d] * u[d] * kt[d];
    c *= p.scale;
    A* ot = out.o + t * out.ld_o + h * V;
    for (int64_t j = 0; j < V; ++j) ot[j] += c * vt[j];
  }
}

template <typename A>
void engine_bonus_backward(const engine_problem<A>& p, int64_t n, int64_t h, const engine_backward_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V;
  const A* u = p.u + h * K;
  A* du = io.du ? io.du + (n * H + h) * K : nullptr;
  for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
    const A* qt = p.q + t * p.ld_qk + h * K;
    const A* kt = p.k + t * p.ld_qk + h * K;
    const A* vt = p.v + t * p.ld_v + h * V;
    const A* dot = io.d_o + (t * H + h) * V;
    A c = 0, rho = 0;
    for (int64_t d = 0; d < K; ++d) c += qt[d] * u[d] * kt[d];
    for (int64_t j = 0; j < V; ++j) rho += vt[j] * dot[j];
    c *= p.scale;
    rho *= p.scale;
    A* dqt = io.dq + (t * H + h) * K;
    A* dkt = io.dk + (t * H + h) * K;
    A* dvt = io.dv + (t * H + h) * V;
    for (int64_t d = 0; d < K; ++d) {
      dqt[d] += u[d] * kt[d] * rho;
      dkt[d] += u[d] * qt[d] * rho;
      if (du) du[d] += qt[d] * kt[d] * rho;
    }
    for (int64_t j = 0; j < V; ++j) dvt[j] += c * dot[j];
  }
}

#define LRNN_DA_INSTANTIATE(A)                                                                                     \
  template void engine_gate_grads<A>(const engine_problem<A>&, int64_t, int64_t, const A*, const engine_backward_io<A>&, \
                                     const gate_anchors&);                                                            \
  template void engine_anchor_value<A>(int64_t, int64_t, const A*, const A*, double*);                                 \
  template void engine_bonus_forward<A>(const engine_problem<A>&, int64_t, int64_t, const engine_forward_out<A>&); \
  template void engine_bonus_backward<A>(const engine_problem<A>&, int64_t, int64_t, const engine_backward_io<A>&);
LRNN_DA_INSTANTIATE(float)
LRNN_DA_INSTANTIATE(double)
#undef LRNN_DA_INSTANTIATE

}  // namespace lrnn::ops::detail
