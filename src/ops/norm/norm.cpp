// RMSNorm: validation and dispatch between the reference and the CPU form.
#include "ops/norm/norm.h"

namespace lrnn::ops {

static status validate(const tensor& x, const tensor& weight, const tensor* dy) {
  if (!x.defined() || x.dim() < 1) return make_error(status_code::invalid_argument, "rms_norm: x must have at least one dimension");
  if (!is_floating(x.type())) return make_error(status_code::invalid_argument, "rms_norm: x has dtype {}, expected a float dtype", dtype_name(x.type()));
  if (!x.dev().is_cpu()) return make_error(status_code::unsupported, "rms_norm: {} is not supported yet (CPU only)", x.dev().to_string());
  if (weight.defined() && (weight.dim() != 1 || weight.size(0) != x.size(-1)))
    return make_error(status_code::invalid_argument, "rms_norm: weight is {}, expected [{}] (last dimension of x {})",
                      weight.describe(), x.size(-1), x.describe());
  if (dy && dy->shape() != x.shape())
    return make_error(status_code::invalid_argument, "rms_norm: dy is {}, expected the shape of x {}", dy->describe(), x.describe());
  return {};
}

result<tensor> rms_norm_forward(const rms_norm_spec& spec, const tensor& x, const tensor& weight, norm_form form) {
  LRNN_TRY(validate(x, weight, nullptr));
  switch (form) {
    case norm_form::reference: return detail::rms_norm_forward_reference(spec, x, weight);
    case norm_form::cpu: return detail::rms_norm_forward_cpu(spec, x, weight);
  }
  return make_error(status_code::internal, "rms_norm: unknown form");
}

result<rms_norm_grads> rms_norm_backward(const rms_norm_spec& spec, const tensor& x, const tensor& weight,
                                         const tensor& dy, norm_form form) {
  LRNN_TRY(validate(x, weight, &dy));
  switch (form) {
    case norm_form::reference: return detail::rms_norm_backward_reference(spec, x, weight, dy);
    case norm_form::cpu: return detail::rms_norm_backward_cpu(spec, x, weight, dy);
  }
  return make_error(status_code::internal, "rms_norm: unknown form");
}

}  // namespace lrnn::ops
