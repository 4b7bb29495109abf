// Differentiable conv1d (see conv1d.h): causal depthwise convolution over whole sequences from
// a zero cache; the backward calls ops::conv1d_backward in the same form.
#pragma once

#include "lrnn/autograd.h"
#include "ops/conv1d/conv1d.h"

namespace lrnn::ag {

// x [B, T, C], weight [W, C] (recurrentgemma's layout), bias [C] or an undefined var; one dtype
// (f32 or f64). Returns y [B, T, C].
result<var> conv1d(const ops::conv1d_spec& spec, const var& x, const var& weight, const var& bias,
                   ops::conv1d_form form = ops::conv1d_form::cpu);

}  // namespace lrnn::ag
