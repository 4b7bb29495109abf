// GLA (gated linear attention) in fla's format (model_type "gla"): the fla causal LM whose
// mixer is GatedLinearAttention — per-key gate logsigmoid(W2 W1 x + b) / 16, optional short
// convolutions, per-head RMSNorm and a swish output gate. Reference: fla/layers/gla.py;
// the operator is decay_attn (per_token_key).
#include "models/fla_common.h"
#include "models/fla_configs.h"
#include "ops/dense/dense.h"

namespace lrnn::models {

result<gla_config> read_gla_config(const io::config& cfg) {
  gla_config c;
  LRNN_TRY(read_fla_heads(cfg, c, 4));
  LRNN_ASSIGN_OR_RETURN(c.gate_normalizer, cfg.get_int("gate_logit_normalizer", 16, 1, 1 << 20));
  LRNN_ASSIGN_OR_RETURN(c.low_rank, cfg.get_int("gate_low_rank_dim", 16, 1, 1 << 20));
  LRNN_ASSIGN_OR_RETURN(c.clamp_min, cfg.get_optional_float("clamp_min"));
  LRNN_ASSIGN_OR_RETURN(c.short_conv, cfg.get_bool("use_short_conv", false));
  LRNN_ASSIGN_OR_RETURN(c.conv_size, cfg.get_int("conv_size", 4, 1, 64));
  LRNN_ASSIGN_OR_RETURN(c.conv_bias, cfg.get_bool("conv_bias", false));
  LRNN_ASSIGN_OR_RETURN(c.output_gate, cfg.get_bool("use_output_gate", true));
  LRNN_ASSIGN_OR_RETURN(c.affine, cfg.get_bool("elementwise_affine", true));
  LRNN_ASSIGN_OR_RETURN(auto feature_map, cfg.get_optional_string("feature_map"));
  if (feature_map) return make_error(status_code::unsupported, "{}: feature_map='{}' is not supported yet", cfg.source(), *feature_map);
  LRNN_ASSIGN_OR_RETURN(bool use_gv, cfg.get_bool("use_gv", false));
  if (use_gv) return make_error(status_code::unsupported, "{}: use_gv=true is not supported yet", cfg.source());
  LRNN_ASSIGN_OR_RETURN(std::string act, cfg.get_string("hidden_act", "swish"));
  if (act != "swish") return make_error(status_code::unsupported, "{}: hidden_act '{}' is not supported (swish only)", cfg.source(), act);
  LRNN_TRY(set_fla_head_dims(cfg, c));
  return c;
}

namespace {

class gla_mixer final : public fla::mixer {
 public:
  gla_config c;
  tensor q, k, v, g, gk0, gk1, gk1_bias, o, g_norm;
  fla::short_conv q_conv, k_conv, v_conv;

  status init_state(model_state& st, int64_t batch, const std::string& p) const override {
    LRNN_ASSIGN_OR_RETURN(tensor s, tensor::zeros({batch, c.H, c.Kh, c.Vh}, dtype::f32));
    st.tensors[p + "s"] = s;
    return {};
  }

