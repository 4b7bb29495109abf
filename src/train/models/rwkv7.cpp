// Trainable RWKV-7 in fla's format (model_type "rwkv7"), the same computation as
// models/rwkv7.cpp over autograd vars: LayerNorm blocks (pre-norm on block 0), static
// token-shift lerps, LoRA decay / in-context rate / value residual / gate, the DPLR delta rule
// (ag::delta_rule), GroupNorm plus the r k rho bonus, squared-ReLU channel mix. Parameter names
// and fresh-weight init follow fla/layers/rwkv7.py and fla/models/rwkv7/modeling_rwkv7.py.
#include "models/rwkv7_config.h"
#include "ops/delta_rule/autograd.h"
#include "ops/dense/autograd.h"
#include "train/models/arch_util.h"

#include <cmath>

namespace lrnn::train {
namespace {

using models::rwkv7_config;

constexpr double decay_scale = 0.6065306597126334;  // e^{-0.5}: w = -e^{-0.5} sigma(.)

struct lora {
  ag::var w1, w2, bias;
  ops::activation act = ops::activation::identity;
  result<ag::var> forward(const ag::var& x) const {
    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::linear(x, w1));
    if (act != ops::activation::identity) {
      LRNN_ASSIGN_OR_RETURN(h, ag::activation(h, act));
    }
    return ag::linear(h, w2, bias);
  }
};

struct layer {
  ag::var pre_norm_w, pre_norm_b, attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b;
  ag::var x_r, x_w, x_k, x_v, x_a, x_g, k_k, k_a, r_k;
  ag::var r_proj, k_proj, v_proj, o_proj, g_norm_w, g_norm_b;
  lora w_lora, a_lora, g_lora, v_lora;
  ag::var ffn_x_k, ffn_key, ffn_value;
};

class rwkv7_trainable final : public trainable_model {
 public:
  rwkv7_config c;
  io::config cfg;
  int64_t vocab = 0;
  ag::var embed, norm_w, norm_b, lm_head;
  std::vector<layer> layers;
  std::vector<parameter> params;

  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab; }
  std::vector<parameter>& parameters() override { return params; }
  const io::config& config() const override { return cfg; }

