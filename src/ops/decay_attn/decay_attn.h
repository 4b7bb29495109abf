// decay_attn: the gated linear-attention family (RetNet, GLA, simple GLA / Mamba-2, RWKV-5/6,
// mLSTM with exponential or sigmoid input gate, HGRN-2) as one operator with one spec, computed
// in four forms (reference, recurrent, parallel, chunk). Math and gradients in README.md,
// definitions in shared OPS.md section 1.
#pragma once

#include "lrnn/tensor.h"

namespace lrnn::ops {

enum class decay_kind { none, per_head_const, per_token_scalar, per_token_key };
// exponential: mLSTM, i = i~ (pre-activation, may be positive), stabiliser m carried in the state.
// sigmoid: i = log input gate (logsigmoid(i~) computed by the caller), no stabiliser.
enum class input_gate_kind { none, exponential, sigmoid };

struct decay_attn_spec {
  decay_kind decay = decay_kind::per_token_key;
  bool bonus = false;                                // RWKV-5/6: reads S_{t-1} + Diag(u) k_t v_t^T
  input_gate_kind input_gate = input_gate_kind::none;
  bool normalizer = false;                           // mLSTM: divide by max(|n_t^T q_t|, exp(-m_t)) + eps
  double scale = 0.0;                                // q scaling; <= 0 means 1/sqrt(K)
  double eps = 1e-6;                                 // normaliser epsilon
};

enum class decay_attn_form { reference, recurrent, parallel, chunk };
const char* decay_attn_form_name(decay_attn_form f);

// Inputs. Activations [B, T, H, D] any float dtype; gates in log space, any float dtype.
struct decay_attn_inputs {
  tensor q;           // [B, T, H, K]
  tensor k;           // [B, T, H, K]
  tensor v;           // [B, T, H, V]
  tensor g;           // per_token_key [B, T, H, K]; per_token_scalar [B, T, H]; per_head_const [H]; none: undefined
  tensor i;           // input gate [B, T, H] (see input_gate_kind)
  tensor u;           // bonus [H, K]
  tensor cu_seqlens;  // optional int32 [N + 1]; then B == 1 and sequences are packed along T
};

// Recurrent state per sequence, fp32 (f64 for f64 inputs). n with the normaliser, m with the
// exponential input gate. An absent state means zeros (and m = 0, as mlstm_kernels' recurrent form).
struct decay_attn_state {
  tensor s;  // [N, H, K, V]
  tensor n;  // [N, H, K]
  tensor m;  // [N, H]
};

struct decay_attn_options {
  int64_t chunk_size = 64;         // chunk form: tokens per chunk (a multiple of 16)
  bool output_final_state = true;
  // Where to write results (CUDA tensors only): o for the forward, dq / dk / dv and the gates'
  // gradients dg / di (f32, the gates' shapes) for the backward. Used when given with the result's
  // shape, dtype and device and contiguous (the returned tensor is then this one, and no copy is
  // made); ignored otherwise.
  tensor into_o, into_dq, into_dk, into_dv, into_dg, into_di;
  // The normaliser's saved forward (specs with the normaliser), as an autograd context would keep it:
  // the forward returns den when output_den; handing that den and the forward's o to the backward
  // (saved_o, saved_den, both or neither) lets it skip recomputing the forward where its kernels
  // need o (the CUDA tensor-core path with one V tile); elsewhere they are checked and not used.
  bool output_den = false;
  tensor saved_o, saved_den;
  // The forward's context for the backward, as an autograd context would keep it (CUDA): an f32
  // tensor [decay_attn_ctx_floats(spec, inputs)] on the inputs' device. The forward writes it, the
  // backward of the same inputs reads it instead of recomputing what it holds (mLSTM's stabiliser
  // per token; the states at the segment boundaries of long sequences). Undefined: not kept. It
  // must come from the forward of these very inputs (only its size is checked).
  tensor ctx;
};

struct decay_attn_output {
  tensor o;                      // [B, T, H, V], dtype of q
  decay_attn_state final_state;  // when options.output_final_state
  // With the normaliser and options.output_den (every form but the reference): [B, T, H] fp32 (f64
  // for f64 inputs), s n_t^T q_t, the normaliser's signed denominator before max(|.|, floor) + eps.
  tensor den;
};

struct decay_attn_grads {
  tensor dq, dk, dv;               // like q, k, v
  tensor dg;                       // like g, f32 (f64 for f64 inputs); undefined for decay none
  tensor di;                       // like i, f32 / f64
  tensor du;                       // like u, f32 / f64
  decay_attn_state d_initial_state;  // defined where the initial state was given
};

result<decay_attn_output> decay_attn_forward(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                             const decay_attn_state& initial_state, decay_attn_form form,
                                             const decay_attn_options& options = {});

// Floats of decay_attn_options::ctx for these inputs: 0 where the forward keeps nothing for the
// backward (CPU tensors; CUDA calls without an exponential input gate and without segments).
result<int64_t> decay_attn_ctx_floats(const decay_attn_spec& spec, const decay_attn_inputs& in);

// d_o like o; d_final_state parts may be undefined (zero upstream gradient).
result<decay_attn_grads> decay_attn_backward(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                             const decay_attn_state& initial_state, const tensor& d_o,
                                             const decay_attn_state& d_final_state, decay_attn_form form,
                                             const decay_attn_options& options = {});

// One decoding step for B sequences: q, k [B, H, K], v [B, H, V], g [B, H, K] / [B, H] / [H],
// i [B, H]; `state` (defined, f32) is updated in place. Returns o [B, H, V].
result<tensor> decay_attn_step(const decay_attn_spec& spec, const decay_attn_inputs& token, decay_attn_state& state);

namespace detail {
result<decay_attn_output> decay_attn_forward_reference(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                       const decay_attn_state& init, bool output_final_state);
result<decay_attn_grads> decay_attn_backward_reference(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                       const decay_attn_state& init, const tensor& d_o,
                                                       const decay_attn_state& d_final);
}  // namespace detail

}  // namespace lrnn::ops
