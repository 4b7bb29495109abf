// RetNet in fla's format (model_type "retnet"): the fla causal LM whose mixer is
// MultiScaleRetention — rotary q/k (half split, base 10000), fixed per-head decay
// gamma_h = 1 - 2^(-5-h), per-head RMSNorm and a swish output gate. Reference:
// fla/layers/multiscale_retention.py, fla/ops/retention; the operator is decay_attn (per_head_const).
#include "models/fla_common.h"
#include "models/fla_configs.h"
#include "ops/dense/dense.h"

#include <cmath>

namespace lrnn::models {

result<retnet_config> read_retnet_config(const io::config& cfg) {
  retnet_config c;
  LRNN_TRY(read_fla_heads(cfg, c, 8));
  LRNN_ASSIGN_OR_RETURN(c.output_gate, cfg.get_bool("use_output_gate", true));
  LRNN_ASSIGN_OR_RETURN(c.affine, cfg.get_bool("elementwise_affine", true));
  LRNN_ASSIGN_OR_RETURN(bool short_conv, cfg.get_bool("use_short_conv", false));
  if (short_conv) return make_error(status_code::unsupported, "{}: use_short_conv=true is not supported yet for retnet", cfg.source());
  LRNN_ASSIGN_OR_RETURN(auto feature_map, cfg.get_optional_string("feature_map"));
  if (feature_map) return make_error(status_code::unsupported, "{}: feature_map='{}' is not supported yet", cfg.source(), *feature_map);
  LRNN_ASSIGN_OR_RETURN(std::string act, cfg.get_string("hidden_act", "swish"));
  if (act != "swish") return make_error(status_code::unsupported, "{}: hidden_act '{}' is not supported (swish only)", cfg.source(), act);
  LRNN_TRY(set_fla_head_dims(cfg, c));
  if (c.Kh % 2) return make_error(status_code::invalid_argument, "{}: head key dim {} must be even for rotary embeddings", cfg.source(), c.Kh);
  return c;
}

namespace {

class retnet_mixer final : public fla::mixer {
 public:
  retnet_config c;
  tensor q, k, v, g, o, g_norm, log_gamma;

  status init_state(model_state& st, int64_t batch, const std::string& p) const override {
    LRNN_ASSIGN_OR_RETURN(tensor s, tensor::zeros({batch, c.H, c.Kh, c.Vh}, dtype::f32));
    st.tensors[p + "s"] = s;
    LRNN_ASSIGN_OR_RETURN(tensor pos, tensor::zeros({batch}, dtype::i64));
    st.tensors[p + "pos"] = pos;
    return {};
  }

  result<tensor> forward(const tensor& x, model_state& st, const std::string& p, compute_form form) const override {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor qx, ops::linear(x, q));
    LRNN_ASSIGN_OR_RETURN(tensor kx, ops::linear(x, k));
    LRNN_ASSIGN_OR_RETURN(tensor vx, ops::linear(x, v));
    ops::decay_attn_inputs in;
    LRNN_ASSIGN_OR_RETURN(in.q, qx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.k, kx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.v, vx.view({B, T, c.H, c.Vh}));
    LRNN_ASSIGN_OR_RETURN(auto start, fla::positions(st, p + "pos", B));
    fla::apply_rotary(in.q, start, 10000.0);
    fla::apply_rotary(in.k, start, 10000.0);
    fla::advance_positions(st, p + "pos", T);
    in.g = log_gamma;
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_head_const;
    ops::decay_attn_state init;
    init.s = st.tensors.at(p + "s");
    LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(spec, in, init, fla::decay_form(form, T)));
    st.tensors[p + "s"] = out.final_state.s;
    LRNN_ASSIGN_OR_RETURN(tensor ov, out.o.view({B, T, c.H * c.Vh}));
    return fla::gated_head_output(ov, c.H, g_norm, c.eps, x, g, o);
  }
};


result<std::unique_ptr<model>> build_retnet(const load_context& ctx) {
  LRNN_ASSIGN_OR_RETURN(retnet_config c, read_retnet_config(ctx.config));
  return fla::causal_lm::build(ctx, "retnet", [c](weight_loader& w, const std::string& p) -> result<std::unique_ptr<fla::mixer>> {
    auto m = std::make_unique<retnet_mixer>();
    m->c = c;
    const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", c.D, c.expand_k, c.expand_v);
    LRNN_ASSIGN_OR_RETURN(m->q, w.get(p + "q_proj.weight", {c.key_dim, c.D}, dims));
    LRNN_ASSIGN_OR_RETURN(m->k, w.get(p + "k_proj.weight", {c.key_dim, c.D}, dims));
    LRNN_ASSIGN_OR_RETURN(m->v, w.get(p + "v_proj.weight", {c.value_dim, c.D}, dims));
    if (c.output_gate) {
      LRNN_ASSIGN_OR_RETURN(m->g, w.get(p + "g_proj.weight", {c.value_dim, c.D}, dims));
    }
    if (c.affine) {
      LRNN_ASSIGN_OR_RETURN(m->g_norm, w.get(p + "g_norm.weight", {c.Vh}, "head value dim"));
    }
    LRNN_ASSIGN_OR_RETURN(m->o, w.get(p + "o_proj.weight", {c.D, c.value_dim}, dims));
    std::vector<double> lg(static_cast<size_t>(c.H));
    for (int64_t h = 0; h < c.H; ++h) lg[h] = std::log(1.0 - std::pow(2.0, -5.0 - static_cast<double>(h)));
    m->log_gamma = tensor::from_doubles(lg, {c.H}, dtype::f32);
    return std::unique_ptr<fla::mixer>(std::move(m));
  });
}

}  // namespace

LRNN_REGISTER_MODEL(retnet, "retnet", build_retnet)

}  // namespace lrnn::models
