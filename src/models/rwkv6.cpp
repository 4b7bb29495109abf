// RWKV-6 (Finch) in fla's format (model_type "rwkv6"): LayerNorm blocks of time mixing (token
// shift with data-dependent lerps, decay w = -exp(LoRA), bonus u, GroupNorm over heads and a
// SiLU gate) and channel mixing (squared ReLU key, sigmoid receptance), with a pre-LayerNorm on
// block 0 (norm_first). Reference: fla/layers/rwkv6.py, fla/models/rwkv6/modeling_rwkv6.py;
// the operator is decay_attn (per_token_key decay with bonus, scale 1).
#include "models/fla_common.h"
#include "models/rwkv6_config.h"
#include "ops/dense/dense.h"

#include <array>
#include <cstring>

namespace lrnn::models {
namespace {

// The five data-dependent lerps of the time mix, in fla's x_bias / x_proj order.
enum lerp_index { lerp_r = 0, lerp_w, lerp_k, lerp_v, lerp_g, lerp_count };

struct rwkv6_layer {
  tensor pre_norm_w, pre_norm_b, attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b;
  // Time mix.
  tensor x_mu, x_proj0, x_bias;
  std::array<tensor, lerp_count> x_proj2;  // x_proj.2.weight split per lerp: [D, proj_rank] each
  tensor r_proj, k_proj, v_proj, g_proj, w_lora0, w_lora2, w_lora2_bias, bonus, g_norm_w, g_norm_b, o_proj;
  // Channel mix.
  tensor ffn_key_mu, ffn_key, ffn_rec_mu, ffn_rec, ffn_value;
};



// x + delta * (m + bias), m [B, T, D] per token, bias [D].
tensor lerp_dynamic(const tensor& x, const tensor& delta, const tensor& m, const float* bias) {
  const int64_t D = x.size(2), rows = x.numel() / D;
  tensor out = tensor::empty(x.shape(), dtype::f32).value();
  const float* xp = x.data<float>();
  const float* dp = delta.data<float>();
  const float* mp = m.data<float>();
  float* op = out.data<float>();
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t d = 0; d < D; ++d) op[i * D + d] = xp[i * D + d] + dp[i * D + d] * (mp[i * D + d] + bias[d]);
  return out;
}


class rwkv6_model final : public model {
 public:
  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return c_.vocab; }
  uint64_t weight_bytes() const override { return weight_bytes_; }

