// conv1d: causal depthwise convolution over time with a bias, an optional fused SiLU and a decode
// cache of the last W-1 inputs (Griffin's Conv1D, width 4; the short convolutions of GLA and
// DeltaNet). Document starts in segment_pos mask the window as recurrentgemma's Conv1D does.
// Forms: reference and cpu; forward and backward, cache in/out, packed batches. See README.md.
#pragma once

#include "lrnn/tensor.h"

#include <vector>

namespace lrnn::ops {

enum class conv1d_activation { none, silu };

struct conv1d_spec {
  conv1d_activation activation = conv1d_activation::none;
};

enum class conv1d_form { reference, cpu };
const char* conv1d_form_name(conv1d_form f);

struct conv1d_inputs {
  tensor x;            // [B, T, C]
  tensor weight;       // [W, C]: weight[W - 1] multiplies the current token (recurrentgemma's layout;
                       // torch's depthwise Conv1d weight [C, 1, W] transposed)
  tensor bias;         // [C] or undefined
  tensor segment_pos;  // optional i32 / i64 [B, T]: position 0 starts a document; earlier inputs
                       // (cache included) are masked out of its window
  tensor cu_seqlens;   // optional i32 [N + 1]; then B == 1 and sequences are packed along T
};

struct conv1d_output {
  tensor y;            // [B, T, C], dtype of x
  tensor final_cache;  // [N, W - 1, C] f32 (f64 for f64 x): the last W - 1 inputs, oldest first
                       // (zeros before the last document start), when requested
};

struct conv1d_grads {
  tensor dx;       // like x
  tensor dweight;  // [W, C] f32 (f64 for f64 x)
  tensor dbias;    // [C] f32 / f64, where a bias was given
  tensor d_cache;  // [N, W - 1, C] f32 / f64, where a cache was given
};

// cache: [N, W - 1, C] any float dtype, or undefined (zeros: the sequence starts fresh).
result<conv1d_output> conv1d_forward(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache,
                                     conv1d_form form, bool output_final_cache = true);

// dy like y; d_final_cache [N, W - 1, C] or undefined (zero upstream gradient).
result<conv1d_grads> conv1d_backward(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache,
                                     const tensor& dy, const tensor& d_final_cache, conv1d_form form);

// One decoding step for B sequences: x [B, C]; `cache` ([B, W - 1, C] f32, defined) is shifted
// in place. Returns y [B, C] in the dtype of x.
result<tensor> conv1d_step(const conv1d_spec& spec, const tensor& x, const tensor& weight, const tensor& bias,
                           tensor& cache);

namespace detail {

template <typename A>
struct conv1d_problem {
  conv1d_activation activation = conv1d_activation::none;
  int64_t N = 0, C = 0, W = 0;
  std::vector<int64_t> offsets;  // [N + 1] token offsets
  const A* x = nullptr;          // [tokens, C]
  const A* w = nullptr;          // [W, C]
  const A* bias = nullptr;       // [C] or null
  const A* cache = nullptr;      // [N, W - 1, C] or null
  // Per token: the index inside its sequence of the last document start at or before it, -W when
  // there is none. Input j (< 0: the cache) enters the window of token tau iff j >= last_start[tau].
  std::vector<int64_t> last_start;
};

template <typename A>
struct conv1d_forward_io {
  A* y = nullptr;      // [tokens, C]
  A* cache = nullptr;  // [N, W - 1, C] or null
};

template <typename A>
struct conv1d_backward_io {
  const A* dy = nullptr;      // [tokens, C]
  const A* dcache_out = nullptr;  // [N, W - 1, C] or null
  A* dx = nullptr;            // [tokens, C]
  A* dw = nullptr;            // [W, C]
  A* dbias = nullptr;         // [C] or null
  A* dcache = nullptr;        // [N, W - 1, C] or null
};

template <typename A> void conv1d_forward_reference(const conv1d_problem<A>& p, const conv1d_forward_io<A>& io);
template <typename A> void conv1d_backward_reference(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io);
template <typename A> void conv1d_forward_cpu(const conv1d_problem<A>& p, const conv1d_forward_io<A>& io);
template <typename A> void conv1d_backward_cpu(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io);

}  // namespace detail

}  // namespace lrnn::ops
