// RWKV-6 (fla "rwkv6") config as read from config.json, shared by the inference model
// (models/rwkv6.cpp) and the trainable one (train/models/rwkv6.cpp). Reader in rwkv6_config.cpp.
#pragma once

#include "io/config.h"

#include <cstdint>

namespace lrnn::models {

struct rwkv6_config {
  int64_t vocab = 0, D = 0, H = 0, key_dim = 0, value_dim = 0, Kh = 0, Vh = 0, proj_rank = 32, gate_rank = 64, F = 0;
  double eps = 1e-5, expand_k = 0.5, expand_v = 1.0;
  bool norm_first = true, norm_bias = true;
};

result<rwkv6_config> read_rwkv6_config(const io::config& cfg);

}  // namespace lrnn::models
