// Differentiable decay_attn (see decay_attn.h): the output over whole sequences from a zero
// initial state; the backward calls ops::decay_attn_backward in the same form.
#pragma once

#include "lrnn/autograd.h"
#include "ops/decay_attn/decay_attn.h"

namespace lrnn::ag {

// q, k [B, T, H, K], v [B, T, H, V]; g, i, u as decay_attn_inputs (undefined vars where the
// spec has none). All of one dtype (f32 or f64). Returns o [B, T, H, V].
result<var> decay_attn(const ops::decay_attn_spec& spec, const var& q, const var& k, const var& v, const var& g, const var& i,
                       const var& u, ops::decay_attn_form form, const ops::decay_attn_options& options = {});

}  // namespace lrnn::ag
