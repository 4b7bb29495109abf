// wkv4 chunk form on CPU: inside a chunk of L tokens every output is a stabilised weighted
// average over the incoming state and the chunk's tokens (pairwise scores, one max per row);
// between chunks the (a, b, p) state carries. Tasks over (sequence, block of up to 256 channels).
// The backward recomputes the chunk-start states instead of storing per-token ones.
// Compiled twice (backend/cpu/simd.h): chunk.cpp (baseline) and chunk_avx2.cpp (AVX2 + FMA), each
// inside its own namespace LRNN_SIMD_NS; no include guard on purpose.
#include "backend/cpu/vec_math.h"
#include "ops/common/seq_util.h"
#include "ops/wkv4/cpu/state_impl.h"
#include "ops/wkv4/wkv4.h"
#include "lrnn/threads.h"
#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail::LRNN_SIMD_NS {


namespace {

using cpu::vmath::exp_nonpos;
constexpr int64_t max_block = 256;  // channels per task at most (seq_util::channel_block)
template <typename A>
struct chunk_view {
  const wkv4_problem<A>& pr;
  int64_t c0, cw, t0, t1;  // channels [c0, c0 + cw), tokens [t0, t1)
  const A* k(int64_t t) const { return pr.k + t * pr.C + c0; }
  const A* v(int64_t t) const { return pr.v + t * pr.C + c0; }
};

// Row max of output t: over the state column p + (t - t0) w, tokens i < t with k_i + (t-1-i) w
// and the current token u + k_t.
template <typename A>
void row_max(const chunk_view<A>& cv, int64_t t, const A* w, const A* u, const A* p, A* m) {
  const A* kt = cv.k(t);
  for (int64_t c = 0; c < cv.cw; ++c) m[c] = std::max(p[c] + static_cast<A>(t - cv.t0) * w[c], u[c] + kt[c]);
  for (int64_t i = cv.t0; i < t; ++i) {
    const A* ki = cv.k(i);
    const A dist = static_cast<A>(t - 1 - i);
    for (int64_t c = 0; c < cv.cw; ++c) m[c] = std::max(m[c], ki[c] + dist * w[c]);
  }
}

// State after the chunk: p' = max over the columns of S_j (state p + L w, token i k_i + (t1-1-i) w),
// a' = sum_j exp(S_j - p') n_j, b' likewise. `arg` (optional) gets the first column reaching
// the max: -1 for the state, else the token index.
template <typename A>
void chunk_state_out(const chunk_view<A>& cv, const A* w, const A* a, const A* b, const A* p, A* an, A* bn, A* pn,
                     int64_t* arg) {
  const int64_t L = cv.t1 - cv.t0, cw = cv.cw;
  A m[max_block], P[max_block];
  for (int64_t c = 0; c < cw; ++c) {
    P[c] = p[c] + static_cast<A>(L) * w[c];
    m[c] = P[c];
    if (arg) arg[c] = -1;
  }
  for (int64_t i = cv.t0; i < cv.t1; ++i) {
    const A* ki = cv.k(i);
    const A dist = static_cast<A>(cv.t1 - 1 - i);
    for (int64_t c = 0; c < cw; ++c) {
      const A s = ki[c] + dist * w[c];
      if (arg && s > m[c]) arg[c] = i;
      m[c] = std::max(m[c], s);
    }
  }
  A sa[max_block], sb[max_block];
  for (int64_t c = 0; c < cw; ++c) {
    const A e = exp_nonpos(P[c] - m[c]);
    sa[c] = e * a[c];
    sb[c] = e * b[c];
  }
  for (int64_t i = cv.t0; i < cv.t1; ++i) {
    const A* ki = cv.k(i);
    const A* vi = cv.v(i);
    const A dist = static_cast<A>(cv.t1 - 1 - i);
    for (int64_t c = 0; c < cw; ++c) {
      const A e = exp_nonpos(ki[c] + dist * w[c] - m[c]);
      sa[c] += e * vi[c];
      sb[c] += e;
    }
  }
  for (int64_t c = 0; c < cw; ++c) an[c] = sa[c], bn[c] = sb[c], pn[c] = m[c];
}

// Outputs of the chunk's tokens; with `den` also the row denominators (scaled by exp(-m)).
template <typename A>
void chunk_outputs(const chunk_view<A>& cv, const A* w, const A* u, const A* a, const A* b, const A* p, int64_t t,
                   A* m, A* y, A* den) {
  const int64_t cw = cv.cw;
  row_max(cv, t, w, u, p, m);
  A num[max_block], dd[max_block];
  const A* kt = cv.k(t);
  const A* vt = cv.v(t);
  for (int64_t c = 0; c < cw; ++c) {
    const A es = exp_nonpos(p[c] + static_cast<A>(t - cv.t0) * w[c] - m[c]);
    const A ed = exp_nonpos(u[c] + kt[c] - m[c]);
    num[c] = es * a[c] + ed * vt[c];
    dd[c] = es * b[c] + ed;
  }
  for (int64_t i = cv.t0; i < t; ++i) {
    const A* ki = cv.k(i);
    const A* vi = cv.v(i);
    const A dist = static_cast<A>(t - 1 - i);
    for (int64_t c = 0; c < cw; ++c) {
      const A e = exp_nonpos(ki[c] + dist * w[c] - m[c]);
      num[c] += e * vi[c];
      dd[c] += e;
    }
  }
  for (int64_t c = 0; c < cw; ++c) {
    y[c] = num[c] / dd[c];
    if (den) den[c] = dd[c];
  }
}

}  // namespace

