// The decoding step of decay_attn on CUDA (recurrent_step.cu): one token for each of N sequences,
// the fp32 state [N, H, K, V] (and n [N, H, K], m [N, H]) updated in place. fmt-free for nvcc;
// the host side (validation, dtype of the gates) is recurrent_step.cpp.
#pragma once

#include "backend/cuda/launch_check.h"

#include <cstdint>

namespace lrnn::ops::cuda_step {

enum class elem : int { f32 = 0, bf16 = 1, f16 = 2 };

struct step_params {
  int64_t N = 0, H = 0, K = 0, V = 0;
  elem type = elem::f32;         // of q, k, v and o
  const void* q = nullptr;       // [N, H, K]
  const void* k = nullptr;       // [N, H, K]
  const void* v = nullptr;       // [N, H, V]
  const float* g = nullptr;      // decay 3: [N, H, K]; 2: [N, H]; 1: [H]; 0: none (log space)
  const float* i = nullptr;      // input gate [N, H]
  const float* u = nullptr;      // bonus [H, K]
  float* s = nullptr;            // [N, H, K, V]
  float* n = nullptr;            // [N, H, K] with the normaliser
  float* m = nullptr;            // [N, H] with the exponential input gate
  void* o = nullptr;             // [N, H, V]
  int decay = 0;                 // 0 none, 1 per_head_const, 2 per_token_scalar, 3 per_token_key
  int gate = 0;                  // 0 none, 1 exponential (stabiliser m), 2 sigmoid (log input gate)
  bool bonus = false, normalizer = false;
  float scale = 1.0f, eps = 1e-6f;
};

::lrnn::cuda::cuda_error launch_decay_attn_step(const step_params& p, cudaStream_t stream);

}  // namespace lrnn::ops::cuda_step
