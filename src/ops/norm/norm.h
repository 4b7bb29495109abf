// RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * (weight + offset).
// offset = 1 for Gemma-style "(1 + scale)" weights, 0 otherwise. Math and gradient in README.md.
#pragma once

#include "lrnn/tensor.h"

namespace lrnn::ops {

struct rms_norm_spec {
  double eps = 1e-6;
  double weight_offset = 0.0;
};

enum class norm_form { reference, cpu };

struct rms_norm_grads {
  tensor dx;       // like x
  tensor dweight;  // [D], f32 (f64 for f64 inputs)
};

// x: [..., D] any float dtype; weight: [D] (any float dtype, or undefined for no affine).
result<tensor> rms_norm_forward(const rms_norm_spec& spec, const tensor& x, const tensor& weight,
                                norm_form form = norm_form::cpu);
result<rms_norm_grads> rms_norm_backward(const rms_norm_spec& spec, const tensor& x, const tensor& weight,
                                         const tensor& dy, norm_form form = norm_form::cpu);

namespace detail {
result<tensor> rms_norm_forward_reference(const rms_norm_spec& spec, const tensor& x, const tensor& weight);
result<rms_norm_grads> rms_norm_backward_reference(const rms_norm_spec& spec, const tensor& x, const tensor& weight,
                                                   const tensor& dy);
result<tensor> rms_norm_forward_cpu(const rms_norm_spec& spec, const tensor& x, const tensor& weight);
result<rms_norm_grads> rms_norm_backward_cpu(const rms_norm_spec& spec, const tensor& x, const tensor& weight,
                                             const tensor& dy);
}  // namespace detail

}  // namespace lrnn::ops
