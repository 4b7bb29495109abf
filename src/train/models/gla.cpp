// Trainable GLA (fla's GatedLinearAttention, model_type "gla"): the mixer of models/gla.cpp
// over autograd vars, the same config reader (models/fla_configs.h), fla's initialisation.
#include "models/fla_common.h"
#include "models/fla_configs.h"
#include "ops/conv1d/autograd.h"
#include "ops/decay_attn/autograd.h"
#include "train/models/fla_common.h"

namespace lrnn::train {
namespace {

struct short_conv {
  ag::var weight, bias;  // torch layout [C, 1, W], [C]
  int64_t channels = 0, width = 0;
  result<ag::var> forward(const ag::var& x) const {
    LRNN_ASSIGN_OR_RETURN(ag::var w2, ag::reshape(weight, {channels, width}));
    LRNN_ASSIGN_OR_RETURN(ag::var wt, ag::transpose(w2, 0, 1));  // [W, C]
    ops::conv1d_spec spec;
    spec.activation = ops::conv1d_activation::silu;
    return ag::conv1d(spec, x, wt, bias);
  }
};

class gla_mixer final : public fla::mixer {
 public:
  models::gla_config c;
  ag::var q, k, v, g, gk0, gk1, gk1_bias, o, g_norm;
  short_conv q_conv, k_conv, v_conv;

  result<ag::var> forward(const ag::var& x, models::compute_form form) const override {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(ag::var qx, ag::linear(x, q));
    LRNN_ASSIGN_OR_RETURN(ag::var kx, ag::linear(x, k));
    LRNN_ASSIGN_OR_RETURN(ag::var vx, ag::linear(x, v));
    if (c.short_conv) {
      LRNN_ASSIGN_OR_RETURN(qx, q_conv.forward(qx));
      LRNN_ASSIGN_OR_RETURN(kx, k_conv.forward(kx));
      LRNN_ASSIGN_OR_RETURN(vx, v_conv.forward(vx));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var gk, ag::linear(x, gk0));
    LRNN_ASSIGN_OR_RETURN(gk, ag::linear(gk, gk1, gk1_bias));
    LRNN_ASSIGN_OR_RETURN(gk, ag::activation(gk, ops::activation::logsigmoid));
    LRNN_ASSIGN_OR_RETURN(gk, ag::scale(gk, 1.0 / static_cast<double>(c.gate_normalizer)));
    if (c.clamp_min) {
      LRNN_ASSIGN_OR_RETURN(gk, ag::clamp_min(gk, *c.clamp_min));
    }
    LRNN_ASSIGN_OR_RETURN(qx, ag::reshape(qx, {B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(kx, ag::reshape(kx, {B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(vx, ag::reshape(vx, {B, T, c.H, c.Vh}));
    LRNN_ASSIGN_OR_RETURN(gk, ag::reshape(gk, {B, T, c.H, c.Kh}));
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    LRNN_ASSIGN_OR_RETURN(ag::var ov, ag::decay_attn(spec, qx, kx, vx, gk, ag::var(), ag::var(), models::fla::decay_form(form, T)));
    LRNN_ASSIGN_OR_RETURN(ov, ag::reshape(ov, {B, T, c.H * c.Vh}));
    return fla::gated_head_output(ov, c.H, g_norm, c.eps, x, g, o);
  }
};

result<std::unique_ptr<trainable_model>> build_gla(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(models::gla_config c, models::read_gla_config(config));
  LRNN_ASSIGN_OR_RETURN(double std, config.get_float("initializer_range", 0.02));
  return fla::causal_lm::build(config, src, "gla",
                               [c, std](param_source& s, std::vector<parameter>& P, const std::string& p) -> result<std::unique_ptr<fla::mixer>> {
    auto m = std::make_unique<gla_mixer>();
    m->c = c;
    const param_init normal = param_init::normal(std);
    const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", c.D, c.expand_k, c.expand_v);
    LRNN_ASSIGN_OR_RETURN(m->q, fla::add_param(s, P, p + "q_proj.weight", {c.key_dim, c.D}, normal, dims));
    LRNN_ASSIGN_OR_RETURN(m->k, fla::add_param(s, P, p + "k_proj.weight", {c.key_dim, c.D}, normal, dims));
    LRNN_ASSIGN_OR_RETURN(m->v, fla::add_param(s, P, p + "v_proj.weight", {c.value_dim, c.D}, normal, dims));
    if (c.output_gate) {
      LRNN_ASSIGN_OR_RETURN(m->g, fla::add_param(s, P, p + "g_proj.weight", {c.value_dim, c.D}, normal, dims));
    }
    if (c.short_conv) {
      const std::string cw = fmt::format("conv_size={}", c.conv_size);
      auto conv = [&](const std::string& name, int64_t C, short_conv& sc) -> status {
        sc.channels = C;
        sc.width = c.conv_size;
        LRNN_ASSIGN_OR_RETURN(sc.weight, fla::add_param(s, P, p + name + ".weight", {C, 1, c.conv_size}, normal, cw));
        if (c.conv_bias) {
          LRNN_ASSIGN_OR_RETURN(sc.bias, fla::add_param(s, P, p + name + ".bias", {C}, param_init::zeros(), "conv_bias=true"));
        }
        return {};
      };
      LRNN_TRY(conv("q_conv1d", c.key_dim, m->q_conv));
      LRNN_TRY(conv("k_conv1d", c.key_dim, m->k_conv));
      LRNN_TRY(conv("v_conv1d", c.value_dim, m->v_conv));
    }
    LRNN_ASSIGN_OR_RETURN(m->gk0, fla::add_param(s, P, p + "gk_proj.0.weight", {c.low_rank, c.D}, normal, "gate_low_rank_dim"));
    LRNN_ASSIGN_OR_RETURN(m->gk1, fla::add_param(s, P, p + "gk_proj.1.weight", {c.key_dim, c.low_rank}, normal, "gate_low_rank_dim"));
    LRNN_ASSIGN_OR_RETURN(m->gk1_bias, fla::add_param(s, P, p + "gk_proj.1.bias", {c.key_dim}, param_init::zeros(), dims));
    if (c.affine) {
      LRNN_ASSIGN_OR_RETURN(m->g_norm, fla::add_param(s, P, p + "g_norm.weight", {c.Vh}, param_init::ones(), "head value dim"));
    }
    LRNN_ASSIGN_OR_RETURN(m->o, fla::add_param(s, P, p + "o_proj.weight", {c.D, c.value_dim}, normal, dims));
    return std::unique_ptr<fla::mixer>(std::move(m));
  });
}

}  // namespace

LRNN_REGISTER_TRAINABLE(gla, "gla", build_gla)

}  // namespace lrnn::train
