// Trainable fla causal LM (see fla_common.h); mirrors models/fla_common.cpp over ag::var.
#include "train/models/fla_common.h"

#include "models/fla_common.h"
#include "ops/conv1d/autograd.h"

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

result<ag::var> short_conv::forward(const ag::var& x) const {
  LRNN_ASSIGN_OR_RETURN(ag::var w2, ag::reshape(weight, {channels, width}));
  LRNN_ASSIGN_OR_RETURN(ag::var wt, ag::transpose(w2, 0, 1));  // [W, C]
  ops::conv1d_spec spec;
  spec.activation = ops::conv1d_activation::silu;
  return ag::conv1d(spec, x, wt, bias);
}

status qkv_projection::add_projections(param_source& src, std::vector<parameter>& params, const std::string& prefix, int64_t D,
                                       int64_t key_dim, int64_t value_dim, const param_init& normal, const std::string& kwhy,
                                       const std::string& vwhy, ag::var* gate) {
  LRNN_ASSIGN_OR_RETURN(q, add_param(src, params, prefix + "q_proj.weight", {key_dim, D}, normal, kwhy));
  LRNN_ASSIGN_OR_RETURN(k, add_param(src, params, prefix + "k_proj.weight", {key_dim, D}, normal, kwhy));
  LRNN_ASSIGN_OR_RETURN(v, add_param(src, params, prefix + "v_proj.weight", {value_dim, D}, normal, vwhy));
  if (gate) {
    LRNN_ASSIGN_OR_RETURN(*gate, add_param(src, params, prefix + "g_proj.weight", {value_dim, D}, normal, vwhy));
  }
  return {};
}

status qkv_projection::add_convs(param_source& src, std::vector<parameter>& params, const std::string& prefix, int64_t key_dim,
                                 int64_t value_dim, int64_t conv_size, bool conv_bias, const param_init& normal) {
  conv = true;
  const std::string cw = fmt::format("conv_size={}", conv_size);
  auto add = [&](const std::string& name, int64_t C, short_conv& sc) -> status {
    sc.channels = C;
    sc.width = conv_size;
    LRNN_ASSIGN_OR_RETURN(sc.weight, add_param(src, params, prefix + name + ".weight", {C, 1, conv_size}, normal, cw));
    if (conv_bias) {
      LRNN_ASSIGN_OR_RETURN(sc.bias, add_param(src, params, prefix + name + ".bias", {C}, param_init::zeros(), "conv_bias=true"));
    }
    return {};
  };
  LRNN_TRY(add("q_conv1d", key_dim, q_conv));
  LRNN_TRY(add("k_conv1d", key_dim, k_conv));
  LRNN_TRY(add("v_conv1d", value_dim, v_conv));
  return {};
}

result<std::array<ag::var, 3>> qkv_projection::forward(const ag::var& x) const {
  LRNN_ASSIGN_OR_RETURN(ag::var qx, ag::linear(x, q));
  LRNN_ASSIGN_OR_RETURN(ag::var kx, ag::linear(x, k));
  LRNN_ASSIGN_OR_RETURN(ag::var vx, ag::linear(x, v));
  if (conv) {
    LRNN_ASSIGN_OR_RETURN(qx, q_conv.forward(qx));
    LRNN_ASSIGN_OR_RETURN(kx, k_conv.forward(kx));
    LRNN_ASSIGN_OR_RETURN(vx, v_conv.forward(vx));
  }
  return std::array<ag::var, 3>{qx, kx, vx};
}

status split_heads(std::array<ag::var, 3>& qkv, int64_t H, int64_t Kh, int64_t Vh) {
  const int64_t B = qkv[0].size(0), T = qkv[0].size(1);
  LRNN_ASSIGN_OR_RETURN(qkv[0], ag::reshape(qkv[0], {B, T, H, Kh}));
  LRNN_ASSIGN_OR_RETURN(qkv[1], ag::reshape(qkv[1], {B, T, H, Kh}));
  LRNN_ASSIGN_OR_RETURN(qkv[2], ag::reshape(qkv[2], {B, T, H, Vh}));
  return {};
}

status add_head_output(param_source& src, std::vector<parameter>& params, const std::string& prefix, const std::string& norm_name,
                       bool with_norm, int64_t Vh, const std::string& norm_why, int64_t D, int64_t value_dim,
                       const param_init& normal, const std::string& o_why, ag::var& norm_w, ag::var& o_proj) {
  if (with_norm) {
    LRNN_ASSIGN_OR_RETURN(norm_w, add_param(src, params, prefix + norm_name, {Vh}, param_init::ones(), norm_why));
  }
  LRNN_ASSIGN_OR_RETURN(o_proj, add_param(src, params, prefix + "o_proj.weight", {D, value_dim}, normal, o_why));
  return {};
}

result<ag::var> gated_head_output(const ag::var& o, int64_t heads, const ag::var& norm_w, double eps, const ag::var& x,
                                  const ag::var& g_proj, const ag::var& o_proj) {
  LRNN_ASSIGN_OR_RETURN(ag::var y, ag::reshape(o, {o.size(0), o.size(1), o.size(2) * o.size(3)}));
  LRNN_ASSIGN_OR_RETURN(y, ag::group_rms_norm(y, heads, norm_w, eps));
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
  LRNN_TRY(models::fla::check_lm_options(c));
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
