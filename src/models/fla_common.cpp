// Shared fla-format model pieces (see fla_common.h).
#include "models/fla_common.h"

#include "ops/dense/dense.h"
#include "ops/norm/norm.h"

#include <cmath>

namespace lrnn::models::fla {

result<tensor> rms_norm(const tensor& x, const tensor& w, double eps) {
  ops::rms_norm_spec spec;
  spec.eps = eps;
  return ops::rms_norm_forward(spec, x, w, ops::norm_form::cpu);
}

result<tensor> gated_head_output(const tensor& o, int64_t heads, const tensor& norm_w, double eps, const tensor& x,
                                 const tensor& g_proj, const tensor& o_proj) {
  LRNN_ASSIGN_OR_RETURN(tensor y, ops::group_rms_norm(o, heads, norm_w, eps));
  if (g_proj.defined()) {
    LRNN_ASSIGN_OR_RETURN(tensor gate, ops::linear(x, g_proj));
    ops::apply_activation(gate, ops::activation::silu);
    LRNN_TRY(ops::mul_inplace(y, gate));
  }
  return ops::linear(y, o_proj);
}

result<std::pair<int64_t, std::string>> mlp_intermediate_size(const io::config& c, int64_t hidden) {
  LRNN_ASSIGN_OR_RETURN(auto inter_opt, c.get_optional_int("intermediate_size"));
  int64_t inter = 0;
  std::string why;
  if (inter_opt) {
    inter = *inter_opt;
    why = fmt::format("intermediate_size={}", inter);
  } else {
    LRNN_ASSIGN_OR_RETURN(int64_t ratio, c.get_int("hidden_ratio", 4, 1, 64));
    inter = static_cast<int64_t>(static_cast<double>(hidden) * static_cast<double>(ratio) * 2 / 3);
    inter = 256 * ((inter + 255) / 256);
    why = fmt::format("hidden_ratio={} -> intermediate {}", ratio, inter);
  }
  LRNN_ASSIGN_OR_RETURN(std::string act, c.get_string("hidden_act", "swish"));
  if (act != "swish" && act != "silu")
    return make_error(status_code::unsupported, "{}: hidden_act '{}' is not supported (swish only)", c.source(), act);
  return std::make_pair(inter, why);
}

result<gated_mlp> gated_mlp::load(weight_loader& w, const io::config& c, const std::string& prefix, int64_t hidden) {
  LRNN_ASSIGN_OR_RETURN(auto size, mlp_intermediate_size(c, hidden));
  const auto& [inter, why] = size;
  gated_mlp m;
  LRNN_ASSIGN_OR_RETURN(m.gate, w.get(prefix + "gate_proj.weight", {inter, hidden}, why));
  LRNN_ASSIGN_OR_RETURN(m.up, w.get(prefix + "up_proj.weight", {inter, hidden}, why));
  LRNN_ASSIGN_OR_RETURN(m.down, w.get(prefix + "down_proj.weight", {hidden, inter}, why));
  return m;
}

result<tensor> gated_mlp::forward(const tensor& x) const {
  LRNN_ASSIGN_OR_RETURN(tensor g, ops::linear(x, gate));
  LRNN_ASSIGN_OR_RETURN(tensor u, ops::linear(x, up));
  ops::apply_activation(g, ops::activation::silu);
  LRNN_TRY(ops::mul_inplace(g, u));
  return ops::linear(g, down);
}

result<short_conv> short_conv::load(weight_loader& w, const std::string& prefix, int64_t channels, int64_t width, bool bias) {
  short_conv s;
  s.channels = channels;
  s.width = width;
  LRNN_ASSIGN_OR_RETURN(tensor wt, w.get(prefix + "weight", {channels, 1, width}, fmt::format("conv_size={}", width)));
  LRNN_ASSIGN_OR_RETURN(tensor w2, wt.view({channels, width}));
  LRNN_ASSIGN_OR_RETURN(tensor tr, w2.transpose(0, 1));
  LRNN_ASSIGN_OR_RETURN(s.weight, tr.contiguous());
  if (bias) {
    LRNN_ASSIGN_OR_RETURN(s.bias, w.get(prefix + "bias", {channels}, "conv_bias=true"));
  }
  return s;
}

result<tensor> short_conv::forward(const tensor& x, model_state& st, const std::string& key) const {
  const int64_t B = x.size(0);
  LRNN_ASSIGN_OR_RETURN(tensor cache, state_tensor(st, key, {B, width - 1, channels}));
  ops::conv1d_spec spec;
  spec.activation = ops::conv1d_activation::silu;
  ops::conv1d_inputs in;
  in.x = x;
  in.weight = weight;
  in.bias = bias;
  LRNN_ASSIGN_OR_RETURN(auto out, ops::conv1d_forward(spec, in, cache, ops::conv1d_form::cpu, true));
  st.tensors[key] = out.final_cache;
  return out.y;
}

result<lm_frame> lm_frame::load(weight_loader& w, const io::config& c, int64_t vocab, int64_t hidden, double eps) {
  lm_frame f;
  f.norm_eps = eps;
  const std::string why = fmt::format("vocab_size={}, hidden_size={}", vocab, hidden);
  LRNN_ASSIGN_OR_RETURN(f.embed, w.get("model.embeddings.weight", {vocab, hidden}, why));
  LRNN_ASSIGN_OR_RETURN(f.final_norm, w.get("model.norm.weight", {hidden}, why));
  LRNN_ASSIGN_OR_RETURN(bool tie, c.get_bool("tie_word_embeddings", false));
  if (tie && !w.has("lm_head.weight")) f.lm_head = f.embed;
  else {
    LRNN_ASSIGN_OR_RETURN(f.lm_head, w.get("lm_head.weight", {vocab, hidden}, why));
  }
  return f;
}

result<tensor> lm_frame::embed_tokens(const tensor& ids) const { return ops::embedding(ids, embed); }

result<tensor> lm_frame::logits(const tensor& h) const {
  LRNN_ASSIGN_OR_RETURN(tensor n, rms_norm(h, final_norm, norm_eps));
  return ops::linear(n, lm_head);
}

uint64_t lm_frame::bytes_not_loaded_per_token() const {
  // The loader counted the table, the norm and an untied head once; a token reads one row of
  // the table and, when tied, the table again as the head.
  const bool tied = lm_head.data<float>() == embed.data<float>();
  return static_cast<uint64_t>(embed.size(1)) * 4 + (tied ? lm_head.nbytes() : 0);
}

ops::decay_attn_form decay_form(compute_form f, int64_t T) {
  switch (f) {
    case compute_form::chunk: return ops::decay_attn_form::chunk;
    case compute_form::recurrent: return ops::decay_attn_form::recurrent;
    case compute_form::parallel: return ops::decay_attn_form::parallel;
    case compute_form::automatic:
      if (T == 1) return ops::decay_attn_form::recurrent;
      return T <= 16 ? ops::decay_attn_form::parallel : ops::decay_attn_form::chunk;
  }
  return ops::decay_attn_form::chunk;
}

result<tensor> state_tensor(model_state& st, const std::string& key, const shape_t& shape) {
  auto it = st.tensors.find(key);
  if (it != st.tensors.end()) {
    if (it->second.shape() != shape)
      return make_error(status_code::invalid_argument, "state tensor '{}' is {}, expected {}", key, it->second.describe(),
                        shape_to_string(shape));
    return it->second;
  }
  LRNN_ASSIGN_OR_RETURN(tensor z, tensor::zeros(shape, dtype::f32));
  st.tensors[key] = z;
  return z;
}

status check_ids(const tensor& ids, const model_state& st, int64_t vocab) {
  if (ids.dim() != 2 || (ids.type() != dtype::i64 && ids.type() != dtype::i32))
    return make_error(status_code::invalid_argument, "token ids must be int64 [B, T], got {}", ids.describe());
  if (ids.size(0) != st.batch)
    return make_error(status_code::invalid_argument, "token ids have batch {}, the state has {}", ids.size(0), st.batch);
  if (ids.size(1) == 0) return make_error(status_code::invalid_argument, "no tokens to process");
  for (double v : ids.to_doubles())
    if (v < 0 || v >= static_cast<double>(vocab))
      return make_error(status_code::invalid_argument, "token id {} is outside the vocabulary [0, {})", static_cast<int64_t>(v), vocab);
  return {};
}

}  // namespace lrnn::models::fla

