// Elementwise math for loops over channels that must vectorise in the baseline build (SSE2) and in
// the AVX2 builds of the channel-wise kernels (backend/cpu/simd.h) alike. exp_nonpos rounds
// x log2(e) to an integer with the 1.5 * 2^23 trick rather than a floor idiom: GCC 12 turns
// `t - (float(t) > y)` into lfloor, which does not vectorise once SSE4.1 is enabled, so the AVX2
// loops stayed scalar. Same Cody-Waite reduction and Cephes degree-6 polynomial as
// ops/common/seq_util.h (relative error about 2 ulp); 0 below -87.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace lrnn::cpu::vmath {

inline float exp_nonpos(float x) {
  const float xc = std::max(x, -87.0f);
  const float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest, |.| < 2^22
  const int32_t n = static_cast<int32_t>(fn);
  float r = xc - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float e = p * scale;
  return x < -87.0f ? 0.0f : e;
}
inline double exp_nonpos(double x) { return std::exp(x); }

// expm1(x) for x <= 0: a degree-9 Taylor polynomial above -0.5 (no cancellation near 0), exp(x) - 1 below.
inline float expm1_nonpos(float x) {
  float p = 1.0f + x * (1.0f / 9.0f);
  p = 1.0f + x * (1.0f / 8.0f) * p;
  p = 1.0f + x * (1.0f / 7.0f) * p;
  p = 1.0f + x * (1.0f / 6.0f) * p;
  p = 1.0f + x * (1.0f / 5.0f) * p;
  p = 1.0f + x * (1.0f / 4.0f) * p;
  p = 1.0f + x * (1.0f / 3.0f) * p;
  p = 1.0f + x * (1.0f / 2.0f) * p;
  return x > -0.5f ? x * p : exp_nonpos(x) - 1.0f;
}
inline double expm1_nonpos(double x) { return std::expm1(x); }

// sigmoid(x) = 1 / (1 + exp(-x)) through exp(-|x|), so it never overflows.
template <typename A>
inline A sigmoid(A x) {
  const A e = exp_nonpos(-std::fabs(x));
  return x >= 0 ? A(1) / (A(1) + e) : e / (A(1) + e);
}

}  // namespace lrnn::cpu::vmath
