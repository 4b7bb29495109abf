// Trainable GLA (fla's GatedLinearAttention, model_type "gla"): the mixer of models/gla.cpp
// over autograd vars, the same config reader (models/fla_configs.h), fla's initialisation.
#include "models/fla_common.h"
#include "models/fla_configs.h"
#include "ops/decay_attn/autograd.h"
#include "train/models/fla_common.h"

namespace lrnn::train {
namespace {

class gla_mixer final : public fla::mixer {
 public:
  models::gla_config c;
  fla::qkv_projection qkv;
  ag::var g, gk0, gk1, gk1_bias, o, g_norm;

  result<ag::var> forward(const ag::var& x, models::compute_form form) const override {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(auto qkv_out, qkv.forward(x));
    LRNN_ASSIGN_OR_RETURN(ag::var gk, ag::linear(x, gk0));
    LRNN_ASSIGN_OR_RETURN(gk, ag::linear(gk, gk1, gk1_bias));
    LRNN_ASSIGN_OR_RETURN(gk, ag::activation(gk, ops::activation::logsigmoid));
    LRNN_ASSIGN_OR_RETURN(gk, ag::scale(gk, 1.0 / static_cast<double>(c.gate_normalizer)));
    if (c.clamp_min) {
      LRNN_ASSIGN_OR_RETURN(gk, ag::clamp_min(gk, *c.clamp_min));
    }
    LRNN_TRY(fla::split_heads(qkv_out, c.H, c.Kh, c.Vh));
    LRNN_ASSIGN_OR_RETURN(gk, ag::reshape(gk, {B, T, c.H, c.Kh}));
    const auto& [qx, kx, vx] = qkv_out;
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    LRNN_ASSIGN_OR_RETURN(ag::var ov, ag::decay_attn(spec, qx, kx, vx, gk, ag::var(), ag::var(), models::fla::decay_form(form, T)));
    return fla::gated_head_output(ov, c.H, g_norm, c.eps, x, g, o);
  }
};

result<std::unique_ptr<trainable_model>> build_gla(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(models::gla_config c, models::read_gla_config(config));
  return fla::build_lm<gla_mixer>(config, src, "gla", c,
                                  [](gla_mixer& m, const param_init& normal, param_source& s, std::vector<parameter>& P, const std::string& p) -> status {
    const models::gla_config& c = m.c;
    const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", c.D, c.expand_k, c.expand_v);
    LRNN_TRY(m.qkv.add_projections(s, P, p, c.D, c.key_dim, c.value_dim, normal, dims, dims, c.output_gate ? &m.g : nullptr));
    if (c.short_conv) LRNN_TRY(m.qkv.add_convs(s, P, p, c.key_dim, c.value_dim, c.conv_size, c.conv_bias, normal));
    LRNN_ASSIGN_OR_RETURN(m.gk0, fla::add_param(s, P, p + "gk_proj.0.weight", {c.low_rank, c.D}, normal, "gate_low_rank_dim"));
    LRNN_ASSIGN_OR_RETURN(m.gk1, fla::add_param(s, P, p + "gk_proj.1.weight", {c.key_dim, c.low_rank}, normal, "gate_low_rank_dim"));
    LRNN_ASSIGN_OR_RETURN(m.gk1_bias, fla::add_param(s, P, p + "gk_proj.1.bias", {c.key_dim}, param_init::zeros(), dims));
    return fla::add_head_output(s, P, p, "g_norm.weight", c.affine, c.Vh, "head value dim", c.D, c.value_dim, normal, dims, m.g_norm,
                                m.o);
  });
}

}  // namespace

LRNN_REGISTER_TRAINABLE(gla, "gla", build_gla)

}  // namespace lrnn::train