  result<ag::var> forward(const tensor& ids, models::compute_form form) override {
    if (ids.dim() != 2) return make_error(status_code::invalid_argument, "rwkv7: ids must be [B, T], got {}", shape_to_string(ids.shape()));
    const ops::delta_rule_form df = form == models::compute_form::recurrent ? ops::delta_rule_form::recurrent : ops::delta_rule_form::chunk;
    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, embed));
    ag::var v_first;
    for (int64_t l = 0; l < c.layers; ++l) {
      const layer& L = layers[l];
      if (L.pre_norm_w.defined()) {
        LRNN_ASSIGN_OR_RETURN(h, ag::layer_norm(h, L.pre_norm_w, L.pre_norm_b, c.eps));
      }
      LRNN_ASSIGN_OR_RETURN(ag::var x, ag::layer_norm(h, L.attn_norm_w, L.attn_norm_b, c.eps));
      LRNN_ASSIGN_OR_RETURN(ag::var a, time_mix(L, l, x, df, v_first));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, a));
      LRNN_ASSIGN_OR_RETURN(ag::var y, ag::layer_norm(h, L.ffn_norm_w, L.ffn_norm_b, c.eps));
      LRNN_ASSIGN_OR_RETURN(ag::var f, channel_mix(L, y));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, f));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var n, ag::layer_norm(h, norm_w, norm_b, c.eps));
    return ag::linear(n, lm_head);
  }

 private:
  std::string type_ = "rwkv7";

  // x + delta * mu (mu stored [1, 1, D] or [D]).
  static result<ag::var> lerp(const ag::var& x, const ag::var& delta, const ag::var& mu) {
    LRNN_ASSIGN_OR_RETURN(ag::var m, ag::reshape(mu, {mu.value().numel()}));
    LRNN_ASSIGN_OR_RETURN(ag::var dm, ag::mul(delta, m));
    return ag::add(x, dm);
  }

  result<ag::var> time_mix(const layer& L, int64_t l, const ag::var& x, ops::delta_rule_form df, ag::var& v_first) const {
    const int64_t B = x.size(0), T = x.size(1), H = c.H, Kh = c.Kh, Vh = c.Vh;
    LRNN_ASSIGN_OR_RETURN(ag::var delta, ag::token_shift(x));
    LRNN_ASSIGN_OR_RETURN(ag::var xr, lerp(x, delta, L.x_r));
    LRNN_ASSIGN_OR_RETURN(ag::var xw, lerp(x, delta, L.x_w));
    LRNN_ASSIGN_OR_RETURN(ag::var xk, lerp(x, delta, L.x_k));
    LRNN_ASSIGN_OR_RETURN(ag::var xv, lerp(x, delta, L.x_v));
    LRNN_ASSIGN_OR_RETURN(ag::var xa, lerp(x, delta, L.x_a));
    LRNN_ASSIGN_OR_RETURN(ag::var xg, lerp(x, delta, L.x_g));

    LRNN_ASSIGN_OR_RETURN(ag::var r, ag::linear(xr, L.r_proj));
    LRNN_ASSIGN_OR_RETURN(ag::var wl, L.w_lora.forward(xw));
    LRNN_ASSIGN_OR_RETURN(ag::var ws, ag::activation(wl, ops::activation::sigmoid));
    LRNN_ASSIGN_OR_RETURN(ag::var w, ag::scale(ws, -decay_scale));
    LRNN_ASSIGN_OR_RETURN(ag::var k, ag::linear(xk, L.k_proj));
    LRNN_ASSIGN_OR_RETURN(ag::var v, ag::linear(xv, L.v_proj));
    if (l == 0) {
      v_first = v;
    } else {
      LRNN_ASSIGN_OR_RETURN(ag::var ml, L.v_lora.forward(xv));
      LRNN_ASSIGN_OR_RETURN(ag::var mix, ag::activation(ml, ops::activation::sigmoid));
      LRNN_ASSIGN_OR_RETURN(ag::var diff, ag::sub(v_first, v));
      LRNN_ASSIGN_OR_RETURN(ag::var dm, ag::mul(diff, mix));
      LRNN_ASSIGN_OR_RETURN(v, ag::add(v, dm));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var al, L.a_lora.forward(xa));
    LRNN_ASSIGN_OR_RETURN(ag::var alpha, ag::activation(al, ops::activation::sigmoid));
    LRNN_ASSIGN_OR_RETURN(ag::var g, L.g_lora.forward(xg));

    // kappa^ = normalize(k * k_k) per head; k <- k + k (alpha - 1) k_a; a = -kappa^, b = kappa^ alpha.
    LRNN_ASSIGN_OR_RETURN(ag::var kk0, ag::mul(k, L.k_k));
    LRNN_ASSIGN_OR_RETURN(ag::var kappa, arch::l2_normalize_groups(kk0, Kh));
    LRNN_ASSIGN_OR_RETURN(ag::var neg_kappa, ag::scale(kappa, -1.0));
    LRNN_ASSIGN_OR_RETURN(ag::var bb, ag::mul(kappa, alpha));
    LRNN_ASSIGN_OR_RETURN(ag::var ka1, ag::mul(k, alpha));
    LRNN_ASSIGN_OR_RETURN(ag::var ka2, ag::sub(ka1, k));
    LRNN_ASSIGN_OR_RETURN(ag::var ka3, ag::mul(ka2, L.k_a));
    LRNN_ASSIGN_OR_RETURN(k, ag::add(k, ka3));

    ag::delta_rule_vars in;
    LRNN_ASSIGN_OR_RETURN(in.q, ag::reshape(r, {B, T, H, Kh}));
    LRNN_ASSIGN_OR_RETURN(in.k, ag::reshape(k, {B, T, H, Kh}));
    LRNN_ASSIGN_OR_RETURN(in.v, ag::reshape(v, {B, T, H, Vh}));
    LRNN_ASSIGN_OR_RETURN(in.w, ag::reshape(w, {B, T, H, Kh}));
    LRNN_ASSIGN_OR_RETURN(in.a, ag::reshape(neg_kappa, {B, T, H, Kh}));
    LRNN_ASSIGN_OR_RETURN(in.b, ag::reshape(bb, {B, T, H, Kh}));
    ops::delta_rule_spec spec;
    spec.kind = ops::delta_kind::dplr;
    spec.scale = 1.0;
    LRNN_ASSIGN_OR_RETURN(ag::var o4, ag::delta_rule(spec, in, df));
    LRNN_ASSIGN_OR_RETURN(ag::var o, ag::reshape(o4, {B, T, H * Vh}));
    LRNN_ASSIGN_OR_RETURN(o, ag::group_norm(o, H, L.g_norm_w, L.g_norm_b, static_cast<double>(Kh) * c.eps));
    LRNN_ASSIGN_OR_RETURN(ag::var bonus, arch::rwkv7_bonus(r, k, L.r_k, v));
    LRNN_ASSIGN_OR_RETURN(o, ag::add(o, bonus));
    LRNN_ASSIGN_OR_RETURN(o, ag::mul(o, g));
    return ag::linear(o, L.o_proj);
  }

  result<ag::var> channel_mix(const layer& L, const ag::var& y) const {
    LRNN_ASSIGN_OR_RETURN(ag::var delta, ag::token_shift(y));
    LRNN_ASSIGN_OR_RETURN(ag::var xk, lerp(y, delta, L.ffn_x_k));
    LRNN_ASSIGN_OR_RETURN(ag::var kx, ag::linear(xk, L.ffn_key));
    LRNN_ASSIGN_OR_RETURN(kx, ag::activation(kx, ops::activation::relu_squared));
    return ag::linear(kx, L.ffn_value);
  }
};

