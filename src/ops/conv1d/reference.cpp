// conv1d reference: plain loops per sequence, token and channel over the window
// concat(cache, x), with recurrentgemma's document mask; the backward scatters each window's
// gradient (README.md). Double for f64 inputs, float otherwise.
#include "ops/conv1d/conv1d.h"

#include <cmath>

namespace lrnn::ops::detail {

namespace {
template <typename A>
A input_at(const conv1d_problem<A>& p, int64_t n, int64_t j, int64_t c) {  // j < 0: the cache
  if (j >= 0) return p.x[(p.offsets[n] + j) * p.C + c];
  return p.cache ? p.cache[(n * (p.W - 1) + p.W - 1 + j) * p.C + c] : A(0);
}

template <typename A>
A pre_activation(const conv1d_problem<A>& p, int64_t n, int64_t tau, int64_t c) {
  A z = p.bias ? p.bias[c] : A(0);
  const int64_t start = p.last_start[p.offsets[n] + tau];
  for (int64_t s = 0; s < p.W; ++s)
    if (tau - s >= start) z += p.w[(p.W - 1 - s) * p.C + c] * input_at(p, n, tau - s, c);
  return z;
}

// The document start governing the cache after the sequence.
template <typename A>
int64_t end_start(const conv1d_problem<A>& p, int64_t n) {
  const int64_t L = p.offsets[n + 1] - p.offsets[n];
  return L > 0 ? p.last_start[p.offsets[n + 1] - 1] : -p.W;
}
}  // namespace

template <typename A>
void conv1d_forward_reference(const conv1d_problem<A>& p, const conv1d_forward_io<A>& io) {
  for (int64_t n = 0; n < p.N; ++n) {
    const int64_t L = p.offsets[n + 1] - p.offsets[n];
    for (int64_t tau = 0; tau < L; ++tau)
      for (int64_t c = 0; c < p.C; ++c) {
        const A z = pre_activation(p, n, tau, c);
        io.y[(p.offsets[n] + tau) * p.C + c] =
            p.activation == conv1d_activation::silu ? z / (A(1) + std::exp(-z)) : z;
      }
    if (!io.cache) continue;
    const int64_t start = end_start(p, n);
    for (int64_t i = 0; i < p.W - 1; ++i) {
      const int64_t j = L - (p.W - 1) + i;
      for (int64_t c = 0; c < p.C; ++c) io.cache[(n * (p.W - 1) + i) * p.C + c] = j >= start ? input_at(p, n, j, c) : A(0);
    }
  }
}

template <typename A>
void conv1d_backward_reference(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io) {
  const int64_t W = p.W, C = p.C;
  for (int64_t i = 0; i < W * C; ++i) io.dw[i] = A(0);
  if (io.dbias)
    for (int64_t c = 0; c < C; ++c) io.dbias[c] = A(0);
  for (int64_t n = 0; n < p.N; ++n) {
    const int64_t t0 = p.offsets[n], L = p.offsets[n + 1] - t0;
    // Gradient of every window input j in [-(W-1), L): index j + W - 1.
    std::vector<A> dxx(static_cast<size_t>((L + W - 1) * C), A(0));
    if (io.dcache_out) {
      const int64_t start = end_start(p, n);
      for (int64_t i = 0; i < W - 1; ++i) {
        const int64_t j = L - (W - 1) + i;
        if (j >= start)
          for (int64_t c = 0; c < C; ++c) dxx[(j + W - 1) * C + c] += io.dcache_out[(n * (W - 1) + i) * C + c];
      }
    }
    for (int64_t tau = 0; tau < L; ++tau)
      for (int64_t c = 0; c < C; ++c) {
        A dz = io.dy[(t0 + tau) * C + c];
        if (p.activation == conv1d_activation::silu) {
          const A z = pre_activation(p, n, tau, c);
          const A sg = A(1) / (A(1) + std::exp(-z));
          dz *= sg * (A(1) + z * (A(1) - sg));
        }
        if (io.dbias) io.dbias[c] += dz;
        const int64_t start = p.last_start[t0 + tau];
        for (int64_t s = 0; s < W; ++s)
          if (tau - s >= start) {
            io.dw[(W - 1 - s) * C + c] += dz * input_at(p, n, tau - s, c);
            dxx[(tau - s + W - 1) * C + c] += dz * p.w[(W - 1 - s) * C + c];
          }
      }
    for (int64_t tau = 0; tau < L; ++tau)
      for (int64_t c = 0; c < C; ++c) io.dx[(t0 + tau) * C + c] = dxx[(tau + W - 1) * C + c];
    if (io.dcache)
      for (int64_t i = 0; i < W - 1; ++i)
        for (int64_t c = 0; c < C; ++c) io.dcache[(n * (W - 1) + i) * C + c] = dxx[i * C + c];
  }
}

template void conv1d_forward_reference<float>(const conv1d_problem<float>&, const conv1d_forward_io<float>&);
template void conv1d_forward_reference<double>(const conv1d_problem<double>&, const conv1d_forward_io<double>&);
template void conv1d_backward_reference<float>(const conv1d_problem<float>&, const conv1d_backward_io<float>&);
template void conv1d_backward_reference<double>(const conv1d_problem<double>&, const conv1d_backward_io<double>&);

}  // namespace lrnn::ops::detail
