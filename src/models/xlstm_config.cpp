#include "models/xlstm_config.h"

#include <cmath>
#include <initializer_list>
#include <string>

namespace lrnn::models {
namespace {

// Python's round_up_to_next_multiple_of on a float: int(((x + m - 1) // m) * m).
int64_t round_up(double x, int64_t m) {
  const double md = static_cast<double>(m);
  return static_cast<int64_t>(std::floor((x + md - 1) / md) * md);
}

status check_one_of(const io::config& cfg, const std::string& key, const std::string& value,
                    std::initializer_list<const char*> allowed, const char* why) {
  for (const char* a : allowed)
    if (value == a) return {};
  return make_error(status_code::unsupported, "{}: {}='{}' is not supported ({})", cfg.source(), key, value, why);
}

}  // namespace

result<xlstm_config> read_xlstm_config(const io::config& cfg) {
  xlstm_config c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(cfg));
  c.vocab = common.vocab_size;
  c.D = common.hidden_size;
  c.L = common.num_hidden_layers;
  c.tie = common.tie_word_embeddings.value_or(false);
  LRNN_ASSIGN_OR_RETURN(auto emb, cfg.get_optional_int("embedding_dim"));
  LRNN_ASSIGN_OR_RETURN(auto hid, cfg.get_optional_int("hidden_size"));
  if (emb && hid && *emb != *hid)
    return make_error(status_code::unsupported, "{}: embedding_dim={} differs from hidden_size={} (the reference model needs them equal)",
                      cfg.source(), *emb, *hid);
  LRNN_ASSIGN_OR_RETURN(c.H, cfg.get_int("num_heads", 8, 1, 1 << 16));
  LRNN_ASSIGN_OR_RETURN(c.bias, cfg.get_bool("use_bias", false));
  LRNN_ASSIGN_OR_RETURN(c.norm_eps, cfg.get_float("norm_eps", 1e-6));
  LRNN_ASSIGN_OR_RETURN(c.eps, cfg.get_float("eps", 1e-6));
  LRNN_ASSIGN_OR_RETURN(c.qk_dim_factor, cfg.get_float("qk_dim_factor", 0.5));
  LRNN_ASSIGN_OR_RETURN(c.v_dim_factor, cfg.get_float("v_dim_factor", 1.0));
  LRNN_ASSIGN_OR_RETURN(c.gate_soft_cap, cfg.get_optional_float("gate_soft_cap"));
  LRNN_ASSIGN_OR_RETURN(c.logit_soft_cap, cfg.get_optional_float("output_logit_soft_cap"));
  if (c.gate_soft_cap && *c.gate_soft_cap <= 0)
    return make_error(status_code::invalid_argument, "{}: gate_soft_cap={} must be > 0 (or null for none)", cfg.source(), *c.gate_soft_cap);
  if (c.logit_soft_cap && *c.logit_soft_cap <= 0)
    return make_error(status_code::invalid_argument, "{}: output_logit_soft_cap={} must be > 0 (or null for none)", cfg.source(),
                      *c.logit_soft_cap);
  LRNN_ASSIGN_OR_RETURN(double ffn_factor, cfg.get_float("ffn_proj_factor", 2.667));
  LRNN_ASSIGN_OR_RETURN(int64_t ffn_multiple, cfg.get_int("ffn_round_up_to_multiple_of", 64, 1, 1 << 20));
  if (!(ffn_factor > 0) || ffn_factor > 1024)
    return make_error(status_code::invalid_argument, "{}: ffn_proj_factor={} must lie in (0, 1024]", cfg.source(), ffn_factor);
  c.up_dim = round_up(static_cast<double>(c.D) * ffn_factor, ffn_multiple);

  LRNN_ASSIGN_OR_RETURN(std::string weight_mode, cfg.get_string("weight_mode", "single"));
  LRNN_TRY(check_one_of(cfg, "weight_mode", weight_mode, {"single", "fused"}, "single or fused"));
  c.fused = weight_mode == "fused";
  LRNN_ASSIGN_OR_RETURN(bool out_norm, cfg.get_bool("add_out_norm", true));
  if (!out_norm)
    return make_error(status_code::unsupported, "{}: add_out_norm=false is not supported (transformers' xLSTM always applies out_norm)",
                      cfg.source());
  // The backend settings choose kernels, not math: every mode and chunkwise kernel computes the
  // same mLSTM with the stabiliser starting at m = 0. The parallel kernels take the stabiliser
  // over the sequence alone (no m = 0 term), which changes the eps term of the normaliser.
  LRNN_ASSIGN_OR_RETURN(std::string mode, cfg.get_string("mode", "inference"));
  LRNN_TRY(check_one_of(cfg, "mode", mode, {"train", "train_with_padding", "inference"}, "train, train_with_padding or inference"));
  LRNN_ASSIGN_OR_RETURN(std::string chunkwise, cfg.get_string("chunkwise_kernel", "chunkwise--native_autograd"));
  LRNN_TRY(check_one_of(cfg, "chunkwise_kernel", chunkwise,
                        {"chunkwise--native_autograd", "chunkwise--native_custbw", "chunkwise--triton_limit_chunk",
                         "chunkwise--triton_xl_chunk"},
                        "lrnn computes the chunkwise mLSTM with the exponential input gate and m starting at 0"));
  LRNN_ASSIGN_OR_RETURN(std::string seq_kernel, cfg.get_string("sequence_kernel", "native_sequence__native"));
  LRNN_TRY(check_one_of(cfg, "sequence_kernel", seq_kernel, {"native_sequence__native", "native_sequence__triton"},
                        "native_sequence__native or native_sequence__triton"));
  LRNN_ASSIGN_OR_RETURN(std::string step_kernel, cfg.get_string("step_kernel", "native"));
  LRNN_TRY(check_one_of(cfg, "step_kernel", step_kernel, {"native", "triton"}, "native or triton"));

  c.qk_dim = static_cast<int64_t>(static_cast<double>(c.D) * c.qk_dim_factor);
  c.v_dim = static_cast<int64_t>(static_cast<double>(c.D) * c.v_dim_factor);
  if (c.qk_dim <= 0 || c.v_dim <= 0 || c.qk_dim % c.H || c.v_dim % c.H)
    return make_error(status_code::invalid_argument,
                      "{}: qk dim {} (hidden_size * qk_dim_factor={}) and v dim {} (hidden_size * v_dim_factor={}) must be "
                      "positive multiples of num_heads={}",
                      cfg.source(), c.qk_dim, c.qk_dim_factor, c.v_dim, c.v_dim_factor, c.H);
  c.Kh = c.qk_dim / c.H;
  c.Vh = c.v_dim / c.H;
  return c;
}

}  // namespace lrnn::models
