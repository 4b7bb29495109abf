// Gated DeltaNet in fla's format (model_type "gated_deltanet"): the fla causal LM whose mixer is
// GatedDeltaNet — q/k/v short convolutions with SiLU, q and k L2-normalised per head, beta =
// sigma(W_b x) (2 sigma with negative eigenvalues), g = -exp(A_log) softplus(W_a x + dt_bias),
// the gated delta rule, per-head RMSNorm gated by silu(W_g x), o_proj. Reference:
// fla/layers/gated_deltanet.py; math in shared OPS.md section 3; the operator is delta_rule.
#include "models/fla_common.h"
#include "models/gated_deltanet_config.h"
#include "ops/delta_rule/delta_rule.h"
#include "ops/dense/dense.h"

#include <cmath>
#include <cstring>

namespace lrnn::models {
namespace {

// delta_rule has no parallel form: a single chunk is the parallel form, so parallel and long
// inputs run the chunk form and short ones the token recurrence.
ops::delta_rule_form delta_form(compute_form f, int64_t T) {
  switch (f) {
    case compute_form::chunk:
    case compute_form::parallel: return ops::delta_rule_form::chunk;
    case compute_form::recurrent: return ops::delta_rule_form::recurrent;
    case compute_form::automatic: return T <= 16 ? ops::delta_rule_form::recurrent : ops::delta_rule_form::chunk;
  }
  return ops::delta_rule_form::chunk;
}

// [B, T, H, K] -> [B, T, H * r, K], each head repeated r times (fla's grouped value heads:
// value head j reads key head j / r).
result<tensor> repeat_heads(const tensor& x, int64_t r) {
  if (r == 1) return x;
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), K = x.size(3);
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::zeros({B, T, H * r, K}, dtype::f32));  // [B, T, H * r, K]
  const float* src = x.data<float>();
  float* dst = y.data<float>();
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < r; ++i)
        std::memcpy(dst + (bt * H * r + h * r + i) * K, src + (bt * H + h) * K, sizeof(float) * K);
  return y;
}

class gdn_mixer final : public fla::mixer {
 public:
  gdn_config c;
  tensor q, k, v, a, b, g, o, A_log, dt_bias, o_norm;
  fla::short_conv q_conv, k_conv, v_conv;

  status init_state(model_state& st, int64_t batch, const std::string& p) const override {
    LRNN_ASSIGN_OR_RETURN(tensor s, tensor::zeros({batch, c.HV, c.Kh, c.Vh}, dtype::f32));
    st.tensors[p + "s"] = s;
    return {};
  }

  result<tensor> forward(const tensor& x, model_state& st, const std::string& p, compute_form form) const override {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor qx, ops::linear(x, q));  // [B, T, H * Kh]
    LRNN_ASSIGN_OR_RETURN(tensor kx, ops::linear(x, k));  // [B, T, H * Kh]
    LRNN_ASSIGN_OR_RETURN(tensor vx, ops::linear(x, v));  // [B, T, HV * Vh]
    if (c.short_conv) {
      LRNN_ASSIGN_OR_RETURN(qx, q_conv.forward(qx, st, p + "q_conv"));
      LRNN_ASSIGN_OR_RETURN(kx, k_conv.forward(kx, st, p + "k_conv"));
      LRNN_ASSIGN_OR_RETURN(vx, v_conv.forward(vx, st, p + "v_conv"));
    } else {
      for (tensor* t : {&qx, &kx, &vx}) ops::apply_activation(*t, ops::activation::silu);
    }
    LRNN_ASSIGN_OR_RETURN(tensor beta, ops::linear(x, b));  // [B, T, HV]
    ops::apply_activation(beta, ops::activation::sigmoid);
    if (c.allow_neg_eigval) ops::scale_inplace(beta, 2.0f);
    LRNN_ASSIGN_OR_RETURN(tensor gate, ops::linear(x, a, dt_bias));  // [B, T, HV]
    ops::apply_activation(gate, ops::activation::softplus);
    {
      float* gp = gate.data<float>();
      const float* al = A_log.data<float>();
      for (int64_t i = 0; i < gate.numel(); ++i) gp[i] *= -std::exp(al[i % c.HV]);
    }
    ops::delta_rule_inputs in;
    LRNN_ASSIGN_OR_RETURN(tensor q4, qx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(tensor k4, kx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.q, repeat_heads(q4, c.HV / c.H));
    LRNN_ASSIGN_OR_RETURN(in.k, repeat_heads(k4, c.HV / c.H));
    LRNN_ASSIGN_OR_RETURN(in.v, vx.view({B, T, c.HV, c.Vh}));
    LRNN_ASSIGN_OR_RETURN(in.beta, beta.view({B, T, c.HV}));
    LRNN_ASSIGN_OR_RETURN(in.g, gate.view({B, T, c.HV}));
    ops::delta_rule_spec spec;
    spec.kind = ops::delta_kind::gated;
    spec.qk_l2norm = true;
    spec.l2norm_eps = 1e-6;
    ops::delta_rule_state init;
    init.s = st.tensors.at(p + "s");
    LRNN_ASSIGN_OR_RETURN(auto out, ops::delta_rule_forward(spec, in, init, delta_form(form, T)));
    st.tensors[p + "s"] = out.final_state.s;
    LRNN_ASSIGN_OR_RETURN(tensor ov, out.o.view({B, T, c.value_dim}));
    return fla::gated_head_output(ov, c.HV, o_norm, c.eps, x, c.use_gate ? g : tensor(), o);
  }
};

