// delta_rule, chunk form on CPU for the dplr kind (RWKV-7): S_t = Diag(d_t) S_{t-1} + b_t (a_t^T S_{t-1})
// + k_t v_t^T with d = e^w per key. Per chunk of L <= C tokens with start state S_0 the pseudo-values
// z_t = S_{t-1}^T a_t solve one unit-lower triangular system, and the output and the next state
// are matrix products (README.md, "DPLR chunk form"):
//   (I - M_ab) Z = M_ak V + A~ S_0,  O = s (Q~ S_0 + M_qb Z + M_qk V),
//   S_L = Diag(Gamma_L) S_0 + B^T Z + K^T V  (B, K rows scaled by e^{G_L - G_j}).
// The four decayed score matrices M_xy[i, j] = sum_d x_id y_jd e^{G_{i(-1), d} - G_{j, d}} are built per
// 16-token block: off-diagonal blocks by one GEMM with the block's last row as reference (both factors
// <= 1), diagonal blocks by running products of d (never an exponent > 0, so log decays of -50 per
// token underflow to 0 and never overflow). Backward recomputes the chunk-start states.
#include "backend/cpu/vec_math.h"
#include "lrnn/threads.h"
#include "ops/delta_rule/cpu/blas.h"
#include "ops/delta_rule/delta_rule.h"

#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail {

