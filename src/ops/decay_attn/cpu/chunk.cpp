// decay_attn, chunk form on CPU: parallel inside chunks of C tokens (matrix products through
// BLAS), recurrent across chunks; sequences x heads run in parallel, BLAS single-threaded inside.
// Every exponent is <= 0: pairwise decays for scalar gates; for per-key gates the GLA sub-chunk
// trick (reference row per 16-row block, one GEMM per block row) with every decay a running product
// of the per-token exp(g) <= 1. Backward recomputes the chunk-start states. README.md.
#include "ops/decay_attn/engine.h"

#include "lrnn/threads.h"

#include <cblas.h>

#include <algorithm>
#include <type_traits>

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

// sum_d a_d b_d in 8 independent lanes, so the loop vectorises without reassociation flags.
template <typename A>
A dot(const A* a, const A* b, int64_t n) {
  A acc[8] = {};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[d + l] * b[d + l];
  A s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}

// x *= a elementwise, flushing what falls below `tiny` to 0 (running products of decays <= 1 must
// not reach subnormals, which are slow).
template <typename A>
void scale_flush(A* x, const A* a, int64_t n) {
  constexpr A tiny = std::is_same_v<A, float> ? A(1e-30f) : A(1e-300);
  for (int64_t d = 0; d < n; ++d) {
    const A y = x[d] * a[d];
    x[d] = (y < tiny && y > -tiny) ? A(0) : y;
  }
}

// One thread's work space for a (sequence, head) and the chunk-local quantities.
template <typename A>
struct chunk_ctx {
  const engine_problem<A>& p;
  int64_t n, h, C, K, V;
  bool vec, bonus;
  std::vector<A> S, beta, P, Qg, Kd, X, Y;
  // Per key, all products of the per-token decays alpha = exp(g) <= 1 (no exponent of a sum):
  // Eq = exp(Gq_i), Ek = exp(G_L - G_i), EL = exp(G_L); EX = exp(Gq_i - Gref), EY = exp(Gref - G_j) beta_j
  // of the current sub-chunk; E one row.
  std::vector<A> alpha, Eq, Ek, EL, EX, EY, E;
  // Scalar gates: cumulative log gates in double, so differences of large sums stay exact.
  std::vector<double> G, Gq;
  // Set by load(): the chunk's first token and length.
  int64_t t0 = 0, L = 0;

  chunk_ctx(const engine_problem<A>& pp, int64_t nn, int64_t hh)
      : p(pp), n(nn), h(hh), C(pp.chunk), K(pp.K), V(pp.V), vec(pp.g && pp.g_per_key), bonus(pp.u != nullptr) {
    S.resize(K * V);
    G.resize(C);
    Gq.resize(C);
    beta.resize(C);
    P.resize(C * C);
    Qg.resize(C * K);
    Kd.resize(C * K);
    X.resize(C * std::max(K, V));
    Y.resize(C * std::max(K, V));
    if (vec) {
      alpha.resize(C * K);
      Eq.resize(C * K);
      Ek.resize(C * K);
      EL.resize(K);
      EX.resize(C * K);
      EY.resize(C * K);
      E.resize(K);
    }
  }
  const A* q(int64_t i) const { return p.q + (t0 + i) * p.ld_qk + h * K; }
  const A* k(int64_t i) const { return p.k + (t0 + i) * p.ld_qk + h * K; }
  const A* v0() const { return p.v + t0 * p.ld_v + h * V; }
  const A* q0() const { return p.q + t0 * p.ld_qk + h * K; }
  const A* k0() const { return p.k + t0 * p.ld_qk + h * K; }

  // Beta and the decays of a chunk. Scalar: cumulative gates G (inclusive) and Gq (query side:
  // exclusive with a bonus). Per key: alpha, then Eq, EL by prefix and Ek by suffix products.
  void load(int64_t start, int64_t len) {
    t0 = start, L = len;
    for (int64_t i = 0; i < L; ++i) beta[i] = p.b ? exp_nonpos(p.b[t0 * p.H + i * p.H + h]) : A(1);
    if (vec) {
      for (int64_t i = 0; i < L; ++i) {
        const A* g = p.g + ((t0 + i) * p.H + h) * K;
        A* a = alpha.data() + i * K;
        for (int64_t d = 0; d < K; ++d) a[d] = exp_nonpos(g[d]);
      }
      A* run_p = EL.data();
      std::fill(run_p, run_p + K, A(1));
      for (int64_t i = 0; i < L; ++i) {
        A* eq = Eq.data() + i * K;
        if (bonus) std::copy(run_p, run_p + K, eq);
        scale_flush(run_p, alpha.data() + i * K, K);
        if (!bonus) std::copy(run_p, run_p + K, eq);
      }
      A* ek = Ek.data() + (L - 1) * K;
      std::fill(ek, ek + K, A(1));
      for (int64_t i = L - 2; i >= 0; --i) {
        std::copy(ek, ek + K, ek - K);
        ek -= K;
        scale_flush(ek, alpha.data() + (i + 1) * K, K);
      }
      return;
    }
    double run = 0;
    for (int64_t i = 0; i < L; ++i) {
      if (bonus) Gq[i] = run;
      if (p.g) run += p.g[(t0 + i) * p.H + h];
      G[i] = run;
      if (!bonus) Gq[i] = run;
    }
  }