  result<tensor> forward(const tensor& x, model_state& st, const std::string& p, compute_form form) const override {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor qx, ops::linear(x, q));
    LRNN_ASSIGN_OR_RETURN(tensor kx, ops::linear(x, k));
    LRNN_ASSIGN_OR_RETURN(tensor vx, ops::linear(x, v));
    if (c.short_conv) {
      LRNN_ASSIGN_OR_RETURN(qx, q_conv.forward(qx, st, p + "q_conv"));
      LRNN_ASSIGN_OR_RETURN(kx, k_conv.forward(kx, st, p + "k_conv"));
      LRNN_ASSIGN_OR_RETURN(vx, v_conv.forward(vx, st, p + "v_conv"));
    }
    LRNN_ASSIGN_OR_RETURN(tensor gk_low, ops::linear(x, gk0));
    LRNN_ASSIGN_OR_RETURN(tensor gk, ops::linear(gk_low, gk1, gk1_bias));
    ops::apply_activation(gk, ops::activation::logsigmoid);
    ops::scale_inplace(gk, 1.0f / static_cast<float>(c.gate_normalizer));
    if (c.clamp_min) {
      float* gp = gk.data<float>();
      for (int64_t i = 0; i < gk.numel(); ++i) gp[i] = std::max(gp[i], static_cast<float>(*c.clamp_min));
    }
    ops::decay_attn_inputs in;
    LRNN_ASSIGN_OR_RETURN(in.q, qx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.k, kx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.v, vx.view({B, T, c.H, c.Vh}));
    LRNN_ASSIGN_OR_RETURN(in.g, gk.view({B, T, c.H, c.Kh}));
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    ops::decay_attn_state init;
    init.s = st.tensors.at(p + "s");
    LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(spec, in, init, fla::decay_form(form, T)));
    st.tensors[p + "s"] = out.final_state.s;
    LRNN_ASSIGN_OR_RETURN(tensor ov, out.o.view({B, T, c.H * c.Vh}));
    return fla::gated_head_output(ov, c.H, g_norm, c.eps, x, g, o);
  }
};


result<std::unique_ptr<model>> build_gla(const load_context& ctx) {
  LRNN_ASSIGN_OR_RETURN(gla_config c, read_gla_config(ctx.config));
  return fla::causal_lm::build(ctx, "gla", [c](weight_loader& w, const std::string& p) -> result<std::unique_ptr<fla::mixer>> {
    auto m = std::make_unique<gla_mixer>();
    m->c = c;
    const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", c.D, c.expand_k, c.expand_v);
    LRNN_ASSIGN_OR_RETURN(m->q, w.get(p + "q_proj.weight", {c.key_dim, c.D}, dims));
    LRNN_ASSIGN_OR_RETURN(m->k, w.get(p + "k_proj.weight", {c.key_dim, c.D}, dims));
    LRNN_ASSIGN_OR_RETURN(m->v, w.get(p + "v_proj.weight", {c.value_dim, c.D}, dims));
    if (c.output_gate) {
      LRNN_ASSIGN_OR_RETURN(m->g, w.get(p + "g_proj.weight", {c.value_dim, c.D}, dims));
    }
    LRNN_ASSIGN_OR_RETURN(m->gk0, w.get(p + "gk_proj.0.weight", {c.low_rank, c.D}, "gate_low_rank_dim"));
    LRNN_ASSIGN_OR_RETURN(m->gk1, w.get(p + "gk_proj.1.weight", {c.key_dim, c.low_rank}, "gate_low_rank_dim"));
    LRNN_ASSIGN_OR_RETURN(m->gk1_bias, w.get(p + "gk_proj.1.bias", {c.key_dim}, dims));
    if (c.affine) {
      LRNN_ASSIGN_OR_RETURN(m->g_norm, w.get(p + "g_norm.weight", {c.Vh}, "head value dim"));
    }
    if (c.short_conv) {
      LRNN_ASSIGN_OR_RETURN(m->q_conv, fla::short_conv::load(w, p + "q_conv1d.", c.key_dim, c.conv_size, c.conv_bias));
      LRNN_ASSIGN_OR_RETURN(m->k_conv, fla::short_conv::load(w, p + "k_conv1d.", c.key_dim, c.conv_size, c.conv_bias));
      LRNN_ASSIGN_OR_RETURN(m->v_conv, fla::short_conv::load(w, p + "v_conv1d.", c.value_dim, c.conv_size, c.conv_bias));
    }
    LRNN_ASSIGN_OR_RETURN(m->o, w.get(p + "o_proj.weight", {c.D, c.value_dim}, dims));
    return std::unique_ptr<fla::mixer>(std::move(m));
  });
}

}  // namespace

LRNN_REGISTER_MODEL(gla, "gla", build_gla)

}  // namespace lrnn::models
