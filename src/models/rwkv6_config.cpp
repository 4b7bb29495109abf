#include "models/rwkv6_config.h"

#include <string>

namespace lrnn::models {

result<rwkv6_config> read_rwkv6_config(const io::config& cfg) {
  rwkv6_config c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(cfg));
  c.vocab = common.vocab_size;
  c.D = common.hidden_size;
  LRNN_ASSIGN_OR_RETURN(c.H, cfg.get_int("num_heads", 4, 1, 4096));
  LRNN_ASSIGN_OR_RETURN(c.expand_k, cfg.get_float("expand_k", 0.5));
  LRNN_ASSIGN_OR_RETURN(c.expand_v, cfg.get_float("expand_v", 1.0));
  LRNN_ASSIGN_OR_RETURN(c.eps, cfg.get_float("norm_eps", 1e-5));
  LRNN_ASSIGN_OR_RETURN(c.proj_rank, cfg.get_int("proj_low_rank_dim", 32, 1, 1 << 20));
  LRNN_ASSIGN_OR_RETURN(c.gate_rank, cfg.get_int("gate_low_rank_dim", 64, 1, 1 << 20));
  LRNN_ASSIGN_OR_RETURN(c.norm_first, cfg.get_bool("norm_first", true));
  LRNN_ASSIGN_OR_RETURN(c.norm_bias, cfg.get_bool("norm_bias", true));
  if (cfg.has("attn"))
    return make_error(status_code::unsupported, "{}: hybrid softmax attention layers ('attn') are not supported yet", cfg.source());
  LRNN_ASSIGN_OR_RETURN(std::string act, cfg.get_string("hidden_act", "sqrelu"));
  if (act != "sqrelu")
    return make_error(status_code::unsupported, "{}: hidden_act '{}' is not supported (sqrelu only)", cfg.source(), act);
  LRNN_ASSIGN_OR_RETURN(std::string mode, cfg.get_string("attn_mode", "chunk"));
  if (mode != "chunk" && mode != "fused_recurrent")
    return make_error(status_code::invalid_argument, "{}: attn_mode '{}' is not one of chunk, fused_recurrent", cfg.source(), mode);
  c.key_dim = static_cast<int64_t>(static_cast<double>(c.D) * c.expand_k);
  c.value_dim = static_cast<int64_t>(static_cast<double>(c.D) * c.expand_v);
  if (c.key_dim % c.H || c.value_dim % c.H || c.key_dim == 0 || c.value_dim == 0)
    return make_error(status_code::invalid_argument, "{}: key dim {} / value dim {} (expand_k, expand_v) not divisible by num_heads={}",
                      cfg.source(), c.key_dim, c.value_dim, c.H);
  c.Kh = c.key_dim / c.H;
  c.Vh = c.value_dim / c.H;
  LRNN_ASSIGN_OR_RETURN(auto inter, cfg.get_optional_int("intermediate_size"));
  if (inter) {
    c.F = *inter;
  } else {
    LRNN_ASSIGN_OR_RETURN(auto ratio_opt, cfg.get_optional_float("hidden_ratio"));
    const double ratio = ratio_opt ? *ratio_opt : 3.5;
    c.F = static_cast<int64_t>(static_cast<double>(c.D) * ratio);
    c.F = 32 * ((c.F + 31) / 32);
  }
  if (c.F <= 0) return make_error(status_code::invalid_argument, "{}: intermediate size {} (hidden_ratio) must be positive", cfg.source(), c.F);
  return c;
}

}  // namespace lrnn::models
