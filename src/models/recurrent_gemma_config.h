// RecurrentGemma / Griffin / Hawk (HF "recurrent_gemma") config as read from config.json, shared
// by the inference model (models/recurrent_gemma.cpp) and the trainable one
// (train/models/recurrent_gemma.cpp). Reader in recurrent_gemma_config.cpp.
#pragma once

#include "io/config.h"
#include "ops/dense/dense.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrnn::models {

struct recurrent_gemma_config {
  int64_t vocab = 0, D = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, lru = 0, conv_width = 4, window = 2048;
  double eps = 1e-6, rope_theta = 10000.0, rotary_fraction = 0.5, soft_cap = 30.0;
  ops::activation act = ops::activation::gelu_tanh;
  bool attn_bias = false;
  int64_t inter_full = 0, F = 0;  // intermediate_size and the MLP width intermediate_size // 2
  std::vector<std::string> block_types;  // "recurrent" / "attention", repeated over the layers
  bool tie_word_embeddings = true;
  double w_init_variance_scale = 0.01, final_w_init_variance_scale = 0.0;  // fresh-weight init only
};

result<recurrent_gemma_config> read_recurrent_gemma_config(const io::config& c);

}  // namespace lrnn::models
