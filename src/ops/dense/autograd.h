// Differentiable dense ops over ag::var (see include/lrnn/autograd.h). Each forward calls the
// op of this folder (or ops/norm); each backward is written next to it in dense/backward.cpp.
// Every op works in f32 and in f64 (f64 is what the gradient checks use). Shapes follow the
// forward ops in dense.h. A var that does not require a gradient gets none.
#pragma once

#include "lrnn/autograd.h"
#include "ops/dense/dense.h"

namespace lrnn::ag {

// y = x W^T + b; x [..., in], w [out, in], b [out] or an undefined var.
result<var> linear(const var& x, const var& w, const var& b = var());
// ids int64 [...] (a constant tensor) -> [..., D]; the gradient scatters into the table rows.
result<var> embedding(const tensor& ids, const var& table);
// RMSNorm over the last dim: x / sqrt(mean(x^2) + eps) * (w + offset); w [D] or undefined.
result<var> rms_norm(const var& x, const var& w, double eps, double weight_offset = 0.0);
// RMSNorm per group of D over the last dim (G * D); w [D] shared or [G * D] or undefined.
result<var> group_rms_norm(const var& x, int64_t groups, const var& w, double eps);
// LayerNorm over the last dim; w, b [D] or undefined.
result<var> layer_norm(const var& x, const var& w, const var& b, double eps);
// GroupNorm as RWKV uses it (see ops::group_norm).
result<var> group_norm(const var& x, int64_t groups, const var& w, const var& b, double eps);

result<var> activation(const var& x, ops::activation a);
// Elementwise with broadcasting of b over leading dims (b's shape a suffix of a's shape).
result<var> add(const var& a, const var& b);
result<var> sub(const var& a, const var& b);
result<var> mul(const var& a, const var& b);
result<var> scale(const var& x, double s);
// a + s * b, same shapes (residual with a coefficient).
result<var> add_scaled(const var& a, const var& b, double s);
// cap * tanh(x / cap)
result<var> softcap(const var& x, double cap);
// max(x, lo) (GLA's clamp_min); the gradient passes where x > lo.
result<var> clamp_min(const var& x, double lo);

// Shape ops (copies when needed; gradients reshape back).
result<var> reshape(const var& x, const shape_t& shape);
result<var> slice(const var& x, int64_t dim, int64_t start, int64_t end);
result<var> concat(const std::vector<var>& xs, int64_t dim);
result<var> transpose(const var& x, int64_t a, int64_t b);  // materialised (contiguous)

// RWKV token shift from a zero previous token: x [B, T, D] -> x[:, t-1] - x[:, t] (x[:, -1] = 0).
result<var> token_shift(const var& x);

// Mean cross-entropy over the tokens whose target != ignore_index: logits [N, V] or
// [B, T, V], targets int64 [N] / [B, T]. z_loss > 0 adds z_loss * mean(logsumexp^2)
// (PaLM). Returns a one-element var; also reports the number of counted tokens.
struct cross_entropy_options {
  double z_loss = 0.0;
  int64_t ignore_index = -100;
};
result<var> cross_entropy(const var& logits, const tensor& targets, const cross_entropy_options& opt = {},
                          int64_t* counted_tokens = nullptr);

}  // namespace lrnn::ag
