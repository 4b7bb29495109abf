// ops::linear for CUDA tensors: y = x W^T + b through cuBLAS (f32 / bf16 / f16, f32 accumulation);
// the bias is written into y first and the GEMM accumulates onto it (one rounding).
#include "backend/cuda/cuda_backend.h"
#include "ops/dense/dense.h"

namespace lrnn::ops::detail {

result<tensor> linear_cuda(const tensor& x_in, const tensor& w, const tensor& b) {
  if (!x_in.defined() || !w.defined())
    return make_error(status_code::invalid_argument, "linear: x and weight must be defined");
  const device dev = x_in.dev();
  auto check = [&](const tensor& t, const char* what) -> status {
    if (t.dev() != dev)
      return make_error(status_code::invalid_argument, "linear: {} is {}, expected a tensor on {} like x", what,
                        t.describe(), dev.to_string());
    if (t.type() != x_in.type())
      return make_error(status_code::invalid_argument, "linear: {} is {}, expected dtype {} like x", what, t.describe(),
                        dtype_name(x_in.type()));
    return {};
  };
  if (x_in.type() != dtype::f32 && x_in.type() != dtype::bf16 && x_in.type() != dtype::f16)
    return make_error(status_code::unsupported, "linear on CUDA: x is {}, expected f32, bf16 or f16", x_in.describe());
  LRNN_TRY(check(w, "weight"));
  if (b.defined()) LRNN_TRY(check(b, "bias"));
  if (w.dim() != 2 || x_in.dim() < 1 || x_in.size(-1) != w.size(1))
    return make_error(status_code::invalid_argument, "linear: x {} and weight {} do not match (weight is [out, in])",
                      x_in.describe(), w.describe());
  if (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0)))
    return make_error(status_code::invalid_argument, "linear: bias {} for weight {}", b.describe(), w.describe());
  if (!x_in.is_contiguous() || !w.is_contiguous() || (b.defined() && !b.is_contiguous()))
    return make_error(status_code::unsupported, "linear on CUDA: x, weight and bias must be contiguous (x {}, weight {})",
                      x_in.describe(), w.describe());
  const int64_t in = w.size(1), out = w.size(0), M = in ? x_in.numel() / in : x_in.numel();
  shape_t shape = x_in.shape();
  shape.back() = out;
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(shape, x_in.type(), dev));
  if (M == 0 || out == 0) return y;
  if (b.defined()) LRNN_TRY(cuda::broadcast_rows(x_in.type(), dev.index, y.raw_data(), b.raw_data(), M, out));
  LRNN_TRY(cuda::gemm_xwt(x_in.type(), dev.index, x_in.raw_data(), w.raw_data(), y.raw_data(), M, out, in, b.defined()));
  return y;
}

}  // namespace lrnn::ops::detail
