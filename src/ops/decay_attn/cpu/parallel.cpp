// decay_attn, parallel (attention-like, O(T^2)) form on CPU: pairwise decays exp(Gq_t - G_s) from
// the cumulative log gates of the whole sequence, every exponent <= 0. The readable form, used for
// short sequences and as a cross-check of the others (README.md, "parallel form").
#include "ops/decay_attn/engine.h"

#include "lrnn/threads.h"

namespace lrnn::ops::detail {

namespace {
// Cumulative gates of one (n, h): G [L, K] (inclusive) and Gq [L, K] (the query side: inclusive,
// or exclusive with a bonus, where o_t reads S_{t-1}). Scalar gates are broadcast over K.
template <typename A>
void cumulative_gates(const engine_problem<A>& p, int64_t n, int64_t h, std::vector<double>& G, std::vector<double>& Gq) {
  const int64_t K = p.K, t0 = p.offsets[n], L = p.offsets[n + 1] - t0;
  G.assign(L * K, 0.0);
  Gq.assign(L * K, 0.0);
  std::vector<double> run(K, 0.0);
  for (int64_t i = 0; i < L; ++i) {
    const int64_t t = t0 + i;
    if (p.u) std::copy(run.begin(), run.end(), Gq.begin() + i * K);
    if (p.g)
      for (int64_t d = 0; d < K; ++d) run[d] += p.g_per_key ? p.g[(t * p.H + h) * K + d] : p.g[t * p.H + h];
    std::copy(run.begin(), run.end(), G.begin() + i * K);
    if (!p.u) std::copy(run.begin(), run.end(), Gq.begin() + i * K);
  }
}
}  // namespace

template <typename A>
void engine_forward_parallel(const engine_problem<A>& p, const engine_forward_out<A>& out) {
  const int64_t H = p.H, K = p.K, V = p.V;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H, t0 = p.offsets[n], L = p.offsets[n + 1] - t0;
    std::vector<double> G, Gq;  // double: differences of long sums stay exact
    cumulative_gates(p, n, h, G, Gq);
    const A* S0 = p.s0 ? p.s0 + (n * H + h) * K * V : nullptr;
    for (int64_t i = 0; i < L; ++i) {
      const A* qi = p.q + (t0 + i) * p.ld_qk + h * K;
      A* oi = out.o + (t0 + i) * out.ld_o + h * V;
      std::fill(oi, oi + V, A(0));
      const int64_t last = p.u ? i - 1 : i;
      for (int64_t j = 0; j <= last; ++j) {
        const A* kj = p.k + (t0 + j) * p.ld_qk + h * K;
        const A* vj = p.v + (t0 + j) * p.ld_v + h * V;
        A w = 0;
        for (int64_t d = 0; d < K; ++d) w += qi[d] * kj[d] * exp_nonpos(static_cast<A>(Gq[i * K + d] - G[j * K + d]));
        w *= p.scale * (p.b ? exp_nonpos(p.b[(t0 + j) * H + h]) : A(1));
        for (int64_t c = 0; c < V; ++c) oi[c] += w * vj[c];
      }
      if (S0)
        for (int64_t d = 0; d < K; ++d) {
          const A qd = p.scale * qi[d] * exp_nonpos(static_cast<A>(Gq[i * K + d]));
          for (int64_t c = 0; c < V; ++c) oi[c] += qd * S0[d * V + c];
        }
    }
    if (out.s_final) {
      A* ST = out.s_final + (n * H + h) * K * V;
      for (int64_t d = 0; d < K; ++d)
        for (int64_t c = 0; c < V; ++c) ST[d * V + c] = S0 ? exp_nonpos(static_cast<A>(L ? G[(L - 1) * K + d] : 0.0)) * S0[d * V + c] : A(0);
      for (int64_t j = 0; j < L; ++j) {
        const A* kj = p.k + (t0 + j) * p.ld_qk + h * K;
        const A* vj = p.v + (t0 + j) * p.ld_v + h * V;
        const A beta = p.b ? exp_nonpos(p.b[(t0 + j) * H + h]) : A(1);
        for (int64_t d = 0; d < K; ++d) {
          const A kd = beta * kj[d] * exp_nonpos(static_cast<A>(G[(L - 1) * K + d] - G[j * K + d]));
          for (int64_t c = 0; c < V; ++c) ST[d * V + c] += kd * vj[c];
        }
      }
    }
    if (p.u) engine_bonus_forward(p, n, h, out);
  });
}

