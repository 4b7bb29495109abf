// wkv4 recurrent form on CPU: tasks over (sequence, block of up to 4096 channels), tokens in order,
// channels vectorised. Each step uses one exp for the output and one for the update (one of
// e1/e2 is exactly 1). The backward keeps the state every 64 tokens and recomputes the states
// inside each 64-token block while walking back (README.md, "Backward").
// Compiled twice (backend/cpu/simd.h): recurrent.cpp (baseline) and recurrent_avx2.cpp (AVX2 + FMA), each
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
constexpr int64_t max_block = 4096;  // channels per task at most (seq_util::channel_block)
constexpr int64_t checkpoint = 64;  // backward: tokens between stored states

// Output of one token (from the state before it), then the state update.
template <typename A>
inline void forward_step(const A* k, const A* v, const A* w, const A* u, int64_t cw, A* a, A* b, A* p, A* y) {
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
    const A kk = k[c], vv = v[c];
    const A d1 = p[c] - (u[c] + kk);
    const A e = exp_nonpos(-std::fabs(d1));
    const A e1 = d1 >= 0 ? A(1) : e, e2 = d1 >= 0 ? e : A(1);
    y[c] = (e1 * a[c] + e2 * vv) / (e1 * b[c] + e2);
    const A pw = p[c] + w[c], d2 = pw - kk;
    const A f = exp_nonpos(-std::fabs(d2));
    const A f1 = d2 >= 0 ? A(1) : f, f2 = d2 >= 0 ? f : A(1);
    a[c] = f1 * a[c] + f2 * vv;
    b[c] = f1 * b[c] + f2;
    p[c] = d2 >= 0 ? pw : kk;
  }
}

template <typename A>
inline void update_step(const A* k, const A* v, const A* w, int64_t cw, const A* a, const A* b, const A* p, A* an,
                        A* bn, A* pn) {
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
    const A kk = k[c];
    const A pw = p[c] + w[c], d2 = pw - kk;
    const A f = exp_nonpos(-std::fabs(d2));
    const A f1 = d2 >= 0 ? A(1) : f, f2 = d2 >= 0 ? f : A(1);
    an[c] = f1 * a[c] + f2 * v[c];
    bn[c] = f1 * b[c] + f2;
    pn[c] = d2 >= 0 ? pw : kk;
  }
}

}  // namespace

template <typename A>
void wkv4_forward_recurrent(const wkv4_problem<A>& pr, const wkv4_forward_io<A>& io) {
  const int64_t C = pr.C, block = seq_util::channel_block(pr.N, C, max_block), nb = (C + block - 1) / block;
  parallel_for(pr.N * nb, [&](int64_t task) {
    const int64_t n = task / nb, c0 = (task % nb) * block, cw = std::min(block, C - c0);
    std::vector<A> a_buf(block), b_buf(block), p_buf(block);
    A *a = a_buf.data(), *b = b_buf.data(), *p = p_buf.data();
    load_state(pr, n, c0, cw, a, b, p);
    for (int64_t t = pr.offsets[n]; t < pr.offsets[n + 1]; ++t)
      forward_step(pr.k + t * C + c0, pr.v + t * C + c0, pr.w + c0, pr.u + c0, cw, a, b, p, io.y + t * C + c0);
    store_state(io, C, n, c0, cw, a, b, p);
  });
}

