// delta_rule, chunk form on CPU (delta and gated kinds): per chunk of C tokens the UT transform
// (I + A) U = Diag(beta) V - Diag(beta e^G) K S_0 solved with one unit-lower triangular solve, the
// output and the next state by matrix products (BLAS), recurrent across chunks; sequences x heads
// in parallel with BLAS single-threaded inside. Backward recomputes the chunk-start states.
// Every exponent is a difference G_i - G_j <= 0 (i >= j). Derivation in README.md.
#include "ops/delta_rule/delta_rule.h"

#include "lrnn/threads.h"
#include "ops/delta_rule/cpu/blas.h"

#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail {

namespace {

using dr_blas::gemm;
using dr_blas::unit_lower_solve;

// One (sequence, head): work space and the chunk-local quantities of the forward pass.
template <typename A>
struct chunk_ctx {
  const delta_problem<A>& p;
  int64_t h, C, K, V, ldk, ldv;
  std::vector<double> G;                // inclusive cumulative log decay in the chunk
  std::vector<A> eg, S, Kb, Ke, Qe, Kd, IA, P, U;
  int64_t t0 = 0, L = 0;
  A eL = 1;                             // e^{G_L}

  chunk_ctx(const delta_problem<A>& pp, int64_t hh)
      : p(pp), h(hh), C(pp.chunk), K(pp.K), V(pp.V), ldk(pp.H * pp.K), ldv(pp.H * pp.V) {
    G.resize(C), eg.resize(C), S.resize(K * V), Kb.resize(C * K), Ke.resize(C * K), Qe.resize(C * K), Kd.resize(C * K);
    IA.resize(C * C), P.resize(C * C), U.resize(C * V);
  }
  const A* q0() const { return p.q + t0 * ldk + h * K; }
  const A* k0() const { return p.k + t0 * ldk + h * K; }
  const A* v0() const { return p.v + t0 * ldv + h * V; }
  A gamma(int64_t i, int64_t j) const { return static_cast<A>(std::exp(G[i] - G[j])); }

  // Gates and the scaled key / query rows of the chunk starting at `start`.
  void load(int64_t start, int64_t len) {
    t0 = start, L = len;
    double run = 0;
    for (int64_t i = 0; i < L; ++i) {
      if (p.g) run += static_cast<double>(p.g[(t0 + i) * p.H + h]);
      G[i] = run;
      eg[i] = static_cast<A>(std::exp(run));
    }
    eL = eg[L - 1];
    for (int64_t i = 0; i < L; ++i) {
      const A beta = p.beta[(t0 + i) * p.H + h], ed = static_cast<A>(std::exp(G[L - 1] - G[i])), qs = p.scale * eg[i];
      const A* k = k0() + i * ldk;
      const A* q = q0() + i * ldk;
      for (int64_t d = 0; d < K; ++d) {
        Kb[i * K + d] = beta * k[d];
        Ke[i * K + d] = beta * eg[i] * k[d];
        Qe[i * K + d] = qs * q[d];
        Kd[i * K + d] = ed * k[d];
      }
    }
  }
  // IA: strictly lower A = Diag(beta) K K^T o Gamma; P: lower-incl-diag scale Q K^T o Gamma.
  void make_matrices() {
    gemm(false, true, L, L, K, A(1), Kb.data(), K, k0(), ldk, A(0), IA.data(), C);
    gemm(false, true, L, L, K, p.scale, q0(), ldk, k0(), ldk, A(0), P.data(), C);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j) {
        const A gm = j <= i ? gamma(i, j) : A(0);
        IA[i * C + j] = j < i ? IA[i * C + j] * gm : A(0);
        P[i * C + j] = P[i * C + j] * gm;
      }
  }
  // U = (I + A)^{-1} (Diag(beta) V - Ke S): the pseudo-values (v_new of OPS.md).
  void make_u() {
    for (int64_t i = 0; i < L; ++i) {
      const A beta = p.beta[(t0 + i) * p.H + h];
      const A* v = v0() + i * ldv;
      for (int64_t j = 0; j < V; ++j) U[i * V + j] = beta * v[j];
    }
    gemm(false, false, L, V, K, A(-1), Ke.data(), K, S.data(), V, A(1), U.data(), V);
    unit_lower_solve(false, L, V, IA.data(), C, U.data(), V);
  }
  // S <- e^{G_L} S + Kd^T U.
  void advance() {
    for (auto& x : S) x *= eL;
    gemm(true, false, K, V, L, A(1), Kd.data(), K, U.data(), V, A(1), S.data(), V);
  }
  void init_state(int64_t n) {
    if (p.s0) std::copy(p.s0 + (n * p.H + h) * K * V, p.s0 + (n * p.H + h + 1) * K * V, S.begin());
    else std::fill(S.begin(), S.end(), A(0));
  }
};

}  // namespace

