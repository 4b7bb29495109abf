// RWKV-7 "Goose" in fla's format (model_type "rwkv7"): LayerNorm blocks (an extra pre-norm on
// block 0), time mix with static token-shift lerps, LoRA decay / in-context rate / value residual
// / gate, the DPLR delta rule (a = -kappa^, b = kappa^ alpha), GroupNorm plus the r k rho bonus,
// and a squared-ReLU channel mix. Reference: fla/layers/rwkv7.py, fla/models/rwkv7/; math in
// shared OPS.md section 3.1; the operator is delta_rule (dplr).
#include "models/fla_common.h"
#include "models/rwkv7_config.h"
#include "ops/delta_rule/delta_rule.h"
#include "ops/dense/dense.h"

#include <algorithm>
#include <cmath>

namespace lrnn::models {
namespace {

constexpr float decay_scale = 0.6065306597126334f;  // e^{-0.5}: w = -e^{-0.5} sigma(.)

ops::delta_rule_form delta_form(compute_form f, int64_t T) {
  switch (f) {
    case compute_form::chunk:
    case compute_form::parallel: return ops::delta_rule_form::chunk;
    case compute_form::recurrent: return ops::delta_rule_form::recurrent;
    // Prefill (forward only) on CPU: the recurrent form. The DPLR chunk form (delta_rule
    // cpu/dplr_chunk.cpp) was measured slower in the forward at RWKV-7's head size 64 (0.6x to 0.9x
    // of recurrent for T = 64 to 4096, chunk 32 or 64) and equal at 128 (bench/cpu_ops.md); it pays
    // off in forward + backward (training asks for compute_form::chunk).
    case compute_form::automatic: return ops::delta_rule_form::recurrent;
  }
  return ops::delta_rule_form::chunk;
}

// fla's LoRA: W2 act(W1 x) (+ b).
struct lora {
  tensor w1, w2, bias;
  ops::activation act = ops::activation::identity;
  static result<lora> load(weight_loader& w, const std::string& prefix, int64_t in, int64_t out, int64_t rank, bool bias,
                           ops::activation act, const std::string& why) {
    lora l;
    l.act = act;
    LRNN_ASSIGN_OR_RETURN(l.w1, w.get(prefix + "lora.0.weight", {rank, in}, why));
    LRNN_ASSIGN_OR_RETURN(l.w2, w.get(prefix + "lora.2.weight", {out, rank}, why));
    if (bias) {
      LRNN_ASSIGN_OR_RETURN(l.bias, w.get(prefix + "lora.2.bias", {out}, why));
    }
    return l;
  }
  result<tensor> forward(const tensor& x) const {
    LRNN_ASSIGN_OR_RETURN(tensor h, ops::linear(x, w1));
    ops::apply_activation(h, act);
    return ops::linear(h, w2, bias);
  }
};

struct rwkv7_layer {
  tensor pre_norm_w, pre_norm_b, attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b;
  tensor x_r, x_w, x_k, x_v, x_a, x_g, k_k, k_a, r_k;
  tensor r_proj, k_proj, v_proj, o_proj, g_norm_w, g_norm_b;
  lora w_lora, a_lora, g_lora, v_lora;
  tensor ffn_x_k, ffn_key, ffn_value;
};

// Token shift with the previous token kept in the state under `key` ([B, D]).
result<tensor> token_shift(const tensor& x, model_state& st, const std::string& key) {
  LRNN_ASSIGN_OR_RETURN(tensor cache, fla::state_tensor(st, key, {x.size(0), x.size(2)}));
  LRNN_ASSIGN_OR_RETURN(tensor delta, ops::token_shift(x, cache));
  st.tensors[key] = cache;
  return delta;
}

class rwkv7_model final : public model {
 public:
  rwkv7_config c;
  tensor embed, norm_w, norm_b, lm_head;
  std::vector<rwkv7_layer> layers;
  int64_t vocab = 0;
  uint64_t bytes = 0;

  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab; }
  uint64_t weight_bytes() const override { return bytes; }