namespace {

using dr_blas::gemm;
using dr_blas::unit_lower_solve;

constexpr int64_t blk = 16;

template <typename A>
A dot(const A* x, const A* y, int64_t n) {
  A acc[8] = {};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[d + l] * y[d + l];
  A s = 0;
  for (; d < n; ++d) s += x[d] * y[d];
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// One (sequence, head): work space and the chunk-local quantities. Matrix layouts (rows x cols):
// AQ = [A~; Q~] (2L x K), BK = [B^; K^] (2L x K), MM = [[M_ab, M_ak], [M_qb, M_qk]] (2L x 2L, ld 2C),
// ZV = [Z; V] (2L x V), X = AQ S_0 (2L x V).
template <typename A>
struct dplr_ctx {
  const delta_problem<A>& p;
  int64_t h, C, K, V, ldk, ldv, ld;
  int64_t t0 = 0, L = 0;
  std::vector<A> D, Gam, Gm, Gd, AQ, BK, MM, NA, ZV, X, S;
  // Block scratch: running decay products E (blk x K), E o b and E o k (Pb, Pk), a row pair aq (2 x K);
  // off-diagonal factors Xo (2C x K), Yo (2 blk x K), Ea, Eq (C x K), Eb (blk x K), Po (2C x 2 blk).
  std::vector<A> E, Pb, Pk, aq, Xo, Yo, Ea, Eq, Eb, Po, dX;

  dplr_ctx(const delta_problem<A>& pp, int64_t hh)
      : p(pp), h(hh), C(pp.chunk), K(pp.K), V(pp.V), ldk(pp.H * pp.K), ldv(pp.H * pp.V), ld(2 * pp.chunk) {
    for (auto* m : {&D, &Gam, &Gm, &Gd, &Ea, &Eq}) m->resize(C * K);
    AQ.resize(2 * C * K), BK.resize(2 * C * K), MM.resize(4 * C * C), NA.resize(C * C), ZV.resize(2 * C * V), X.resize(2 * C * V);
    S.resize(K * V);
    E.resize(blk * K), Pb.resize(blk * K), Pk.resize(blk * K), aq.resize(2 * K), Xo.resize(2 * C * K), Yo.resize(2 * blk * K);
    Eb.resize(blk * K), Po.resize(2 * C * 2 * blk), dX.resize(2 * C * K);
  }
  const A* row(const A* base, int64_t i) const { return base + (t0 + i) * ldk + h * K; }
  const A* qr(int64_t i) const { return row(p.q, i); }
  const A* kr(int64_t i) const { return row(p.k, i); }
  const A* ar(int64_t i) const { return row(p.a, i); }
  const A* br(int64_t i) const { return row(p.b, i); }
  const A* vr(int64_t i) const { return p.v + (t0 + i) * ldv + h * V; }

  void init_state(int64_t n) {
    const int64_t KV = K * V;
    if (p.s0) std::copy(p.s0 + (n * p.H + h) * KV, p.s0 + (n * p.H + h + 1) * KV, S.begin());
    else std::fill(S.begin(), S.end(), A(0));
  }

  // Decays and scaled rows of the chunk [start, start + len).
  void load(int64_t start, int64_t len) {
    t0 = start, L = len;
    for (int64_t i = 0; i < L; ++i) {
      const A* w = row(p.w, i);
      A* di = &D[i * K];
      A* gm = &Gm[i * K];
      A* g = &Gam[i * K];
      for (int64_t d = 0; d < K; ++d) di[d] = cpu::vmath::exp_nonpos(w[d]);  // vectorised for float
      for (int64_t d = 0; d < K; ++d) {
        gm[d] = i == 0 ? A(1) : Gam[(i - 1) * K + d];
        g[d] = gm[d] * di[d];
      }
    }
    std::fill(Gd.begin() + (L - 1) * K, Gd.begin() + L * K, A(1));
    for (int64_t i = L - 2; i >= 0; --i)
      for (int64_t d = 0; d < K; ++d) Gd[i * K + d] = Gd[(i + 1) * K + d] * D[(i + 1) * K + d];
    for (int64_t i = 0; i < L; ++i) {
      const A *a = ar(i), *q = qr(i), *b = br(i), *k = kr(i);
      for (int64_t d = 0; d < K; ++d) {
        AQ[i * K + d] = a[d] * Gm[i * K + d];
        AQ[(L + i) * K + d] = q[d] * Gam[i * K + d];
        BK[i * K + d] = b[d] * Gd[i * K + d];
        BK[(L + i) * K + d] = k[d] * Gd[i * K + d];
      }
      std::copy(vr(i), vr(i) + V, ZV.begin() + (L + i) * V);
    }
  }

  // Diagonal block [i0, i1), row i: bring the running products to row i (E_j = prod_{s=j+1}^{i-1} d_s
  // for j < i, kept when with_e; Pb_j = E_j o b_j, Pk_j = E_j o k_j) and set aq = [a_i; q_i o d_i]. Returns i - i0.
  int64_t diag_advance(int64_t i0, int64_t i, bool with_e) {
    const int64_t nj = i - i0;
    if (nj > 0) {
      const A* dp = &D[(i - 1) * K];
      for (int64_t jl = 0; jl + 1 < nj; ++jl)
        for (int64_t d = 0; d < K; ++d) {
          Pb[jl * K + d] *= dp[d];
          Pk[jl * K + d] *= dp[d];
        }
      if (with_e) {
        for (int64_t jl = 0; jl + 1 < nj; ++jl)
          for (int64_t d = 0; d < K; ++d) E[jl * K + d] *= dp[d];
        std::fill(E.begin() + (nj - 1) * K, E.begin() + nj * K, A(1));
      }
      std::copy(br(i - 1), br(i - 1) + K, Pb.begin() + (nj - 1) * K);
      std::copy(kr(i - 1), kr(i - 1) + K, Pk.begin() + (nj - 1) * K);
    }
    const A *a = ar(i), *q = qr(i), *di = &D[i * K];
    for (int64_t d = 0; d < K; ++d) {
      aq[d] = a[d];
      aq[K + d] = q[d] * di[d];
    }
    return nj;
  }

  // Off-diagonal factors for the block column [j0, j1) and the rows [j1, L), reference row r = j1 - 1:
  // Ea_i = e^{G_{i-1} - G_r}, Eq_i = e^{G_i - G_r}, Eb_j = e^{G_r - G_j}; Xo = [a o Ea; q o Eq], Yo = [b o Eb; k o Eb].
  void offdiag_factors(int64_t j0, int64_t j1) {
    const int64_t nr = L - j1, nJ = j1 - j0;
    std::vector<A>& e = dX;  // scratch row
    std::fill(e.begin(), e.begin() + K, A(1));
    for (int64_t ii = 0; ii < nr; ++ii) {
      const int64_t i = j1 + ii;
      const A *a = ar(i), *q = qr(i), *di = &D[i * K];
      for (int64_t d = 0; d < K; ++d) {
        Ea[ii * K + d] = e[d];
        Xo[ii * K + d] = a[d] * e[d];
        e[d] *= di[d];
        Eq[ii * K + d] = e[d];
        Xo[(nr + ii) * K + d] = q[d] * e[d];
      }
    }
    std::fill(e.begin(), e.begin() + K, A(1));
    for (int64_t j = j1 - 1; j >= j0; --j) {
      const int64_t jj = j - j0;
      const A *b = br(j), *k = kr(j), *dj = &D[j * K];
      for (int64_t d = 0; d < K; ++d) {
        Eb[jj * K + d] = e[d];
        Yo[jj * K + d] = b[d] * e[d];
        Yo[(nJ + jj) * K + d] = k[d] * e[d];
        e[d] *= dj[d];
      }
    }
  }

  // MM: the four decayed score matrices (strictly lower for the a rows, lower incl. diagonal for q rows).
  void make_scores() {
    for (int64_t i = 0; i < 2 * L; ++i) std::fill(MM.begin() + i * ld, MM.begin() + i * ld + 2 * L, A(0));
    for (int64_t i0 = 0; i0 < L; i0 += blk) {
      const int64_t i1 = std::min(i0 + blk, L);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t nj = diag_advance(i0, i, false);
        for (int64_t jl = 0; jl < nj; ++jl) {
          const int64_t j = i0 + jl;
          MM[i * ld + j] = dot(aq.data(), &Pb[jl * K], K);
          MM[i * ld + L + j] = dot(aq.data(), &Pk[jl * K], K);
          MM[(L + i) * ld + j] = dot(aq.data() + K, &Pb[jl * K], K);
          MM[(L + i) * ld + L + j] = dot(aq.data() + K, &Pk[jl * K], K);
        }
        MM[(L + i) * ld + i] = dot(qr(i), br(i), K);
        MM[(L + i) * ld + L + i] = dot(qr(i), kr(i), K);
      }
      if (i1 >= L) continue;
      const int64_t nr = L - i1, nJ = i1 - i0;
      offdiag_factors(i0, i1);
      gemm(false, true, 2 * nr, 2 * nJ, K, A(1), Xo.data(), K, Yo.data(), K, A(0), Po.data(), 2 * nJ);
      for (int64_t ii = 0; ii < nr; ++ii)
        for (int64_t jj = 0; jj < nJ; ++jj) {
          const int64_t i = i1 + ii, j = i0 + jj;
          MM[i * ld + j] = Po[ii * 2 * nJ + jj];
          MM[i * ld + L + j] = Po[ii * 2 * nJ + nJ + jj];
          MM[(L + i) * ld + j] = Po[(nr + ii) * 2 * nJ + jj];
          MM[(L + i) * ld + L + j] = Po[(nr + ii) * 2 * nJ + nJ + jj];
        }
    }
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j) NA[i * C + j] = -MM[i * ld + j];
  }