template <typename A>
void delta_forward_chunk(const delta_problem<A>& p, A* o, A* s_final) {
  const int64_t H = p.H, K = p.K, V = p.V;
  blas_single_thread_scope blas1;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H;
    chunk_ctx<A> c(p, h);
    c.init_state(n);
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; t += c.C) {
      c.load(t, std::min(c.C, p.offsets[n + 1] - t));
      c.make_matrices();
      c.make_u();
      A* ot = o + t * H * V + h * V;
      gemm(false, false, c.L, V, K, A(1), c.Qe.data(), K, c.S.data(), V, A(0), ot, H * V);
      gemm(false, false, c.L, V, c.L, A(1), c.P.data(), c.C, c.U.data(), V, A(1), ot, H * V);
      c.advance();
    }
    if (s_final) std::copy(c.S.begin(), c.S.end(), s_final + nh * K * V);
  });
}

template <typename A>
void delta_backward_chunk(const delta_problem<A>& p, const delta_grads_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V, KV = K * V;
  const bool gated = p.g != nullptr;
  blas_single_thread_scope blas1;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H, C = p.chunk;
    const int64_t t_begin = p.offsets[n], len = p.offsets[n + 1] - t_begin, nchunks = (len + C - 1) / C;
    chunk_ctx<A> c(p, h);
    // Chunk-start states.
    std::vector<A> starts(std::max<int64_t>(nchunks, 1) * KV);
    c.init_state(n);
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      std::copy(c.S.begin(), c.S.end(), starts.begin() + ch * KV);
      const int64_t t = t_begin + ch * C;
      c.load(t, std::min(C, p.offsets[n + 1] - t));
      c.make_matrices();
      c.make_u();
      c.advance();
    }
    std::vector<A> dS(KV, A(0)), dSprev(KV), dU(C * V), dP(C * C), dA(C * C), dQe(C * K), dKe(C * K), dKd(C * K), X(C * K);
    std::vector<A> dq(C * K), dk(C * K), dG(C), dbeta(C);
    if (io.d_s_final) std::copy(io.d_s_final + nh * KV, io.d_s_final + (nh + 1) * KV, dS.begin());
    for (int64_t ch = nchunks - 1; ch >= 0; --ch) {
      const int64_t t = t_begin + ch * C, L = std::min(C, p.offsets[n + 1] - t);
      std::copy(starts.begin() + ch * KV, starts.begin() + (ch + 1) * KV, c.S.begin());
      c.load(t, L);
      c.make_matrices();
      c.make_u();
      const A* dO = io.d_o + t * H * V + h * V;
      const int64_t ldo = H * V, ldk = c.ldk;
      // dU = P^T dO + Kd dS; dP = dO U^T; dQe = dO S^T; dKd = U dS^T.
      gemm(true, false, L, V, L, A(1), c.P.data(), C, dO, ldo, A(0), dU.data(), V);
      gemm(false, false, L, V, K, A(1), c.Kd.data(), K, dS.data(), V, A(1), dU.data(), V);
      gemm(false, true, L, L, V, A(1), dO, ldo, c.U.data(), V, A(0), dP.data(), C);
      gemm(false, true, L, K, V, A(1), dO, ldo, c.S.data(), V, A(0), dQe.data(), K);
      gemm(false, true, L, K, V, A(1), c.U.data(), V, dS.data(), V, A(0), dKd.data(), K);
      // dS_prev = e^{G_L} dS + Qe^T dO - Ke^T dRhs, dRhs = (I + A)^{-T} dU (into dU), dA = -dRhs U^T.
      A dGL = 0;
      if (gated)
        for (int64_t x = 0; x < KV; ++x) dGL += dS[x] * c.S[x] * c.eL;
      for (int64_t x = 0; x < KV; ++x) dSprev[x] = c.eL * dS[x];
      gemm(true, false, K, V, L, A(1), c.Qe.data(), K, dO, ldo, A(1), dSprev.data(), V);
      unit_lower_solve(true, L, V, c.IA.data(), C, dU.data(), V);
      gemm(true, false, K, V, L, A(-1), c.Ke.data(), K, dU.data(), V, A(1), dSprev.data(), V);
      gemm(false, true, L, L, V, A(-1), dU.data(), V, c.U.data(), V, A(0), dA.data(), C);
      gemm(false, true, L, K, V, A(-1), dU.data(), V, c.S.data(), V, A(0), dKe.data(), K);
      // Masks, the gate terms of the score matrices, and Gamma folded into dP and dA.
      std::fill(dG.begin(), dG.begin() + L, A(0));
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
          A& dp = dP[i * C + j];
          A& da = dA[i * C + j];
          if (j > i) {
            dp = 0, da = 0;
            continue;
          }
          const A gm = c.gamma(i, j);
          if (gated) {
            const A e = dp * c.P[i * C + j] + (j < i ? da * c.IA[i * C + j] : A(0));
            dG[i] += e;
            dG[j] -= e;
          }
          dp *= gm * p.scale;
          da = j < i ? da * gm : A(0);
        }
      // dq = dP K + e^G scale dQe; dk = dP^T Q + beta (dA K) + dA^T Kb + beta e^G dKe + e^{G_L - G} dKd.
      gemm(false, false, L, K, L, A(1), dP.data(), C, c.k0(), ldk, A(0), dq.data(), K);
      gemm(true, false, L, K, L, A(1), dP.data(), C, c.q0(), ldk, A(0), dk.data(), K);
      gemm(true, false, L, K, L, A(1), dA.data(), C, c.Kb.data(), K, A(1), dk.data(), K);
      gemm(false, false, L, K, L, A(1), dA.data(), C, c.k0(), ldk, A(0), X.data(), K);
      for (int64_t i = 0; i < L; ++i) {
        const int64_t row = (t + i) * H + h;
        const A beta = p.beta[row], ei = c.eg[i], ed = static_cast<A>(std::exp(c.G[L - 1] - c.G[i]));
        const A* k = c.k0() + i * ldk;
        const A* v = c.v0() + i * c.ldv;
        A db = 0, gq = 0, gke = 0, gkd = 0;
        for (int64_t d = 0; d < K; ++d) {
          io.dq[row * K + d] = dq[i * K + d] + p.scale * ei * dQe[i * K + d];
          io.dk[row * K + d] = dk[i * K + d] + beta * X[i * K + d] + beta * ei * dKe[i * K + d] + ed * dKd[i * K + d];
          db += k[d] * (X[i * K + d] + ei * dKe[i * K + d]);
          gq += dQe[i * K + d] * c.Qe[i * K + d];
          gke += dKe[i * K + d] * c.Ke[i * K + d];
          gkd += dKd[i * K + d] * c.Kd[i * K + d];
        }
        for (int64_t j = 0; j < V; ++j) {
          io.dv[row * V + j] = beta * dU[i * V + j];
          db += v[j] * dU[i * V + j];
        }
        dbeta[i] = db;
        io.dbeta[row] = db;
        if (gated) {
          dG[i] += gq + gke - gkd;
          dGL += gkd;
        }
      }
      if (gated) {
        dG[L - 1] += dGL;
        A run = 0;
        for (int64_t i = L - 1; i >= 0; --i) {
          run += dG[i];
          io.dg[(t + i) * H + h] = run;
        }
      }
      dS.swap(dSprev);
    }
    if (io.ds0) std::copy(dS.begin(), dS.end(), io.ds0 + nh * KV);
  });
}

template void delta_forward_chunk<float>(const delta_problem<float>&, float*, float*);
template void delta_forward_chunk<double>(const delta_problem<double>&, double*, double*);
template void delta_backward_chunk<float>(const delta_problem<float>&, const delta_grads_io<float>&);
template void delta_backward_chunk<double>(const delta_problem<double>&, const delta_grads_io<double>&);

}  // namespace lrnn::ops::detail
