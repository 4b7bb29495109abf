// Dense CPU building blocks (see dense.h): SGEMM-backed linear, lookups, norms, activations.
#include "ops/dense/dense.h"

#include "lrnn/threads.h"
#include "ops/dense/gemv.h"

#include <cblas.h>

#include <cmath>

namespace lrnn::ops {

namespace {
status require_f32(const tensor& t, const char* what) {
  if (!t.defined()) return make_error(status_code::invalid_argument, "{}: tensor is undefined", what);
  if (t.type() != dtype::f32 || !t.dev().is_cpu())
    return make_error(status_code::invalid_argument, "{}: expected a CPU f32 tensor, got {}", what, t.describe());
  return {};
}
}  // namespace

namespace detail {
result<tensor> linear_cuda(const tensor& x, const tensor& w, const tensor& b);  // linear_cuda.cpp
}

result<tensor> linear(const tensor& x_in, const tensor& w, const tensor& b) {
  if (x_in.defined() && x_in.dev().is_cuda()) return detail::linear_cuda(x_in, w, b);
  LRNN_TRY(require_f32(x_in, "linear x"));
  LRNN_TRY(require_f32(w, "linear weight"));
  if (w.dim() != 2 || x_in.dim() < 1 || x_in.size(-1) != w.size(1))
    return make_error(status_code::invalid_argument, "linear: x {} and weight {} do not match (weight is [out, in])",
                      x_in.describe(), w.describe());
  if (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0)))
    return make_error(status_code::invalid_argument, "linear: bias {} for weight {}", b.describe(), w.describe());
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor wc, w.contiguous());
  const int64_t in = w.size(1), out = w.size(0), M = in ? x.numel() / in : 0;
  shape_t shape = x.shape();
  shape.back() = out;
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(shape, dtype::f32));
  float* yp = y.data<float>();
  if (M > 0 && out > 0) {
    if (b.defined()) {
      const float* bp = b.data<float>();
      for (int64_t m = 0; m < M; ++m) std::memcpy(yp + m * out, bp, out * sizeof(float));
    }
    if (in == 0) {
      if (!b.defined()) std::memset(yp, 0, y.nbytes());
    } else if (M <= detail::gemv_max_rows) {
      detail::gemv(x.data<float>(), M, wc.data<float>(), out, in, yp, b.defined());
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(out), static_cast<int>(in),
                  1.0f, x.data<float>(), static_cast<int>(in), wc.data<float>(), static_cast<int>(in), b.defined() ? 1.0f : 0.0f,
                  yp, static_cast<int>(out));
    }
  }
  return y;
}

result<tensor> embedding(const tensor& ids_in, const tensor& table) {
  LRNN_TRY(require_f32(table, "embedding table"));
  if (table.dim() != 2) return make_error(status_code::invalid_argument, "embedding: table {} is not 2-D", table.describe());
  if (ids_in.type() != dtype::i64 && ids_in.type() != dtype::i32)
    return make_error(status_code::invalid_argument, "embedding: ids must be int32/int64, got {}", ids_in.describe());
  LRNN_ASSIGN_OR_RETURN(tensor ids, ids_in.to(dtype::i64));
  LRNN_ASSIGN_OR_RETURN(ids, ids.contiguous());
  const int64_t V = table.size(0), D = table.size(1);
  shape_t shape = ids.shape();
  shape.push_back(D);
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(shape, dtype::f32));
  const int64_t* ip = ids.data<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (ip[i] < 0 || ip[i] >= V)
      return make_error(status_code::invalid_argument, "token id {} is outside the vocabulary [0, {})", ip[i], V);
    std::memcpy(out.data<float>() + i * D, table.data<float>() + ip[i] * D, D * sizeof(float));
  }
  return out;
}

result<tensor> layer_norm(const tensor& x_in, const tensor& w, const tensor& b, double eps) {
  return group_norm(x_in, 1, w, b, eps);
}