result<std::unique_ptr<model>> build_gated_deltanet(const load_context& ctx) {
  LRNN_ASSIGN_OR_RETURN(gdn_config c, read_gdn_config(ctx.config));
  return fla::causal_lm::build(ctx, "gated_deltanet", [c](weight_loader& w, const std::string& p) -> result<std::unique_ptr<fla::mixer>> {
    auto m = std::make_unique<gdn_mixer>();
    m->c = c;
    const std::string kd = fmt::format("num_heads={} * head_dim={}, hidden_size={}", c.H, c.Kh, c.D);
    const std::string vd = fmt::format("num_v_heads={} * head_dim={} * expand_v={}, hidden_size={}", c.HV, c.Kh, c.expand_v, c.D);
    const std::string hd = fmt::format("num_v_heads={}", c.HV);
    LRNN_ASSIGN_OR_RETURN(m->q, w.get(p + "q_proj.weight", {c.key_dim, c.D}, kd));
    LRNN_ASSIGN_OR_RETURN(m->k, w.get(p + "k_proj.weight", {c.key_dim, c.D}, kd));
    LRNN_ASSIGN_OR_RETURN(m->v, w.get(p + "v_proj.weight", {c.value_dim, c.D}, vd));
    LRNN_ASSIGN_OR_RETURN(m->a, w.get(p + "a_proj.weight", {c.HV, c.D}, hd));
    LRNN_ASSIGN_OR_RETURN(m->b, w.get(p + "b_proj.weight", {c.HV, c.D}, hd));
    LRNN_ASSIGN_OR_RETURN(m->A_log, w.get(p + "A_log", {c.HV}, hd));
    LRNN_ASSIGN_OR_RETURN(m->dt_bias, w.get(p + "dt_bias", {c.HV}, hd));
    if (c.short_conv) {
      LRNN_ASSIGN_OR_RETURN(m->q_conv, fla::short_conv::load(w, p + "q_conv1d.", c.key_dim, c.conv_size, c.conv_bias));
      LRNN_ASSIGN_OR_RETURN(m->k_conv, fla::short_conv::load(w, p + "k_conv1d.", c.key_dim, c.conv_size, c.conv_bias));
      LRNN_ASSIGN_OR_RETURN(m->v_conv, fla::short_conv::load(w, p + "v_conv1d.", c.value_dim, c.conv_size, c.conv_bias));
    }
    if (c.use_gate) {
      LRNN_ASSIGN_OR_RETURN(m->g, w.get(p + "g_proj.weight", {c.value_dim, c.D}, vd));
    }
    LRNN_ASSIGN_OR_RETURN(m->o_norm, w.get(p + "o_norm.weight", {c.Vh}, "head_dim * expand_v"));
    LRNN_ASSIGN_OR_RETURN(m->o, w.get(p + "o_proj.weight", {c.D, c.value_dim}, vd));
    return std::unique_ptr<fla::mixer>(std::move(m));
  });
}

}  // namespace

LRNN_REGISTER_MODEL(gated_deltanet, "gated_deltanet", build_gated_deltanet)

}  // namespace lrnn::models
