// local_attn reference: for every query, softmax over all earlier key rows of its sequence with the
// window / document mask applied row by row, in double for f64 inputs and float otherwise (the
// softmax is fp32 for every low-precision dtype). Gradients by the softmax chain rule (README.md).
#include "ops/local_attn/common.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lrnn::ops::local_detail {

namespace {
// Probabilities of query (t, hq) over rows [first, self]: masked rows get 0.
template <typename A>
void probabilities(const problem<A>& p, int64_t t, int64_t hq, int64_t first, std::vector<A>& pr) {
  const int64_t D = p.D, hk = hq / (p.Hq / p.Hkv), last = p.self[t];
  pr.assign(last - first + 1, A(0));
  const A* q = &p.q[(t * p.Hq + hq) * D];
  A m = -std::numeric_limits<A>::infinity();
  for (int64_t r = first; r <= last; ++r) {
    if (r < p.lo[t]) continue;
    const A* k = &p.keys[(r * p.Hkv + hk) * D];
    A s = 0;
    for (int64_t d = 0; d < D; ++d) s += q[d] * k[d];
    pr[r - first] = s * p.scale;
    m = std::max(m, pr[r - first]);
  }
  A sum = 0;
  for (int64_t r = first; r <= last; ++r) {
    A& x = pr[r - first];
    x = r < p.lo[t] ? A(0) : std::exp(x - m);
    sum += x;
  }
  for (auto& x : pr) x /= sum;
}

int64_t seq_of(const std::vector<int64_t>& offsets, int64_t t) {
  int64_t n = 0;
  while (offsets[n + 1] <= t) ++n;
  return n;
}
}  // namespace

template <typename A>
void attend_reference(const problem<A>& p, A* o) {
  std::vector<A> pr;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t first = p.key0[seq_of(p.offsets, t)];
    for (int64_t hq = 0; hq < p.Hq; ++hq) {
      const int64_t hk = hq / (p.Hq / p.Hkv);
      probabilities(p, t, hq, first, pr);
      A* out = o + (t * p.Hq + hq) * p.Dv;
      for (int64_t j = 0; j < p.Dv; ++j) out[j] = 0;
      for (int64_t r = first; r <= p.self[t]; ++r)
        for (int64_t j = 0; j < p.Dv; ++j) out[j] += pr[r - first] * p.vals[(r * p.Hkv + hk) * p.Dv + j];
    }
  }
}

template <typename A>
void attend_reference_backward(const problem<A>& p, const A* d_o, A* dq, A* dkeys, A* dvals) {
  const int64_t D = p.D, Dv = p.Dv;
  std::vector<A> pr, dp;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t first = p.key0[seq_of(p.offsets, t)];
    for (int64_t hq = 0; hq < p.Hq; ++hq) {
      const int64_t hk = hq / (p.Hq / p.Hkv);
      probabilities(p, t, hq, first, pr);
      const A* g = d_o + (t * p.Hq + hq) * Dv;
      dp.assign(pr.size(), A(0));
      A dsum = 0;
      for (int64_t r = first; r <= p.self[t]; ++r) {
        A s = 0;
        for (int64_t j = 0; j < Dv; ++j) s += g[j] * p.vals[(r * p.Hkv + hk) * Dv + j];
        dp[r - first] = s;
        dsum += pr[r - first] * s;
      }
      const A* q = &p.q[(t * p.Hq + hq) * D];
      for (int64_t r = first; r <= p.self[t]; ++r) {
        const A pr_r = pr[r - first], ds = pr_r * (dp[r - first] - dsum) * p.scale;
        for (int64_t d = 0; d < D; ++d) {
          dq[(t * p.Hq + hq) * D + d] += ds * p.keys[(r * p.Hkv + hk) * D + d];
          dkeys[(r * p.Hkv + hk) * D + d] += ds * q[d];
        }
        for (int64_t j = 0; j < Dv; ++j) dvals[(r * p.Hkv + hk) * Dv + j] += pr_r * g[j];
      }
    }
  }
}

template void attend_reference<float>(const problem<float>&, float*);
template void attend_reference<double>(const problem<double>&, double*);
template void attend_reference_backward<float>(const problem<float>&, const float*, float*, float*, float*);
template void attend_reference_backward<double>(const problem<double>&, const double*, double*, double*, double*);

}  // namespace lrnn::ops::local_detail
