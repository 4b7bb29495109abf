// Gated DeltaNet (fla "gated_deltanet") config as read from config.json, shared by the inference
// model (models/gated_deltanet.cpp) and the trainable one (train/models/gated_deltanet.cpp).
#pragma once

#include "io/config.h"

#include <cstdint>

namespace lrnn::models {

struct gdn_config {
  int64_t D = 0, H = 0, HV = 0, Kh = 0, Vh = 0, key_dim = 0, value_dim = 0, conv_size = 4;
  double eps = 1e-6, expand_v = 2.0;
  bool use_gate = true, short_conv = true, conv_bias = false, allow_neg_eigval = false;
};

result<gdn_config> read_gdn_config(const io::config& cfg);

}  // namespace lrnn::models
