// RWKV-7 (fla "rwkv7") config as read from config.json, shared by the inference model
// (models/rwkv7.cpp, which defines read_rwkv7_config) and the trainable one (train/models/rwkv7.cpp).
#pragma once

#include "io/config.h"

#include <cstdint>

namespace lrnn::models {

struct rwkv7_config {
  int64_t D = 0, H = 0, Kh = 0, V = 0, Vh = 0, layers = 0, inter = 0;
  int64_t decay_rank = 0, gate_rank = 0, a_rank = 0, v_rank = 0;
  double eps = 1e-5;
  bool norm_first = true, norm_bias = true;
};

result<rwkv7_config> read_rwkv7_config(const io::config& cfg);

}  // namespace lrnn::models
