// Trainable fla causal LM (see fla_common.h); mirrors models/fla_common.cpp over ag::var.
#include "train/models/fla_common.h"

#include "models/fla_common.h"

namespace lrnn::train::fla {

result<ag::var> add_param(param_source& src, std::vector<parameter>& params, const std::string& name, const shape_t& shape,
                          const param_init& init, const std::string& why) {
  LRNN_ASSIGN_OR_RETURN(tensor t, src.get(name, shape, init, why));
  if (t.shape() != shape)
    return make_error(status_code::internal, "parameter '{}' is {}, expected {}", name, t.describe(), shape_to_string(shape));
  ag::var v(t, true);
  params.push_back({name, v});
  return v;
}

result<ag::var> gated_head_output(const ag::var& o, int64_t heads, const ag::var& norm_w, double eps, const ag::var& x,
                                  const ag::var& g_proj, const ag::var& o_proj) {
  LRNN_ASSIGN_OR_RETURN(ag::var y, ag::group_rms_norm(o, heads, norm_w, eps));
  if (g_proj.defined()) {
    LRNN_ASSIGN_OR_RETURN(ag::var g, ag::linear(x, g_proj));
    LRNN_ASSIGN_OR_RETURN(g, ag::activation(g, ops::activation::silu));
    LRNN_ASSIGN_OR_RETURN(y, ag::mul(y, g));
  }
  return ag::linear(y, o_proj);
}

result<std::unique_ptr<trainable_model>> causal_lm::build(const io::config& c, param_source& src, const std::string& type,
                                                          const mixer_builder& build_mixer) {
  auto m = std::make_unique<causal_lm>();
  m->type_ = type;
  m->config_ = c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(c));
  m->vocab_ = common.vocab_size;
  const int64_t D = common.hidden_size;
  LRNN_ASSIGN_OR_RETURN(m->eps_, c.get_float("norm_eps", 1e-6));
  if (c.has("attn"))
    return make_error(status_code::unsupported, "{}: hybrid softmax attention layers ('attn') are not supported yet", c.source());
  if (c.has("attnres_block_size"))
    return make_error(status_code::unsupported, "{}: attnres_block_size is not supported yet", c.source());
  LRNN_ASSIGN_OR_RETURN(bool l2warp, c.get_bool("use_l2warp", false));
  if (l2warp) return make_error(status_code::unsupported, "{}: use_l2warp=true is not supported yet", c.source());
  LRNN_ASSIGN_OR_RETURN(double std, c.get_float("initializer_range", 0.02));
  LRNN_ASSIGN_OR_RETURN(bool tie, c.get_bool("tie_word_embeddings", false));
  LRNN_ASSIGN_OR_RETURN(auto inter, models::fla::mlp_intermediate_size(c, D));
  const param_init normal = param_init::normal(std), ones = param_init::ones();
  auto& P = m->params_;
  const std::string why = fmt::format("vocab_size={}, hidden_size={}", m->vocab_, D), dwhy = fmt::format("hidden_size={}", D);
  LRNN_ASSIGN_OR_RETURN(m->embed_, add_param(src, P, "model.embeddings.weight", {m->vocab_, D}, normal, why));
  for (int64_t l = 0; l < common.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    layer L;
    LRNN_ASSIGN_OR_RETURN(L.attn_norm, add_param(src, P, p + "attn_norm.weight", {D}, ones, dwhy));
    LRNN_ASSIGN_OR_RETURN(L.mix, build_mixer(src, P, p + "attn."));
    LRNN_ASSIGN_OR_RETURN(L.mlp_norm, add_param(src, P, p + "mlp_norm.weight", {D}, ones, dwhy));
    LRNN_ASSIGN_OR_RETURN(L.gate, add_param(src, P, p + "mlp.gate_proj.weight", {inter.first, D}, normal, inter.second));
    LRNN_ASSIGN_OR_RETURN(L.up, add_param(src, P, p + "mlp.up_proj.weight", {inter.first, D}, normal, inter.second));
    LRNN_ASSIGN_OR_RETURN(L.down, add_param(src, P, p + "mlp.down_proj.weight", {D, inter.first}, normal, inter.second));
    m->layers_.push_back(std::move(L));
  }
  LRNN_ASSIGN_OR_RETURN(m->final_norm_, add_param(src, P, "model.norm.weight", {D}, ones, why));
  if (tie) m->lm_head_ = m->embed_;
  else {
    LRNN_ASSIGN_OR_RETURN(m->lm_head_, add_param(src, P, "lm_head.weight", {m->vocab_, D}, normal, why));
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}

result<ag::var> causal_lm::forward(const tensor& ids, models::compute_form form) {
  if (ids.dim() != 2 || (ids.type() != dtype::i64 && ids.type() != dtype::i32) || ids.size(1) == 0)
    return make_error(status_code::invalid_argument, "token ids must be int64 [B, T] with T >= 1, got {}", ids.describe());
  LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, embed_));  // [B, T, D]
  for (const layer& L : layers_) {
    LRNN_ASSIGN_OR_RETURN(ag::var x, ag::rms_norm(h, L.attn_norm, eps_));
    LRNN_ASSIGN_OR_RETURN(ag::var a, L.mix->forward(x, form));
    LRNN_ASSIGN_OR_RETURN(h, ag::add(h, a));
    LRNN_ASSIGN_OR_RETURN(ag::var y, ag::rms_norm(h, L.mlp_norm, eps_));
    LRNN_ASSIGN_OR_RETURN(ag::var g, ag::linear(y, L.gate));
    LRNN_ASSIGN_OR_RETURN(g, ag::activation(g, ops::activation::silu));
    LRNN_ASSIGN_OR_RETURN(ag::var u, ag::linear(y, L.up));
    LRNN_ASSIGN_OR_RETURN(g, ag::mul(g, u));
    LRNN_ASSIGN_OR_RETURN(ag::var mo, ag::linear(g, L.down));
    LRNN_ASSIGN_OR_RETURN(h, ag::add(h, mo));
  }
  LRNN_ASSIGN_OR_RETURN(ag::var n, ag::rms_norm(h, final_norm_, eps_));
  return ag::linear(n, lm_head_);
}

}  // namespace lrnn::train::fla