  result<model_state> initial_state(int64_t batch) const override {
    if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
    model_state st;
    st.batch = batch;
    for (int64_t l = 0; l < c.layers; ++l) {
      const std::string p = fmt::format("layers.{}.", l);
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "s"], tensor::zeros({batch, c.H, c.Kh, c.Vh}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "attn_shift"], tensor::zeros({batch, c.D}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "ffn_shift"], tensor::zeros({batch, c.D}, dtype::f32));
    }
    return st;
  }

  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override {
    LRNN_TRY(fla::check_ids(ids, st, vocab));
    LRNN_ASSIGN_OR_RETURN(tensor h, ops::embedding(ids, embed));  // [B, T, D]
    tensor v_first;
    for (int64_t l = 0; l < c.layers; ++l) {
      const rwkv7_layer& L = layers[l];
      const std::string p = fmt::format("layers.{}.", l);
      if (L.pre_norm_w.defined()) {
        LRNN_ASSIGN_OR_RETURN(h, ops::layer_norm(h, L.pre_norm_w, L.pre_norm_b, c.eps));
      }
      LRNN_ASSIGN_OR_RETURN(tensor x, ops::layer_norm(h, L.attn_norm_w, L.attn_norm_b, c.eps));
      LRNN_ASSIGN_OR_RETURN(tensor a, time_mix(L, l, x, st, p, form, v_first));
      LRNN_TRY(ops::add_inplace(h, a));
      LRNN_ASSIGN_OR_RETURN(tensor y, ops::layer_norm(h, L.ffn_norm_w, L.ffn_norm_b, c.eps));
      LRNN_ASSIGN_OR_RETURN(tensor f, channel_mix(L, y, st, p));
      LRNN_TRY(ops::add_inplace(h, f));
    }
    LRNN_ASSIGN_OR_RETURN(tensor n, ops::layer_norm(h, norm_w, norm_b, c.eps));
    return ops::linear(n, lm_head);
  }

 private:
  std::string type_ = "rwkv7";

  result<tensor> time_mix(const rwkv7_layer& L, int64_t l, const tensor& x, model_state& st, const std::string& p,
                          compute_form form, tensor& v_first) const {
    const int64_t B = x.size(0), T = x.size(1), H = c.H, Kh = c.Kh, Vh = c.Vh;
    LRNN_ASSIGN_OR_RETURN(tensor delta, token_shift(x, st, p + "attn_shift"));
    LRNN_ASSIGN_OR_RETURN(tensor xr, ops::shift_lerp(x, delta, L.x_r));
    LRNN_ASSIGN_OR_RETURN(tensor xw, ops::shift_lerp(x, delta, L.x_w));
    LRNN_ASSIGN_OR_RETURN(tensor xk, ops::shift_lerp(x, delta, L.x_k));
    LRNN_ASSIGN_OR_RETURN(tensor xv, ops::shift_lerp(x, delta, L.x_v));
    LRNN_ASSIGN_OR_RETURN(tensor xa, ops::shift_lerp(x, delta, L.x_a));
    LRNN_ASSIGN_OR_RETURN(tensor xg, ops::shift_lerp(x, delta, L.x_g));

    LRNN_ASSIGN_OR_RETURN(tensor r, ops::linear(xr, L.r_proj));  // [B, T, H * Kh]
    LRNN_ASSIGN_OR_RETURN(tensor w, L.w_lora.forward(xw));       // [B, T, H * Kh]
    ops::apply_activation(w, ops::activation::sigmoid);
    ops::scale_inplace(w, -decay_scale);
    LRNN_ASSIGN_OR_RETURN(tensor k, ops::linear(xk, L.k_proj));  // [B, T, H * Kh]
    LRNN_ASSIGN_OR_RETURN(tensor v, ops::linear(xv, L.v_proj));  // [B, T, H * Vh]
    if (l == 0) {
      v_first = v;
    } else {
      LRNN_ASSIGN_OR_RETURN(tensor mix, L.v_lora.forward(xv));
      ops::apply_activation(mix, ops::activation::sigmoid);
      if (!v_first.defined() || v_first.shape() != v.shape())
        return make_error(status_code::invalid_argument, "rwkv7: layer {} value residual needs v_first of shape {}", l,
                          shape_to_string(v.shape()));
      float* vp = v.data<float>();
      const float *fp = v_first.data<float>(), *mp = mix.data<float>();
      for (int64_t i = 0; i < v.numel(); ++i) vp[i] += (fp[i] - vp[i]) * mp[i];
    }
    LRNN_ASSIGN_OR_RETURN(tensor alpha, L.a_lora.forward(xa));  // [B, T, H * Kh]
    ops::apply_activation(alpha, ops::activation::sigmoid);
    LRNN_ASSIGN_OR_RETURN(tensor g, L.g_lora.forward(xg));  // [B, T, H * Vh]

    // kappa^ = normalize(k * k_k) per head; k <- k (1 + (alpha - 1) k_a); a = -kappa^, b = kappa^ alpha.
    LRNN_ASSIGN_OR_RETURN(tensor da, tensor::empty({B, T, H, Kh}, dtype::f32));  // [B, T, H, Kh]
    LRNN_ASSIGN_OR_RETURN(tensor db, tensor::empty({B, T, H, Kh}, dtype::f32));  // [B, T, H, Kh]
    {
      float *kp = k.data<float>(), *ap = da.data<float>(), *bp = db.data<float>();
      const float *al = alpha.data<float>(), *kk = L.k_k.data<float>(), *ka = L.k_a.data<float>();
      for (int64_t row = 0; row < B * T * H; ++row) {
        const int64_t off = row * Kh, c0 = (row % H) * Kh;
        double ss = 0;
        for (int64_t i = 0; i < Kh; ++i) {
          const double e = static_cast<double>(kp[off + i]) * kk[c0 + i];
          ss += e * e;
        }
        const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
        for (int64_t i = 0; i < Kh; ++i) {
          const float kap = static_cast<float>(kp[off + i] * kk[c0 + i] * inv);
          ap[off + i] = -kap;
          bp[off + i] = kap * al[off + i];
          kp[off + i] += kp[off + i] * (al[off + i] - 1.0f) * ka[c0 + i];
        }
      }
    }
    ops::delta_rule_inputs in;
    LRNN_ASSIGN_OR_RETURN(in.q, r.view({B, T, H, Kh}));
    LRNN_ASSIGN_OR_RETURN(in.k, k.view({B, T, H, Kh}));
    LRNN_ASSIGN_OR_RETURN(in.v, v.view({B, T, H, Vh}));
    LRNN_ASSIGN_OR_RETURN(in.w, w.view({B, T, H, Kh}));
    in.a = da;
    in.b = db;
    ops::delta_rule_spec spec;
    spec.kind = ops::delta_kind::dplr;
    spec.scale = 1.0;
    ops::delta_rule_state init;
    init.s = st.tensors.at(p + "s");
    LRNN_ASSIGN_OR_RETURN(auto out, ops::delta_rule_forward(spec, in, init, delta_form(form, T)));
    st.tensors[p + "s"] = out.final_state.s;
    LRNN_ASSIGN_OR_RETURN(tensor o, out.o.view({B, T, H * Vh}));
    LRNN_ASSIGN_OR_RETURN(o, ops::group_norm(o, H, L.g_norm_w, L.g_norm_b, static_cast<double>(Kh) * c.eps));
    {
      float* op = o.data<float>();
      const float *rp = r.data<float>(), *kp = k.data<float>(), *rk = L.r_k.data<float>();
      const float *vp = v.data<float>(), *gp = g.data<float>();
      for (int64_t row = 0; row < B * T * H; ++row) {
        const int64_t hh = row % H;
        float bonus = 0;
        for (int64_t i = 0; i < Kh; ++i) bonus += rp[row * Kh + i] * kp[row * Kh + i] * rk[hh * Kh + i];
        for (int64_t j = 0; j < Vh; ++j) {
          const int64_t at = row * Vh + j;
          op[at] = (op[at] + bonus * vp[at]) * gp[at];
        }
      }
    }
    return ops::linear(o, L.o_proj);
  }

  result<tensor> channel_mix(const rwkv7_layer& L, const tensor& y, model_state& st, const std::string& p) const {
    LRNN_ASSIGN_OR_RETURN(tensor delta, token_shift(y, st, p + "ffn_shift"));
    LRNN_ASSIGN_OR_RETURN(tensor xk, ops::shift_lerp(y, delta, L.ffn_x_k));
    LRNN_ASSIGN_OR_RETURN(tensor kx, ops::linear(xk, L.ffn_key));  // [B, T, inter]
    ops::apply_activation(kx, ops::activation::relu_squared);
    return ops::linear(kx, L.ffn_value);
  }
};

}  // namespace

