// delta_rule: DeltaNet, Gated DeltaNet and the generalised diagonal-plus-low-rank rule of
// RWKV-7 as one operator with one spec, in three forms (reference, recurrent, chunk).
// Definitions in shared OPS.md section 3; the recurrence, the WY / UT chunk form and the
// gradients in README.md.
#pragma once

#include "lrnn/tensor.h"

#include <cstdint>
#include <vector>

namespace lrnn::ops {

// delta:  u_t = beta_t (v_t - S_{t-1}^T k_t);  S_t = S_{t-1} + k_t u_t^T             (DeltaNet)
// gated:  S' = e^{g_t} S_{t-1};  u_t = beta_t (v_t - S'^T k_t);  S_t = S' + k_t u_t^T (Gated DeltaNet)
// dplr:   S_t = Diag(e^{w_t}) S_{t-1} + b_t (a_t^T S_{t-1}) + k_t v_t^T              (RWKV-7)
// Output in every kind: o_t = scale * S_t^T q_t (the current token included).
enum class delta_kind { delta, gated, dplr };
const char* delta_kind_name(delta_kind k);

struct delta_rule_spec {
  delta_kind kind = delta_kind::gated;
  double scale = 0.0;       // q scaling; <= 0 means 1/sqrt(K) (RWKV-7 uses 1)
  bool qk_l2norm = false;   // fla's use_qk_l2norm_in_kernel: q, k <- x / sqrt(sum x^2 + eps) per head
  double l2norm_eps = 1e-6;
};

enum class delta_rule_form { reference, recurrent, chunk };
const char* delta_rule_form_name(delta_rule_form f);

// Activations any float dtype (one dtype for q, k, v, a, b); gates in log space.
struct delta_rule_inputs {
  tensor q;           // [B, T, H, K] (r for RWKV-7)
  tensor k;           // [B, T, H, K]
  tensor v;           // [B, T, H, V]
  tensor beta;        // delta, gated: [B, T, H]
  tensor g;           // gated: log decay [B, T, H], g <= 0
  tensor w;           // dplr: log decay per key [B, T, H, K], w <= 0
  tensor a;           // dplr: [B, T, H, K] (RWKV-7: -kappa^)
  tensor b;           // dplr: [B, T, H, K] (RWKV-7: kappa^ * alpha)
  tensor cu_seqlens;  // optional int32 [N + 1]; then B == 1 and sequences are packed along T
};

// Recurrent state per sequence, fp32 (f64 for f64 inputs); absent means zeros.
struct delta_rule_state {
  tensor s;  // [N, H, K, V]
};

struct delta_rule_options {
  int64_t chunk_size = 64;  // chunk form: tokens per chunk (a multiple of 16 in [16, 256])
  bool output_final_state = true;
};

struct delta_rule_output {
  tensor o;                      // [B, T, H, V], dtype of q
  delta_rule_state final_state;  // when options.output_final_state
};

// Each gradient has the shape and dtype of its input; undefined where the kind has no such input.
struct delta_rule_grads {
  tensor dq, dk, dv, dbeta, dg, dw, da, db;
  delta_rule_state d_initial_state;  // defined where the initial state was given
};

result<delta_rule_output> delta_rule_forward(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                             const delta_rule_state& initial_state, delta_rule_form form,
                                             const delta_rule_options& options = {});

// d_o like o; d_final_state.s may be undefined (zero upstream gradient).
result<delta_rule_grads> delta_rule_backward(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                             const delta_rule_state& initial_state, const tensor& d_o,
                                             const delta_rule_state& d_final_state, delta_rule_form form,
                                             const delta_rule_options& options = {});

// One decoding step for B sequences: q, k, a, b, w [B, H, K], v [B, H, V], beta, g [B, H];
// `state` is updated in place (zeros when undefined). Returns o [B, H, V].
result<tensor> delta_rule_step(const delta_rule_spec& spec, const delta_rule_inputs& token, delta_rule_state& state);

namespace detail {

// Per-call problem in the accumulation type A (float, or double for f64 inputs), inputs
// contiguous [tokens, H, *]; q and k already L2-normalised when the spec asks for it.
template <typename A>
struct delta_problem {
  delta_kind kind = delta_kind::gated;
  int64_t N = 0, H = 0, K = 0, V = 0, chunk = 64;
  std::vector<int64_t> offsets;  // [N + 1]
  A scale = 1;
  const A *q = nullptr, *k = nullptr, *v = nullptr, *beta = nullptr, *g = nullptr;
  const A *w = nullptr, *a = nullptr, *b = nullptr;
  const A* s0 = nullptr;  // [N, H, K, V] or null
};

template <typename A>
struct delta_grads_io {
  const A* d_o = nullptr;        // [tokens, H, V]
  const A* d_s_final = nullptr;  // [N, H, K, V] or null
  A *dq = nullptr, *dk = nullptr, *dv = nullptr, *dbeta = nullptr, *dg = nullptr;
  A *dw = nullptr, *da = nullptr, *db = nullptr;
  A* ds0 = nullptr;              // [N, H, K, V] or null
};

template <typename A> void delta_forward_recurrent(const delta_problem<A>& p, A* o, A* s_final);
template <typename A> void delta_backward_recurrent(const delta_problem<A>& p, const delta_grads_io<A>& io);
template <typename A> void delta_forward_chunk(const delta_problem<A>& p, A* o, A* s_final);
template <typename A> void delta_backward_chunk(const delta_problem<A>& p, const delta_grads_io<A>& io);
// The dplr kind's chunk form (cpu/dplr_chunk.cpp).
template <typename A> void delta_forward_dplr_chunk(const delta_problem<A>& p, A* o, A* s_final);
template <typename A> void delta_backward_dplr_chunk(const delta_problem<A>& p, const delta_grads_io<A>& io);

result<delta_rule_output> delta_rule_forward_reference(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                                       const delta_rule_state& init, bool output_final_state);
result<delta_rule_grads> delta_rule_backward_reference(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                                       const delta_rule_state& init, const tensor& d_o,
                                                       const delta_rule_state& d_final);
}  // namespace detail

}  // namespace lrnn::ops
