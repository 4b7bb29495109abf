// wkv4: the RWKV-4 WKV recurrence per channel in its numerically stable (a, b, p) form
// (shared OPS.md section 2; HF transformers rwkv_linear_attention_cpu is the reference).
// Forms: reference (plain loops, any float dtype incl. f64), recurrent (channels in parallel,
// the decoding path) and chunk (pairwise inside chunks, the state between them). Forward and
// backward, initial/final state, packed batches. Math and gradient derivation in README.md.
#pragma once

#include "lrnn/tensor.h"

#include <vector>

namespace lrnn::ops {

enum class wkv4_form { reference, recurrent, chunk };
const char* wkv4_form_name(wkv4_form f);

// The running max p starts here when no initial state is given (p = 0 can give 0/0).
inline constexpr double wkv4_p_start = -1e38;

// Activations [B, T, C] (C = attention hidden size), any float dtype, k and v alike.
struct wkv4_inputs {
  tensor k;           // [B, T, C]
  tensor v;           // [B, T, C]
  tensor time_decay;  // [C], any float dtype: w = -exp(time_decay)
  tensor time_first;  // [C], any float dtype: u, the bonus of the current token
  tensor cu_seqlens;  // optional i32 [N + 1]; then B == 1 and sequences are packed along T
};

// Per sequence: the numerator a and denominator b, both scaled by exp(-p), and the running max
// exponent p. fp32 (f64 for f64 inputs). An absent state is a = b = 0, p = -1e38.
struct wkv4_state {
  tensor a;  // [N, C]
  tensor b;  // [N, C]
  tensor p;  // [N, C]
};

struct wkv4_options {
  int64_t chunk_size = 64;  // chunk form: tokens per chunk, >= 1
  bool output_final_state = true;
};

struct wkv4_output {
  tensor y;                // [B, T, C], dtype of k
  wkv4_state final_state;  // when options.output_final_state
};

struct wkv4_grads {
  tensor dk, dv;                  // like k, v
  tensor dtime_decay;             // [C], f32 (f64 for f64 inputs)
  tensor dtime_first;             // [C], f32 / f64
  wkv4_state d_initial_state;     // defined where the initial state was given
};

// Fresh state for N sequences of C channels: a = b = 0, p = -1e38 (f32).
result<wkv4_state> wkv4_zero_state(int64_t N, int64_t C);

result<wkv4_output> wkv4_forward(const wkv4_inputs& in, const wkv4_state& initial_state, wkv4_form form,
                                 const wkv4_options& options = {});

// dy like y; parts of d_final_state may be undefined (zero upstream gradient). The initial
// state, when given, must be all three of a, b, p.
result<wkv4_grads> wkv4_backward(const wkv4_inputs& in, const wkv4_state& initial_state, const tensor& dy,
                                 const wkv4_state& d_final_state, wkv4_form form, const wkv4_options& options = {});

// One decoding step for B sequences: k, v [B, C]; `state` ([B, C] each, f32, defined) is
// updated in place. Returns y [B, C] in the dtype of k.
result<tensor> wkv4_step(const tensor& k, const tensor& v, const tensor& time_decay, const tensor& time_first,
                         wkv4_state& state);

namespace detail {

// The problem in accumulation type A (float or double) after validation: contiguous buffers.
template <typename A>
struct wkv4_problem {
  int64_t N = 0, C = 0;
  std::vector<int64_t> offsets;  // [N + 1] token offsets
  const A* k = nullptr;          // [tokens, C]
  const A* v = nullptr;          // [tokens, C]
  const A* w = nullptr;          // [C], w = -exp(time_decay)
  const A* u = nullptr;          // [C]
  const A* a0 = nullptr;         // [N, C] each, or all null
  const A* b0 = nullptr;
  const A* p0 = nullptr;
  int64_t chunk = 64;
};

template <typename A>
struct wkv4_forward_io {
  A* y = nullptr;    // [tokens, C]
  A* a = nullptr;    // [N, C] final state, or all null
  A* b = nullptr;
  A* p = nullptr;
};

template <typename A>
struct wkv4_backward_io {
  const A* dy = nullptr;   // [tokens, C]
  const A* da = nullptr;   // [N, C] upstream gradient of the final state, each may be null
  const A* db = nullptr;
  const A* dp = nullptr;
  A* dk = nullptr;         // [tokens, C]
  A* dv = nullptr;         // [tokens, C]
  A* dw = nullptr;         // [N, C] per sequence, gradient of w (not of time_decay)
  A* du = nullptr;         // [N, C] per sequence
  A* da0 = nullptr;        // [N, C] each, or all null
  A* db0 = nullptr;
  A* dp0 = nullptr;
};

template <typename A> void wkv4_forward_reference(const wkv4_problem<A>& p, const wkv4_forward_io<A>& io);
template <typename A> void wkv4_backward_reference(const wkv4_problem<A>& p, const wkv4_backward_io<A>& io);
template <typename A> void wkv4_forward_recurrent(const wkv4_problem<A>& p, const wkv4_forward_io<A>& io);
template <typename A> void wkv4_backward_recurrent(const wkv4_problem<A>& p, const wkv4_backward_io<A>& io);
template <typename A> void wkv4_forward_chunk(const wkv4_problem<A>& p, const wkv4_forward_io<A>& io);
template <typename A> void wkv4_backward_chunk(const wkv4_problem<A>& p, const wkv4_backward_io<A>& io);

}  // namespace detail

}  // namespace lrnn::ops
