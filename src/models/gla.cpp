// GLA (gated linear attention) in fla's format (model_type "gla"): pre-norm blocks of
// GatedLinearAttention (per-key gate logsigmoid(W2 W1 x + b) / 16, optional short convs,
// per-head RMSNorm, swish output gate) and a SwiGLU MLP. Reference: fla/layers/gla.py,
// fla/models/gla/modeling_gla.py; the operator is decay_attn (per_token_key).
#include "models/fla_common.h"
#include "ops/dense/dense.h"

namespace lrnn::models {
namespace {

struct gla_layer {
  tensor attn_norm, q, k, v, g, gk0, gk1, gk1_bias, o, g_norm, mlp_norm;
  fla::gated_mlp mlp;
  fla::short_conv q_conv, k_conv, v_conv;
};

class gla_model final : public model {
 public:
  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab_; }
  uint64_t weight_bytes() const override { return weight_bytes_; }

  result<model_state> initial_state(int64_t batch) const override {
    if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
    model_state st;
    st.batch = batch;
    for (size_t l = 0; l < layers_.size(); ++l) {
      LRNN_ASSIGN_OR_RETURN(tensor s, tensor::zeros({batch, H_, Kh_, Vh_}, dtype::f32));
      st.tensors[fmt::format("layers.{}.s", l)] = s;
    }
    return st;
  }

  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override {
    LRNN_TRY(fla::check_ids(ids, st, vocab_));
    const int64_t B = ids.size(0), T = ids.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor h, frame_.embed_tokens(ids));  // [B, T, D]
    for (size_t l = 0; l < layers_.size(); ++l) {
      const gla_layer& L = layers_[l];
      const std::string p = fmt::format("layers.{}.", l);
      LRNN_ASSIGN_OR_RETURN(tensor x, fla::rms_norm(h, L.attn_norm, eps_));
      LRNN_ASSIGN_OR_RETURN(tensor q, ops::linear(x, L.q));
      LRNN_ASSIGN_OR_RETURN(tensor k, ops::linear(x, L.k));
      LRNN_ASSIGN_OR_RETURN(tensor v, ops::linear(x, L.v));
      if (short_conv_) {
        LRNN_ASSIGN_OR_RETURN(q, L.q_conv.forward(q, st, p + "q_conv"));
        LRNN_ASSIGN_OR_RETURN(k, L.k_conv.forward(k, st, p + "k_conv"));
        LRNN_ASSIGN_OR_RETURN(v, L.v_conv.forward(v, st, p + "v_conv"));
      }
      LRNN_ASSIGN_OR_RETURN(tensor gk_low, ops::linear(x, L.gk0));
      LRNN_ASSIGN_OR_RETURN(tensor gk, ops::linear(gk_low, L.gk1, L.gk1_bias));
      ops::apply_activation(gk, ops::activation::logsigmoid);
      ops::scale_inplace(gk, 1.0f / static_cast<float>(gate_normalizer_));
      if (clamp_min_) {
        float* gp = gk.data<float>();
        for (int64_t i = 0; i < gk.numel(); ++i) gp[i] = std::max(gp[i], static_cast<float>(*clamp_min_));
      }
      ops::decay_attn_inputs in;
      LRNN_ASSIGN_OR_RETURN(in.q, q.view({B, T, H_, Kh_}));
      LRNN_ASSIGN_OR_RETURN(in.k, k.view({B, T, H_, Kh_}));
      LRNN_ASSIGN_OR_RETURN(in.v, v.view({B, T, H_, Vh_}));
      LRNN_ASSIGN_OR_RETURN(in.g, gk.view({B, T, H_, Kh_}));
      ops::decay_attn_state init;
      init.s = st.tensors.at(p + "s");
      LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(spec_, in, init, fla::decay_form(form, T)));
      st.tensors[p + "s"] = out.final_state.s;
      LRNN_ASSIGN_OR_RETURN(tensor o, out.o.view({B, T, H_ * Vh_}));
      LRNN_ASSIGN_OR_RETURN(o, ops::group_rms_norm(o, H_, L.g_norm, eps_));
      if (L.g.defined()) {
        LRNN_ASSIGN_OR_RETURN(tensor g, ops::linear(x, L.g));
        ops::apply_activation(g, ops::activation::silu);
        LRNN_TRY(ops::mul_inplace(o, g));
      }
      LRNN_ASSIGN_OR_RETURN(tensor a, ops::linear(o, L.o));
      LRNN_TRY(ops::add_inplace(h, a));
      LRNN_ASSIGN_OR_RETURN(tensor y, fla::rms_norm(h, L.mlp_norm, eps_));
      LRNN_ASSIGN_OR_RETURN(tensor m, L.mlp.forward(y));
      LRNN_TRY(ops::add_inplace(h, m));
    }
    return frame_.logits(h);
  }

  static result<std::unique_ptr<model>> build(const load_context& ctx) {
    const io::config& c = ctx.config;
    auto m = std::make_unique<gla_model>();
    LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(c));
    m->vocab_ = common.vocab_size;
    const int64_t D = common.hidden_size;
    LRNN_ASSIGN_OR_RETURN(m->H_, c.get_int("num_heads", 4, 1, 4096));
    LRNN_ASSIGN_OR_RETURN(auto kv_heads, c.get_optional_int("num_kv_heads"));
    if (kv_heads && *kv_heads != m->H_)
      return make_error(status_code::unsupported, "{}: num_kv_heads={} (grouped keys/values) is not supported yet", c.source(), *kv_heads);
    LRNN_ASSIGN_OR_RETURN(double expand_k, c.get_float("expand_k", 0.5));
    LRNN_ASSIGN_OR_RETURN(double expand_v, c.get_float("expand_v", 1.0));
    LRNN_ASSIGN_OR_RETURN(m->eps_, c.get_float("norm_eps", 1e-6));
    LRNN_ASSIGN_OR_RETURN(m->gate_normalizer_, c.get_int("gate_logit_normalizer", 16, 1, 1 << 20));
    LRNN_ASSIGN_OR_RETURN(int64_t low_rank, c.get_int("gate_low_rank_dim", 16, 1, 1 << 20));
    LRNN_ASSIGN_OR_RETURN(m->clamp_min_, c.get_optional_float("clamp_min"));
    LRNN_ASSIGN_OR_RETURN(m->short_conv_, c.get_bool("use_short_conv", false));
    LRNN_ASSIGN_OR_RETURN(int64_t conv_size, c.get_int("conv_size", 4, 1, 64));
    LRNN_ASSIGN_OR_RETURN(bool conv_bias, c.get_bool("conv_bias", false));
    LRNN_ASSIGN_OR_RETURN(bool output_gate, c.get_bool("use_output_gate", true));
    LRNN_ASSIGN_OR_RETURN(bool affine, c.get_bool("elementwise_affine", true));
    LRNN_ASSIGN_OR_RETURN(auto feature_map, c.get_optional_string("feature_map"));
    if (feature_map) return make_error(status_code::unsupported, "{}: feature_map='{}' is not supported yet", c.source(), *feature_map);
    LRNN_ASSIGN_OR_RETURN(auto attn, c.get_optional_string("attn"));
    if (c.has("attn")) return make_error(status_code::unsupported, "{}: hybrid softmax attention layers ('attn') are not supported yet", c.source());
    if (c.has("attnres_block_size"))
      return make_error(status_code::unsupported, "{}: attnres_block_size is not supported yet", c.source());
    LRNN_ASSIGN_OR_RETURN(bool use_gv, c.get_bool("use_gv", false));
    if (use_gv) return make_error(status_code::unsupported, "{}: use_gv=true is not supported yet", c.source());
    const int64_t key_dim = static_cast<int64_t>(static_cast<double>(D) * expand_k);
    const int64_t value_dim = static_cast<int64_t>(static_cast<double>(D) * expand_v);
    if (key_dim % m->H_ || value_dim % m->H_)
      return make_error(status_code::invalid_argument, "{}: key dim {} / value dim {} not divisible by num_heads={}", c.source(),
                        key_dim, value_dim, m->H_);
    m->Kh_ = key_dim / m->H_;
    m->Vh_ = value_dim / m->H_;
    m->spec_.decay = ops::decay_kind::per_token_key;
    weight_loader w(ctx.weights, c.source());
    LRNN_ASSIGN_OR_RETURN(m->frame_, fla::lm_frame::load(w, c, m->vocab_, D, m->eps_));
    const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", D, expand_k, expand_v);
    for (int64_t l = 0; l < common.num_hidden_layers; ++l) {
      const std::string p = fmt::format("model.layers.{}.", l);
      gla_layer L;
      LRNN_ASSIGN_OR_RETURN(L.attn_norm, w.get(p + "attn_norm.weight", {D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.q, w.get(p + "attn.q_proj.weight", {key_dim, D}, dims));
      LRNN_ASSIGN_OR_RETURN(L.k, w.get(p + "attn.k_proj.weight", {key_dim, D}, dims));
      LRNN_ASSIGN_OR_RETURN(L.v, w.get(p + "attn.v_proj.weight", {value_dim, D}, dims));
      if (output_gate) {
        LRNN_ASSIGN_OR_RETURN(L.g, w.get(p + "attn.g_proj.weight", {value_dim, D}, dims));
      }
      LRNN_ASSIGN_OR_RETURN(L.gk0, w.get(p + "attn.gk_proj.0.weight", {low_rank, D}, "gate_low_rank_dim"));
      LRNN_ASSIGN_OR_RETURN(L.gk1, w.get(p + "attn.gk_proj.1.weight", {key_dim, low_rank}, "gate_low_rank_dim"));
      LRNN_ASSIGN_OR_RETURN(L.gk1_bias, w.get(p + "attn.gk_proj.1.bias", {key_dim}, dims));
      if (affine) {
        LRNN_ASSIGN_OR_RETURN(L.g_norm, w.get(p + "attn.g_norm.weight", {m->Vh_}, "head value dim"));
      }
      if (m->short_conv_) {
        LRNN_ASSIGN_OR_RETURN(L.q_conv, fla::short_conv::load(w, p + "attn.q_conv1d.", key_dim, conv_size, conv_bias));
        LRNN_ASSIGN_OR_RETURN(L.k_conv, fla::short_conv::load(w, p + "attn.k_conv1d.", key_dim, conv_size, conv_bias));
        LRNN_ASSIGN_OR_RETURN(L.v_conv, fla::short_conv::load(w, p + "attn.v_conv1d.", value_dim, conv_size, conv_bias));
      }
      LRNN_ASSIGN_OR_RETURN(L.o, w.get(p + "attn.o_proj.weight", {D, value_dim}, dims));
      LRNN_ASSIGN_OR_RETURN(L.mlp_norm, w.get(p + "mlp_norm.weight", {D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.mlp, fla::gated_mlp::load(w, c, p + "mlp.", D));
      m->layers_.push_back(std::move(L));
    }
    if (auto extra = w.unused(); !extra.empty())
      return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's GLA (a config option not implemented?)",
                        ctx.dir, extra.front());
    m->weight_bytes_ = w.bytes_loaded() - m->frame_.embed.nbytes() + m->frame_.bytes_per_token();
    return std::unique_ptr<model>(std::move(m));
  }

 private:
  std::string type_ = "gla";
  int64_t vocab_ = 0, H_ = 0, Kh_ = 0, Vh_ = 0, gate_normalizer_ = 16;
  double eps_ = 1e-6;
  std::optional<double> clamp_min_;
  bool short_conv_ = false;
  ops::decay_attn_spec spec_;
  fla::lm_frame frame_;
  std::vector<gla_layer> layers_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace

LRNN_REGISTER_MODEL(gla, "gla", gla_model::build)

}  // namespace lrnn::models
