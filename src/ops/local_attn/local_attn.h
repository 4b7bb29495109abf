// local_attn: causal softmax attention over a sliding window (Griffin / RecurrentGemma local MQA,
// hybrid models) with shared K/V heads (MQA / GQA), RoPE applied inside the op, fp32 softmax, and
// a ring-buffer KV cache of W entries per sequence for decoding. Math and gradients in README.md,
// definition in shared OPS.md section 5.
#pragma once

#include "lrnn/tensor.h"

#include <cstdint>
#include <vector>

namespace lrnn::ops {

// half: rotate_half pairs (i, i + R/2) (GPT-NeoX, Gemma, RecurrentGemma); interleaved: (2i, 2i + 1) (GPT-J).
enum class rope_kind { none, half, interleaved };

struct local_attn_spec {
  int64_t window = 2048;         // W: query i sees key j iff j <= i and i - j <= W (RecurrentGemma: W + 1 keys)
  double scale = 0.0;            // logits scaling; <= 0 means 1/sqrt(D)
  rope_kind rope = rope_kind::half;
  double rotary_fraction = 1.0;  // rotated leading part of each head dim, R = D * fraction rounded down to even (RecurrentGemma 0.5)
  double max_wavelength = 10000.0;
};

enum class local_attn_form { reference, parallel };
const char* local_attn_form_name(local_attn_form f);

struct local_attn_inputs {
  tensor q;           // [B, T, Hq, D]
  tensor k;           // [B, T, Hkv, D], Hq a multiple of Hkv
  tensor v;           // [B, T, Hkv, Dv]
  tensor positions;   // optional int32/int64 [B, T] (segment_pos): RoPE angles; a 0 starts a new document
                      // that sees nothing before it. Absent: the absolute index (cache count + t).
  tensor cu_seqlens;  // optional int32 [N + 1]; then B == 1 and sequences are packed along T
};

// The decoding cache of N sequences: keys after RoPE and values of the last W tokens, token a at
// slot a % W; count = tokens seen; start = absolute index of the current document's first token.
struct local_attn_state {
  tensor k_cache;  // [N, W, Hkv, D], dtype of k
  tensor v_cache;  // [N, W, Hkv, Dv], dtype of v
  tensor count;    // int64 [N]
  tensor start;    // int64 [N]
};

struct local_attn_options {
  bool output_final_state = true;
};

struct local_attn_output {
  tensor o;                      // [B, T, Hq, Dv], dtype of q
  local_attn_state final_state;  // when options.output_final_state
};

struct local_attn_grads {
  tensor dq, dk, dv;                 // like q, k, v (gradients of the inputs before RoPE)
  local_attn_state d_initial_state;  // k_cache, v_cache where the initial state was given
};

result<local_attn_output> local_attn_forward(const local_attn_spec& spec, const local_attn_inputs& in,
                                             const local_attn_state& initial_state, local_attn_form form,
                                             const local_attn_options& options = {});

// d_o like o; d_final_state.k_cache / v_cache may be undefined.
result<local_attn_grads> local_attn_backward(const local_attn_spec& spec, const local_attn_inputs& in,
                                             const local_attn_state& initial_state, const tensor& d_o,
                                             const local_attn_state& d_final_state, local_attn_form form,
                                             const local_attn_options& options = {});

// One decoding step for B sequences: q [B, Hq, D], k [B, Hkv, D], v [B, Hkv, Dv], positions
// optional [B]; `state` is updated in place (an undefined state starts empty). Returns o [B, Hq, Dv].
result<tensor> local_attn_step(const local_attn_spec& spec, const local_attn_inputs& token, local_attn_state& state);

}  // namespace lrnn::ops
