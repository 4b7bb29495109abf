// local_attn, parallel form on CPU: tiles of 64 query tokens x the heads sharing one key/value
// head against the key rows the tile can see (at most W + 64), logits and outputs through BLAS,
// masked fp32 softmax in between. Forward runs (sequence, key head, tile) tasks; backward runs
// (sequence, key head) tasks that own their key / value gradient rows (README.md).
#include "ops/local_attn/common.h"

#include "lrnn/threads.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace lrnn::ops::local_detail {

namespace {

constexpr int64_t tile = 64;

int ci(int64_t x) { return static_cast<int>(x); }
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, ci(M), ci(N), ci(K), alpha, a, ci(lda), b,
              ci(ldb), beta, c, ci(ldc));
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, ci(M), ci(N), ci(K), alpha, a, ci(lda), b,
              ci(ldb), beta, c, ci(ldc));
}

// One tile: queries t0 .. t0 + L - 1 of one sequence, the `group` query heads of key head hk,
// packed as rows (t, g); key rows r0 .. r0 + nk - 1.
template <typename A>
struct tile_ctx {
  const problem<A>& p;
  int64_t hk, group, t0 = 0, L = 0, r0 = 0, nk = 0;
  std::vector<A> Q, P;

  tile_ctx(const problem<A>& pp, int64_t h) : p(pp), hk(h), group(pp.Hq / pp.Hkv) {}
  int64_t rows() const { return L * group; }
  const A* keys() const { return p.keys.data() + (r0 * p.Hkv + hk) * p.D; }
  const A* vals() const { return p.vals.data() + (r0 * p.Hkv + hk) * p.Dv; }
  // Packs the tile's queries and computes the normalised probabilities P [rows, nk].
  void probabilities(int64_t start, int64_t len) {
    t0 = start, L = len;
    r0 = p.lo[t0];
    for (int64_t t = t0; t < t0 + L; ++t) r0 = std::min(r0, p.lo[t]);
    nk = p.self[t0 + L - 1] - r0 + 1;
    const int64_t D = p.D;
    Q.resize(rows() * D);
    for (int64_t i = 0; i < L; ++i)
      std::copy(&p.q[((t0 + i) * p.Hq + hk * group) * D], &p.q[((t0 + i) * p.Hq + (hk + 1) * group) * D], &Q[i * group * D]);
    P.resize(rows() * nk);
    gemm(false, true, rows(), nk, D, p.scale, Q.data(), D, keys(), p.Hkv * D, A(0), P.data(), nk);
    for (int64_t i = 0; i < L; ++i) {
      const int64_t a = p.lo[t0 + i] - r0, b = p.self[t0 + i] - r0;  // visible columns [a, b]
      for (int64_t g = 0; g < group; ++g) {
        A* row = &P[(i * group + g) * nk];
        A m = -std::numeric_limits<A>::infinity();
        for (int64_t j = a; j <= b; ++j) m = std::max(m, row[j]);
        A sum = 0;
        for (int64_t j = 0; j < nk; ++j) {
          row[j] = j >= a && j <= b ? std::exp(row[j] - m) : A(0);
          sum += row[j];
        }
        const A inv = A(1) / sum;
        for (int64_t j = 0; j < nk; ++j) row[j] *= inv;
      }
    }
  }
};

}  // namespace

template <typename A>
void attend_parallel(const problem<A>& p, A* o) {
  const int64_t Hkv = p.Hkv, Dv = p.Dv, group = p.Hq / p.Hkv;
  std::vector<std::array<int64_t, 3>> tasks;  // (sequence, key head, first token)
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t hk = 0; hk < Hkv; ++hk)
      for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; t += tile) tasks.push_back({n, hk, t});
  blas_single_thread_scope blas1;
  parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t i) {
    const auto [n, hk, t] = tasks[i];
    tile_ctx<A> c(p, hk);
    c.probabilities(t, std::min(tile, p.offsets[n + 1] - t));
    std::vector<A> O(c.rows() * Dv);
    gemm(false, false, c.rows(), Dv, c.nk, A(1), c.P.data(), c.nk, c.vals(), Hkv * Dv, A(0), O.data(), Dv);
    for (int64_t r = 0; r < c.L; ++r)
      std::copy(&O[r * group * Dv], &O[(r + 1) * group * Dv], o + ((t + r) * p.Hq + hk * group) * Dv);
  });
}

template <typename A>
void attend_parallel_backward(const problem<A>& p, const A* d_o, A* dq, A* dkeys, A* dvals) {
  const int64_t Hq = p.Hq, Hkv = p.Hkv, D = p.D, Dv = p.Dv, group = Hq / Hkv;
  blas_single_thread_scope blas1;
  parallel_for(p.N * Hkv, [&](int64_t nh) {
    const int64_t n = nh / Hkv, hk = nh % Hkv;
    tile_ctx<A> c(p, hk);
    std::vector<A> dO, dP, dQ, Dsum;
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; t += tile) {
      c.probabilities(t, std::min(tile, p.offsets[n + 1] - t));
      const int64_t rows = c.rows(), nk = c.nk;
      dO.resize(rows * Dv), dP.resize(rows * nk), dQ.resize(rows * D), Dsum.resize(rows);
      for (int64_t r = 0; r < c.L; ++r)
        std::copy(d_o + ((t + r) * Hq + hk * group) * Dv, d_o + ((t + r) * Hq + (hk + 1) * group) * Dv, &dO[r * group * Dv]);
      // dP = dO V^T; dS = P (dP - sum_j P dP) * scale; dQ = dS K; dK += dS^T Q; dV += P^T dO.
      gemm(false, true, rows, nk, Dv, A(1), dO.data(), Dv, c.vals(), Hkv * Dv, A(0), dP.data(), nk);
      for (int64_t r = 0; r < rows; ++r) {
        const A* pr = &c.P[r * nk];
        A* dr = &dP[r * nk];
        A s = 0;
        for (int64_t j = 0; j < nk; ++j) s += pr[j] * dr[j];
        for (int64_t j = 0; j < nk; ++j) dr[j] = pr[j] * (dr[j] - s) * p.scale;
      }
      gemm(false, false, rows, D, nk, A(1), dP.data(), nk, c.keys(), Hkv * D, A(0), dQ.data(), D);
      for (int64_t r = 0; r < c.L; ++r)
        for (int64_t x = 0; x < group * D; ++x) dq[((t + r) * Hq + hk * group) * D + x] += dQ[r * group * D + x];
      gemm(true, false, nk, D, rows, A(1), dP.data(), nk, c.Q.data(), D, A(1), dkeys + (c.r0 * Hkv + hk) * D, Hkv * D);
      gemm(true, false, nk, Dv, rows, A(1), c.P.data(), nk, dO.data(), Dv, A(1), dvals + (c.r0 * Hkv + hk) * Dv, Hkv * Dv);
    }
  });
}

template void attend_parallel<float>(const problem<float>&, float*);
template void attend_parallel<double>(const problem<double>&, double*);
template void attend_parallel_backward<float>(const problem<float>&, const float*, float*, float*, float*);
template void attend_parallel_backward<double>(const problem<double>&, const double*, double*, double*, double*);

}  // namespace lrnn::ops::local_detail
