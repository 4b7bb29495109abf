// decay_attn, chunk form on CPU: parallel inside chunks of C tokens (matrix products through
// BLAS), recurrent across chunks; sequences x heads run in parallel, BLAS single-threaded inside.
// Every exponent is <= 0: pairwise decays for scalar gates, the GLA sub-chunk trick (reference row
// per 16-row block) for per-key gates. Backward recomputes the chunk-start states. README.md.
#include "ops/decay_attn/engine.h"

#include "lrnn/threads.h"

#include <cblas.h>

#include <algorithm>

namespace lrnn::ops::detail {

namespace {

constexpr int64_t sub = 16;  // rows per sub-chunk for per-key gates

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

// One thread's work space for a (sequence, head) and the chunk-local quantities.
template <typename A>
struct chunk_ctx {
  const engine_problem<A>& p;
  int64_t n, h, C, K, V;
  bool vec, bonus;
  std::vector<A> S, beta, P, Qg, Kd, X, Y;
  std::vector<double> G, Gq;  // cumulative log gates in double: differences of large sums stay exact
  // Set by load(): the chunk's first token and length.
  int64_t t0 = 0, L = 0;

  chunk_ctx(const engine_problem<A>& pp, int64_t nn, int64_t hh)
      : p(pp), n(nn), h(hh), C(pp.chunk), K(pp.K), V(pp.V), vec(pp.g && pp.g_per_key), bonus(pp.u != nullptr) {
    S.resize(K * V);
    G.resize(C * (vec ? K : 1));
    Gq.resize(C * (vec ? K : 1));
    beta.resize(C);
    P.resize(C * C);
    Qg.resize(C * K);
    Kd.resize(C * K);
    X.resize(C * std::max(K, V));
    Y.resize(C * std::max(K, V));
  }
  const A* q(int64_t i) const { return p.q + (t0 + i) * p.ld_qk + h * K; }
  const A* k(int64_t i) const { return p.k + (t0 + i) * p.ld_qk + h * K; }
  const A* v0() const { return p.v + t0 * p.ld_v + h * V; }
  const A* q0() const { return p.q + t0 * p.ld_qk + h * K; }
  const A* k0() const { return p.k + t0 * p.ld_qk + h * K; }
  int64_t gw() const { return vec ? K : 1; }
  // Gate of key d at row i of the chunk (cumulative).
  double g_at(const std::vector<double>& g, int64_t i, int64_t d) const { return vec ? g[i * K + d] : g[i]; }

  // Cumulative gates G (inclusive), Gq (query side: exclusive with a bonus) and beta of a chunk.
  void load(int64_t start, int64_t len) {
    t0 = start, L = len;
    const int64_t w = gw();
    std::vector<double> run(w, 0.0);
    for (int64_t i = 0; i < L; ++i) {
      const int64_t t = t0 + i;
      if (bonus) std::copy(run.begin(), run.end(), Gq.begin() + i * w);
      if (p.g) {
        if (vec) {
          const A* g = p.g + (t * p.H + h) * K;
          for (int64_t d = 0; d < K; ++d) run[d] += g[d];
        } else {
          run[0] += p.g[t * p.H + h];
        }
      }
      std::copy(run.begin(), run.end(), G.begin() + i * w);
      if (!bonus) std::copy(run.begin(), run.end(), Gq.begin() + i * w);
      beta[i] = p.b ? exp_nonpos(p.b[t * p.H + h]) : A(1);
    }
  }

  // Qg = scale * q * exp(Gq) [L, K]; Kd = k * exp(G_L - G) * beta [L, K].
  void make_qg_kd() {
    for (int64_t i = 0; i < L; ++i) {
      const A* qi = q(i);
      const A* ki = k(i);
      A* qg = Qg.data() + i * K;
      A* kd = Kd.data() + i * K;
      if (vec) {
        const double* gq = Gq.data() + i * K;
        const double* gi = G.data() + i * K;
        const double* gl = G.data() + (L - 1) * K;
        for (int64_t d = 0; d < K; ++d) {
          qg[d] = p.scale * qi[d] * exp_nonpos(static_cast<A>(gq[d]));
          kd[d] = ki[d] * exp_nonpos(static_cast<A>(gl[d] - gi[d])) * beta[i];
        }
      } else {
        const A eq = p.scale * exp_nonpos(static_cast<A>(Gq[i]));
        const A ek = exp_nonpos(static_cast<A>(G[L - 1] - G[i])) * beta[i];
        for (int64_t d = 0; d < K; ++d) {
          qg[d] = eq * qi[d];
          kd[d] = ek * ki[d];
        }
      }
    }
  }