result<tensor> group_norm(const tensor& x_in, int64_t groups, const tensor& w, const tensor& b, double eps) {
  LRNN_TRY(require_f32(x_in, "group_norm x"));
  const int64_t C = x_in.size(-1);
  if (groups <= 0 || C % groups != 0)
    return make_error(status_code::invalid_argument, "group_norm: {} channels in {} groups", C, groups);
  if ((w.defined() && w.numel() != C) || (b.defined() && b.numel() != C))
    return make_error(status_code::invalid_argument, "group_norm: affine parameters must have {} elements", C);
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), dtype::f32));
  const int64_t D = C / groups, rows = C ? x.numel() / C : 0;
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float* wp = w.defined() ? w.data<float>() : nullptr;
  const float* bp = b.defined() ? b.data<float>() : nullptr;
  parallel_for(rows, [&](int64_t r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* xr = xp + r * C + g * D;
      float* yr = yp + r * C + g * D;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) mean += xr[i];
      mean /= static_cast<double>(D);
      for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= static_cast<double>(D);
      const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
      for (int64_t i = 0; i < D; ++i) {
        const int64_t c = g * D + i;
        float v = (xr[i] - static_cast<float>(mean)) * inv;
        if (wp) v *= wp[c];
        if (bp) v += bp[c];
        yr[i] = v;
      }
    }
  });
  return y;
}

result<tensor> group_rms_norm(const tensor& x_in, int64_t groups, const tensor& w, double eps) {
  LRNN_TRY(require_f32(x_in, "group_rms_norm x"));
  const int64_t C = x_in.size(-1);
  if (groups <= 0 || C % groups != 0)
    return make_error(status_code::invalid_argument, "group_rms_norm: {} channels in {} groups", C, groups);
  const int64_t D = C / groups;
  if (w.defined() && w.numel() != D && w.numel() != C)
    return make_error(status_code::invalid_argument, "group_rms_norm: weight has {} elements, expected {} or {}", w.numel(), D, C);
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), dtype::f32));
  const int64_t rows = C ? x.numel() / C : 0;
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float* wp = w.defined() ? w.data<float>() : nullptr;
  const bool shared = w.defined() && w.numel() == D;
  for (int64_t r = 0; r < rows * groups; ++r) {
    const float* xr = xp + r * D;
    float* yr = yp + r * D;
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(D) + eps));
    const int64_t g = r % groups;
    for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * inv * (wp ? wp[shared ? i : g * D + i] : 1.0f);
  }
  return y;
}

void apply_activation(tensor& x, activation a) {
  LRNN_ASSERT(x.type() == dtype::f32 && x.is_contiguous(), "apply_activation on {}", x.describe());
  float* p = x.data<float>();
  const int64_t n = x.numel();
  switch (a) {
    case activation::identity: break;
    case activation::silu: for (int64_t i = 0; i < n; ++i) p[i] = p[i] / (1.0f + std::exp(-p[i])); break;
    case activation::sigmoid: for (int64_t i = 0; i < n; ++i) p[i] = 1.0f / (1.0f + std::exp(-p[i])); break;
    case activation::tanh: for (int64_t i = 0; i < n; ++i) p[i] = std::tanh(p[i]); break;
    case activation::relu: for (int64_t i = 0; i < n; ++i) p[i] = p[i] > 0 ? p[i] : 0.0f; break;
    case activation::relu_squared:
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] > 0 ? p[i] * p[i] : 0.0f;
      break;
    case activation::gelu_tanh:
      for (int64_t i = 0; i < n; ++i) {
        const float v = p[i];
        p[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      }
      break;
    case activation::gelu_erf:
      for (int64_t i = 0; i < n; ++i) p[i] = 0.5f * p[i] * (1.0f + std::erf(p[i] * 0.7071067811865476f));
      break;
    case activation::softplus:
      for (int64_t i = 0; i < n; ++i) p[i] = p[i] > 20.0f ? p[i] : std::log1p(std::exp(p[i]));
      break;
    case activation::logsigmoid:
      for (int64_t i = 0; i < n; ++i) p[i] = -(p[i] < -20.0f ? -p[i] : std::log1p(std::exp(-p[i])));
      break;
    case activation::exp: for (int64_t i = 0; i < n; ++i) p[i] = std::exp(p[i]); break;
  }
}

