// Differentiable local (sliding-window) softmax attention over ag::var: o from an empty cache;
// the backward closure calls local_attn_backward in the same form. positions / cu_seqlens are
// constants. Shapes as in local_attn.h (RoPE inside the op; gradients are of the inputs before
// RoPE). f32 and f64.
#pragma once

#include "lrnn/autograd.h"
#include "ops/local_attn/local_attn.h"

namespace lrnn::ag {

// q [B, T, Hq, D], k [B, T, Hkv, D], v [B, T, Hkv, Dv] -> o [B, T, Hq, Dv].
result<var> local_attn(const ops::local_attn_spec& spec, const var& q, const var& k, const var& v, ops::local_attn_form form,
                       const tensor& positions = tensor(), const tensor& cu_seqlens = tensor());

}  // namespace lrnn::ag
