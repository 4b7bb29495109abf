// Trainable Gated DeltaNet (fla's GatedDeltaNet, model_type "gated_deltanet"): the mixer of
// models/gated_deltanet.cpp over autograd vars (same config reader, models/gated_deltanet_config.h):
// q/k/v short convolutions with SiLU, grouped value heads, beta = sigma(W_b x) (x2 with negative
// eigenvalues), g = -exp(A_log) softplus(W_a x + dt_bias), the gated delta rule with q/k L2 norm
// in the op (ag::delta_rule), per-head RMSNorm gated by silu(W_g x), o_proj. fla's initialisation
// (fla/layers/gated_deltanet.py for A_log and dt_bias).
#include "models/gated_deltanet_config.h"
#include "ops/delta_rule/autograd.h"
#include "train/models/fla_common.h"

#include <cmath>
#include <functional>
#include <random>

namespace lrnn::train {
namespace {

// [B, T, H, K] -> [B, T, H * r, K], head h repeated r times (value head j reads key head j / r).
result<ag::var> repeat_heads(const ag::var& x, int64_t r) {
  if (r == 1) return x;
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), K = x.size(3);
  LRNN_ASSIGN_OR_RETURN(ag::var x5, ag::reshape(x, {B, T, H, 1, K}));
  LRNN_ASSIGN_OR_RETURN(ag::var rep, ag::concat(std::vector<ag::var>(static_cast<size_t>(r), x5), 3));
  return ag::reshape(rep, {B, T, H * r, K});
}

class gdn_mixer final : public fla::mixer {
 public:
  models::gdn_config c;
  fla::qkv_projection qkv;
  ag::var a, b, g, o, A_log, dt_bias, o_norm;

  result<ag::var> forward(const ag::var& x, models::compute_form form) const override {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(auto qkv_out, qkv.forward(x));
    auto [qx, kx, vx] = qkv_out;
    if (!c.short_conv) {
      LRNN_ASSIGN_OR_RETURN(qx, ag::activation(qx, ops::activation::silu));
      LRNN_ASSIGN_OR_RETURN(kx, ag::activation(kx, ops::activation::silu));
      LRNN_ASSIGN_OR_RETURN(vx, ag::activation(vx, ops::activation::silu));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var bl, ag::linear(x, b));
    LRNN_ASSIGN_OR_RETURN(ag::var beta, ag::activation(bl, ops::activation::sigmoid));
    if (c.allow_neg_eigval) {
      LRNN_ASSIGN_OR_RETURN(beta, ag::scale(beta, 2.0));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var gl, ag::linear(x, a, dt_bias));
    LRNN_ASSIGN_OR_RETURN(ag::var sp, ag::activation(gl, ops::activation::softplus));
    LRNN_ASSIGN_OR_RETURN(ag::var ea, ag::activation(A_log, ops::activation::exp));
    LRNN_ASSIGN_OR_RETURN(ag::var nea, ag::scale(ea, -1.0));
    LRNN_ASSIGN_OR_RETURN(ag::var gate, ag::mul(sp, nea));  // [B, T, HV]
    ag::delta_rule_vars in;
    LRNN_ASSIGN_OR_RETURN(ag::var q4, ag::reshape(qx, {B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(ag::var k4, ag::reshape(kx, {B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.q, repeat_heads(q4, c.HV / c.H));
    LRNN_ASSIGN_OR_RETURN(in.k, repeat_heads(k4, c.HV / c.H));
    LRNN_ASSIGN_OR_RETURN(in.v, ag::reshape(vx, {B, T, c.HV, c.Vh}));
    in.beta = beta;
    in.g = gate;
    ops::delta_rule_spec spec;
    spec.kind = ops::delta_kind::gated;
    spec.qk_l2norm = true;
    spec.l2norm_eps = 1e-6;
    const auto df = form == models::compute_form::recurrent ? ops::delta_rule_form::recurrent : ops::delta_rule_form::chunk;
    LRNN_ASSIGN_OR_RETURN(ag::var o4, ag::delta_rule(spec, in, df));
    return fla::gated_head_output(o4, c.HV, o_norm, c.eps, x, c.use_gate ? g : ag::var(), o);
  }
};

// A fill from a per-parameter RNG (param_init::custom gets none; seeded from the name).
param_init seeded(const std::string& name, std::function<double(std::mt19937_64&)> draw) {
  return param_init::custom([name, draw](tensor& t) {
    std::mt19937_64 rng(std::hash<std::string>{}(name));
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(draw(rng));
  });
}

result<std::unique_ptr<trainable_model>> build_gated_deltanet(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(models::gdn_config c, models::read_gdn_config(config));
  return fla::build_lm<gdn_mixer>(config, src, "gated_deltanet", c,
                                  [](gdn_mixer& m, const param_init& normal, param_source& s, std::vector<parameter>& P, const std::string& p) -> status {
    const models::gdn_config& c = m.c;
    const std::string kd = fmt::format("num_heads={} * head_dim={}, hidden_size={}", c.H, c.Kh, c.D);
    const std::string vd = fmt::format("num_v_heads={} * head_dim={} * expand_v={}, hidden_size={}", c.HV, c.Kh, c.expand_v, c.D);
    const std::string hd = fmt::format("num_v_heads={}", c.HV);
    LRNN_TRY(m.qkv.add_projections(s, P, p, c.D, c.key_dim, c.value_dim, normal, kd, vd));
    LRNN_ASSIGN_OR_RETURN(m.a, fla::add_param(s, P, p + "a_proj.weight", {c.HV, c.D}, normal, hd));
    LRNN_ASSIGN_OR_RETURN(m.b, fla::add_param(s, P, p + "b_proj.weight", {c.HV, c.D}, normal, hd));
    // A ~ U(0, 16), A_log = log A; dt = exp(U(log 1e-3, log 0.1)) >= 1e-4, dt_bias = dt + log(-expm1(-dt)).
    LRNN_ASSIGN_OR_RETURN(m.A_log, fla::add_param(s, P, p + "A_log", {c.HV}, seeded(p + "A_log", [](std::mt19937_64& g) {
                                                     std::uniform_real_distribution<double> u(1e-6, 16.0);
                                                     return std::log(u(g));
                                                   }), hd));
    LRNN_ASSIGN_OR_RETURN(m.dt_bias, fla::add_param(s, P, p + "dt_bias", {c.HV}, seeded(p + "dt_bias", [](std::mt19937_64& g) {
                                                       std::uniform_real_distribution<double> u(0.0, 1.0);
                                                       double dt = std::exp(u(g) * (std::log(0.1) - std::log(0.001)) + std::log(0.001));
                                                       dt = std::max(dt, 1e-4);
                                                       return dt + std::log(-std::expm1(-dt));
                                                     }), hd));
    if (c.short_conv) LRNN_TRY(m.qkv.add_convs(s, P, p, c.key_dim, c.value_dim, c.conv_size, c.conv_bias, normal));
    if (c.use_gate) {
      LRNN_ASSIGN_OR_RETURN(m.g, fla::add_param(s, P, p + "g_proj.weight", {c.value_dim, c.D}, normal, vd));
    }
    return fla::add_head_output(s, P, p, "o_norm.weight", true, c.Vh, "head_dim * expand_v", c.D, c.value_dim, normal, vd, m.o_norm,
                                m.o);
  });
}

}  // namespace

LRNN_REGISTER_TRAINABLE(gated_deltanet, "gated_deltanet", build_gated_deltanet)

}  // namespace lrnn::train