status mul_inplace(tensor& a, const tensor& b) {
  if (a.shape() != b.shape() || a.type() != dtype::f32 || b.type() != dtype::f32 || !a.is_contiguous())
    return make_error(status_code::invalid_argument, "mul: {} and {}", a.describe(), b.describe());
  LRNN_ASSIGN_OR_RETURN(tensor bc, b.contiguous());
  float* p = a.data<float>();
  const float* q = bc.data<float>();
  for (int64_t i = 0; i < a.numel(); ++i) p[i] *= q[i];
  return {};
}

status add_inplace(tensor& a, const tensor& b, float s) {
  if (a.shape() != b.shape() || a.type() != dtype::f32 || b.type() != dtype::f32 || !a.is_contiguous())
    return make_error(status_code::invalid_argument, "add: {} and {}", a.describe(), b.describe());
  LRNN_ASSIGN_OR_RETURN(tensor bc, b.contiguous());
  float* p = a.data<float>();
  const float* q = bc.data<float>();
  for (int64_t i = 0; i < a.numel(); ++i) p[i] += s * q[i];
  return {};
}

void scale_inplace(tensor& x, float s) {
  LRNN_ASSERT(x.type() == dtype::f32 && x.is_contiguous(), "scale_inplace on {}", x.describe());
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] *= s;
}

void softcap_inplace(tensor& x, float cap) {
  LRNN_ASSERT(x.type() == dtype::f32 && x.is_contiguous(), "softcap_inplace on {}", x.describe());
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = cap * std::tanh(p[i] / cap);
}

}  // namespace lrnn::ops

namespace lrnn::ops {

result<tensor> token_shift(const tensor& x, tensor& last) {
  LRNN_TRY(require_f32(x, "token_shift x"));
  LRNN_TRY(require_f32(last, "token_shift state"));
  if (x.dim() != 3 || last.shape() != shape_t{x.size(0), x.size(2)} || !x.is_contiguous() || !last.is_contiguous())
    return make_error(status_code::invalid_argument, "token_shift: x {} with state {}, expected [B, T, D] and [B, D]",
                      x.describe(), last.describe());
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  LRNN_ASSIGN_OR_RETURN(tensor delta, tensor::empty({B, T, D}, dtype::f32));  // [B, T, D]
  LRNN_ASSIGN_OR_RETURN(tensor next, tensor::empty({B, D}, dtype::f32));      // [B, D]
  const float* xp = x.data<float>();
  const float* lp = last.data<float>();
  float* dp = delta.data<float>();
  float* np = next.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const float* cur = xp + (b * T + t) * D;
      const float* prev = t == 0 ? lp + b * D : cur - D;
      float* d = dp + (b * T + t) * D;
      for (int64_t i = 0; i < D; ++i) d[i] = prev[i] - cur[i];
    }
    if (T > 0) std::memcpy(np + b * D, xp + (b * T + T - 1) * D, static_cast<size_t>(D) * sizeof(float));
    else std::memcpy(np + b * D, lp + b * D, static_cast<size_t>(D) * sizeof(float));
  }
  last = next;
  return delta;
}

result<tensor> shift_lerp(const tensor& x, const tensor& delta, const tensor& mu) {
  if (x.shape() != delta.shape() || mu.numel() != x.size(-1) || !x.is_contiguous() || !delta.is_contiguous())
    return make_error(status_code::invalid_argument, "shift_lerp: x {}, delta {}, mu {}", x.describe(), delta.describe(),
                      mu.describe());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), dtype::f32));  // [B, T, D]
  const int64_t D = x.size(-1), n = x.numel();
  const float *xp = x.data<float>(), *dp = delta.data<float>(), *mp = mu.data<float>();
  float* yp = y.data<float>();
  for (int64_t i = 0; i < n; ++i) yp[i] = xp[i] + dp[i] * mp[i % D];
  return y;
}

}  // namespace lrnn::ops
