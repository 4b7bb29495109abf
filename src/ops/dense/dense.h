// Dense building blocks of the models on CPU, f32: linear layers through OpenBLAS SGEMM,
// embedding lookup, layer/group norms and elementwise activations. Forward only for now;
// their backward passes arrive with training (issue #8).
#pragma once

#include "lrnn/tensor.h"

namespace lrnn::ops {

// y = x W^T + b. x [..., in] f32, w [out, in] f32 contiguous, b [out] or undefined. CUDA tensors:
// x, w, b of one dtype (f32, bf16, f16), contiguous, on one device; cuBLAS with f32 accumulation.
result<tensor> linear(const tensor& x, const tensor& w, const tensor& b = tensor());
// ids int64/int32 [...] -> [..., D]; an id outside [0, V) is an invalid_argument naming it.
result<tensor> embedding(const tensor& ids, const tensor& table);
// LayerNorm over the last dimension (weight, bias [D] or undefined).
result<tensor> layer_norm(const tensor& x, const tensor& w, const tensor& b, double eps);
// GroupNorm as RWKV uses it: the last dimension (G * D) in G groups of D, each normalised to
// zero mean / unit variance, then the affine weight/bias over all G * D channels.
result<tensor> group_norm(const tensor& x, int64_t groups, const tensor& w, const tensor& b, double eps);
// RMSNorm per group of D (per-head norms of GLA, RetNet, ...): weight [D] shared by groups or [G*D].
result<tensor> group_rms_norm(const tensor& x, int64_t groups, const tensor& w, double eps);

enum class activation { identity, silu, sigmoid, tanh, relu, relu_squared, gelu_tanh, gelu_erf, softplus, logsigmoid, exp };
// In place on a contiguous f32 tensor.
void apply_activation(tensor& x, activation a);
// a *= b, a += b (same shape, contiguous f32); a += s * b.
status mul_inplace(tensor& a, const tensor& b);
status add_inplace(tensor& a, const tensor& b, float s = 1.0f);
// x * scale in place.
void scale_inplace(tensor& x, float s);
// Soft-capping: cap * tanh(x / cap), in place.
void softcap_inplace(tensor& x, float cap);

}  // namespace lrnn::ops

namespace lrnn::ops {

// RWKV's token shift: delta[b, t] = x[b, t - 1] - x[b, t] for x [B, T, D], with `last` [B, D]
// standing for x[b, -1]; `last` is replaced by x[:, T - 1].
result<tensor> token_shift(const tensor& x, tensor& last);
// RWKV's lerp toward the previous token: x + delta * mu, mu [D] broadcast over [B, T, D].
result<tensor> shift_lerp(const tensor& x, const tensor& delta, const tensor& mu);

}  // namespace lrnn::ops