  result<model_state> initial_state(int64_t batch) const override {
    if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
    model_state st;
    st.batch = batch;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string p = fmt::format("layers.{}.", l);
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "s"], tensor::zeros({batch, c_.H, c_.Kh, c_.Vh}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "attn_x"], tensor::zeros({batch, c_.D}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "ffn_x"], tensor::zeros({batch, c_.D}, dtype::f32));
    }
    return st;
  }

  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override {
    LRNN_TRY(fla::check_ids(ids, st, c_.vocab));
    LRNN_ASSIGN_OR_RETURN(tensor h, ops::embedding(ids, embed_));
    for (size_t l = 0; l < layers_.size(); ++l) {
      const rwkv6_layer& L = layers_[l];
      const std::string p = fmt::format("layers.{}.", l);
      if (L.pre_norm_w.defined()) {
        LRNN_ASSIGN_OR_RETURN(h, ops::layer_norm(h, L.pre_norm_w, L.pre_norm_b, c_.eps));
      }
      LRNN_ASSIGN_OR_RETURN(tensor x, ops::layer_norm(h, L.attn_norm_w, L.attn_norm_b, c_.eps));
      LRNN_ASSIGN_OR_RETURN(tensor att, time_mix(L, x, st, p, form));
      LRNN_TRY(ops::add_inplace(h, att));
      LRNN_ASSIGN_OR_RETURN(tensor y, ops::layer_norm(h, L.ffn_norm_w, L.ffn_norm_b, c_.eps));
      LRNN_ASSIGN_OR_RETURN(tensor ffn, channel_mix(L, y, st, p));
      LRNN_TRY(ops::add_inplace(h, ffn));
    }
    LRNN_ASSIGN_OR_RETURN(tensor n, ops::layer_norm(h, norm_w_, norm_b_, c_.eps));
    return ops::linear(n, head_);
  }

  static result<std::unique_ptr<model>> build(const load_context& ctx);

 private:
  result<tensor> time_mix(const rwkv6_layer& L, const tensor& x, model_state& st, const std::string& p, compute_form form) const {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor last, fla::state_tensor(st, p + "attn_x", {B, c_.D}));
    LRNN_ASSIGN_OR_RETURN(tensor delta, ops::token_shift(x, last));
    st.tensors[p + "attn_x"] = last;
    // Data-dependent lerp coefficients: tanh((x + delta * mu) A) split in five, each times B_n.
    LRNN_ASSIGN_OR_RETURN(tensor low_in, ops::shift_lerp(x, delta, L.x_mu));
    LRNN_ASSIGN_OR_RETURN(tensor low, ops::linear(low_in, L.x_proj0));
    ops::apply_activation(low, ops::activation::tanh);
    const float* bias = L.x_bias.data<float>();
    std::array<tensor, lerp_count> mixed;
    for (int n = 0; n < lerp_count; ++n) {
      LRNN_ASSIGN_OR_RETURN(tensor part, low.slice(2, n * c_.proj_rank, (n + 1) * c_.proj_rank));
      LRNN_ASSIGN_OR_RETURN(part, part.contiguous());
      LRNN_ASSIGN_OR_RETURN(tensor m, ops::linear(part, L.x_proj2[n]));
      mixed[n] = lerp_dynamic(x, delta, m, bias + n * c_.D);
    }
    LRNN_ASSIGN_OR_RETURN(tensor r, ops::linear(mixed[lerp_r], L.r_proj));
    LRNN_ASSIGN_OR_RETURN(tensor w_low, ops::linear(mixed[lerp_w], L.w_lora0));
    ops::apply_activation(w_low, ops::activation::tanh);
    LRNN_ASSIGN_OR_RETURN(tensor w, ops::linear(w_low, L.w_lora2, L.w_lora2_bias));
    ops::apply_activation(w, ops::activation::exp);
    ops::scale_inplace(w, -1.0f);  // log decay -exp(.)
    LRNN_ASSIGN_OR_RETURN(tensor k, ops::linear(mixed[lerp_k], L.k_proj));
    LRNN_ASSIGN_OR_RETURN(tensor v, ops::linear(mixed[lerp_v], L.v_proj));
    LRNN_ASSIGN_OR_RETURN(tensor g, ops::linear(mixed[lerp_g], L.g_proj));

    ops::decay_attn_inputs in;
    LRNN_ASSIGN_OR_RETURN(in.q, r.view({B, T, c_.H, c_.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.k, k.view({B, T, c_.H, c_.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.v, v.view({B, T, c_.H, c_.Vh}));
    LRNN_ASSIGN_OR_RETURN(in.g, w.view({B, T, c_.H, c_.Kh}));
    in.u = L.bonus;
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    spec.bonus = true;
    spec.scale = 1.0;
    ops::decay_attn_state init;
    LRNN_ASSIGN_OR_RETURN(init.s, fla::state_tensor(st, p + "s", {B, c_.H, c_.Kh, c_.Vh}));
    LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(spec, in, init, fla::decay_form(form, T)));
    st.tensors[p + "s"] = out.final_state.s;
    LRNN_ASSIGN_OR_RETURN(tensor o, out.o.view({B, T, c_.value_dim}));
    LRNN_ASSIGN_OR_RETURN(o, ops::group_norm(o, c_.H, L.g_norm_w, L.g_norm_b, c_.eps));
    ops::apply_activation(g, ops::activation::silu);
    LRNN_TRY(ops::mul_inplace(o, g));
    return ops::linear(o, L.o_proj);
  }

  result<tensor> channel_mix(const rwkv6_layer& L, const tensor& x, model_state& st, const std::string& p) const {
    LRNN_ASSIGN_OR_RETURN(tensor last, fla::state_tensor(st, p + "ffn_x", {x.size(0), c_.D}));
    LRNN_ASSIGN_OR_RETURN(tensor delta, ops::token_shift(x, last));
    st.tensors[p + "ffn_x"] = last;
    LRNN_ASSIGN_OR_RETURN(tensor key_in, ops::shift_lerp(x, delta, L.ffn_key_mu));
    LRNN_ASSIGN_OR_RETURN(tensor key, ops::linear(key_in, L.ffn_key));
    ops::apply_activation(key, ops::activation::relu_squared);
    LRNN_ASSIGN_OR_RETURN(tensor value, ops::linear(key, L.ffn_value));
    LRNN_ASSIGN_OR_RETURN(tensor rec_in, ops::shift_lerp(x, delta, L.ffn_rec_mu));
    LRNN_ASSIGN_OR_RETURN(tensor rec, ops::linear(rec_in, L.ffn_rec));
    ops::apply_activation(rec, ops::activation::sigmoid);
    LRNN_TRY(ops::mul_inplace(rec, value));
    return rec;
  }

  std::string type_ = "rwkv6";
  rwkv6_config c_;
  tensor embed_, norm_w_, norm_b_, head_;
  std::vector<rwkv6_layer> layers_;
  uint64_t weight_bytes_ = 0;
};

result<std::unique_ptr<model>> rwkv6_model::build(const load_context& ctx) {
  auto m = std::make_unique<rwkv6_model>();
  LRNN_ASSIGN_OR_RETURN(m->c_, read_rwkv6_config(ctx.config));
  const rwkv6_config& c = m->c_;
  const int64_t D = c.D;
  weight_loader w(ctx.weights, ctx.config.source());
  const std::string hid = fmt::format("hidden_size={}", D);
  const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", D, c.expand_k, c.expand_v);
  const std::string ffn = fmt::format("hidden_size={}, intermediate size {}", D, c.F);
  auto norm = [&](const std::string& name, tensor& wt, tensor& bt) -> status {
    LRNN_ASSIGN_OR_RETURN(wt, w.get(name + ".weight", {D}, hid));
    if (c.norm_bias) {
      LRNN_ASSIGN_OR_RETURN(bt, w.get(name + ".bias", {D}, "norm_bias=true"));
    }
    return {};
  };
  LRNN_ASSIGN_OR_RETURN(m->embed_, w.get("model.embeddings.weight", {c.vocab, D}, "vocab_size, hidden_size"));
  LRNN_TRY(norm("model.norm", m->norm_w_, m->norm_b_));
  LRNN_ASSIGN_OR_RETURN(bool tie, ctx.config.get_bool("tie_word_embeddings", false));
  if (tie && !w.has("lm_head.weight")) {
    m->head_ = m->embed_;
  } else {
    LRNN_ASSIGN_OR_RETURN(m->head_, w.get("lm_head.weight", {c.vocab, D}, "vocab_size, hidden_size"));
  }
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(ctx.config));
  for (int64_t l = 0; l < common.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::string a = p + "attn.";
    rwkv6_layer L;
    if (c.norm_first && l == 0) LRNN_TRY(norm(p + "pre_norm", L.pre_norm_w, L.pre_norm_b));
    LRNN_TRY(norm(p + "attn_norm", L.attn_norm_w, L.attn_norm_b));
    LRNN_TRY(norm(p + "ffn_norm", L.ffn_norm_w, L.ffn_norm_b));
    const int64_t R5 = c.proj_rank * lerp_count;
    const std::string proj = fmt::format("proj_low_rank_dim={}", c.proj_rank);
    LRNN_ASSIGN_OR_RETURN(L.x_mu, w.get(a + "x_proj.0.mu", {D}, hid));
    LRNN_ASSIGN_OR_RETURN(L.x_proj0, w.get(a + "x_proj.0.linear.weight", {R5, D}, proj));
    LRNN_ASSIGN_OR_RETURN(tensor x_proj2, w.get(a + "x_proj.2.weight", {D, R5}, proj));
    for (int n = 0; n < lerp_count; ++n) {
      LRNN_ASSIGN_OR_RETURN(tensor part, x_proj2.slice(1, n * c.proj_rank, (n + 1) * c.proj_rank));
      LRNN_ASSIGN_OR_RETURN(L.x_proj2[n], part.contiguous());
    }
    LRNN_ASSIGN_OR_RETURN(L.x_bias, w.get(a + "x_bias", {lerp_count, D}, hid));
    LRNN_ASSIGN_OR_RETURN(L.r_proj, w.get(a + "r_proj.linear.weight", {c.key_dim, D}, dims));
    LRNN_ASSIGN_OR_RETURN(L.k_proj, w.get(a + "k_proj.linear.weight", {c.key_dim, D}, dims));
    LRNN_ASSIGN_OR_RETURN(L.v_proj, w.get(a + "v_proj.linear.weight", {c.value_dim, D}, dims));
    LRNN_ASSIGN_OR_RETURN(L.g_proj, w.get(a + "g_proj.linear.weight", {c.value_dim, D}, dims));
    const std::string gate = fmt::format("gate_low_rank_dim={}", c.gate_rank);
    LRNN_ASSIGN_OR_RETURN(L.w_lora0, w.get(a + "w_proj.linear.lora.0.weight", {c.gate_rank, D}, gate));
    LRNN_ASSIGN_OR_RETURN(L.w_lora2, w.get(a + "w_proj.linear.lora.2.weight", {c.key_dim, c.gate_rank}, gate));
    LRNN_ASSIGN_OR_RETURN(L.w_lora2_bias, w.get(a + "w_proj.linear.lora.2.bias", {c.key_dim}, dims));
    LRNN_ASSIGN_OR_RETURN(L.bonus, w.get(a + "bonus", {c.H, c.Kh}, fmt::format("num_heads={}, head key dim {}", c.H, c.Kh)));
    LRNN_ASSIGN_OR_RETURN(L.g_norm_w, w.get(a + "g_norm.weight", {c.value_dim}, dims));
    LRNN_ASSIGN_OR_RETURN(L.g_norm_b, w.get(a + "g_norm.bias", {c.value_dim}, dims));
    LRNN_ASSIGN_OR_RETURN(L.o_proj, w.get(a + "o_proj.weight", {D, c.value_dim}, dims));
    LRNN_ASSIGN_OR_RETURN(L.ffn_key_mu, w.get(p + "ffn.key.mu", {D}, hid));
    LRNN_ASSIGN_OR_RETURN(L.ffn_key, w.get(p + "ffn.key.linear.weight", {c.F, D}, ffn));
    LRNN_ASSIGN_OR_RETURN(L.ffn_rec_mu, w.get(p + "ffn.receptance.mu", {D}, hid));
    LRNN_ASSIGN_OR_RETURN(L.ffn_rec, w.get(p + "ffn.receptance.linear.weight", {D, D}, hid));
    LRNN_ASSIGN_OR_RETURN(L.ffn_value, w.get(p + "ffn.value.weight", {D, c.F}, ffn));
    m->layers_.push_back(std::move(L));
  }
  if (auto extra = w.unused(); !extra.empty())
    return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's RWKV-6 (a config option not implemented?)",
                      ctx.dir, extra.front());
  m->weight_bytes_ = w.bytes_loaded() - m->embed_.nbytes() + static_cast<uint64_t>(D) * 4 +
                     (m->head_.data<float>() == m->embed_.data<float>() ? m->head_.nbytes() : 0);  // a tied head is read in full
  return std::unique_ptr<model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_MODEL(rwkv6, "rwkv6", rwkv6_model::build)

}  // namespace lrnn::models
