// xLSTM (HF "xlstm") config as read from config.json, shared by the inference model
// (models/xlstm.cpp) and the trainable one (train/models/xlstm.cpp). Reader in xlstm_config.cpp.
#pragma once

#include "io/config.h"

#include <cstdint>
#include <optional>

namespace lrnn::models {

struct xlstm_config {
  int64_t vocab = 0, D = 0, L = 0, H = 0, qk_dim = 0, v_dim = 0, Kh = 0, Vh = 0, up_dim = 0;
  double qk_dim_factor = 0.5, v_dim_factor = 1.0, norm_eps = 1e-6, eps = 1e-6;
  std::optional<double> gate_soft_cap, logit_soft_cap;
  bool bias = false, fused = false, tie = false;
};

result<xlstm_config> read_xlstm_config(const io::config& cfg);

}  // namespace lrnn::models