  // X = AQ S_0; Z = (I - M_ab)^{-1} (M_ak V + A~ S_0) into ZV's first L rows.
  void make_z() {
    gemm(false, false, 2 * L, V, K, A(1), AQ.data(), K, S.data(), V, A(0), X.data(), V);
    std::copy(X.begin(), X.begin() + L * V, ZV.begin());
    gemm(false, false, L, V, L, A(1), MM.data() + L, ld, ZV.data() + L * V, V, A(1), ZV.data(), V);
    unit_lower_solve(false, L, V, NA.data(), C, ZV.data(), V);
  }

  // O = s (Q~ S_0 + [M_qb M_qk] [Z; V]).
  void output(A* o, int64_t ldo) {
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < V; ++j) o[i * ldo + j] = p.scale * X[(L + i) * V + j];
    gemm(false, false, L, V, 2 * L, p.scale, MM.data() + L * ld, ld, ZV.data(), V, A(1), o, ldo);
  }

  // S <- Diag(Gamma_L) S + BK^T [Z; V].
  void advance() {
    const A* gl = &Gam[(L - 1) * K];
    for (int64_t d = 0; d < K; ++d)
      for (int64_t j = 0; j < V; ++j) S[d * V + j] *= gl[d];
    gemm(true, false, K, V, 2 * L, A(1), BK.data(), K, ZV.data(), V, A(1), S.data(), V);
  }

  // Gradients of the four score matrices (dMM, same layout as MM) into da, dq, db, dk (L x K, accumulated).
  void scores_backward(const A* dMM, A* da, A* dq, A* db, A* dk) {
    std::vector<A>& dqd = dX;
    for (int64_t i0 = 0; i0 < L; i0 += blk) {
      const int64_t i1 = std::min(i0 + blk, L);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t nj = diag_advance(i0, i, true);
        const A *a = aq.data(), *qd = aq.data() + K;
        std::fill(dqd.begin(), dqd.begin() + K, A(0));
        A* dai = da + i * K;
        for (int64_t jl = 0; jl < nj; ++jl) {
          const int64_t j = i0 + jl;
          const A mab = dMM[i * ld + j], mak = dMM[i * ld + L + j], mqb = dMM[(L + i) * ld + j], mqk = dMM[(L + i) * ld + L + j];
          const A *pb = &Pb[jl * K], *pk = &Pk[jl * K], *e = &E[jl * K];
          A *dbj = db + j * K, *dkj = dk + j * K;
          for (int64_t d = 0; d < K; ++d) {
            dai[d] += mab * pb[d] + mak * pk[d];
            dqd[d] += mqb * pb[d] + mqk * pk[d];
            dbj[d] += e[d] * (mab * a[d] + mqb * qd[d]);
            dkj[d] += e[d] * (mak * a[d] + mqk * qd[d]);
          }
        }
        const A mqb = dMM[(L + i) * ld + i], mqk = dMM[(L + i) * ld + L + i];
        const A *q = qr(i), *b = br(i), *k = kr(i), *di = &D[i * K];
        A *dqi = dq + i * K, *dbi = db + i * K, *dki = dk + i * K;
        for (int64_t d = 0; d < K; ++d) {
          dqi[d] += di[d] * dqd[d] + mqb * b[d] + mqk * k[d];
          dbi[d] += mqb * q[d];
          dki[d] += mqk * q[d];
        }
      }
      if (i1 >= L) continue;
      const int64_t nr = L - i1, nJ = i1 - i0;
      offdiag_factors(i0, i1);
      for (int64_t ii = 0; ii < nr; ++ii)
        for (int64_t jj = 0; jj < nJ; ++jj) {
          const int64_t i = i1 + ii, j = i0 + jj;
          Po[ii * 2 * nJ + jj] = dMM[i * ld + j];
          Po[ii * 2 * nJ + nJ + jj] = dMM[i * ld + L + j];
          Po[(nr + ii) * 2 * nJ + jj] = dMM[(L + i) * ld + j];
          Po[(nr + ii) * 2 * nJ + nJ + jj] = dMM[(L + i) * ld + L + j];
        }
      // Rows: d(Xo) = dPo Yo; columns: d(Yo) = dPo^T Xo.
      gemm(false, false, 2 * nr, K, 2 * nJ, A(1), Po.data(), 2 * nJ, Yo.data(), K, A(0), dX.data(), K);
      for (int64_t ii = 0; ii < nr; ++ii)
        for (int64_t d = 0; d < K; ++d) {
          da[(i1 + ii) * K + d] += Ea[ii * K + d] * dX[ii * K + d];
          dq[(i1 + ii) * K + d] += Eq[ii * K + d] * dX[(nr + ii) * K + d];
        }
      gemm(true, false, 2 * nJ, K, 2 * nr, A(1), Po.data(), 2 * nJ, Xo.data(), K, A(0), dX.data(), K);
      for (int64_t jj = 0; jj < nJ; ++jj)
        for (int64_t d = 0; d < K; ++d) {
          db[(i0 + jj) * K + d] += Eb[jj * K + d] * dX[jj * K + d];
          dk[(i0 + jj) * K + d] += Eb[jj * K + d] * dX[(nJ + jj) * K + d];
        }
    }
  }
};

}  // namespace