namespace lrnn::models::fla {

status check_lm_options(const io::config& c) {
  if (c.has("attn"))
    return make_error(status_code::unsupported, "{}: hybrid softmax attention layers ('attn') are not supported yet", c.source());
  if (c.has("attnres_block_size"))
    return make_error(status_code::unsupported, "{}: attnres_block_size is not supported yet", c.source());
  LRNN_ASSIGN_OR_RETURN(bool l2warp, c.get_bool("use_l2warp", false));
  if (l2warp) return make_error(status_code::unsupported, "{}: use_l2warp=true is not supported yet", c.source());
  return {};
}

result<std::unique_ptr<model>> causal_lm::build(const load_context& ctx, const std::string& type, const mixer_loader& load_mixer) {
  const io::config& c = ctx.config;
  auto m = std::make_unique<causal_lm>();
  m->type_ = type;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(c));
  m->vocab_ = common.vocab_size;
  const int64_t D = common.hidden_size;
  LRNN_ASSIGN_OR_RETURN(m->eps_, c.get_float("norm_eps", 1e-6));
  LRNN_TRY(check_lm_options(c));
  weight_loader w(ctx.weights, c.source());
  LRNN_ASSIGN_OR_RETURN(m->frame_, lm_frame::load(w, c, m->vocab_, D, m->eps_));
  for (int64_t l = 0; l < common.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    layer L;
    LRNN_ASSIGN_OR_RETURN(L.attn_norm, w.get(p + "attn_norm.weight", {D}, fmt::format("hidden_size={}", D)));
    LRNN_ASSIGN_OR_RETURN(L.mix, load_mixer(w, p + "attn."));
    LRNN_ASSIGN_OR_RETURN(L.mlp_norm, w.get(p + "mlp_norm.weight", {D}, fmt::format("hidden_size={}", D)));
    LRNN_ASSIGN_OR_RETURN(L.mlp, gated_mlp::load(w, c, p + "mlp.", D));
    m->layers_.push_back(std::move(L));
  }
  if (auto extra = w.unused(); !extra.empty())
    return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's {} (a config option not implemented?)",
                      ctx.dir, extra.front(), type);
  m->weight_bytes_ = w.bytes_loaded() - m->frame_.embed.nbytes() + m->frame_.bytes_not_loaded_per_token();
  return std::unique_ptr<model>(std::move(m));
}

