// Helpers shared by the channel-wise sequence ops (wkv4, linear_scan, conv1d): shape checks
// whose messages name the tensor and the expected shape, cu_seqlens parsing, typed contiguous
// buffers, and a vectorisable exp for non-positive arguments. The ops' sources are compiled with
// -fno-math-errno -fno-trapping-math (CMakeLists.txt), which change no result but let the channel
// loops with selects and sqrt vectorise.
#pragma once

#include "lrnn/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lrnn::ops::seq_util {

// `t` must be a defined CPU float tensor of shape `want`; `why` says where the shape comes from.
status expect_float(const char* op, const char* name, const tensor& t, const shape_t& want, const char* why);

// Token offsets [N + 1] of the sequences: from cu_seqlens (int32 [N + 1], B == 1, starting at 0,
// non-decreasing, ending at T) or B sequences of T tokens.
result<std::vector<int64_t>> sequence_offsets(const char* op, const tensor& cu_seqlens, int64_t B, int64_t T);

// Contiguous A-typed view of a float tensor: its own memory when it already is one, else a
// converted copy in `buf`. nullptr for an undefined tensor.
template <typename A>
const A* load_as(const tensor& t, std::vector<A>& buf) {
  if (!t.defined()) return nullptr;
  if (t.type() == dtype_of<A>::value && t.is_contiguous()) return t.data<A>();
  const tensor c = t.contiguous().value();
  buf.resize(static_cast<size_t>(c.numel()));
  visit_dtype(c.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(c.raw_data());
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<A>(to_double(p[i]));
  });
  return buf.data();
}

// A fresh tensor of dtype t holding `data` (converted, rounded to nearest).
template <typename A>
result<tensor> tensor_from(const A* data, const shape_t& shape, dtype t) {
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(shape, t));
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(out.raw_data());
    const int64_t n = out.numel();
    if constexpr (std::is_same_v<T, A>) {
      if (n > 0) std::memcpy(p, data, static_cast<size_t>(n) * sizeof(A));
    } else {
      for (int64_t i = 0; i < n; ++i) p[i] = from_double<T>(static_cast<double>(data[i]));
    }
  });
  return out;
}

// Channels per task for ops that run (sequence, channel block) tasks: the largest power-of-two
// block up to max_block (contiguous rows, fewer pages touched per token) that still gives every
// thread two tasks; at least 16.
int64_t channel_block(int64_t N, int64_t C, int64_t max_block);

// An output of a given shape and dtype that kernels write in type A: straight into the tensor
// when its dtype is A, else into an A buffer that finish() converts.
template <typename A>
struct out_buffer {
  tensor direct;
  std::vector<A> buf;
  shape_t shape;
  dtype type = dtype::f32;
  A* ptr = nullptr;
  status init(const shape_t& s, dtype t) {
    shape = s, type = t;
    if (t == dtype_of<A>::value) {
      LRNN_ASSIGN_OR_RETURN(direct, tensor::empty(s, t));
      ptr = direct.data<A>();
    } else {
      buf.resize(static_cast<size_t>(shape_numel(s)));
      ptr = buf.data();
    }
    return {};
  }
  result<tensor> finish() const {
    if (direct.defined()) return direct;
    return tensor_from(buf.data(), shape, type);
  }
};

// Accumulation type of an input dtype: double for f64, float otherwise.
inline dtype acc_dtype(dtype t) { return t == dtype::f64 ? dtype::f64 : dtype::f32; }

// exp(x) for x <= 0 without a libm call, so loops over channels vectorise: Cody-Waite
// reduction and Cephes' degree-6 polynomial (relative error about 2 ulp); 0 below -87.
inline float exp_nonpos(float x) {
  const float xc = std::max(x, -87.0f);
  const float y = xc * 1.44269504088896341f + 0.5f;
  const int32_t t = static_cast<int32_t>(y);
  const int32_t n = t - (static_cast<float>(t) > y);
  const float fn = static_cast<float>(n);
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

// expm1(x) for x <= 0, vectorisable: a degree-9 Taylor polynomial above -0.5 (no cancellation
// near 0), exp(x) - 1 below.
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

// sigmoid(x) = 1 / (1 + exp(-x)) through exp(-|x|), so it never overflows; vectorisable for float.
template <typename A>
inline A sigmoid(A x) {
  const A e = exp_nonpos(-std::fabs(x));
  return x >= 0 ? A(1) / (A(1) + e) : e / (A(1) + e);
}

}  // namespace lrnn::ops::seq_util