template <typename A>
void delta_forward_dplr_chunk(const delta_problem<A>& p, A* o, A* s_final) {
  const int64_t H = p.H, K = p.K, V = p.V;
  blas_single_thread_scope blas1;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H;
    dplr_ctx<A> c(p, h);
    c.init_state(n);
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; t += c.C) {
      c.load(t, std::min(c.C, p.offsets[n + 1] - t));
      c.make_scores();
      c.make_z();
      c.output(o + t * H * V + h * V, H * V);
      c.advance();
    }
    if (s_final) std::copy(c.S.begin(), c.S.end(), s_final + nh * K * V);
  });
}

template <typename A>
void delta_backward_dplr_chunk(const delta_problem<A>& p, const delta_grads_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V, KV = K * V;
  blas_single_thread_scope blas1;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H, C = p.chunk;
    const int64_t t_begin = p.offsets[n], t_end = p.offsets[n + 1], nchunks = (t_end - t_begin + C - 1) / C;
    dplr_ctx<A> c(p, h);
    std::vector<A> starts(std::max<int64_t>(nchunks, 1) * KV);
    c.init_state(n);
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      std::copy(c.S.begin(), c.S.end(), starts.begin() + ch * KV);
      const int64_t t = t_begin + ch * C;
      c.load(t, std::min(C, t_end - t));
      c.make_scores();
      c.make_z();
      c.advance();
    }
    const int64_t ld = c.ld;
    std::vector<A> dS(KV, A(0)), dSp(KV), DY(2 * C * V), dMM(4 * C * C), T1(2 * C * K), T2(2 * C * K);
    std::vector<A> da(C * K), dq(C * K), db(C * K), dk(C * K), dG(C * K), dgl(K);
    if (io.d_s_final) std::copy(io.d_s_final + nh * KV, io.d_s_final + (nh + 1) * KV, dS.begin());
    for (int64_t ch = nchunks - 1; ch >= 0; --ch) {
      const int64_t t = t_begin + ch * C, L = std::min(C, t_end - t);
      std::copy(starts.begin() + ch * KV, starts.begin() + (ch + 1) * KV, c.S.begin());
      c.load(t, L);
      c.make_scores();
      c.make_z();
      // DY = [dR; s dO]; first dZ = M_qb^T (s dO) + B^ dS, then dR = (I - M_ab)^{-T} dZ.
      const A* dO = io.d_o + t * H * V + h * V;
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < V; ++j) DY[(L + i) * V + j] = p.scale * dO[i * H * V + j];
      gemm(true, false, L, V, L, A(1), c.MM.data() + L * ld, ld, DY.data() + L * V, V, A(0), DY.data(), V);
      gemm(false, false, L, V, K, A(1), c.BK.data(), K, dS.data(), V, A(1), DY.data(), V);
      unit_lower_solve(true, L, V, c.NA.data(), C, DY.data(), V);
      // dMM = DY [Z; V]^T, masked like MM.
      gemm(false, true, 2 * L, 2 * L, V, A(1), DY.data(), V, c.ZV.data(), V, A(0), dMM.data(), ld);
      for (int64_t i = 0; i < 2 * L; ++i) {
        const int64_t last = i < L ? i : i - L + 1;  // columns j < last are kept (per column block)
        for (int64_t j = last; j < L; ++j) dMM[i * ld + j] = 0, dMM[i * ld + L + j] = 0;
      }
      // dv = [M_ak; M_qk]^T DY + K^ dS.
      A* dv = io.dv + t * H * V + h * V;
      gemm(true, false, L, V, 2 * L, A(1), c.MM.data() + L, ld, DY.data(), V, A(0), dv, H * V);
      gemm(false, false, L, V, K, A(1), c.BK.data() + L * K, K, dS.data(), V, A(1), dv, H * V);
      // T1 = DY S_0^T (dA~, dQ~), T2 = [Z; V] dS^T (dB^, dK^).
      gemm(false, true, 2 * L, K, V, A(1), DY.data(), V, c.S.data(), V, A(0), T1.data(), K);
      gemm(false, true, 2 * L, K, V, A(1), c.ZV.data(), V, dS.data(), V, A(0), T2.data(), K);
      // dS_0 = Diag(Gamma_L) dS + AQ^T DY; the gate's direct term Gamma_L o rowsum(S_0 o dS).
      const A* gl = &c.Gam[(L - 1) * K];
      for (int64_t d = 0; d < K; ++d) {
        A acc = 0;
        for (int64_t j = 0; j < V; ++j) {
          acc += c.S[d * V + j] * dS[d * V + j];
          dSp[d * V + j] = gl[d] * dS[d * V + j];
        }
        dgl[d] = gl[d] * acc;
      }
      gemm(true, false, K, V, 2 * L, A(1), c.AQ.data(), K, DY.data(), V, A(1), dSp.data(), V);
      for (int64_t x = 0; x < L * K; ++x) {
        da[x] = c.Gm[x] * T1[x];
        dq[x] = c.Gam[x] * T1[L * K + x];
        db[x] = c.Gd[x] * T2[x];
        dk[x] = c.Gd[x] * T2[L * K + x];
        dgl[x % K] += c.BK[x] * T2[x] + c.BK[L * K + x] * T2[L * K + x];
      }
      c.scores_backward(dMM.data(), da.data(), dq.data(), db.data(), dk.data());
      // Log-decay gradient: dG_{i-1} += a_i o da_i, dG_i += q_i o dq_i - b_i o db_i - k_i o dk_i,
      // dG_{L-1} += dgl; dw_s = sum_{i >= s} dG_i.
      for (int64_t i = 0; i < L; ++i) {
        const A *a = c.ar(i), *q = c.qr(i), *b = c.br(i), *k = c.kr(i);
        for (int64_t d = 0; d < K; ++d) {
          const int64_t x = i * K + d;
          dG[x] = q[d] * dq[x] - b[d] * db[x] - k[d] * dk[x];
          if (i > 0) dG[x - K] += a[d] * da[x];
        }
      }
      for (int64_t d = 0; d < K; ++d) dG[(L - 1) * K + d] += dgl[d];
      for (int64_t i = L - 2; i >= 0; --i)
        for (int64_t d = 0; d < K; ++d) dG[i * K + d] += dG[(i + 1) * K + d];
      for (int64_t i = 0; i < L; ++i) {
        const int64_t r = ((t + i) * H + h) * K;
        std::copy(&dq[i * K], &dq[i * K] + K, io.dq + r);
        std::copy(&dk[i * K], &dk[i * K] + K, io.dk + r);
        std::copy(&da[i * K], &da[i * K] + K, io.da + r);
        std::copy(&db[i * K], &db[i * K] + K, io.db + r);
        std::copy(&dG[i * K], &dG[i * K] + K, io.dw + r);
      }
      dS.swap(dSp);
    }
    if (io.ds0) std::copy(dS.begin(), dS.end(), io.ds0 + nh * KV);
  });
}

template void delta_forward_dplr_chunk<float>(const delta_problem<float>&, float*, float*);
template void delta_forward_dplr_chunk<double>(const delta_problem<double>&, double*, double*);
template void delta_backward_dplr_chunk<float>(const delta_problem<float>&, const delta_grads_io<float>&);
template void delta_backward_dplr_chunk<double>(const delta_problem<double>&, const delta_grads_io<double>&);

}  // namespace lrnn::ops::detail