// fla's default LoRA rank: max(32, round(c * sqrt(D) * factor / 32) * 32), Python's round
// (half to even).
static int64_t default_rank(double coef, int64_t D, double factor) {
  const double r = std::nearbyint(coef * std::sqrt(static_cast<double>(D)) * factor / 32.0) * 32.0;
  return std::max<int64_t>(32, static_cast<int64_t>(r));
}

result<rwkv7_config> read_rwkv7_config(const io::config& cfg) {
  rwkv7_config c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(cfg));
  c.D = common.hidden_size;
  c.layers = common.num_hidden_layers;
  LRNN_ASSIGN_OR_RETURN(auto head_dim, cfg.get_optional_int("head_dim"));
  LRNN_ASSIGN_OR_RETURN(auto heads, cfg.get_optional_int("num_heads"));
  if (head_dim) {
    if (*head_dim < 1 || c.D % *head_dim)
      return make_error(status_code::invalid_argument, "{}: head_dim={} does not divide hidden_size={}", cfg.source(), *head_dim, c.D);
    c.Kh = *head_dim;
    c.H = c.D / c.Kh;
  } else if (heads) {
    if (*heads < 1 || c.D % *heads)
      return make_error(status_code::invalid_argument, "{}: num_heads={} does not divide hidden_size={}", cfg.source(), *heads, c.D);
    c.H = *heads;
    c.Kh = c.D / c.H;
  } else {
    c.Kh = 64;
    if (c.D % 64) return make_error(status_code::invalid_argument, "{}: hidden_size={} is not a multiple of head_dim=64 (default)", cfg.source(), c.D);
    c.H = c.D / 64;
  }
  if (heads && *heads != c.H)
    return make_error(status_code::invalid_argument, "{}: num_heads={} disagrees with hidden_size={} / head_dim={}", cfg.source(),
                      *heads, c.D, c.Kh);
  // value_dim: null, one int, or one int per layer; the value residual needs them all equal.
  std::vector<int64_t> vdims;
  auto vd_int = cfg.get_optional_int("value_dim");
  if (vd_int.ok()) {
    vdims.assign(c.layers, vd_int->value_or(c.D));
  } else {
    LRNN_ASSIGN_OR_RETURN(vdims, cfg.get_int_list("value_dim"));
    if (static_cast<int64_t>(vdims.size()) != c.layers)
      return make_error(status_code::invalid_argument, "{}: value_dim has {} entries, expected num_hidden_layers={}", cfg.source(),
                        vdims.size(), c.layers);
  }
  c.V = vdims.front();
  for (int64_t v : vdims)
    if (v != c.V)
      return make_error(status_code::unsupported, "{}: value_dim differs between layers ({} and {}); the value residual needs one value_dim",
                        cfg.source(), c.V, v);
  if (c.V < 1 || c.V % c.H)
    return make_error(status_code::invalid_argument, "{}: value_dim={} is not divisible by the {} heads", cfg.source(), c.V, c.H);
  c.Vh = c.V / c.H;
  const double factor = static_cast<double>(c.Kh) / 64.0;
  auto rank = [&](const char* key, double coef, double f) -> result<int64_t> {
    LRNN_ASSIGN_OR_RETURN(auto r, cfg.get_optional_int(key));
    if (!r) return default_rank(coef, c.D, f);
    if (*r < 1) return make_error(status_code::invalid_argument, "{}: {}={} must be >= 1", cfg.source(), key, *r);
    return *r;
  };
  LRNN_ASSIGN_OR_RETURN(c.decay_rank, rank("decay_low_rank_dim", 2.5, factor));
  LRNN_ASSIGN_OR_RETURN(c.gate_rank, rank("gate_low_rank_dim", 5.0, 1.0));
  LRNN_ASSIGN_OR_RETURN(c.a_rank, rank("a_low_rank_dim", 2.5, factor));
  LRNN_ASSIGN_OR_RETURN(c.v_rank, rank("v_low_rank_dim", 1.7, factor));
  LRNN_ASSIGN_OR_RETURN(c.eps, cfg.get_float("norm_eps", 1e-5));
  LRNN_ASSIGN_OR_RETURN(c.norm_first, cfg.get_bool("norm_first", true));
  LRNN_ASSIGN_OR_RETURN(c.norm_bias, cfg.get_bool("norm_bias", true));
  LRNN_ASSIGN_OR_RETURN(auto inter, cfg.get_optional_int("intermediate_size"));
  if (inter) {
    c.inter = *inter;
  } else {
    LRNN_ASSIGN_OR_RETURN(auto ratio, cfg.get_optional_int("hidden_ratio"));
    c.inter = c.D * ratio.value_or(4);
    c.inter = 32 * ((c.inter + 31) / 32);
  }
  LRNN_ASSIGN_OR_RETURN(std::string act, cfg.get_string("hidden_act", "sqrelu"));
  if (act != "sqrelu")
    return make_error(status_code::unsupported, "{}: hidden_act '{}' is not supported (sqrelu only)", cfg.source(), act);
  if (cfg.has("attn"))
    return make_error(status_code::unsupported, "{}: hybrid softmax attention layers ('attn') are not supported yet", cfg.source());
  return c;
}

