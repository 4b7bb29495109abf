// linear_scan: the diagonal gated linear recurrence h_t = a_t * h_{t-1} + b_t per channel, as a
// plain scan over log-space gates (recurrentgemma's rnn_scan) or as Griffin's RG-LRU with its
// gates, sqrt normalisation (bounded derivative) and document resets (shared OPS.md section 4).
// Forms: reference, recurrent (the decoding path) and scan (chunked parallel scan over time).
// Forward and backward, initial/final state, packed batches. Math and gradients in README.md.
#pragma once

#include "lrnn/tensor.h"

#include <vector>

namespace lrnn::ops {

enum class scan_gate {
  log_a,   // h_t = exp(log_a_t) * h_{t-1} + x_t                      (inputs x, log_a)
  rg_lru,  // Griffin: r = sigmoid(gate_a), i = sigmoid(gate_x), log a = -c * softplus(a_param) * r,
           // h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i * x_t)     (inputs x, gate_x, gate_a, a_param)
};

struct linear_scan_spec {
  scan_gate gate = scan_gate::rg_lru;
  double c = 8.0;                     // rg_lru: the constant in log a = -c * softplus(a_param) * r
  double max_sqrt_gradient = 1000.0;  // rg_lru: d sqrt(z) / dz is taken as 1 / sqrt(max(4 z, 1 / max^2))
};

enum class linear_scan_form { reference, recurrent, scan };
const char* linear_scan_form_name(linear_scan_form f);

// Activations [B, T, C] in one float dtype; a_param any float dtype.
struct linear_scan_inputs {
  tensor x;            // [B, T, C]
  tensor log_a;        // log_a: [B, T, C], values <= 0
  tensor gate_x;       // rg_lru: input-gate pre-activation [B, T, C]
  tensor gate_a;       // rg_lru: recurrence-gate pre-activation [B, T, C]
  tensor a_param;      // rg_lru: Lambda [C]
  tensor segment_pos;  // optional i32 / i64 [B, T]: position 0 starts a document (a_t = 0, and the
                       // sqrt factor is 1 for rg_lru), as recurrentgemma's segment_pos
  tensor cu_seqlens;   // optional i32 [N + 1]; then B == 1 and sequences are packed along T
};

struct linear_scan_options {
  int64_t chunk_size = 64;  // scan form: tokens per chunk, >= 1
  bool output_final_state = true;
};

struct linear_scan_output {
  tensor y;            // [B, T, C] = h_t, dtype of x
  tensor final_state;  // [N, C] f32 (f64 for f64 inputs), when options.output_final_state
};

struct linear_scan_grads {
  tensor dx;               // like x
  tensor dlog_a;           // log_a: like log_a
  tensor dgate_x, dgate_a; // rg_lru: like the gates
  tensor da_param;         // rg_lru: [C] f32 (f64 for f64 inputs)
  tensor d_initial_state;  // [N, C] where an initial state was given
};

// initial_state: [N, C] any float dtype, or undefined (zeros).
result<linear_scan_output> linear_scan_forward(const linear_scan_spec& spec, const linear_scan_inputs& in,
                                               const tensor& initial_state, linear_scan_form form,
                                               const linear_scan_options& options = {});

// dy like y; d_final_state [N, C] or undefined (zero upstream gradient).
result<linear_scan_grads> linear_scan_backward(const linear_scan_spec& spec, const linear_scan_inputs& in,
                                               const tensor& initial_state, const tensor& dy,
                                               const tensor& d_final_state, linear_scan_form form,
                                               const linear_scan_options& options = {});

// One decoding step for B sequences: the activations of `token` are [B, C] (a_param [C],
// segment_pos [B] optional); `state` ([B, C] f32, defined) is updated in place. Returns y [B, C].
result<tensor> linear_scan_step(const linear_scan_spec& spec, const linear_scan_inputs& token, tensor& state);

namespace detail {

// The problem in accumulation type A after validation: contiguous buffers.
template <typename A>
struct linear_scan_problem {
  scan_gate gate = scan_gate::rg_lru;
  int64_t N = 0, C = 0;
  std::vector<int64_t> offsets;        // [N + 1] token offsets
  const A* x = nullptr;                // [tokens, C]
  const A* log_a = nullptr;            // [tokens, C] (log_a)
  const A* gate_x = nullptr;           // [tokens, C] (rg_lru)
  const A* gate_a = nullptr;           // [tokens, C] (rg_lru)
  const A* neg_c_softplus = nullptr;   // [C] (rg_lru): -c * softplus(a_param)
  const uint8_t* reset = nullptr;      // [tokens] or null
  const A* h0 = nullptr;               // [N, C] or null
  A min_4z = 0;                        // rg_lru: 1 / max_sqrt_gradient^2
  int64_t chunk = 64;
};

template <typename A>
struct linear_scan_forward_io {
  A* y = nullptr;        // [tokens, C]
  A* h_final = nullptr;  // [N, C] or null
};

template <typename A>
struct linear_scan_backward_io {
  const A* dy = nullptr;       // [tokens, C]
  const A* dh_final = nullptr; // [N, C] or null
  A* dx = nullptr;             // [tokens, C]
  A* dlog_a = nullptr;         // [tokens, C] (log_a)
  A* dgate_x = nullptr;        // [tokens, C] (rg_lru)
  A* dgate_a = nullptr;        // [tokens, C] (rg_lru)
  A* dneg_c_softplus = nullptr; // [N, C] (rg_lru): per sequence, gradient of -c * softplus(a_param)
  A* dh0 = nullptr;            // [N, C] or null
};

template <typename A> void linear_scan_forward_reference(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io);
template <typename A> void linear_scan_backward_reference(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io);
template <typename A> void linear_scan_forward_recurrent(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io);
template <typename A> void linear_scan_backward_recurrent(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io);
template <typename A> void linear_scan_forward_scan(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io);
template <typename A> void linear_scan_backward_scan(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io);

}  // namespace detail

}  // namespace lrnn::ops
