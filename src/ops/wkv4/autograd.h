// Differentiable RWKV-4 WKV over ag::var: y = wkv4(k, v, time_decay, time_first) from the
// empty state (a = b = 0, p = -1e38); the backward closure calls wkv4_backward in the same
// form. Shapes as in wkv4.h. f32 and f64.
#pragma once

#include "lrnn/autograd.h"
#include "ops/wkv4/wkv4.h"

namespace lrnn::ag {

// k, v [B, T, C]; time_decay, time_first [C]; cu_seqlens optional (a constant). -> y [B, T, C].
result<var> wkv4(const var& k, const var& v, const var& time_decay, const var& time_first, ops::wkv4_form form,
                 const tensor& cu_seqlens = tensor(), const ops::wkv4_options& options = {});

}  // namespace lrnn::ag
