// The config readers of the fla-format GLA and RetNet models, shared by the inference models
// (models/gla.cpp, models/retnet.cpp, which define them) and the trainable ones (train/models/).
#pragma once

#include "io/config.h"

#include <optional>

namespace lrnn::models {

// The head layout both configs share, read into any config `C` with members D, H, expand_k,
// expand_v, eps (defaults: num_heads `default_heads`, the rest C's member defaults): hidden_size,
// num_heads (num_kv_heads, if given, must equal it), expand_k, expand_v, norm_eps.
template <typename C>
status read_fla_heads(const io::config& cfg, C& c, int64_t default_heads) {
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(cfg));
  c.D = common.hidden_size;
  LRNN_ASSIGN_OR_RETURN(c.H, cfg.get_int("num_heads", default_heads, 1, 4096));
  LRNN_ASSIGN_OR_RETURN(auto kv_heads, cfg.get_optional_int("num_kv_heads"));
  if (kv_heads && *kv_heads != c.H)
    return make_error(status_code::unsupported, "{}: num_kv_heads={} (grouped keys/values) is not supported yet", cfg.source(), *kv_heads);
  LRNN_ASSIGN_OR_RETURN(c.expand_k, cfg.get_float("expand_k", C{}.expand_k));
  LRNN_ASSIGN_OR_RETURN(c.expand_v, cfg.get_float("expand_v", C{}.expand_v));
  LRNN_ASSIGN_OR_RETURN(c.eps, cfg.get_float("norm_eps", C{}.eps));
  return {};
}

// key_dim = D * expand_k, value_dim = D * expand_v (both nonzero multiples of H), Kh / Vh per head.
template <typename C>
status set_fla_head_dims(const io::config& cfg, C& c) {
  c.key_dim = static_cast<int64_t>(static_cast<double>(c.D) * c.expand_k);
  c.value_dim = static_cast<int64_t>(static_cast<double>(c.D) * c.expand_v);
  if (c.key_dim % c.H || c.value_dim % c.H || c.key_dim == 0 || c.value_dim == 0)
    return make_error(status_code::invalid_argument, "{}: key dim {} / value dim {} not divisible by num_heads={}", cfg.source(),
                      c.key_dim, c.value_dim, c.H);
  c.Kh = c.key_dim / c.H;
  c.Vh = c.value_dim / c.H;
  return {};
}

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