  bool visible(int64_t i, int64_t j) const { return bonus ? j < i : j <= i; }

  // Intra-chunk scores P [L, L] (ld C), scale, decay and beta included, zero where not visible.
  void make_scores() {
    if (!vec) {
      gemm(false, true, L, L, K, p.scale, q0(), p.ld_qk, k0(), p.ld_qk, A(0), P.data(), C);
      for (int64_t i = 0; i < L; ++i) {
        A* row = P.data() + i * C;
        for (int64_t j = 0; j < L; ++j) row[j] = visible(i, j) ? row[j] * exp_nonpos(static_cast<A>(Gq[i] - G[j])) * beta[j] : A(0);
      }
      return;
    }
    for (int64_t r = 0; r < L; r += sub) {
      const int64_t rows = std::min(sub, L - r);
      const double* gref = Gq.data() + r * K;
      // Off-diagonal blocks: (q_i exp(Gq_i - Gref)) (k_j exp(Gref - G_j) beta_j)^T for j < r.
      if (r > 0) {
        for (int64_t i = 0; i < rows; ++i) {
          const A* qi = q(r + i);
          const double* gq = Gq.data() + (r + i) * K;
          A* x = X.data() + i * K;
          for (int64_t d = 0; d < K; ++d) x[d] = qi[d] * exp_nonpos(static_cast<A>(gq[d] - gref[d]));
        }
        for (int64_t j = 0; j < r; ++j) {
          const A* kj = k(j);
          const double* gj = G.data() + j * K;
          A* y = Y.data() + j * K;
          for (int64_t d = 0; d < K; ++d) y[d] = kj[d] * exp_nonpos(static_cast<A>(gref[d] - gj[d])) * beta[j];
        }
        gemm(false, true, rows, r, K, p.scale, X.data(), K, Y.data(), K, A(0), P.data() + r * C, C);
      }
      // Diagonal block, pairwise exponents.
      for (int64_t i = 0; i < rows; ++i) {
        const A* qi = q(r + i);
        const double* gq = Gq.data() + (r + i) * K;
        A* row = P.data() + (r + i) * C;
        for (int64_t j = r; j < L; ++j) {
          if (!visible(r + i, j)) {
            row[j] = A(0);
            continue;
          }
          const A* kj = k(j);
          const double* gj = G.data() + j * K;
          A s = 0;
          for (int64_t d = 0; d < K; ++d) s += qi[d] * kj[d] * exp_nonpos(static_cast<A>(gq[d] - gj[d]));
          row[j] = p.scale * s * beta[j];
        }
      }
    }
  }

  // S = Diag(exp(G_L)) S + Kd^T V.
  void advance_state() {
    for (int64_t d = 0; d < K; ++d) {
      const A a = exp_nonpos(static_cast<A>(g_at(G, L - 1, d)));
      A* row = S.data() + d * V;
      for (int64_t j = 0; j < V; ++j) row[j] *= a;
    }
    gemm(true, false, K, V, L, A(1), Kd.data(), K, v0(), p.ld_v, A(1), S.data(), V);
  }

  void init_state() {
    if (p.s0) std::copy(p.s0 + (n * p.H + h) * K * V, p.s0 + (n * p.H + h + 1) * K * V, S.begin());
    else std::fill(S.begin(), S.end(), A(0));
  }
};

}  // namespace

template <typename A>
void engine_forward_chunk(const engine_problem<A>& p, const engine_forward_out<A>& out) {
  const int64_t H = p.H, K = p.K, V = p.V;
  blas_single_thread_scope blas1;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H;
    chunk_ctx<A> c(p, n, h);
    c.init_state();
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; t += c.C) {
      c.load(t, std::min(c.C, p.offsets[n + 1] - t));
      c.make_qg_kd();
      c.make_scores();
      A* o = out.o + t * out.ld_o + h * V;
      gemm(false, false, c.L, V, K, A(1), c.Qg.data(), K, c.S.data(), V, A(0), o, out.ld_o);
      gemm(false, false, c.L, V, c.L, A(1), c.P.data(), c.C, c.v0(), p.ld_v, A(1), o, out.ld_o);
      c.advance_state();
    }
    if (out.s_final) std::copy(c.S.begin(), c.S.end(), out.s_final + (n * H + h) * K * V);
    if (p.u) engine_bonus_forward(p, n, h, out);
  });
}

