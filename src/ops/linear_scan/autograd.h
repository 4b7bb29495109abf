// Differentiable linear_scan over ag::var: y = h_t of the gated scan from h_0 = 0; the backward
// closure calls linear_scan_backward in the same form. log_a gate: x, log_a; rg_lru gate: x,
// gate_x, gate_a, a_param (the others undefined). segment_pos / cu_seqlens are constants.
// Shapes as in linear_scan.h. f32 and f64.
#pragma once

#include "lrnn/autograd.h"
#include "ops/linear_scan/linear_scan.h"

namespace lrnn::ag {

struct linear_scan_vars {
  var x;               // [B, T, C]
  var log_a;           // log_a: [B, T, C]
  var gate_x, gate_a;  // rg_lru: [B, T, C]
  var a_param;         // rg_lru: [C]
  tensor segment_pos;  // optional [B, T] (0 starts a document)
  tensor cu_seqlens;   // optional packed batch
};

result<var> linear_scan(const ops::linear_scan_spec& spec, const linear_scan_vars& in, ops::linear_scan_form form,
                        const ops::linear_scan_options& options = {});

}  // namespace lrnn::ag
