// Trainable RWKV-6 (Finch) in fla's format (model_type "rwkv6"), the computation of
// models/rwkv6.cpp over autograd vars (same config reader, models/rwkv6_config.h): LayerNorm
// blocks (pre-norm on block 0), the five data-dependent token-shift lerps, decay
// w = -exp(LoRA), bonus u, the per-key-decay linear attention (ag::decay_attn), GroupNorm and a
// SiLU gate; squared-ReLU channel mix with a sigmoid receptance. Fresh weights as fla's
// RWKV6PreTrainedModel._init_weights: Linear weights normal(initializer_range), biases zero,
// norms one / zero, the lerp / bonus parameters zero (as constructed).
#include "models/rwkv6_config.h"
#include "ops/decay_attn/autograd.h"
#include "ops/dense/autograd.h"
#include "train/models/arch_util.h"

#include <array>
#include <cmath>

namespace lrnn::train {
namespace {

using models::rwkv6_config;
enum lerp_index { lerp_r = 0, lerp_w, lerp_k, lerp_v, lerp_g, lerp_count };

struct layer {
  ag::var pre_norm_w, pre_norm_b, attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b;
  ag::var x_mu, x_proj0, x_proj2, x_bias;
  ag::var r_proj, k_proj, v_proj, g_proj, w_lora0, w_lora2, w_lora2_bias, bonus, g_norm_w, g_norm_b, o_proj;
  ag::var ffn_key_mu, ffn_key, ffn_rec_mu, ffn_rec, ffn_value;
};

class rwkv6_trainable final : public trainable_model {
 public:
  rwkv6_config c;
  io::config cfg;
  ag::var embed, norm_w, norm_b, head;
  std::vector<layer> layers;
  std::vector<parameter> params;

  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return c.vocab; }
  std::vector<parameter>& parameters() override { return params; }
  const io::config& config() const override { return cfg; }

