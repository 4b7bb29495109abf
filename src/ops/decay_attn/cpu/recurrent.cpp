// decay_attn, recurrent form on CPU: token by token with an O(1) fp32 state per (sequence, head),
// parallel over sequences x heads. Backward: a forward sweep for dq, a reverse sweep for dk, dv,
// dS_0, then the gate gradients from q*dq - k*dk (README.md), anchored on exact values at up to 64
// tokens per sequence (the only stored states: up to 64 K x V snapshots per sequence and head).
#include "ops/decay_attn/engine.h"

#include "lrnn/threads.h"

#include <algorithm>

namespace lrnn::ops::detail {

namespace {
// S = Diag(exp(g_t)) S + beta k v^T for one token.
template <typename A>
void step_update(const engine_problem<A>& p, int64_t t, int64_t h, A* S) {
  const int64_t K = p.K, V = p.V;
  const A* kt = p.k + t * p.ld_qk + h * K;
  const A* vt = p.v + t * p.ld_v + h * V;
  const A beta = p.b ? exp_nonpos(p.b[t * p.H + h]) : A(1);
  const A* g = p.g ? (p.g_per_key ? p.g + (t * p.H + h) * K : p.g + t * p.H + h) : nullptr;
  for (int64_t d = 0; d < K; ++d) {
    const A a = g ? exp_nonpos(p.g_per_key ? g[d] : g[0]) : A(1);
    const A kb = beta * kt[d];
    A* row = S + d * V;
    for (int64_t j = 0; j < V; ++j) row[j] = a * row[j] + kb * vt[j];
  }
}

template <typename A>
void decay_rows(const engine_problem<A>& p, int64_t t, int64_t h, A* S) {
  if (!p.g) return;
  const int64_t K = p.K, V = p.V;
  const A* g = p.g_per_key ? p.g + (t * p.H + h) * K : p.g + t * p.H + h;
  for (int64_t d = 0; d < K; ++d) {
    const A a = exp_nonpos(p.g_per_key ? g[d] : g[0]);
    for (int64_t j = 0; j < V; ++j) S[d * V + j] *= a;
  }
}

template <typename A>
void init_state(const engine_problem<A>& p, int64_t n, int64_t h, std::vector<A>& S) {
  const int64_t KV = p.K * p.V;
  if (p.s0) std::copy(p.s0 + (n * p.H + h) * KV, p.s0 + (n * p.H + h + 1) * KV, S.begin());
  else std::fill(S.begin(), S.end(), A(0));
}
}  // namespace

template <typename A>
void engine_forward_recurrent(const engine_problem<A>& p, const engine_forward_out<A>& out) {
  const int64_t H = p.H, K = p.K, V = p.V;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H;
    std::vector<A> S(K * V);
    init_state(p, n, h, S);
    std::vector<A> acc(V);
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
      if (!p.u) step_update(p, t, h, S.data());
      const A* qt = p.q + t * p.ld_qk + h * K;
      std::fill(acc.begin(), acc.end(), A(0));
      for (int64_t d = 0; d < K; ++d) {
        const A qd = qt[d];
        const A* row = S.data() + d * V;
        for (int64_t j = 0; j < V; ++j) acc[j] += qd * row[j];
      }
      A* ot = out.o + t * out.ld_o + h * V;
      for (int64_t j = 0; j < V; ++j) ot[j] = p.scale * acc[j];
      if (p.u) step_update(p, t, h, S.data());
    }
    if (out.s_final) std::copy(S.begin(), S.end(), out.s_final + (n * H + h) * K * V);
    if (p.u) engine_bonus_forward(p, n, h, out);
  });
}

