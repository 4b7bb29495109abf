// wkv4 reference: the stable (a, b, p) recurrence exactly as HF transformers'
// rwkv_linear_attention_cpu writes it (four exps per step), one channel at a time, and its
// backward step by step over stored states (README.md, "Backward"). Double for f64 inputs,
// float otherwise.
#include "ops/wkv4/wkv4.h"

#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail {

template <typename A>
void wkv4_forward_reference(const wkv4_problem<A>& pr, const wkv4_forward_io<A>& io) {
  const int64_t C = pr.C;
  for (int64_t n = 0; n < pr.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      A a = pr.a0 ? pr.a0[n * C + c] : A(0);
      A b = pr.b0 ? pr.b0[n * C + c] : A(0);
      A p = pr.p0 ? pr.p0[n * C + c] : A(wkv4_p_start);
      const A w = pr.w[c], u = pr.u[c];
      for (int64_t t = pr.offsets[n]; t < pr.offsets[n + 1]; ++t) {
        const A k = pr.k[t * C + c], v = pr.v[t * C + c];
        const A q = std::max(p, u + k);
        const A e1 = std::exp(p - q), e2 = std::exp(u + k - q);
        io.y[t * C + c] = (e1 * a + e2 * v) / (e1 * b + e2);
        const A q2 = std::max(p + w, k);
        const A f1 = std::exp(p + w - q2), f2 = std::exp(k - q2);
        a = f1 * a + f2 * v;
        b = f1 * b + f2;
        p = q2;
      }
      if (io.a) {
        io.a[n * C + c] = a;
        io.b[n * C + c] = b;
        io.p[n * C + c] = p;
      }
    }
}

template <typename A>
void wkv4_backward_reference(const wkv4_problem<A>& pr, const wkv4_backward_io<A>& io) {
  const int64_t C = pr.C;
  for (int64_t n = 0; n < pr.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t t0 = pr.offsets[n], t1 = pr.offsets[n + 1];
      const A w = pr.w[c], u = pr.u[c];
      // States before each token.
      std::vector<A> as(t1 - t0 + 1), bs(t1 - t0 + 1), ps(t1 - t0 + 1);
      as[0] = pr.a0 ? pr.a0[n * C + c] : A(0);
      bs[0] = pr.b0 ? pr.b0[n * C + c] : A(0);
      ps[0] = pr.p0 ? pr.p0[n * C + c] : A(wkv4_p_start);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t i = t - t0;
        const A k = pr.k[t * C + c], v = pr.v[t * C + c];
        const A q2 = std::max(ps[i] + w, k);
        const A f1 = std::exp(ps[i] + w - q2), f2 = std::exp(k - q2);
        as[i + 1] = f1 * as[i] + f2 * v;
        bs[i + 1] = f1 * bs[i] + f2;
        ps[i + 1] = q2;
      }
      // Gradients of the scaled state after token t (ga, gb, gp), walking back.
      A ga = io.da ? io.da[n * C + c] : A(0);
      A gb = io.db ? io.db[n * C + c] : A(0);
      A gp = io.dp ? io.dp[n * C + c] : A(0);
      A dw = 0, du = 0;
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const int64_t i = t - t0;
        const A a = as[i], b = bs[i], p = ps[i];
        const A k = pr.k[t * C + c], v = pr.v[t * C + c], dy = io.dy[t * C + c];
        const A q = std::max(p, u + k);
        const A e1 = std::exp(p - q), e2 = std::exp(u + k - q);
        const A den = e1 * b + e2;
        const A y = (e1 * a + e2 * v) / den;
        const A g = dy / den;
        const bool keep = p + w >= k;  // the running max stays on the old state
        const A q2 = std::max(p + w, k);
        const A f1 = std::exp(p + w - q2), f2 = std::exp(k - q2);
        const A gmax = gp - ga * as[i + 1] - gb * bs[i + 1];  // into the max that made p_t
        const A dpw = f1 * (ga * a + gb * b) + (keep ? gmax : A(0));
        const A dcur = e2 * g * (v - y);  // d(u + k_t) through the output
        io.dk[t * C + c] = dcur + f2 * (ga * v + gb) + (keep ? A(0) : gmax);
        io.dv[t * C + c] = g * e2 + ga * f2;
        du += dcur;
        dw += dpw;
        const A na = g * e1 + ga * f1;
        const A nb = -g * y * e1 + gb * f1;
        gp = e1 * g * (a - y * b) + dpw;
        ga = na;
        gb = nb;
      }
      io.dw[n * C + c] = dw;
      io.du[n * C + c] = du;
      if (io.da0) {
        io.da0[n * C + c] = ga;
        io.db0[n * C + c] = gb;
        io.dp0[n * C + c] = gp;
      }
    }
}

template void wkv4_forward_reference<float>(const wkv4_problem<float>&, const wkv4_forward_io<float>&);
template void wkv4_forward_reference<double>(const wkv4_problem<double>&, const wkv4_forward_io<double>&);
template void wkv4_backward_reference<float>(const wkv4_problem<float>&, const wkv4_backward_io<float>&);
template void wkv4_backward_reference<double>(const wkv4_problem<double>&, const wkv4_backward_io<double>&);

}  // namespace lrnn::ops::detail