result<model_state> causal_lm::initial_state(int64_t batch) const {
  if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
  model_state st;
  st.batch = batch;
  for (size_t l = 0; l < layers_.size(); ++l) LRNN_TRY(layers_[l].mix->init_state(st, batch, fmt::format("layers.{}.", l)));
  return st;
}

result<tensor> causal_lm::forward(const tensor& ids, model_state& st, compute_form form) {
  LRNN_TRY(check_ids(ids, st, vocab_));
  LRNN_ASSIGN_OR_RETURN(tensor h, frame_.embed_tokens(ids));  // [B, T, D]
  for (size_t l = 0; l < layers_.size(); ++l) {
    const layer& L = layers_[l];
    LRNN_ASSIGN_OR_RETURN(tensor x, rms_norm(h, L.attn_norm, eps_));
    LRNN_ASSIGN_OR_RETURN(tensor a, L.mix->forward(x, st, fmt::format("layers.{}.", l), form));
    LRNN_TRY(ops::add_inplace(h, a));
    LRNN_ASSIGN_OR_RETURN(tensor y, rms_norm(h, L.mlp_norm, eps_));
    LRNN_ASSIGN_OR_RETURN(tensor mo, L.mlp.forward(y));
    LRNN_TRY(ops::add_inplace(h, mo));
  }
  return frame_.logits(h);
}

void apply_rotary(tensor& x, const std::vector<int64_t>& start, double base) {
  LRNN_ASSERT(x.type() == dtype::f32 && x.is_contiguous() && x.dim() == 4, "apply_rotary on {}", x.describe());
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(D));
  float* p = x.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const double pos = static_cast<double>(start[b] + t);
      for (int64_t i = 0; i < half; ++i) {
        const double a = pos * inv_freq[i];
        const float c = static_cast<float>(std::cos(a)), s = static_cast<float>(std::sin(a));
        for (int64_t h = 0; h < H; ++h) {
          float* r = p + ((b * T + t) * H + h) * D;
          const float x1 = r[i], x2 = r[i + half];
          r[i] = x1 * c - x2 * s;
          r[i + half] = x2 * c + x1 * s;
        }
      }
    }
}

result<std::vector<int64_t>> positions(model_state& st, const std::string& key, int64_t batch) {
  auto it = st.tensors.find(key);
  if (it == st.tensors.end()) {
    LRNN_ASSIGN_OR_RETURN(tensor z, tensor::zeros({batch}, dtype::i64));
    it = st.tensors.emplace(key, z).first;
  }
  if (it->second.shape() != shape_t{batch} || it->second.type() != dtype::i64)
    return make_error(status_code::invalid_argument, "state tensor '{}' is {}, expected i64[{}]", key, it->second.describe(), batch);
  const int64_t* p = it->second.data<int64_t>();
  return std::vector<int64_t>(p, p + batch);
}

void advance_positions(model_state& st, const std::string& key, int64_t by) {
  tensor& t = st.tensors.at(key);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] += by;
}

}  // namespace lrnn::models::fla
