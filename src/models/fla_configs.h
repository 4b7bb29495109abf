// The config readers of the fla-format GLA and RetNet models, shared by the inference models
// (models/gla.cpp, models/retnet.cpp, which define them) and the trainable ones (train/models/).
#pragma once

#include "io/config.h"

#include <optional>

namespace lrnn::models {

struct gla_config {
  int64_t D = 0, H = 0, key_dim = 0, value_dim = 0, Kh = 0, Vh = 0, low_rank = 16, gate_normalizer = 16, conv_size = 4;
  double eps = 1e-6, expand_k = 0.5, expand_v = 1.0;
  std::optional<double> clamp_min;
  bool short_conv = false, conv_bias = false, output_gate = true, affine = true;
};
result<gla_config> read_gla_config(const io::config& cfg);

struct retnet_config {
  int64_t D = 0, H = 0, key_dim = 0, value_dim = 0, Kh = 0, Vh = 0;
  double eps = 1e-6, expand_k = 1.0, expand_v = 2.0;
  bool output_gate = true, affine = true;
};
result<retnet_config> read_retnet_config(const io::config& cfg);

}  // namespace lrnn::models