template <typename A>
void engine_backward_chunk(const engine_problem<A>& p, const engine_backward_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V;
  blas_single_thread_scope blas1;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H, t_begin = p.offsets[n], t_end = p.offsets[n + 1];
    chunk_ctx<A> c(p, n, h);
    const int64_t C = c.C, nc = (t_end - t_begin + C - 1) / C;
    // Recompute the chunk-start states (this (n, h) only: O(T K V / C) per thread in flight).
    std::vector<A> states((nc + 1) * K * V);
    c.init_state();
    for (int64_t ci = 0; ci < nc; ++ci) {
      std::copy(c.S.begin(), c.S.end(), states.begin() + ci * K * V);
      const int64_t t = t_begin + ci * C;
      c.load(t, std::min(C, t_end - t));
      c.make_qg_kd();
      c.advance_state();
    }
    std::copy(c.S.begin(), c.S.end(), states.begin() + nc * K * V);
    const A* dST = io.d_s_final ? io.d_s_final + (n * H + h) * K * V : nullptr;
    std::vector<A> F(K, A(0)), dS(K * V, A(0)), dP(C * C), T1(C * std::max(K, V));
    if (dST) {
      for (int64_t d = 0; d < K; ++d)
        for (int64_t j = 0; j < V; ++j) F[d] += c.S[d * V + j] * dST[d * V + j];
      std::copy(dST, dST + K * V, dS.begin());
    }
    const int64_t ldq = H * K, ldv = H * V;
    for (int64_t ci = nc - 1; ci >= 0; --ci) {
      const int64_t t = t_begin + ci * C;
      std::copy(states.begin() + ci * K * V, states.begin() + (ci + 1) * K * V, c.S.begin());
      c.load(t, std::min(C, t_end - t));
      const int64_t L = c.L;
      c.make_qg_kd();
      c.make_scores();
      const A* dO = io.d_o + (t * H + h) * V;
      A* dq = io.dq + (t * H + h) * K;
      A* dk = io.dk + (t * H + h) * K;
      A* dv = io.dv + (t * H + h) * V;
      // dq = scale * (dO S^T) * exp(Gq); dk = (V dS^T) * exp(G_L - G) * beta.
      gemm(false, true, L, K, V, A(1), dO, ldv, c.S.data(), V, A(0), dq, ldq);
      gemm(false, true, L, K, V, A(1), c.v0(), p.ld_v, dS.data(), V, A(0), dk, ldq);
      for (int64_t i = 0; i < L; ++i) {
        A* dqi = dq + i * ldq;
        A* dki = dk + i * ldq;
        for (int64_t d = 0; d < K; ++d) {
          dqi[d] *= p.scale * exp_nonpos(static_cast<A>(c.g_at(c.Gq, i, d)));
          dki[d] *= exp_nonpos(static_cast<A>(c.g_at(c.G, L - 1, d) - c.g_at(c.G, i, d))) * c.beta[i];
        }
      }
      // dv = P^T dO + Kd dS.
      gemm(true, false, L, V, L, A(1), c.P.data(), C, dO, ldv, A(0), dv, ldv);
      gemm(false, false, L, V, K, A(1), c.Kd.data(), K, dS.data(), V, A(1), dv, ldv);
      // dP = dO V^T on the visible pairs; then through the scores.
      gemm(false, true, L, L, V, A(1), dO, ldv, c.v0(), p.ld_v, A(0), dP.data(), C);
      if (!c.vec) {
        for (int64_t i = 0; i < L; ++i)
          for (int64_t j = 0; j < L; ++j)
            dP[i * C + j] = c.visible(i, j) ? dP[i * C + j] * p.scale * exp_nonpos(static_cast<A>(c.Gq[i] - c.G[j])) * c.beta[j] : A(0);
        gemm(false, false, L, K, L, A(1), dP.data(), C, c.k0(), p.ld_qk, A(1), dq, ldq);
        gemm(true, false, L, K, L, A(1), dP.data(), C, c.q0(), p.ld_qk, A(1), dk, ldq);
      } else {
        for (int64_t r = 0; r < L; r += sub) {
          const int64_t rows = std::min(sub, L - r);
          const double* gref = c.Gq.data() + r * K;
          if (r > 0) {
            // X = q_I exp(Gq_I - Gref) [rows, K], Y = k_j exp(Gref - G_j) beta_j [r, K].
            for (int64_t i = 0; i < rows; ++i) {
              const A* qi = c.q(r + i);
              const double* gq = c.Gq.data() + (r + i) * K;
              for (int64_t d = 0; d < K; ++d) c.X[i * K + d] = qi[d] * exp_nonpos(static_cast<A>(gq[d] - gref[d]));
            }
            for (int64_t j = 0; j < r; ++j) {
              const A* kj = c.k(j);
              const double* gj = c.G.data() + j * K;
              for (int64_t d = 0; d < K; ++d) c.Y[j * K + d] = kj[d] * exp_nonpos(static_cast<A>(gref[d] - gj[d])) * c.beta[j];
            }
            // dq_I += scale * (dP_I,<r Y) * exp(Gq_I - Gref); dk_<r += scale * (dP^T X) * exp(Gref - G_j) beta_j.
            gemm(false, false, rows, K, r, p.scale, dP.data() + r * C, C, c.Y.data(), K, A(0), T1.data(), K);
            for (int64_t i = 0; i < rows; ++i) {
              const double* gq = c.Gq.data() + (r + i) * K;
              A* dqi = dq + (r + i) * ldq;
              for (int64_t d = 0; d < K; ++d) dqi[d] += T1[i * K + d] * exp_nonpos(static_cast<A>(gq[d] - gref[d]));
            }
            gemm(true, false, r, K, rows, p.scale, dP.data() + r * C, C, c.X.data(), K, A(0), T1.data(), K);
            for (int64_t j = 0; j < r; ++j) {
              const double* gj = c.G.data() + j * K;
              A* dkj = dk + j * ldq;
              for (int64_t d = 0; d < K; ++d) dkj[d] += T1[j * K + d] * exp_nonpos(static_cast<A>(gref[d] - gj[d])) * c.beta[j];
            }
          }
          for (int64_t i = 0; i < rows; ++i) {
            const A* qi = c.q(r + i);
            const double* gq = c.Gq.data() + (r + i) * K;
            A* dqi = dq + (r + i) * ldq;
            for (int64_t j = r; j < L && j <= r + i; ++j) {
              if (!c.visible(r + i, j)) continue;
              const A* kj = c.k(j);
              const double* gj = c.G.data() + j * K;
              A* dkj = dk + j * ldq;
              const A w = dP[(r + i) * C + j] * p.scale * c.beta[j];
              for (int64_t d = 0; d < K; ++d) {
                const A e = w * exp_nonpos(static_cast<A>(gq[d] - gj[d]));
                dqi[d] += e * kj[d];
                dkj[d] += e * qi[d];
              }
            }
          }
        }
      }
      // dS (at the chunk start) = Diag(exp(G_L)) dS + Qg^T dO.
      for (int64_t d = 0; d < K; ++d) {
        const A a = exp_nonpos(static_cast<A>(c.g_at(c.G, L - 1, d)));
        for (int64_t j = 0; j < V; ++j) dS[d * V + j] *= a;
      }
      gemm(true, false, K, V, L, A(1), c.Qg.data(), K, dO, ldv, A(1), dS.data(), V);
    }
    if (io.ds0) std::copy(dS.begin(), dS.end(), io.ds0 + (n * H + h) * K * V);
    engine_gate_grads(p, n, h, dST ? F.data() : nullptr, io);
    if (p.u) engine_bonus_backward(p, n, h, io);
  });
}

template void engine_forward_chunk<float>(const engine_problem<float>&, const engine_forward_out<float>&);
template void engine_forward_chunk<double>(const engine_problem<double>&, const engine_forward_out<double>&);
template void engine_backward_chunk<float>(const engine_problem<float>&, const engine_backward_io<float>&);
template void engine_backward_chunk<double>(const engine_problem<double>&, const engine_backward_io<double>&);

}  // namespace lrnn::ops::detail