// fla's RWKV7Attention._initialize_weights position tensors.
struct init_curves {
  std::vector<double> ddd, www, zigzag, linear;
};
init_curves curves(const rwkv7_config& c, int64_t l) {
  init_curves k;
  const int64_t D = c.D;
  const double r01 = c.layers > 1 ? static_cast<double>(l) / static_cast<double>(c.layers - 1) : 0.0;
  for (int64_t n = 0; n < D; ++n) {
    const double hd = (static_cast<double>(c.Kh) - 1) / 2;
    double z = ((n % c.Kh) - hd) / hd;
    z = z * std::abs(z);
    k.linear.push_back(static_cast<double>(n) / static_cast<double>(D - 1) - 0.5);
    k.zigzag.push_back(z);
    k.www.push_back(-6 + 6 * std::pow(static_cast<double>(n) / static_cast<double>(D - 1), 1 + std::pow(r01, 0.3)));
    k.ddd.push_back(static_cast<double>(n) / static_cast<double>(D));
  }
  return k;
}

param_init from_fn(int64_t n, std::function<double(int64_t)> f) {
  return param_init::custom([n, f](tensor& t) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(f(i % n));
  });
}

result<std::unique_ptr<trainable_model>> build(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(rwkv7_config c, models::read_rwkv7_config(config));
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(config));
  auto m = std::make_unique<rwkv7_trainable>();
  m->c = c;
  m->cfg = config;
  m->vocab = common.vocab_size;
  arch::param_builder pb(src, m->params);
  const int64_t D = c.D, L = c.layers;
  const std::string hd = fmt::format("hidden_size={}", D);
  const std::string vocab_why = fmt::format("vocab_size={}, hidden_size={}", m->vocab, D);
  LRNN_ASSIGN_OR_RETURN(m->embed, pb.get("model.embeddings.weight", {m->vocab, D}, param_init::uniform(-1e-4, 1e-4), vocab_why));
  auto norm = [&](const std::string& prefix, ag::var& w, ag::var& b, param_init winit = param_init::ones()) -> status {
    LRNN_ASSIGN_OR_RETURN(w, pb.get(prefix + "weight", {D}, winit, hd));
    if (c.norm_bias) {
      LRNN_ASSIGN_OR_RETURN(b, pb.get(prefix + "bias", {D}, param_init::zeros(), "norm_bias=true"));
    }
    return {};
  };
  const std::string kd = fmt::format("hidden_size={}, head_dim={}", D, c.Kh);
  const std::string vd = fmt::format("value_dim={}, hidden_size={}", c.V, D);
  // Residual-branch output projections: kaiming_uniform(a=sqrt(5)) / sqrt(2 L) (fla's rescale_prenorm_residual).
  const double o_bound = 1.0 / std::sqrt(static_cast<double>(c.V)) / std::sqrt(2.0 * static_cast<double>(L));
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l), a = p + "attn.";
    const init_curves k = curves(c, l);
    const double r1 = 1.0 - static_cast<double>(l) / static_cast<double>(L);
    layer Ly;
    if (c.norm_first && l == 0) LRNN_TRY(norm(p + "pre_norm.", Ly.pre_norm_w, Ly.pre_norm_b));
    LRNN_TRY(norm(p + "attn_norm.", Ly.attn_norm_w, Ly.attn_norm_b));
    LRNN_TRY(norm(p + "ffn_norm.", Ly.ffn_norm_w, Ly.ffn_norm_b));
    for (auto [name, t, e] : {std::tuple{"x_r", &Ly.x_r, 0.2}, {"x_w", &Ly.x_w, 0.9}, {"x_k", &Ly.x_k, 0.7},
                              {"x_v", &Ly.x_v, 0.7}, {"x_a", &Ly.x_a, 0.9}, {"x_g", &Ly.x_g, 0.2}}) {
      const double ex = e * r1;
      auto ddd = k.ddd;
      LRNN_ASSIGN_OR_RETURN(*t, pb.get(a + name, {1, 1, D}, from_fn(D, [ddd, ex](int64_t i) { return 1.0 - std::pow(ddd[i], ex); }), hd));
    }
    auto lin = k.linear, zig = k.zigzag, www = k.www;
    LRNN_ASSIGN_OR_RETURN(Ly.k_k, pb.get(a + "k_k", {D}, from_fn(D, [lin](int64_t i) { return 0.71 - lin[i] * 0.1; }), kd));
    LRNN_ASSIGN_OR_RETURN(Ly.k_a, pb.get(a + "k_a", {D}, param_init::constant(1.02), kd));
    LRNN_ASSIGN_OR_RETURN(Ly.r_k, pb.get(a + "r_k", {c.H, c.Kh}, param_init::constant(-0.04), kd));
    LRNN_ASSIGN_OR_RETURN(Ly.r_proj, pb.get(a + "r_proj.weight", {D, D}, arch::orthogonal_init(1.0, a + "r_proj.weight"), kd));
    LRNN_ASSIGN_OR_RETURN(Ly.k_proj, pb.get(a + "k_proj.weight", {D, D}, arch::orthogonal_init(0.1, a + "k_proj.weight"), kd));
    LRNN_ASSIGN_OR_RETURN(Ly.v_proj, pb.get(a + "v_proj.weight", {c.V, D}, arch::orthogonal_init(1.0, a + "v_proj.weight"), vd));
    LRNN_ASSIGN_OR_RETURN(Ly.o_proj, pb.get(a + "o_proj.weight", {D, c.V}, param_init::uniform(-o_bound, o_bound), vd));
    auto make_lora = [&](const std::string& prefix, int64_t out, int64_t rank, bool bias, ops::activation act, param_init bias_init,
                         lora& lo) -> status {
      const std::string why = fmt::format("{} rank {}", prefix, rank);
      lo.act = act;
      LRNN_ASSIGN_OR_RETURN(lo.w1, pb.get(prefix + "lora.0.weight", {rank, D}, param_init::zeros(), why));
      const double gain = (rank > out ? std::sqrt(static_cast<double>(rank) / static_cast<double>(out)) : 1.0) * 0.1;
      LRNN_ASSIGN_OR_RETURN(lo.w2, pb.get(prefix + "lora.2.weight", {out, rank}, arch::orthogonal_init(gain, prefix + "lora.2.weight"), why));
      if (bias) {
        LRNN_ASSIGN_OR_RETURN(lo.bias, pb.get(prefix + "lora.2.bias", {out}, bias_init, why));
      }
      return {};
    };
    LRNN_TRY(make_lora(a + "w_lora.", D, c.decay_rank, true, ops::activation::tanh,
                       from_fn(D, [www, zig](int64_t i) { return www[i] + 0.5 + zig[i] * 2.5; }), Ly.w_lora));
    LRNN_TRY(make_lora(a + "a_lora.", D, c.a_rank, true, ops::activation::identity,
                       from_fn(D, [zig, lin](int64_t i) { return -0.19 + zig[i] * 0.3 + lin[i] * 0.4; }), Ly.a_lora));
    LRNN_TRY(make_lora(a + "g_lora.", c.V, c.gate_rank, false, ops::activation::sigmoid, param_init::zeros(), Ly.g_lora));
    if (l != 0)
      LRNN_TRY(make_lora(a + "v_lora.", c.V, c.v_rank, true, ops::activation::identity,
                         from_fn(D, [lin](int64_t i) { return 0.73 - lin[i] * 0.4; }), Ly.v_lora));
    const double gn = std::pow(static_cast<double>(l + 1) / static_cast<double>(L), 0.7);
    LRNN_ASSIGN_OR_RETURN(Ly.g_norm_w, pb.get(a + "g_norm.weight", {c.V}, param_init::constant(gn), vd));
    LRNN_ASSIGN_OR_RETURN(Ly.g_norm_b, pb.get(a + "g_norm.bias", {c.V}, param_init::zeros(), vd));
    const std::string fd = fmt::format("intermediate size {}", c.inter);
    const double ex = std::pow(r1, 4);
    auto ddd = k.ddd;
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_x_k, pb.get(p + "ffn.x_k", {D}, from_fn(D, [ddd, ex](int64_t i) { return 1.0 - std::pow(ddd[i], ex); }), hd));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_key, pb.get(p + "ffn.key.weight", {c.inter, D}, arch::orthogonal_init(1.0, p + "ffn.key.weight"), fd));
    LRNN_ASSIGN_OR_RETURN(Ly.ffn_value, pb.get(p + "ffn.value.weight", {D, c.inter}, param_init::zeros(), fd));
    m->layers.push_back(std::move(Ly));
  }
  LRNN_TRY(norm("model.norm.", m->norm_w, m->norm_b));
  LRNN_ASSIGN_OR_RETURN(bool tie, config.get_bool("tie_word_embeddings", false));
  if (tie) {
    m->lm_head = m->embed;
  } else {
    const double gain = m->vocab > D ? 0.5 * std::sqrt(static_cast<double>(m->vocab) / static_cast<double>(D)) : 0.5;
    LRNN_ASSIGN_OR_RETURN(m->lm_head, pb.get("lm_head.weight", {m->vocab, D}, arch::orthogonal_init(gain, "lm_head.weight"), vocab_why));
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_TRAINABLE(rwkv7, "rwkv7", build)

}  // namespace lrnn::train