  result<ag::var> forward(const tensor& ids, models::compute_form form) override {
    if (ids.dim() != 2) return make_error(status_code::invalid_argument, "rwkv6: ids must be [B, T], got {}", shape_to_string(ids.shape()));
    ops::decay_attn_form df = ops::decay_attn_form::chunk;
    if (form == models::compute_form::recurrent) df = ops::decay_attn_form::recurrent;
    if (form == models::compute_form::parallel) df = ops::decay_attn_form::parallel;
    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, embed));
    for (const layer& L : layers) {
      if (L.pre_norm_w.defined()) {
        LRNN_ASSIGN_OR_RETURN(h, ag::layer_norm(h, L.pre_norm_w, L.pre_norm_b, c.eps));
      }
      LRNN_ASSIGN_OR_RETURN(ag::var x, ag::layer_norm(h, L.attn_norm_w, L.attn_norm_b, c.eps));
      LRNN_ASSIGN_OR_RETURN(ag::var att, time_mix(L, x, df));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, att));
      LRNN_ASSIGN_OR_RETURN(ag::var y, ag::layer_norm(h, L.ffn_norm_w, L.ffn_norm_b, c.eps));
      LRNN_ASSIGN_OR_RETURN(ag::var f, channel_mix(L, y));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, f));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var n, ag::layer_norm(h, norm_w, norm_b, c.eps));
    return ag::linear(n, head);
  }

 private:
  std::string type_ = "rwkv6";

  // x + delta * m
  static result<ag::var> lerp(const ag::var& x, const ag::var& delta, const ag::var& m) {
    LRNN_ASSIGN_OR_RETURN(ag::var dm, ag::mul(delta, m));
    return ag::add(x, dm);
  }

  result<ag::var> time_mix(const layer& L, const ag::var& x, ops::decay_attn_form df) const {
    const int64_t B = x.size(0), T = x.size(1), R = c.proj_rank;
    LRNN_ASSIGN_OR_RETURN(ag::var delta, ag::token_shift(x));
    LRNN_ASSIGN_OR_RETURN(ag::var low_in, lerp(x, delta, L.x_mu));
    LRNN_ASSIGN_OR_RETURN(ag::var low, ag::linear(low_in, L.x_proj0));
    LRNN_ASSIGN_OR_RETURN(low, ag::activation(low, ops::activation::tanh));
    std::array<ag::var, lerp_count> mixed;
    for (int n = 0; n < lerp_count; ++n) {
      LRNN_ASSIGN_OR_RETURN(ag::var part, ag::slice(low, 2, n * R, (n + 1) * R));
      LRNN_ASSIGN_OR_RETURN(ag::var w2, ag::slice(L.x_proj2, 1, n * R, (n + 1) * R));
      LRNN_ASSIGN_OR_RETURN(ag::var bias2, ag::slice(L.x_bias, 0, n, n + 1));
      LRNN_ASSIGN_OR_RETURN(ag::var bias, ag::reshape(bias2, {c.D}));
      LRNN_ASSIGN_OR_RETURN(ag::var m, ag::linear(part, w2, bias));  // m + x_bias[n]
      LRNN_ASSIGN_OR_RETURN(mixed[n], lerp(x, delta, m));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var r, ag::linear(mixed[lerp_r], L.r_proj));
    LRNN_ASSIGN_OR_RETURN(ag::var wl, ag::linear(mixed[lerp_w], L.w_lora0));
    LRNN_ASSIGN_OR_RETURN(wl, ag::activation(wl, ops::activation::tanh));
    LRNN_ASSIGN_OR_RETURN(ag::var w, ag::linear(wl, L.w_lora2, L.w_lora2_bias));
    LRNN_ASSIGN_OR_RETURN(w, ag::activation(w, ops::activation::exp));
    LRNN_ASSIGN_OR_RETURN(w, ag::scale(w, -1.0));
    LRNN_ASSIGN_OR_RETURN(ag::var k, ag::linear(mixed[lerp_k], L.k_proj));
    LRNN_ASSIGN_OR_RETURN(ag::var v, ag::linear(mixed[lerp_v], L.v_proj));
    LRNN_ASSIGN_OR_RETURN(ag::var g, ag::linear(mixed[lerp_g], L.g_proj));
    LRNN_ASSIGN_OR_RETURN(ag::var q4, ag::reshape(r, {B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(ag::var k4, ag::reshape(k, {B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(ag::var v4, ag::reshape(v, {B, T, c.H, c.Vh}));
    LRNN_ASSIGN_OR_RETURN(ag::var w4, ag::reshape(w, {B, T, c.H, c.Kh}));
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    spec.bonus = true;
    spec.scale = 1.0;
    LRNN_ASSIGN_OR_RETURN(ag::var o4, ag::decay_attn(spec, q4, k4, v4, w4, ag::var(), L.bonus, df));
    LRNN_ASSIGN_OR_RETURN(ag::var o, ag::reshape(o4, {B, T, c.value_dim}));
    LRNN_ASSIGN_OR_RETURN(o, ag::group_norm(o, c.H, L.g_norm_w, L.g_norm_b, c.eps));
    LRNN_ASSIGN_OR_RETURN(g, ag::activation(g, ops::activation::silu));
    LRNN_ASSIGN_OR_RETURN(o, ag::mul(o, g));
    return ag::linear(o, L.o_proj);
  }

  result<ag::var> channel_mix(const layer& L, const ag::var& x) const {
    LRNN_ASSIGN_OR_RETURN(ag::var delta, ag::token_shift(x));
    LRNN_ASSIGN_OR_RETURN(ag::var key_in, lerp(x, delta, L.ffn_key_mu));
    LRNN_ASSIGN_OR_RETURN(ag::var key, ag::linear(key_in, L.ffn_key));
    LRNN_ASSIGN_OR_RETURN(key, ag::activation(key, ops::activation::relu_squared));
    LRNN_ASSIGN_OR_RETURN(ag::var value, ag::linear(key, L.ffn_value));
    LRNN_ASSIGN_OR_RETURN(ag::var rec_in, lerp(x, delta, L.ffn_rec_mu));
    LRNN_ASSIGN_OR_RETURN(ag::var rec, ag::linear(rec_in, L.ffn_rec));
    LRNN_ASSIGN_OR_RETURN(rec, ag::activation(rec, ops::activation::sigmoid));
    return ag::mul(rec, value);
  }
};

result<std::unique_ptr<trainable_model>> build(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(rwkv6_config c, models::read_rwkv6_config(config));
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(config));
  LRNN_ASSIGN_OR_RETURN(double std, config.get_float("initializer_range", 0.02));
  auto m = std::make_unique<rwkv6_trainable>();
  m->c = c;
  m->cfg = config;
  arch::param_builder pb(src, m->params);
  const int64_t D = c.D, L = common.num_hidden_layers;
  const param_init normal = param_init::normal(std), zeros = param_init::zeros();
  const std::string hid = fmt::format("hidden_size={}", D);
  const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", D, c.expand_k, c.expand_v);
  const std::string ffn = fmt::format("hidden_size={}, intermediate size {}", D, c.F);
  auto norm = [&](const std::string& name, ag::var& wt, ag::var& bt) -> status {
    LRNN_ASSIGN_OR_RETURN(wt, pb.get(name + ".weight", {D}, param_init::ones(), hid));
    if (c.norm_bias) {
      LRNN_ASSIGN_OR_RETURN(bt, pb.get(name + ".bias", {D}, zeros, "norm_bias=true"));
    }
    return {};
  };
  // o_proj: kaiming_uniform(a=sqrt(5)) / sqrt(2 L) (fla's rescale_prenorm_residual).
  const double o_bound = 1.0 / std::sqrt(static_cast<double>(c.value_dim)) / std::sqrt(2.0 * static_cast<double>(L));
  LRNN_ASSIGN_OR_RETURN(m->embed, pb.get("model.embeddings.weight", {c.vocab, D}, normal, "vocab_size, hidden_size"));
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::string a = p + "attn.";
    layer Ly;
    if (c.norm_first && l == 0) LRNN_TRY(norm(p + "pre_norm", Ly.pre_norm_w, Ly.pre_norm_b));
    LRNN_TRY(norm(p + "attn_norm", Ly.attn_norm_w, Ly.attn_norm_b));
    LRNN_TRY(norm(p + "ffn_norm", Ly.ffn_norm_w, Ly.ffn_norm_b));
    const int64_t R5 = c.proj_rank * lerp_count;
    const std::string proj = fmt::format("proj_low_rank_dim={}", c.proj_rank);
    LRNN_ASSIGN_OR_RETURN(Ly.x_mu, pb.get(a + "x_proj.0.mu", {D}, zeros, hid));
    LRNN_ASSIGN_OR_RETURN(Ly.x_proj0, pb.get(a + "x_proj.0.linear.weight", {R5, D}, normal, proj));
    LRNN_ASSIGN_OR_RETURN(Ly.x_proj2, pb.get(a + "x_proj.2.weight", {D, R5}, normal, proj));
    LRNN_ASSIGN_OR_RETURN(Ly.x_bias, pb.get(a + "x_bias", {lerp_count, D}, zeros, hid));
    LRNN_ASSIGN_OR_RETURN(Ly.r_proj, pb.get(a + "r_proj.linear.weight", {c.key_dim, D}, normal, dims));
    LRNN_ASSIGN_OR_RETURN(Ly.k_proj, pb.get(a + "k_proj.linear.weight", {c.key_dim, D}, normal, dims));
    LRNN_ASSIGN_OR_RETURN(Ly.v_proj, pb.get(a + "v_proj.linear.weight", {c.value_dim, D}, normal, dims));
    LRNN_ASSIGN_OR_RETURN(Ly.g_proj, pb.get(a + "g_proj.linear.weight", {c.value_dim, D}, normal, dims));
    const std::string gate = fmt::format("gate_low_rank_dim={}", c.gate_rank);
    LRNN_ASSIGN_OR_RETURN(Ly.w_lora0, pb.get(a + "w_proj.linear.lora.0.weight", {c.gate_rank, D}, normal, gate));
    LRNN_ASSIGN_OR_RETURN(Ly.w_lora2, pb.get(a + "w_proj.linear.lora.2.weight", {c.key_dim, c.gate_rank}, normal, gate));
    LRNN_ASSIGN_OR_RETURN(Ly.w_lora2_bias, pb.get(a + "w_proj.linear.lora.2.bias", {c.key_dim}, zeros, dims));
    LRNN_ASSIGN_OR_RETURN(Ly.bonus, pb.get(a + "bonus", {c.H, c.Kh}, zeros, fmt::format("num_heads={}, head key dim {}", c.H, c.Kh)));
    LRNN_ASSIGN_OR_RETURN(Ly.g_norm_w, pb.get(a + "g_norm.weight", {c.value_dim}, param_init::ones(), dims));
    LRNN_ASSIGN_OR_RETURN(Ly.g_norm_b, pb.get(a + "g_norm.bias", {c.value_dim}, zeros, dims));
    LRNN_ASSIGN_OR_RETURN(Ly.o_proj, pb.get(a + "o_proj.weight", {D, c.value_dim}, param_init::uniform(-o_bound, o_bound), dims));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_key_mu, pb.get(p + "ffn.key.mu", {D}, zeros, hid));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_key, pb.get(p + "ffn.key.linear.weight", {c.F, D}, normal, ffn));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_rec_mu, pb.get(p + "ffn.receptance.mu", {D}, zeros, hid));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_rec, pb.get(p + "ffn.receptance.linear.weight", {D, D}, normal, hid));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_value, pb.get(p + "ffn.value.weight", {D, c.F}, normal, ffn));
    m->layers.push_back(std::move(Ly));
  }
  LRNN_TRY(norm("model.norm", m->norm_w, m->norm_b));
  LRNN_ASSIGN_OR_RETURN(bool tie, config.get_bool("tie_word_embeddings", false));
  if (tie) {
    m->head = m->embed;
  } else {
    LRNN_ASSIGN_OR_RETURN(m->head, pb.get("lm_head.weight", {c.vocab, D}, normal, "vocab_size, hidden_size"));
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_TRAINABLE(rwkv6, "rwkv6", build)

}  // namespace lrnn::train