template <typename A>
void wkv4_backward_recurrent(const wkv4_problem<A>& pr, const wkv4_backward_io<A>& io) {
  const int64_t C = pr.C, block = seq_util::channel_block(pr.N, C, max_block), nb = (C + block - 1) / block;
  parallel_for(pr.N * nb, [&](int64_t task) {
    const int64_t n = task / nb, c0 = (task % nb) * block, cw = std::min(block, C - c0);
    const int64_t t0 = pr.offsets[n], t1 = pr.offsets[n + 1];
    const int64_t n_ck = (t1 - t0 + checkpoint - 1) / checkpoint;
    const A* w = pr.w + c0;
    const A* u = pr.u + c0;
    // States at the start of every 64-token block: [n_ck][a, b, p][block].
    std::vector<A> ck(static_cast<size_t>(n_ck) * 3 * block);
    std::vector<A> st(static_cast<size_t>(checkpoint + 1) * 3 * block);  // [i][a, b, p][block]
    std::vector<A> a_buf(block), b_buf(block), p_buf(block);
    A *a = a_buf.data(), *b = b_buf.data(), *p = p_buf.data();
    load_state(pr, n, c0, cw, a, b, p);
    for (int64_t j = 0; j < n_ck; ++j) {
      A* s = ck.data() + j * 3 * block;
      std::copy(a, a + cw, s), std::copy(b, b + cw, s + block), std::copy(p, p + cw, s + 2 * block);
      for (int64_t t = t0 + j * checkpoint; t < std::min(t1, t0 + (j + 1) * checkpoint); ++t)
        update_step(pr.k + t * C + c0, pr.v + t * C + c0, w, cw, a, b, p, a, b, p);
    }
    std::vector<A> ga_buf(block), gb_buf(block), gp_buf(block), dw_buf(block), du_buf(block);
    A *ga = ga_buf.data(), *gb = gb_buf.data(), *gp = gp_buf.data(), *dw = dw_buf.data(), *du = du_buf.data();
    load_state_grads(io, C, n, c0, cw, ga, gb, gp, dw, du);
    for (int64_t j = n_ck - 1; j >= 0; --j) {
      const int64_t ts = t0 + j * checkpoint, te = std::min(t1, ts + checkpoint);
      std::copy(ck.begin() + j * 3 * block, ck.begin() + (j + 1) * 3 * block, st.begin());
      for (int64_t t = ts; t < te; ++t) {
        const A* s = st.data() + (t - ts) * 3 * block;
        A* sn = st.data() + (t - ts + 1) * 3 * block;
        update_step(pr.k + t * C + c0, pr.v + t * C + c0, w, cw, s, s + block, s + 2 * block, sn, sn + block, sn + 2 * block);
      }
      for (int64_t t = te - 1; t >= ts; --t) {
        const A* s = st.data() + (t - ts) * 3 * block;
        const A* sn = st.data() + (t - ts + 1) * 3 * block;
        const A* k = pr.k + t * C + c0;
        const A* v = pr.v + t * C + c0;
        const A* dy = io.dy + t * C + c0;
        A* dk = io.dk + t * C + c0;
        A* dv = io.dv + t * C + c0;
        const A *s_a = s, *s_b = s + block, *s_p = s + 2 * block, *sn_a = sn, *sn_b = sn + block;
        #pragma omp simd
        for (int64_t c = 0; c < cw; ++c) {
          const A sa = s_a[c], sb = s_b[c], sp = s_p[c], kk = k[c], vv = v[c];
          const A d1 = sp - (u[c] + kk);
          const A e = exp_nonpos(-std::fabs(d1));
          const A e1 = d1 >= 0 ? A(1) : e, e2 = d1 >= 0 ? e : A(1);
          const A den = e1 * sb + e2;
          const A y = (e1 * sa + e2 * vv) / den;
          const A g = dy[c] / den;
          const A d2 = sp + w[c] - kk;
          const bool keep = d2 >= 0;
          const A f = exp_nonpos(-std::fabs(d2));
          const A f1 = keep ? A(1) : f, f2 = keep ? f : A(1);
          const A gmax = gp[c] - ga[c] * sn_a[c] - gb[c] * sn_b[c];
          const A dpw = f1 * (ga[c] * sa + gb[c] * sb) + (keep ? gmax : A(0));
          const A dcur = e2 * g * (vv - y);
          dk[c] = dcur + f2 * (ga[c] * vv + gb[c]) + (keep ? A(0) : gmax);
          dv[c] = g * e2 + ga[c] * f2;
          du[c] += dcur;
          dw[c] += dpw;
          const A na = g * e1 + ga[c] * f1;
          const A nbv = -g * y * e1 + gb[c] * f1;
          gp[c] = e1 * g * (sa - y * sb) + dpw;
          ga[c] = na;
          gb[c] = nbv;
        }
      }
    }
    store_grads(io, C, n, c0, cw, dw, du, ga, gb, gp);
  });
}

}  // namespace lrnn::ops::detail::LRNN_SIMD_NS
