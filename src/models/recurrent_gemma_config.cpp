#include "models/recurrent_gemma_config.h"

namespace lrnn::models {

result<recurrent_gemma_config> read_recurrent_gemma_config(const io::config& c) {
  const std::string& src = c.source();
  recurrent_gemma_config r;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(c));
  r.vocab = common.vocab_size;
  r.D = common.hidden_size;
  r.layers = common.num_hidden_layers;
  const int64_t D = r.D;
  LRNN_ASSIGN_OR_RETURN(r.heads, c.get_int("num_attention_heads", 10, 1, 1 << 16));
  LRNN_ASSIGN_OR_RETURN(r.kv_heads, c.get_int("num_key_value_heads", 1, 1, 1 << 16));
  if (r.heads % r.kv_heads != 0)
    return make_error(status_code::invalid_argument, "{}: num_attention_heads={} is not a multiple of num_key_value_heads={}", src,
                      r.heads, r.kv_heads);
  LRNN_ASSIGN_OR_RETURN(auto hd, c.get_optional_int("head_dim"));
  r.head_dim = hd ? *hd : D / r.heads;
  if (r.head_dim * r.heads != D)
    return make_error(status_code::unsupported, "{}: num_attention_heads={} x head_dim={} must equal hidden_size={}", src, r.heads,
                      r.head_dim, D);
  LRNN_ASSIGN_OR_RETURN(auto lru, c.get_optional_int("lru_width"));
  r.lru = lru ? *lru : D;
  if (r.lru <= 0 || r.lru % r.heads != 0)
    return make_error(status_code::invalid_argument, "{}: lru_width={} must be a positive multiple of num_attention_heads={}", src,
                      r.lru, r.heads);
  LRNN_ASSIGN_OR_RETURN(r.conv_width, c.get_int("conv1d_width", 4, 1, 1 << 12));
  LRNN_ASSIGN_OR_RETURN(r.window, c.get_int("attention_window_size", 2048, 2, int64_t{1} << 40));
  LRNN_ASSIGN_OR_RETURN(r.eps, c.get_float("rms_norm_eps", 1e-6));
  LRNN_ASSIGN_OR_RETURN(r.soft_cap, c.get_float("logits_soft_cap", 30.0));
  if (!(r.soft_cap > 0)) return make_error(status_code::unsupported, "{}: logits_soft_cap={} is not supported (must be > 0)", src, r.soft_cap);
  LRNN_ASSIGN_OR_RETURN(std::string act, c.get_string("hidden_activation", "gelu_pytorch_tanh"));
  if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast") r.act = ops::activation::gelu_tanh;
  else if (act == "gelu") r.act = ops::activation::gelu_erf;
  else
    return make_error(status_code::unsupported, "{}: hidden_activation '{}' is not supported (gelu_pytorch_tanh, gelu_new, gelu)", src, act);
  LRNN_ASSIGN_OR_RETURN(r.attn_bias, c.get_bool("attention_bias", false));
  LRNN_ASSIGN_OR_RETURN(r.inter_full, c.get_int("intermediate_size", 3 * D, 2, int64_t{1} << 30));
  r.F = r.inter_full / 2;  // transformers' MLP is intermediate_size // 2 wide

  // RoPE: rope_parameters (transformers >= 5) or the older top-level rope_theta / partial_rotary_factor.
  LRNN_ASSIGN_OR_RETURN(r.rope_theta, c.get_float("rope_theta", 10000.0));
  LRNN_ASSIGN_OR_RETURN(r.rotary_fraction, c.get_float("partial_rotary_factor", 0.5));
  if (c.has("rope_parameters")) {
    LRNN_ASSIGN_OR_RETURN(io::config rp, c.get_object("rope_parameters"));
    LRNN_ASSIGN_OR_RETURN(std::string rope_type, rp.get_string("rope_type", "default"));
    if (rope_type != "default")
      return make_error(status_code::unsupported, "{}: rope_parameters.rope_type '{}' is not supported (default only)", src, rope_type);
    LRNN_ASSIGN_OR_RETURN(r.rope_theta, rp.get_float("rope_theta", r.rope_theta));
    LRNN_ASSIGN_OR_RETURN(r.rotary_fraction, rp.get_float("partial_rotary_factor", r.rotary_fraction));
  }
  if (c.has("rope_scaling")) return make_error(status_code::unsupported, "{}: rope_scaling is not supported", src);
  // transformers splits each head into int(1 / partial_rotary_factor) chunks and rotates the first,
  // with frequencies over int(head_dim * partial_rotary_factor) dims; both must agree and be even.
  {
    const double f = r.rotary_fraction;
    const int64_t chunks = f > 0 ? static_cast<int64_t>(1.0 / f) : 0;
    const int64_t rot = static_cast<int64_t>(static_cast<double>(r.head_dim) * f);
    if (chunks < 1 || r.head_dim % chunks != 0 || r.head_dim / chunks != rot || rot % 2 != 0)
      return make_error(status_code::unsupported, "{}: partial_rotary_factor={} with head_dim={} is not supported (needs head_dim / int(1 / f) "
                        "== int(head_dim * f), even)", src, f, r.head_dim);
  }

  LRNN_ASSIGN_OR_RETURN(r.block_types, c.get_string_list("block_types", std::vector<std::string>{"recurrent", "recurrent", "attention"}));
  if (r.block_types.empty()) return make_error(status_code::invalid_argument, "{}: block_types is empty", src);
  for (const auto& b : r.block_types)
    if (b != "recurrent" && b != "attention")
      return make_error(status_code::unsupported, "{}: block_types entry '{}' is not supported (recurrent, attention)", src, b);
  LRNN_ASSIGN_OR_RETURN(r.tie_word_embeddings, c.get_bool("tie_word_embeddings", true));
  LRNN_ASSIGN_OR_RETURN(r.w_init_variance_scale, c.get_float("w_init_variance_scale", 0.01));
  LRNN_ASSIGN_OR_RETURN(r.final_w_init_variance_scale,
                        c.get_float("final_w_init_variance_scale", 2.0 / static_cast<double>(r.layers)));
  return r;
}

}  // namespace lrnn::models
