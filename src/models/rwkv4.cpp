// RWKV-4 in HF transformers' format (model_type "rwkv"): LayerNorm blocks of time mixing
// (token-shift lerps, WKV, receptance gate) and channel mixing (squared ReLU), an extra
// pre-LayerNorm on block 0, and rescale_every (hidden state halved every N blocks at
// inference, with the matching weight rescaling). Reference: transformers
// models/rwkv/modeling_rwkv.py; the operator is wkv4.
#include "models/fla_common.h"
#include "ops/dense/dense.h"
#include "ops/wkv4/wkv4.h"

namespace lrnn::models {
namespace {

struct rwkv4_block {
  tensor pre_ln_w, pre_ln_b, ln1_w, ln1_b, ln2_w, ln2_b;
  tensor att_mix_k, att_mix_v, att_mix_r, time_decay, time_first, att_k, att_v, att_r, att_o;
  tensor ffn_mix_k, ffn_mix_r, ffn_k, ffn_r, ffn_v;
};

class rwkv4_model final : public model {
 public:
  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab_; }
  uint64_t weight_bytes() const override { return weight_bytes_; }

  result<model_state> initial_state(int64_t batch) const override {
    if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
    model_state st;
    st.batch = batch;
    for (size_t l = 0; l < blocks_.size(); ++l) {
      const std::string p = fmt::format("layers.{}.", l);
      LRNN_ASSIGN_OR_RETURN(auto w, ops::wkv4_zero_state(batch, A_));
      st.tensors[p + "a"] = w.a;
      st.tensors[p + "b"] = w.b;
      st.tensors[p + "p"] = w.p;
      LRNN_ASSIGN_OR_RETURN(tensor ax, tensor::zeros({batch, D_}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(tensor fx, tensor::zeros({batch, D_}, dtype::f32));
      st.tensors[p + "att_x"] = ax;
      st.tensors[p + "ffn_x"] = fx;
    }
    return st;
  }

  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override {
    LRNN_TRY(fla::check_ids(ids, st, vocab_));
    const int64_t T = ids.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor h, ops::embedding(ids, embed_));
    for (size_t l = 0; l < blocks_.size(); ++l) {
      const rwkv4_block& L = blocks_[l];
      const std::string p = fmt::format("layers.{}.", l);
      if (l == 0) {
        LRNN_ASSIGN_OR_RETURN(h, ops::layer_norm(h, L.pre_ln_w, L.pre_ln_b, eps_));
      }
      // Time mixing.
      LRNN_ASSIGN_OR_RETURN(tensor x, ops::layer_norm(h, L.ln1_w, L.ln1_b, eps_));
      // x * mix + prev * (1 - mix) = x + (prev - x) * (1 - mix): the lerp toward the previous token.
      LRNN_ASSIGN_OR_RETURN(tensor dx, ops::token_shift(x, st.tensors.at(p + "att_x")));
      LRNN_ASSIGN_OR_RETURN(tensor xk, ops::shift_lerp(x, dx, L.att_mix_k));
      LRNN_ASSIGN_OR_RETURN(tensor xv, ops::shift_lerp(x, dx, L.att_mix_v));
      LRNN_ASSIGN_OR_RETURN(tensor xr, ops::shift_lerp(x, dx, L.att_mix_r));
      LRNN_ASSIGN_OR_RETURN(tensor k, ops::linear(xk, L.att_k));
      LRNN_ASSIGN_OR_RETURN(tensor v, ops::linear(xv, L.att_v));
      LRNN_ASSIGN_OR_RETURN(tensor r, ops::linear(xr, L.att_r));
      ops::apply_activation(r, ops::activation::sigmoid);
      ops::wkv4_inputs in{k, v, L.time_decay, L.time_first, tensor()};
      ops::wkv4_state ws{st.tensors.at(p + "a"), st.tensors.at(p + "b"), st.tensors.at(p + "p")};
      const ops::wkv4_form wf = form == compute_form::chunk || (form == compute_form::automatic && T > 1)
                                    ? ops::wkv4_form::chunk
                                    : ops::wkv4_form::recurrent;
      LRNN_ASSIGN_OR_RETURN(auto out, ops::wkv4_forward(in, ws, wf));
      st.tensors[p + "a"] = out.final_state.a;
      st.tensors[p + "b"] = out.final_state.b;
      st.tensors[p + "p"] = out.final_state.p;
      LRNN_TRY(ops::mul_inplace(r, out.y));
      LRNN_ASSIGN_OR_RETURN(tensor att, ops::linear(r, L.att_o));
      LRNN_TRY(ops::add_inplace(h, att));
      // Channel mixing.
      LRNN_ASSIGN_OR_RETURN(tensor y, ops::layer_norm(h, L.ln2_w, L.ln2_b, eps_));
      LRNN_ASSIGN_OR_RETURN(tensor dy, ops::token_shift(y, st.tensors.at(p + "ffn_x")));
      LRNN_ASSIGN_OR_RETURN(tensor yk, ops::shift_lerp(y, dy, L.ffn_mix_k));
      LRNN_ASSIGN_OR_RETURN(tensor yr, ops::shift_lerp(y, dy, L.ffn_mix_r));
      LRNN_ASSIGN_OR_RETURN(tensor fk, ops::linear(yk, L.ffn_k));
      LRNN_ASSIGN_OR_RETURN(tensor fr, ops::linear(yr, L.ffn_r));
      ops::apply_activation(fk, ops::activation::relu_squared);
      LRNN_ASSIGN_OR_RETURN(tensor fv, ops::linear(fk, L.ffn_v));
      ops::apply_activation(fr, ops::activation::sigmoid);
      LRNN_TRY(ops::mul_inplace(fr, fv));
      LRNN_TRY(ops::add_inplace(h, fr));
      if (rescale_every_ > 0 && (static_cast<int64_t>(l) + 1) % rescale_every_ == 0) ops::scale_inplace(h, 0.5f);
    }
    LRNN_ASSIGN_OR_RETURN(tensor n, ops::layer_norm(h, ln_out_w_, ln_out_b_, eps_));
    return ops::linear(n, head_);
  }

  static result<std::unique_ptr<model>> build(const load_context& ctx) {
    const io::config& c = ctx.config;
    auto m = std::make_unique<rwkv4_model>();
    LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(c));
    m->vocab_ = common.vocab_size;
    m->D_ = common.hidden_size;
    const int64_t D = m->D_;
    LRNN_ASSIGN_OR_RETURN(auto att, c.get_optional_int("attention_hidden_size"));
    m->A_ = att ? *att : D;
    LRNN_ASSIGN_OR_RETURN(auto inter, c.get_optional_int("intermediate_size"));
    const int64_t F = inter ? *inter : 4 * D;
    LRNN_ASSIGN_OR_RETURN(m->eps_, c.get_float("layer_norm_epsilon", 1e-5));
    LRNN_ASSIGN_OR_RETURN(m->rescale_every_, c.get_int("rescale_every", 6, 0, 1 << 20));
    weight_loader w(ctx.weights, c.source());
    const std::string dims = fmt::format("hidden_size={}, attention_hidden_size={}", D, m->A_);
    const std::string ffn = fmt::format("hidden_size={}, intermediate_size={}", D, F);
    LRNN_ASSIGN_OR_RETURN(m->embed_, w.get("rwkv.embeddings.weight", {m->vocab_, D}, "vocab_size, hidden_size"));
    LRNN_ASSIGN_OR_RETURN(m->ln_out_w_, w.get("rwkv.ln_out.weight", {D}, "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(m->ln_out_b_, w.get("rwkv.ln_out.bias", {D}, "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(bool tie, c.get_bool("tie_word_embeddings", false));
    if (tie && !w.has("head.weight")) {
      m->head_ = m->embed_;
    } else {
      LRNN_ASSIGN_OR_RETURN(m->head_, w.get("head.weight", {m->vocab_, D}, "vocab_size, hidden_size"));
    }
    for (int64_t l = 0; l < common.num_hidden_layers; ++l) {
      const std::string p = fmt::format("rwkv.blocks.{}.", l);
      rwkv4_block L;
      if (l == 0) {
        LRNN_ASSIGN_OR_RETURN(L.pre_ln_w, w.get(p + "pre_ln.weight", {D}, "hidden_size"));
        LRNN_ASSIGN_OR_RETURN(L.pre_ln_b, w.get(p + "pre_ln.bias", {D}, "hidden_size"));
      }
      LRNN_ASSIGN_OR_RETURN(L.ln1_w, w.get(p + "ln1.weight", {D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.ln1_b, w.get(p + "ln1.bias", {D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.ln2_w, w.get(p + "ln2.weight", {D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.ln2_b, w.get(p + "ln2.bias", {D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.att_mix_k, w.get(p + "attention.time_mix_key", {1, 1, D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.att_mix_v, w.get(p + "attention.time_mix_value", {1, 1, D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.att_mix_r, w.get(p + "attention.time_mix_receptance", {1, 1, D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.time_decay, w.get(p + "attention.time_decay", {m->A_}, dims));
      LRNN_ASSIGN_OR_RETURN(L.time_first, w.get(p + "attention.time_first", {m->A_}, dims));
      LRNN_ASSIGN_OR_RETURN(L.att_k, w.get(p + "attention.key.weight", {m->A_, D}, dims));
      LRNN_ASSIGN_OR_RETURN(L.att_v, w.get(p + "attention.value.weight", {m->A_, D}, dims));
      LRNN_ASSIGN_OR_RETURN(L.att_r, w.get(p + "attention.receptance.weight", {m->A_, D}, dims));
      LRNN_ASSIGN_OR_RETURN(L.att_o, w.get(p + "attention.output.weight", {D, m->A_}, dims));
      LRNN_ASSIGN_OR_RETURN(L.ffn_mix_k, w.get(p + "feed_forward.time_mix_key", {1, 1, D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.ffn_mix_r, w.get(p + "feed_forward.time_mix_receptance", {1, 1, D}, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(L.ffn_k, w.get(p + "feed_forward.key.weight", {F, D}, ffn));
      LRNN_ASSIGN_OR_RETURN(L.ffn_r, w.get(p + "feed_forward.receptance.weight", {D, D}, ffn));
      LRNN_ASSIGN_OR_RETURN(L.ffn_v, w.get(p + "feed_forward.value.weight", {D, F}, ffn));
      // Stored as 1 - mix: the weight of the previous token in the lerp.
      for (tensor* mix : {&L.att_mix_k, &L.att_mix_v, &L.att_mix_r, &L.ffn_mix_k, &L.ffn_mix_r}) {
        LRNN_ASSIGN_OR_RETURN(tensor c1, mix->clone());
        float* q = c1.data<float>();
        for (int64_t i = 0; i < c1.numel(); ++i) q[i] = 1.0f - q[i];
        *mix = c1;
      }
      if (m->rescale_every_ > 0) {
        // Inference-time rescaling, as transformers' _rescale_layers: the outputs of block l are
        // divided by 2^(l / rescale_every), matching the halving of the hidden state.
        const float s = 1.0f / static_cast<float>(int64_t{1} << std::min<int64_t>(l / m->rescale_every_, 62));
        LRNN_ASSIGN_OR_RETURN(L.att_o, L.att_o.clone());
        LRNN_ASSIGN_OR_RETURN(L.ffn_v, L.ffn_v.clone());
        ops::scale_inplace(L.att_o, s);
        ops::scale_inplace(L.ffn_v, s);
      }
      m->blocks_.push_back(std::move(L));
    }
    if (auto extra = w.unused(); !extra.empty())
      return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's RWKV-4", ctx.dir, extra.front());
    // Per token: one embedding row, not the whole table; a tied head is still read in full.
    m->weight_bytes_ = w.bytes_loaded() - m->embed_.nbytes() + static_cast<uint64_t>(D) * 4 +
                       (m->head_.data<float>() == m->embed_.data<float>() ? m->head_.nbytes() : 0);
    return std::unique_ptr<model>(std::move(m));
  }

 private:
  std::string type_ = "rwkv";
  int64_t vocab_ = 0, D_ = 0, A_ = 0, rescale_every_ = 6;
  double eps_ = 1e-5;
  tensor embed_, ln_out_w_, ln_out_b_, head_;
  std::vector<rwkv4_block> blocks_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace

LRNN_REGISTER_MODEL(rwkv4, "rwkv", rwkv4_model::build)

}  // namespace lrnn::models
