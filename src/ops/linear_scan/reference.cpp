// linear_scan reference: plain loops per sequence and channel, written like recurrentgemma's
// RGLRU.forward + rnn_scan (torch/layers.py) with 1 - a^2 as -expm1(2 log a), and the backward
// step by step over stored states (README.md). Double for f64 inputs, float otherwise.
#include "ops/linear_scan/linear_scan.h"

#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail {

namespace {
template <typename A>
A sigmoid_ref(A x) {
  return A(1) / (A(1) + std::exp(-x));
}

// Coefficients of h_t = a h_{t-1} + b for token t, channel c, and what the backward needs.
template <typename A>
struct point {
  A a = 0, b = 0;     // recurrence coefficient (0 at a reset) and input
  A i = 1, r = 0;     // rg_lru gates
  A mult = 1, z = 0;  // sqrt factor and its argument 1 - a^2
  bool reset = false;
};

template <typename A>
point<A> coefficients(const linear_scan_problem<A>& p, int64_t t, int64_t c) {
  point<A> q;
  const int64_t o = t * p.C + c;
  q.reset = p.reset && p.reset[t];
  if (p.gate == scan_gate::log_a) {
    q.a = q.reset ? A(0) : std::exp(std::min(p.log_a[o], A(0)));
    q.b = p.x[o];
    return q;
  }
  q.i = sigmoid_ref(p.gate_x[o]);
  q.r = sigmoid_ref(p.gate_a[o]);
  const A log_a = p.neg_c_softplus[c] * q.r;
  q.z = -std::expm1(A(2) * log_a);
  q.mult = q.reset ? A(1) : std::sqrt(q.z);
  q.a = q.reset ? A(0) : std::exp(log_a);
  q.b = p.x[o] * q.i * q.mult;
  return q;
}
}  // namespace

template <typename A>
void linear_scan_forward_reference(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io) {
  const int64_t C = p.C;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      A h = p.h0 ? p.h0[n * C + c] : A(0);
      for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
        const point<A> q = coefficients(p, t, c);
        h = q.a * h + q.b;
        io.y[t * C + c] = h;
      }
      if (io.h_final) io.h_final[n * C + c] = h;
    }
}

template <typename A>
void linear_scan_backward_reference(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io) {
  const int64_t C = p.C;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t t0 = p.offsets[n], t1 = p.offsets[n + 1];
      std::vector<A> h(t1 - t0 + 1);  // h[i] = state before token t0 + i
      h[0] = p.h0 ? p.h0[n * C + c] : A(0);
      for (int64_t t = t0; t < t1; ++t) {
        const point<A> q = coefficients(p, t, c);
        h[t - t0 + 1] = q.a * h[t - t0] + q.b;
      }
      A dh = io.dh_final ? io.dh_final[n * C + c] : A(0);  // gradient of h_t from later tokens
      A dncs = 0;
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const int64_t o = t * C + c;
        const point<A> q = coefficients(p, t, c);
        dh += io.dy[o];
        const A hprev = h[t - t0];
        if (p.gate == scan_gate::log_a) {
          io.dx[o] = dh;
          io.dlog_a[o] = q.reset || p.log_a[o] > A(0) ? A(0) : dh * hprev * q.a;
        } else {
          io.dx[o] = dh * q.i * q.mult;
          io.dgate_x[o] = dh * p.x[o] * q.mult * q.i * (A(1) - q.i);
          if (q.reset) {
            io.dgate_a[o] = A(0);
          } else {
            // d sqrt(z) / dz bounded as in recurrentgemma's SqrtBoundDerivative.
            const A dz = dh * p.x[o] * q.i / std::sqrt(std::max(A(4) * q.z, p.min_4z));
            const A dlog_a = dh * hprev * q.a - A(2) * dz * q.a * q.a;
            io.dgate_a[o] = dlog_a * p.neg_c_softplus[c] * q.r * (A(1) - q.r);
            dncs += dlog_a * q.r;
          }
        }
        dh *= q.a;
      }
      if (io.dneg_c_softplus) io.dneg_c_softplus[n * C + c] = dncs;
      if (io.dh0) io.dh0[n * C + c] = dh;
    }
}

template void linear_scan_forward_reference<float>(const linear_scan_problem<float>&, const linear_scan_forward_io<float>&);
template void linear_scan_forward_reference<double>(const linear_scan_problem<double>&, const linear_scan_forward_io<double>&);
template void linear_scan_backward_reference<float>(const linear_scan_problem<float>&, const linear_scan_backward_io<float>&);
template void linear_scan_backward_reference<double>(const linear_scan_problem<double>&, const linear_scan_backward_io<double>&);

}  // namespace lrnn::ops::detail