template <typename A>
void wkv4_forward_chunk(const wkv4_problem<A>& pr, const wkv4_forward_io<A>& io) {
  const int64_t C = pr.C, block = seq_util::channel_block(pr.N, C, max_block), nb = (C + block - 1) / block, L = pr.chunk;
  parallel_for(pr.N * nb, [&](int64_t task) {
    const int64_t n = task / nb, c0 = (task % nb) * block, cw = std::min(block, C - c0);
    A a[max_block], b[max_block], p[max_block], m[max_block];
    load_state(pr, n, c0, cw, a, b, p);
    for (int64_t ts = pr.offsets[n]; ts < pr.offsets[n + 1]; ts += L) {
      const chunk_view<A> cv{pr, c0, cw, ts, std::min(pr.offsets[n + 1], ts + L)};
      for (int64_t t = cv.t0; t < cv.t1; ++t) chunk_outputs(cv, pr.w + c0, pr.u + c0, a, b, p, t, m, io.y + t * C + c0, static_cast<A*>(nullptr));
      chunk_state_out(cv, pr.w + c0, a, b, p, a, b, p, static_cast<int64_t*>(nullptr));
    }
    store_state(io, C, n, c0, cw, a, b, p);
  });
}

template <typename A>
void wkv4_backward_chunk(const wkv4_problem<A>& pr, const wkv4_backward_io<A>& io) {
  const int64_t C = pr.C, block = seq_util::channel_block(pr.N, C, max_block), nb = (C + block - 1) / block, L = pr.chunk;
  parallel_for(pr.N * nb, [&](int64_t task) {
    const int64_t n = task / nb, c0 = (task % nb) * block, cw = std::min(block, C - c0);
    const int64_t T0 = pr.offsets[n], T1 = pr.offsets[n + 1], n_ch = (T1 - T0 + L - 1) / L;
    const A* w = pr.w + c0;
    const A* u = pr.u + c0;
    std::vector<A> starts(static_cast<size_t>(n_ch) * 3 * block);  // [chunk][a, b, p][max_block]
    A a[max_block], b[max_block], p[max_block];
    load_state(pr, n, c0, cw, a, b, p);
    for (int64_t j = 0; j < n_ch; ++j) {
      A* s = starts.data() + j * 3 * block;
      std::copy(a, a + cw, s), std::copy(b, b + cw, s + block), std::copy(p, p + cw, s + 2 * block);
      const chunk_view<A> cv{pr, c0, cw, T0 + j * L, std::min(T1, T0 + (j + 1) * L)};
      chunk_state_out(cv, w, a, b, p, a, b, p, static_cast<int64_t*>(nullptr));
    }
    A ga[max_block], gb[max_block], gp[max_block], dw[max_block], du[max_block];
    load_state_grads(io, C, n, c0, cw, ga, gb, gp, dw, du);
    for (int64_t j = n_ch - 1; j >= 0; --j) {
      const chunk_view<A> cv{pr, c0, cw, T0 + j * L, std::min(T1, T0 + (j + 1) * L)};
      const A* s = starts.data() + j * 3 * block;
      const A *sa = s, *sb = s + block, *sp = s + 2 * block;
      for (int64_t t = cv.t0; t < cv.t1; ++t)
        for (int64_t c = 0; c < cw; ++c) io.dk[t * C + c0 + c] = io.dv[t * C + c0 + c] = A(0);
      A dain[max_block], dbin[max_block], dpin[max_block];
      // Through the outgoing state.
      A an[max_block], bn[max_block], pn[max_block];
      int64_t arg[max_block];
      chunk_state_out(cv, w, sa, sb, sp, an, bn, pn, arg);
      const A Lc = static_cast<A>(cv.t1 - cv.t0);
      for (int64_t c = 0; c < cw; ++c) {
        const A gmax = gp[c] - ga[c] * an[c] - gb[c] * bn[c];
        const A e = exp_nonpos(sp[c] + Lc * w[c] - pn[c]);
        dain[c] = ga[c] * e;
        dbin[c] = gb[c] * e;
        const A dS = e * (ga[c] * sa[c] + gb[c] * sb[c]) + (arg[c] == -1 ? gmax : A(0));
        dpin[c] = dS;
        dw[c] += dS * Lc;
        if (arg[c] >= 0) io.dk[arg[c] * C + c0 + c] += gmax;
        if (arg[c] >= 0) dw[c] += gmax * static_cast<A>(cv.t1 - 1 - arg[c]);
      }
      for (int64_t i = cv.t0; i < cv.t1; ++i) {
        const A* ki = cv.k(i);
        const A* vi = cv.v(i);
        A* dki = io.dk + i * C + c0;
        A* dvi = io.dv + i * C + c0;
        const A dist = static_cast<A>(cv.t1 - 1 - i);
        for (int64_t c = 0; c < cw; ++c) {
          const A e = exp_nonpos(ki[c] + dist * w[c] - pn[c]);
          dvi[c] += ga[c] * e;
          const A dS = e * (ga[c] * vi[c] + gb[c]);
          dki[c] += dS;
          dw[c] += dS * dist;
        }
      }
      // Through the outputs.
      for (int64_t t = cv.t0; t < cv.t1; ++t) {
        A m[max_block], y[max_block], den[max_block], g[max_block];
        chunk_outputs(cv, w, u, sa, sb, sp, t, m, y, den);
        const A* kt = cv.k(t);
        const A* vt = cv.v(t);
        const A* dyt = io.dy + t * C + c0;
        const A dist0 = static_cast<A>(t - cv.t0);
        for (int64_t c = 0; c < cw; ++c) {
          g[c] = dyt[c] / den[c];
          const A es = exp_nonpos(sp[c] + dist0 * w[c] - m[c]);
          dain[c] += g[c] * es;
          dbin[c] -= g[c] * y[c] * es;
          const A ds = g[c] * es * (sa[c] - y[c] * sb[c]);
          dpin[c] += ds;
          dw[c] += ds * dist0;
          const A ed = exp_nonpos(u[c] + kt[c] - m[c]);
          io.dv[t * C + c0 + c] += g[c] * ed;
          const A dd = g[c] * ed * (vt[c] - y[c]);
          io.dk[t * C + c0 + c] += dd;
          du[c] += dd;
        }
        for (int64_t i = cv.t0; i < t; ++i) {
          const A* ki = cv.k(i);
          const A* vi = cv.v(i);
          A* dki = io.dk + i * C + c0;
          A* dvi = io.dv + i * C + c0;
          const A dist = static_cast<A>(t - 1 - i);
          for (int64_t c = 0; c < cw; ++c) {
            const A e = exp_nonpos(ki[c] + dist * w[c] - m[c]);
            dvi[c] += g[c] * e;
            const A ds = g[c] * e * (vi[c] - y[c]);
            dki[c] += ds;
            dw[c] += ds * dist;
          }
        }
      }
      for (int64_t c = 0; c < cw; ++c) ga[c] = dain[c], gb[c] = dbin[c], gp[c] = dpin[c];
    }
    store_grads(io, C, n, c0, cw, dw, du, ga, gb, gp);
  });
}

}  // namespace lrnn::ops::detail::LRNN_SIMD_NS
