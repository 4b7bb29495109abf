// Differentiable delta_rule (DeltaNet, Gated DeltaNet, DPLR / RWKV-7) over ag::var: the output
// of delta_rule_forward from a zero initial state; the backward closure calls
// delta_rule_backward in the same form. Inputs and their shapes as in delta_rule.h; the vars a
// kind does not use stay undefined. f32 and f64 (f64 for gradient checks).
#pragma once

#include "lrnn/autograd.h"
#include "ops/delta_rule/delta_rule.h"

namespace lrnn::ag {

struct delta_rule_vars {
  var q, k, v;  // [B, T, H, K], [B, T, H, K], [B, T, H, V]
  var beta;     // delta, gated: [B, T, H]
  var g;        // gated: [B, T, H]
  var w, a, b;  // dplr: [B, T, H, K]
  tensor cu_seqlens;  // optional packed batch (a constant)
};

// o [B, T, H, V] = delta_rule(spec, in) from S_0 = 0.
result<var> delta_rule(const ops::delta_rule_spec& spec, const delta_rule_vars& in, ops::delta_rule_form form,
                       const ops::delta_rule_options& options = {});

}  // namespace lrnn::ag
