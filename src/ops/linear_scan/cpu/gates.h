// linear_scan on CPU: the pointwise part shared by the recurrent and scan forms — the
// coefficients (a_t, b_t) of h_t = a_t h_{t-1} + b_t for one token and a block of channels, and
// the chain rule from (dh_t, h_{t-1}) back to the inputs (README.md, "Backward"). Always inlined, so
// that the AVX2 builds of the forms (backend/cpu/simd.h) compile them for AVX2 too.
#pragma once

#include "backend/cpu/vec_math.h"
#include "ops/common/seq_util.h"
#include "ops/linear_scan/linear_scan.h"

#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail {

template <typename A>
[[gnu::always_inline]] inline void scan_coefficients(const linear_scan_problem<A>& p, int64_t t, int64_t c0, int64_t cw, A* a, A* b) {
  const int64_t o = t * p.C + c0;
  const bool reset = p.reset && p.reset[t];
  const A* x = p.x + o;
  if (p.gate == scan_gate::log_a) {
    const A* la = p.log_a + o;
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
      a[c] = reset ? A(0) : cpu::vmath::exp_nonpos(std::min(la[c], A(0)));
      b[c] = x[c];
    }
    return;
  }
  const A* gx = p.gate_x + o;
  const A* ga = p.gate_a + o;
  const A* ncs = p.neg_c_softplus + c0;
  if (reset) {
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
      a[c] = A(0);
      b[c] = x[c] * cpu::vmath::sigmoid(gx[c]);
    }
    return;
  }
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
    const A la = ncs[c] * cpu::vmath::sigmoid(ga[c]);
    a[c] = cpu::vmath::exp_nonpos(la);
    b[c] = x[c] * cpu::vmath::sigmoid(gx[c]) * std::sqrt(-cpu::vmath::expm1_nonpos(A(2) * la));
  }
}

// dh: gradient of h_t (from y_t and from h_{t+1}); hprev: h_{t-1}. Writes the input gradients of
// token t and adds to dncs the gradient of -c * softplus(a_param).
template <typename A>
[[gnu::always_inline]] inline void scan_input_grads(const linear_scan_problem<A>& p, int64_t t, int64_t c0, int64_t cw, const A* dh,
                             const A* hprev, const linear_scan_backward_io<A>& io, A* dncs) {
  const int64_t o = t * p.C + c0;
  const bool reset = p.reset && p.reset[t];
  const A* x = p.x + o;
  if (p.gate == scan_gate::log_a) {
    const A* la = p.log_a + o;
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
      io.dx[o + c] = dh[c];
      io.dlog_a[o + c] = reset || la[c] > A(0) ? A(0) : dh[c] * hprev[c] * cpu::vmath::exp_nonpos(la[c]);
    }
    return;
  }
  const A* gx = p.gate_x + o;
  const A* ga = p.gate_a + o;
  const A* ncs = p.neg_c_softplus + c0;
  if (reset) {
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
      const A i = cpu::vmath::sigmoid(gx[c]);
      io.dx[o + c] = dh[c] * i;
      io.dgate_x[o + c] = dh[c] * x[c] * i * (A(1) - i);
      io.dgate_a[o + c] = A(0);
    }
    return;
  }
  #pragma omp simd
  for (int64_t c = 0; c < cw; ++c) {
    const A i = cpu::vmath::sigmoid(gx[c]);
    const A r = cpu::vmath::sigmoid(ga[c]);
    const A la = ncs[c] * r;
    const A a = cpu::vmath::exp_nonpos(la);
    const A z = -cpu::vmath::expm1_nonpos(A(2) * la);  // 1 - a^2
    const A m = std::sqrt(z);
    io.dx[o + c] = dh[c] * i * m;
    io.dgate_x[o + c] = dh[c] * x[c] * m * i * (A(1) - i);
    const A dz = dh[c] * x[c] * i / std::sqrt(std::max(A(4) * z, p.min_4z));  // bounded sqrt derivative
    const A dla = dh[c] * hprev[c] * a - A(2) * dz * a * a;
    io.dgate_a[o + c] = dla * ncs[c] * r * (A(1) - r);
    dncs[c] += dla * r;
  }
}

}  // namespace lrnn::ops::detail