template <typename A>
void engine_backward_recurrent(const engine_problem<A>& p, const engine_backward_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H, t0 = p.offsets[n], t1 = p.offsets[n + 1];
    std::vector<A> S(K * V);
    init_state(p, n, h, S);
    // Gate-gradient anchors (no bonus): S_{a-1} kept at up to 64 tokens a of the sequence (every 64
    // tokens, or every len / 64 in longer ones), rowsum(S_{a-1} * dS) taken in the reverse sweep.
    const int64_t len = t1 - t0;
    const bool anchored = !p.u && p.g && io.dg && len > 64;
    const int64_t every = anchored ? std::max<int64_t>(64, (len + 63) / 64) : 1;
    const int64_t na = anchored ? (len - 1) / every : 0;  // anchors t0 + m every, m = 1..na
    std::vector<A> snaps(na * K * V);
    std::vector<double> exact(na * K);
    // Forward sweep: dq_t = scale * S_t dO_t (S_{t-1} with a bonus).
    for (int64_t t = t0; t < t1; ++t) {
      if (!p.u) step_update(p, t, h, S.data());
      if (const int64_t m = (t + 1 - t0) / every; na && (t + 1 - t0) % every == 0 && m <= na)
        std::copy(S.begin(), S.end(), snaps.begin() + (m - 1) * K * V);
      const A* dot = io.d_o + (t * H + h) * V;
      A* dqt = io.dq + (t * H + h) * K;
      for (int64_t d = 0; d < K; ++d) {
        const A* row = S.data() + d * V;
        A s = 0;
        for (int64_t j = 0; j < V; ++j) s += row[j] * dot[j];
        dqt[d] = p.scale * s;
      }
      if (p.u) step_update(p, t, h, S.data());
    }
    std::vector<A> F(K, A(0));
    const A* dST = io.d_s_final ? io.d_s_final + (n * H + h) * K * V : nullptr;
    if (dST)
      for (int64_t d = 0; d < K; ++d)
        for (int64_t j = 0; j < V; ++j) F[d] += S[d * V + j] * dST[d * V + j];
    // Reverse sweep over dS.
    std::vector<A>& dS = S;
    if (dST) std::copy(dST, dST + K * V, dS.begin());
    else std::fill(dS.begin(), dS.end(), A(0));
    auto add_readout = [&](int64_t t) {
      const A* qt = p.q + t * p.ld_qk + h * K;
      const A* dot = io.d_o + (t * H + h) * V;
      for (int64_t d = 0; d < K; ++d) {
        const A qd = p.scale * qt[d];
        A* row = dS.data() + d * V;
        for (int64_t j = 0; j < V; ++j) row[j] += qd * dot[j];
      }
    };
    for (int64_t t = t1 - 1; t >= t0; --t) {
      if (!p.u) add_readout(t);
      const A* kt = p.k + t * p.ld_qk + h * K;
      const A* vt = p.v + t * p.ld_v + h * V;
      const A beta = p.b ? exp_nonpos(p.b[t * H + h]) : A(1);
      A* dkt = io.dk + (t * H + h) * K;
      A* dvt = io.dv + (t * H + h) * V;
      std::fill(dvt, dvt + V, A(0));
      for (int64_t d = 0; d < K; ++d) {
        const A* row = dS.data() + d * V;
        A s = 0;
        const A kb = beta * kt[d];
        for (int64_t j = 0; j < V; ++j) {
          s += row[j] * vt[j];
          dvt[j] += kb * row[j];
        }
        dkt[d] = beta * s;
      }
      decay_rows(p, t, h, dS.data());
      if (p.u) add_readout(t);
      if (const int64_t m = (t - t0) / every; na && t > t0 && (t - t0) % every == 0 && m <= na)
        engine_anchor_value(K, V, snaps.data() + (m - 1) * K * V, dS.data(), exact.data() + (m - 1) * K);
    }
    if (io.ds0) std::copy(dS.begin(), dS.end(), io.ds0 + (n * H + h) * K * V);
    engine_gate_grads(p, n, h, dST ? F.data() : nullptr, io, gate_anchors{na ? exact.data() : nullptr, every});
    if (p.u) engine_bonus_backward(p, n, h, io);
  });
}

template void engine_forward_recurrent<float>(const engine_problem<float>&, const engine_forward_out<float>&);
template void engine_forward_recurrent<double>(const engine_problem<double>&, const engine_forward_out<double>&);
template void engine_backward_recurrent<float>(const engine_problem<float>&, const engine_backward_io<float>&);
template void engine_backward_recurrent<double>(const engine_problem<double>&, const engine_backward_io<double>&);

}  // namespace lrnn::ops::detail