namespace {

result<std::unique_ptr<model>> build_rwkv7(const load_context& ctx) {
  LRNN_ASSIGN_OR_RETURN(rwkv7_config c, read_rwkv7_config(ctx.config));
  auto m = std::make_unique<rwkv7_model>();
  m->c = c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(ctx.config));
  m->vocab = common.vocab_size;
  weight_loader w(ctx.weights, ctx.config.source());
  const int64_t D = c.D;
  const std::string hd = fmt::format("hidden_size={}", D);
  const std::string vocab_why = fmt::format("vocab_size={}, hidden_size={}", m->vocab, D);
  LRNN_ASSIGN_OR_RETURN(m->embed, w.get("model.embeddings.weight", {m->vocab, D}, vocab_why));
  auto norm = [&](const std::string& prefix, tensor& wt, tensor& b) -> status {
    LRNN_ASSIGN_OR_RETURN(wt, w.get(prefix + "weight", {D}, hd));
    if (c.norm_bias) {
      LRNN_ASSIGN_OR_RETURN(b, w.get(prefix + "bias", {D}, "norm_bias=true"));
    }
    return {};
  };
  LRNN_TRY(norm("model.norm.", m->norm_w, m->norm_b));
  LRNN_ASSIGN_OR_RETURN(bool tie, ctx.config.get_bool("tie_word_embeddings", false));
  if (tie && !w.has("lm_head.weight")) m->lm_head = m->embed;
  else {
    LRNN_ASSIGN_OR_RETURN(m->lm_head, w.get("lm_head.weight", {m->vocab, D}, vocab_why));
  }
  const std::string kd = fmt::format("hidden_size={}, head_dim={}", D, c.Kh);
  const std::string vd = fmt::format("value_dim={}, hidden_size={}", c.V, D);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l), a = p + "attn.";
    rwkv7_layer L;
    if (c.norm_first && l == 0) LRNN_TRY(norm(p + "pre_norm.", L.pre_norm_w, L.pre_norm_b));
    LRNN_TRY(norm(p + "attn_norm.", L.attn_norm_w, L.attn_norm_b));
    LRNN_TRY(norm(p + "ffn_norm.", L.ffn_norm_w, L.ffn_norm_b));
    for (auto [name, t] : {std::pair{"x_r", &L.x_r}, {"x_w", &L.x_w}, {"x_k", &L.x_k}, {"x_v", &L.x_v}, {"x_a", &L.x_a}, {"x_g", &L.x_g}}) {
      LRNN_ASSIGN_OR_RETURN(tensor raw, w.get(a + name, {1, 1, D}, hd));
      LRNN_ASSIGN_OR_RETURN(*t, raw.view({D}));
    }
    LRNN_ASSIGN_OR_RETURN(L.k_k, w.get(a + "k_k", {D}, kd));
    LRNN_ASSIGN_OR_RETURN(L.k_a, w.get(a + "k_a", {D}, kd));
    LRNN_ASSIGN_OR_RETURN(L.r_k, w.get(a + "r_k", {c.H, c.Kh}, kd));
    LRNN_ASSIGN_OR_RETURN(L.r_proj, w.get(a + "r_proj.weight", {D, D}, kd));
    LRNN_ASSIGN_OR_RETURN(L.k_proj, w.get(a + "k_proj.weight", {D, D}, kd));
    LRNN_ASSIGN_OR_RETURN(L.v_proj, w.get(a + "v_proj.weight", {c.V, D}, vd));
    LRNN_ASSIGN_OR_RETURN(L.o_proj, w.get(a + "o_proj.weight", {D, c.V}, vd));
    LRNN_ASSIGN_OR_RETURN(L.w_lora, lora::load(w, a + "w_lora.", D, D, c.decay_rank, true, ops::activation::tanh,
                                               fmt::format("decay_low_rank_dim={}", c.decay_rank)));
    LRNN_ASSIGN_OR_RETURN(L.a_lora, lora::load(w, a + "a_lora.", D, D, c.a_rank, true, ops::activation::identity,
                                               fmt::format("a_low_rank_dim={}", c.a_rank)));
    LRNN_ASSIGN_OR_RETURN(L.g_lora, lora::load(w, a + "g_lora.", D, c.V, c.gate_rank, false, ops::activation::sigmoid,
                                               fmt::format("gate_low_rank_dim={}", c.gate_rank)));
    if (l != 0) {
      LRNN_ASSIGN_OR_RETURN(L.v_lora, lora::load(w, a + "v_lora.", D, c.V, c.v_rank, true, ops::activation::identity,
                                                 fmt::format("v_low_rank_dim={}", c.v_rank)));
    }
    LRNN_ASSIGN_OR_RETURN(L.g_norm_w, w.get(a + "g_norm.weight", {c.V}, vd));
    LRNN_ASSIGN_OR_RETURN(L.g_norm_b, w.get(a + "g_norm.bias", {c.V}, vd));
    const std::string fd = fmt::format("intermediate size {}", c.inter);
    LRNN_ASSIGN_OR_RETURN(L.ffn_x_k, w.get(p + "ffn.x_k", {D}, hd));
    LRNN_ASSIGN_OR_RETURN(L.ffn_key, w.get(p + "ffn.key.weight", {c.inter, D}, fd));
    LRNN_ASSIGN_OR_RETURN(L.ffn_value, w.get(p + "ffn.value.weight", {D, c.inter}, fd));
    m->layers.push_back(std::move(L));
  }
  if (auto extra = w.unused(); !extra.empty())
    return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's rwkv7 (a config option not implemented?)",
                      ctx.dir, extra.front());
  // Per token: one embedding row, not the whole table; a tied head is still read in full.
  m->bytes = w.bytes_loaded() - m->embed.nbytes() + static_cast<uint64_t>(D) * 4 + (tie && !w.has("lm_head.weight") ? m->lm_head.nbytes() : 0);
  return std::unique_ptr<model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_MODEL(rwkv7, "rwkv7", build_rwkv7)

}  // namespace lrnn::models
