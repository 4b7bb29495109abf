// RMSNorm reference: plain loops. Arithmetic in double for f64 inputs, float otherwise.
#include "ops/norm/norm.h"

#include <cmath>

namespace lrnn::ops::detail {

namespace {
template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
std::vector<acc_t<T>> weights_of(const tensor& weight, int64_t D, double offset) {
  std::vector<acc_t<T>> w(D, static_cast<acc_t<T>>(1.0 + offset));
  if (weight.defined())
    for (int64_t i = 0; i < D; ++i) w[i] = static_cast<acc_t<T>>(weight.at({i}) + offset);
  return w;
}
}  // namespace

result<tensor> rms_norm_forward_reference(const rms_norm_spec& spec, const tensor& x_in, const tensor& weight) {
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), x.type()));
  const int64_t D = x.size(-1), rows = D ? x.numel() / D : 0;
  visit_dtype(x.type(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>) {
      using A = acc_t<T>;
      const auto w = weights_of<T>(weight, D, spec.weight_offset);
      const T* xp = x.data<T>();
      T* yp = y.data<T>();
      for (int64_t r = 0; r < rows; ++r) {
        A ss = 0;
        for (int64_t i = 0; i < D; ++i) ss += static_cast<A>(to_double(xp[r * D + i])) * static_cast<A>(to_double(xp[r * D + i]));
        const A inv = A(1) / std::sqrt(ss / static_cast<A>(D) + static_cast<A>(spec.eps));
        for (int64_t i = 0; i < D; ++i) yp[r * D + i] = from_double<T>(static_cast<A>(to_double(xp[r * D + i])) * inv * w[i]);
      }
    }
  });
  return y;
}

result<rms_norm_grads> rms_norm_backward_reference(const rms_norm_spec& spec, const tensor& x_in, const tensor& weight,
                                                   const tensor& dy_in) {
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor dy, dy_in.to(x.type()));
  LRNN_ASSIGN_OR_RETURN(dy, dy.contiguous());
  const int64_t D = x.size(-1), rows = D ? x.numel() / D : 0;
  const dtype wt = x.type() == dtype::f64 ? dtype::f64 : dtype::f32;
  LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::empty(x.shape(), x.type()));
  LRNN_ASSIGN_OR_RETURN(tensor dw, tensor::zeros({D}, wt));
  visit_dtype(x.type(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>) {
      using A = acc_t<T>;
      const auto w = weights_of<T>(weight, D, spec.weight_offset);
      const T* xp = x.data<T>();
      const T* gp = dy.data<T>();
      T* dxp = dx.data<T>();
      A* dwp = dw.data<A>();
      for (int64_t r = 0; r < rows; ++r) {
        A ss = 0, gx = 0;
        for (int64_t i = 0; i < D; ++i) {
          const A xi = static_cast<A>(to_double(xp[r * D + i]));
          ss += xi * xi;
          gx += static_cast<A>(to_double(gp[r * D + i])) * w[i] * xi;
        }
        const A inv = A(1) / std::sqrt(ss / static_cast<A>(D) + static_cast<A>(spec.eps));
        for (int64_t i = 0; i < D; ++i) {
          const A xi = static_cast<A>(to_double(xp[r * D + i]));
          const A gi = static_cast<A>(to_double(gp[r * D + i]));
          dxp[r * D + i] = from_double<T>(inv * gi * w[i] - xi * inv * inv * inv * gx / static_cast<A>(D));
          dwp[i] += gi * xi * inv;
        }
      }
    }
  });
  return rms_norm_grads{dx, dw};
}

}  // namespace lrnn::ops::detail
