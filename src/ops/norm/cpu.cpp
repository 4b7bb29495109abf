// RMSNorm on CPU: rows in parallel, f32 arithmetic, inputs f32 / bf16 / f16 (f64 is
// computed in f32 too: the CPU form is the production path, not a reference).
#include "ops/norm/norm.h"

#include "lrnn/threads.h"

#include <cmath>

namespace lrnn::ops::detail {

namespace {
// Loads a row of any float dtype into f32.
void load_row(const tensor& t, int64_t row, int64_t D, float* out) {
  visit_dtype(t.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(t.raw_data()) + row * D;
    if constexpr (std::is_same_v<T, float>) std::memcpy(out, p, D * sizeof(float));
    else for (int64_t i = 0; i < D; ++i) out[i] = static_cast<float>(to_double(p[i]));
  });
}
void store_row(const tensor& t, int64_t row, int64_t D, const float* in) {
  visit_dtype(t.type(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data()) + row * D;
    if constexpr (std::is_same_v<T, float>) std::memcpy(p, in, D * sizeof(float));
    else for (int64_t i = 0; i < D; ++i) p[i] = from_double<T>(in[i]);
  });
}
std::vector<float> weights_f32(const tensor& weight, int64_t D, double offset) {
  std::vector<float> w(D, static_cast<float>(1.0 + offset));
  if (weight.defined()) {
    const auto v = weight.to_doubles();
    for (int64_t i = 0; i < D; ++i) w[i] = static_cast<float>(v[i] + offset);
  }
  return w;
}
}  // namespace

result<tensor> rms_norm_forward_cpu(const rms_norm_spec& spec, const tensor& x_in, const tensor& weight) {
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), x.type()));
  const int64_t D = x.size(-1), rows = D ? x.numel() / D : 0;
  const auto w = weights_f32(weight, D, spec.weight_offset);
  const float eps = static_cast<float>(spec.eps);
  constexpr int64_t rows_per_task = 16;
  parallel_for((rows + rows_per_task - 1) / rows_per_task, [&](int64_t task) {
    std::vector<float> buf(D);
    for (int64_t r = task * rows_per_task; r < std::min(rows, (task + 1) * rows_per_task); ++r) {
      load_row(x, r, D, buf.data());
      float ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += buf[i] * buf[i];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
      for (int64_t i = 0; i < D; ++i) buf[i] *= inv * w[i];
      store_row(y, r, D, buf.data());
    }
  });
  return y;
}

result<rms_norm_grads> rms_norm_backward_cpu(const rms_norm_spec& spec, const tensor& x_in, const tensor& weight,
                                             const tensor& dy_in) {
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor dy, dy_in.contiguous());
  const int64_t D = x.size(-1), rows = D ? x.numel() / D : 0;
  const auto w = weights_f32(weight, D, spec.weight_offset);
  const float eps = static_cast<float>(spec.eps);
  LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::empty(x.shape(), x.type()));
  constexpr int64_t rows_per_task = 16;
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  std::vector<float> dw_partial(static_cast<size_t>(tasks) * D, 0.0f);  // per task, summed below: deterministic
  parallel_for(tasks, [&](int64_t task) {
    std::vector<float> xb(D), gb(D);
    float* dwp = dw_partial.data() + task * D;
    for (int64_t r = task * rows_per_task; r < std::min(rows, (task + 1) * rows_per_task); ++r) {
      load_row(x, r, D, xb.data());
      load_row(dy, r, D, gb.data());
      float ss = 0, gx = 0;
      for (int64_t i = 0; i < D; ++i) {
        ss += xb[i] * xb[i];
        gx += gb[i] * w[i] * xb[i];
      }
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
      const float c = inv * inv * inv * gx / static_cast<float>(D);
      for (int64_t i = 0; i < D; ++i) {
        dwp[i] += gb[i] * xb[i] * inv;
        gb[i] = inv * gb[i] * w[i] - xb[i] * c;
      }
      store_row(dx, r, D, gb.data());
    }
  });
  LRNN_ASSIGN_OR_RETURN(tensor dw, tensor::zeros({D}, dtype::f32));
  float* dwo = dw.data<float>();
  for (int64_t t = 0; t < tasks; ++t)
    for (int64_t i = 0; i < D; ++i) dwo[i] += dw_partial[t * D + i];
  return rms_norm_grads{dx, dw};
}

}  // namespace lrnn::ops::detail