template <typename A>
void engine_backward_parallel(const engine_problem<A>& p, const engine_backward_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H, t0 = p.offsets[n], L = p.offsets[n + 1] - t0;
    std::vector<double> G, Gq;  // double: differences of long sums stay exact
    cumulative_gates(p, n, h, G, Gq);
    const A* S0 = p.s0 ? p.s0 + (n * H + h) * K * V : nullptr;
    const A* dST = io.d_s_final ? io.d_s_final + (n * H + h) * K * V : nullptr;
    for (int64_t i = 0; i < L; ++i) {
      std::fill(io.dq + ((t0 + i) * H + h) * K, io.dq + ((t0 + i) * H + h + 1) * K, A(0));
      std::fill(io.dk + ((t0 + i) * H + h) * K, io.dk + ((t0 + i) * H + h + 1) * K, A(0));
      std::fill(io.dv + ((t0 + i) * H + h) * V, io.dv + ((t0 + i) * H + h + 1) * V, A(0));
    }
    A* ds0 = io.ds0 ? io.ds0 + (n * H + h) * K * V : nullptr;
    if (ds0)
      for (int64_t d = 0; d < K; ++d)
        for (int64_t c = 0; c < V; ++c)
          ds0[d * V + c] = dST ? exp_nonpos(static_cast<A>(L ? G[(L - 1) * K + d] : 0.0)) * dST[d * V + c] : A(0);
    std::vector<A> e(K);
    for (int64_t i = 0; i < L; ++i) {
      const A* qi = p.q + (t0 + i) * p.ld_qk + h * K;
      const A* doi = io.d_o + ((t0 + i) * H + h) * V;
      A* dqi = io.dq + ((t0 + i) * H + h) * K;
      const int64_t last = p.u ? i - 1 : i;
      for (int64_t j = 0; j <= last; ++j) {
        const A* kj = p.k + (t0 + j) * p.ld_qk + h * K;
        const A* vj = p.v + (t0 + j) * p.ld_v + h * V;
        A* dkj = io.dk + ((t0 + j) * H + h) * K;
        A* dvj = io.dv + ((t0 + j) * H + h) * V;
        const A beta = p.scale * (p.b ? exp_nonpos(p.b[(t0 + j) * H + h]) : A(1));
        A w = 0, dp = 0;
        for (int64_t d = 0; d < K; ++d) {
          e[d] = beta * exp_nonpos(static_cast<A>(Gq[i * K + d] - G[j * K + d]));
          w += qi[d] * kj[d] * e[d];
        }
        for (int64_t c = 0; c < V; ++c) {
          dp += doi[c] * vj[c];
          dvj[c] += w * doi[c];
        }
        for (int64_t d = 0; d < K; ++d) {
          dqi[d] += dp * kj[d] * e[d];
          dkj[d] += dp * qi[d] * e[d];
        }
      }
      if (S0 || ds0)
        for (int64_t d = 0; d < K; ++d) {
          const A eq = p.scale * exp_nonpos(static_cast<A>(Gq[i * K + d]));
          if (S0) {
            A s = 0;
            for (int64_t c = 0; c < V; ++c) s += S0[d * V + c] * doi[c];
            dqi[d] += eq * s;
          }
          if (ds0)
            for (int64_t c = 0; c < V; ++c) ds0[d * V + c] += eq * qi[d] * doi[c];
        }
    }
    std::vector<A> F(K, A(0));
    if (dST && L > 0) {
      std::vector<A> ST(K * V);
      for (int64_t d = 0; d < K; ++d)
        for (int64_t c = 0; c < V; ++c) ST[d * V + c] = S0 ? exp_nonpos(static_cast<A>(G[(L - 1) * K + d])) * S0[d * V + c] : A(0);
      for (int64_t j = 0; j < L; ++j) {
        const A* kj = p.k + (t0 + j) * p.ld_qk + h * K;
        const A* vj = p.v + (t0 + j) * p.ld_v + h * V;
        A* dkj = io.dk + ((t0 + j) * H + h) * K;
        A* dvj = io.dv + ((t0 + j) * H + h) * V;
        const A beta = p.b ? exp_nonpos(p.b[(t0 + j) * H + h]) : A(1);
        for (int64_t d = 0; d < K; ++d) {
          const A ed = beta * exp_nonpos(static_cast<A>(G[(L - 1) * K + d] - G[j * K + d]));
          A s = 0;
          for (int64_t c = 0; c < V; ++c) {
            ST[d * V + c] += ed * kj[d] * vj[c];
            s += dST[d * V + c] * vj[c];
            dvj[c] += ed * kj[d] * dST[d * V + c];
          }
          dkj[d] += ed * s;
        }
      }
      for (int64_t d = 0; d < K; ++d)
        for (int64_t c = 0; c < V; ++c) F[d] += ST[d * V + c] * dST[d * V + c];
    }
    engine_gate_grads(p, n, h, dST ? F.data() : nullptr, io);
    if (p.u) engine_bonus_backward(p, n, h, io);
  });
}

template void engine_forward_parallel<float>(const engine_problem<float>&, const engine_forward_out<float>&);
template void engine_forward_parallel<double>(const engine_problem<double>&, const engine_forward_out<double>&);
template void engine_backward_parallel<float>(const engine_problem<float>&, const engine_backward_io<float>&);
template void engine_backward_parallel<double>(const engine_problem<double>&, const engine_backward_io<double>&);

}  // namespace lrnn::ops::detail