  // exp(Gq_i), exp(G_L - G_i) and exp(G_L) for key d.
  A dec_q(int64_t i, int64_t d) const { return vec ? Eq[i * K + d] : exp_nonpos(static_cast<A>(Gq[i])); }
  A dec_k(int64_t i, int64_t d) const { return vec ? Ek[i * K + d] : exp_nonpos(static_cast<A>(G[L - 1] - G[i])); }
  A dec_l(int64_t d) const { return vec ? EL[d] : exp_nonpos(static_cast<A>(G[L - 1])); }

  // Qg = scale * q * exp(Gq) [L, K]; Kd = k * exp(G_L - G) * beta [L, K].
  void make_qg_kd() {
    for (int64_t i = 0; i < L; ++i) {
      const A* qi = q(i);
      const A* ki = k(i);
      A* qg = Qg.data() + i * K;
      A* kd = Kd.data() + i * K;
      if (vec) {
        const A* eq = Eq.data() + i * K;
        const A* ek = Ek.data() + i * K;
        const A sc = p.scale, bi = beta[i];
        for (int64_t d = 0; d < K; ++d) {
          qg[d] = sc * qi[d] * eq[d];
          kd[d] = ki[d] * ek[d] * bi;
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
  // Last visible key of row i (-1: none).
  int64_t last_key(int64_t i) const { return bonus ? i - 1 : i; }

  // Per key, sub-chunk [r, r + rows) with reference Gref = Gq_r: EX_i = exp(Gq_i - Gref) and X = q * EX
  // for its rows (prefix products from row r); EY_j = exp(Gref - G_j) beta_j and Y = k * EY for the
  // keys j < r before it (suffix products down from r).
  void make_sub_factors(int64_t r, int64_t rows) {
    for (int64_t i = r; i < r + rows; ++i) {
      const A* qi = q(i);
      A* ex = EX.data() + i * K;
      if (i == r) std::fill(ex, ex + K, A(1));
      else {
        std::copy(ex - K, ex, ex);
        scale_flush(ex, alpha.data() + (bonus ? i - 1 : i) * K, K);
      }
      A* x = X.data() + i * K;
      for (int64_t d = 0; d < K; ++d) x[d] = qi[d] * ex[d];
    }
    if (r == 0) return;
    A* f = E.data();  // exp(Gref - G_j) for the current j
    if (bonus) std::fill(f, f + K, A(1));
    else std::copy(alpha.data() + r * K, alpha.data() + (r + 1) * K, f);
    for (int64_t j = r - 1; j >= 0; --j) {
      const A* kj = k(j);
      const A bj = beta[j];
      A* ey = EY.data() + j * K;
      A* y = Y.data() + j * K;
      for (int64_t d = 0; d < K; ++d) {
        ey[d] = f[d] * bj;
        y[d] = kj[d] * ey[d];
      }
      if (j > 0) scale_flush(f, alpha.data() + j * K, K);
    }
  }

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
    for (int64_t r = 0; r < L; r += sub) score_block(r, std::min(sub, L - r));
  }

  // Per key: the factors of sub-chunk [r, r + rows) and its rows of P.
  void score_block(int64_t r, int64_t rows) {
    make_sub_factors(r, rows);
    // Off-diagonal blocks: X_I Y_<r^T, both exponents <= 0.
    if (r > 0) gemm(false, true, rows, r, K, p.scale, X.data() + r * K, K, Y.data(), K, A(0), P.data() + r * C, C);
    // Diagonal block: for row i, U = q_i exp(Gq_i - G_j) walks j down from the last visible key,
    // one multiply by alpha_j per step (E_{j-1} = E_j alpha_j), every factor <= 1.
    A* u = E.data();
    for (int64_t i = r; i < r + rows; ++i) {
      A* row = P.data() + i * C;
      const int64_t jl = last_key(i);
      std::fill(row + std::max(jl + 1, r), row + L, A(0));
      std::copy(q(i), q(i) + K, u);
      for (int64_t j = jl; j >= r; --j) {
        row[j] = p.scale * beta[j] * dot(u, k(j), K);
        if (j > r) scale_flush(u, alpha.data() + j * K, K);
      }
    }
  }

  // S = Diag(exp(G_L)) S + Kd^T V.
  void advance_state() {
    for (int64_t d = 0; d < K; ++d) {
      const A a = dec_l(d);
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
    // Gate-gradient anchors at the chunk starts (no bonus): rowsum(S * dS) there, from the stored
    // states and dS after each chunk (engine_gate_grads).
    const bool anchored = !p.u && p.g && io.dg && nc > 1;
    std::vector<double> exact(anchored ? (nc - 1) * K : 0);
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
      if (!c.vec) c.make_scores();  // per key: block by block below, dP first
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
          dqi[d] *= p.scale * c.dec_q(i, d);
          dki[d] *= c.dec_k(i, d) * c.beta[i];
        }
      }
      // dP = dO V^T on the visible pairs; then through the scores.
      gemm(false, true, L, L, V, A(1), dO, ldv, c.v0(), p.ld_v, A(0), dP.data(), C);
      if (!c.vec) {
        for (int64_t i = 0; i < L; ++i)
          for (int64_t j = 0; j < L; ++j)
            dP[i * C + j] = c.visible(i, j) ? dP[i * C + j] * p.scale * exp_nonpos(static_cast<A>(c.Gq[i] - c.G[j])) * c.beta[j] : A(0);
        gemm(false, false, L, K, L, A(1), dP.data(), C, c.k0(), p.ld_qk, A(1), dq, ldq);
        gemm(true, false, L, K, L, A(1), dP.data(), C, c.q0(), p.ld_qk, A(1), dk, ldq);
      } else {
        A* e = c.E.data();
        for (int64_t r = 0; r < L; r += sub) {
          const int64_t rows = std::min(sub, L - r);
          c.score_block(r, rows);
          if (r > 0) {
            // dq_I += scale * (dP_I,<r Y) * EX_I; dk_<r += scale * (dP_I,<r^T X_I) * EY.
            gemm(false, false, rows, K, r, p.scale, dP.data() + r * C, C, c.Y.data(), K, A(0), T1.data(), K);
            for (int64_t i = 0; i < rows; ++i) {
              const A* ex = c.EX.data() + (r + i) * K;
              const A* t1 = T1.data() + i * K;
              A* dqi = dq + (r + i) * ldq;
              for (int64_t d = 0; d < K; ++d) dqi[d] += t1[d] * ex[d];
            }
            gemm(true, false, r, K, rows, p.scale, dP.data() + r * C, C, c.X.data() + r * K, K, A(0), T1.data(), K);
            for (int64_t j = 0; j < r; ++j) {
              const A* ey = c.EY.data() + j * K;
              const A* t1 = T1.data() + j * K;
              A* dkj = dk + j * ldq;
              for (int64_t d = 0; d < K; ++d) dkj[d] += t1[d] * ey[d];
            }
          }
          // Diagonal block: E = exp(Gq_i - G_j) by running products, as in make_scores.
          for (int64_t i = r; i < r + rows; ++i) {
            const A* qi = c.q(i);
            A* dqi = dq + i * ldq;
            std::fill(e, e + K, A(1));
            for (int64_t j = c.last_key(i); j >= r; --j) {
              const A* kj = c.k(j);
              A* dkj = dk + j * ldq;
              const A w = dP[i * C + j] * p.scale * c.beta[j];
              for (int64_t d = 0; d < K; ++d) {
                const A we = w * e[d];
                dqi[d] += we * kj[d];
                dkj[d] += we * qi[d];
              }
              if (j > r) scale_flush(e, c.alpha.data() + j * K, K);
            }
          }
        }
      }
      // dv = P^T dO + Kd dS.
      gemm(true, false, L, V, L, A(1), c.P.data(), C, dO, ldv, A(0), dv, ldv);
      gemm(false, false, L, V, K, A(1), c.Kd.data(), K, dS.data(), V, A(1), dv, ldv);
      // dS (at the chunk start) = Diag(exp(G_L)) dS + Qg^T dO.
      for (int64_t d = 0; d < K; ++d) {
        const A a = c.dec_l(d);
        for (int64_t j = 0; j < V; ++j) dS[d * V + j] *= a;
      }
      gemm(true, false, K, V, L, A(1), c.Qg.data(), K, dO, ldv, A(1), dS.data(), V);
      if (anchored && ci > 0) engine_anchor_value(K, V, states.data() + ci * K * V, dS.data(), exact.data() + (ci - 1) * K);
    }
    if (io.ds0) std::copy(dS.begin(), dS.end(), io.ds0 + (n * H + h) * K * V);
    engine_gate_grads(p, n, h, dST ? F.data() : nullptr, io, gate_anchors{anchored ? exact.data() : nullptr, C});
    if (p.u) engine_bonus_backward(p, n, h, io);
  });
}

template void engine_forward_chunk<float>(const engine_problem<float>&, const engine_forward_out<float>&);
template void engine_forward_chunk<double>(const engine_problem<double>&, const engine_forward_out<double>&);
template void engine_backward_chunk<float>(const engine_problem<float>&, const engine_backward_io<float>&);
template void engine_backward_chunk<double>(const engine_problem<double>&, const engine_backward_io<double>&);

}  // namespace lrnn::ops::detail
