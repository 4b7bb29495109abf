// decay_attn on CUDA tensors: the chunk form's kernels (chunk_fwd.cu, chunk_bwd.cu, chunk_aux.cu)
// behind ops::decay_attn_forward / decay_attn_backward. Inputs already validated by decay_attn.cpp.
#pragma once

#include "ops/decay_attn/decay_attn.h"

#include <vector>

namespace lrnn::ops::detail {

// Floats of decay_attn_options::ctx for these inputs (0: the forward keeps nothing for the backward).
result<int64_t> decay_attn_ctx_floats_cuda(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                           const std::vector<int64_t>& offsets);
result<decay_attn_output> decay_attn_forward_cuda(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                  const decay_attn_state& init, const std::vector<int64_t>& offsets,
                                                  const decay_attn_options& options);
result<decay_attn_grads> decay_attn_backward_cuda(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                  const decay_attn_state& init, const tensor& d_o,
                                                  const decay_attn_state& d_final, const std::vector<int64_t>& offsets,
                                                  const decay_attn_options& options);

}  // namespace lrnn::ops::detail
