// Trainable RWKV-4 in HF transformers' format (model_type "rwkv"), the computation of
// models/rwkv4.cpp over autograd vars: LayerNorm blocks (pre-LayerNorm on block 0), token-shift
// lerps x * mix + prev * (1 - mix), the WKV recurrence (ag::wkv4) gated by sigma(receptance),
// squared-ReLU channel mix with a sigmoid receptance. Training runs without rescale_every (as
// transformers does in training mode; the inference model's rescaling changes the logits only
// through the LayerNorm epsilon). Fresh weights as transformers' RwkvPreTrainedModel._init_weights.
#include "ops/dense/autograd.h"
#include "ops/wkv4/autograd.h"
#include "train/models/arch_util.h"

#include <cmath>

namespace lrnn::train {
namespace {

struct block {
  ag::var pre_ln_w, pre_ln_b, ln1_w, ln1_b, ln2_w, ln2_b;
  ag::var att_mix_k, att_mix_v, att_mix_r, time_decay, time_first, att_k, att_v, att_r, att_o;
  ag::var ffn_mix_k, ffn_mix_r, ffn_k, ffn_r, ffn_v;
};

class rwkv4_trainable final : public trainable_model {
 public:
  io::config cfg;
  int64_t vocab = 0, D = 0, A = 0;
  double eps = 1e-5;
  ag::var embed, ln_out_w, ln_out_b, head;
  std::vector<block> blocks;
  std::vector<parameter> params;

  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab; }
  std::vector<parameter>& parameters() override { return params; }
  const io::config& config() const override { return cfg; }

  result<ag::var> forward(const tensor& ids, models::compute_form form) override {
    if (ids.dim() != 2) return make_error(status_code::invalid_argument, "rwkv: ids must be [B, T], got {}", shape_to_string(ids.shape()));
    const ops::wkv4_form wf = form == models::compute_form::recurrent ? ops::wkv4_form::recurrent : ops::wkv4_form::chunk;
    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, embed));
    for (size_t l = 0; l < blocks.size(); ++l) {
      const block& L = blocks[l];
      if (l == 0) {
        LRNN_ASSIGN_OR_RETURN(h, ag::layer_norm(h, L.pre_ln_w, L.pre_ln_b, eps));
      }
      LRNN_ASSIGN_OR_RETURN(ag::var x, ag::layer_norm(h, L.ln1_w, L.ln1_b, eps));
      LRNN_ASSIGN_OR_RETURN(ag::var dx, ag::token_shift(x));
      LRNN_ASSIGN_OR_RETURN(ag::var xk, lerp(x, dx, L.att_mix_k));
      LRNN_ASSIGN_OR_RETURN(ag::var xv, lerp(x, dx, L.att_mix_v));
      LRNN_ASSIGN_OR_RETURN(ag::var xr, lerp(x, dx, L.att_mix_r));
      LRNN_ASSIGN_OR_RETURN(ag::var k, ag::linear(xk, L.att_k));
      LRNN_ASSIGN_OR_RETURN(ag::var v, ag::linear(xv, L.att_v));
      LRNN_ASSIGN_OR_RETURN(ag::var r, ag::linear(xr, L.att_r));
      LRNN_ASSIGN_OR_RETURN(r, ag::activation(r, ops::activation::sigmoid));
      LRNN_ASSIGN_OR_RETURN(ag::var y, ag::wkv4(k, v, L.time_decay, L.time_first, wf));
      LRNN_ASSIGN_OR_RETURN(ag::var ry, ag::mul(r, y));
      LRNN_ASSIGN_OR_RETURN(ag::var att, ag::linear(ry, L.att_o));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, att));
      LRNN_ASSIGN_OR_RETURN(ag::var z, ag::layer_norm(h, L.ln2_w, L.ln2_b, eps));
      LRNN_ASSIGN_OR_RETURN(ag::var dz, ag::token_shift(z));
      LRNN_ASSIGN_OR_RETURN(ag::var zk, lerp(z, dz, L.ffn_mix_k));
      LRNN_ASSIGN_OR_RETURN(ag::var zr, lerp(z, dz, L.ffn_mix_r));
      LRNN_ASSIGN_OR_RETURN(ag::var fk, ag::linear(zk, L.ffn_k));
      LRNN_ASSIGN_OR_RETURN(fk, ag::activation(fk, ops::activation::relu_squared));
      LRNN_ASSIGN_OR_RETURN(ag::var fv, ag::linear(fk, L.ffn_v));
      LRNN_ASSIGN_OR_RETURN(ag::var fr, ag::linear(zr, L.ffn_r));
      LRNN_ASSIGN_OR_RETURN(fr, ag::activation(fr, ops::activation::sigmoid));
      LRNN_ASSIGN_OR_RETURN(ag::var f, ag::mul(fr, fv));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, f));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var n, ag::layer_norm(h, ln_out_w, ln_out_b, eps));
    return ag::linear(n, head);
  }

 private:
  std::string type_ = "rwkv";

  // x * mix + prev * (1 - mix) = x + (prev - x) * (1 - mix); mix stored [1, 1, D].
  result<ag::var> lerp(const ag::var& x, const ag::var& delta, const ag::var& mix) const {
    LRNN_ASSIGN_OR_RETURN(ag::var m, ag::reshape(mix, {D}));
    LRNN_ASSIGN_OR_RETURN(ag::var nm, ag::scale(m, -1.0));
    LRNN_ASSIGN_OR_RETURN(ag::var one_minus, arch::add_constant(nm, 1.0));
    LRNN_ASSIGN_OR_RETURN(ag::var dm, ag::mul(delta, one_minus));
    return ag::add(x, dm);
  }
};

param_init from_fn(std::function<double(int64_t)> f) {
  return param_init::custom([f](tensor& t) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(f(i));
  });
}

result<std::unique_ptr<trainable_model>> build(const io::config& c, param_source& src) {
  auto m = std::make_unique<rwkv4_trainable>();
  m->cfg = c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(c));
  m->vocab = common.vocab_size;
  m->D = common.hidden_size;
  const int64_t D = m->D, V = m->vocab, L = common.num_hidden_layers;
  LRNN_ASSIGN_OR_RETURN(auto att, c.get_optional_int("attention_hidden_size"));
  m->A = att ? *att : D;
  const int64_t A = m->A;
  LRNN_ASSIGN_OR_RETURN(auto inter, c.get_optional_int("intermediate_size"));
  const int64_t F = inter ? *inter : 4 * D;
  LRNN_ASSIGN_OR_RETURN(m->eps, c.get_float("layer_norm_epsilon", 1e-5));
  arch::param_builder pb(src, m->params);
  const std::string dims = fmt::format("hidden_size={}, attention_hidden_size={}", D, A);
  const std::string ffn = fmt::format("hidden_size={}, intermediate_size={}", D, F);
  // transformers: Linear weights orthogonal, gain sqrt(out / in) when out > in, x0.5 for the head.
  auto ortho = [](const std::string& name, int64_t out, int64_t in, double scale = 1.0) {
    const double gain = (out > in ? std::sqrt(static_cast<double>(out) / static_cast<double>(in)) : 1.0) * scale;
    return arch::orthogonal_init(gain, name);
  };
  const param_init ones = param_init::ones(), zeros = param_init::zeros();
  LRNN_ASSIGN_OR_RETURN(m->embed, pb.get("rwkv.embeddings.weight", {V, D},
                                         arch::orthogonal_init(1e-4 * std::sqrt(static_cast<double>(std::max(V, D))), "rwkv.embeddings.weight"),
                                         "vocab_size, hidden_size"));
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("rwkv.blocks.{}.", l);
    block B;
    const double r01 = L > 1 ? static_cast<double>(l) / static_cast<double>(L - 1) : 0.0;
    const double r10 = 1.0 - static_cast<double>(l) / static_cast<double>(L);
    auto tw = [D](int64_t i) { return static_cast<double>(i) / static_cast<double>(D); };
    if (l == 0) {
      LRNN_ASSIGN_OR_RETURN(B.pre_ln_w, pb.get(p + "pre_ln.weight", {D}, ones, "hidden_size"));
      LRNN_ASSIGN_OR_RETURN(B.pre_ln_b, pb.get(p + "pre_ln.bias", {D}, zeros, "hidden_size"));
    }
    LRNN_ASSIGN_OR_RETURN(B.ln1_w, pb.get(p + "ln1.weight", {D}, ones, "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.ln1_b, pb.get(p + "ln1.bias", {D}, zeros, "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.ln2_w, pb.get(p + "ln2.weight", {D}, ones, "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.ln2_b, pb.get(p + "ln2.bias", {D}, zeros, "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.att_mix_k, pb.get(p + "attention.time_mix_key", {1, 1, D}, from_fn([=](int64_t i) { return std::pow(tw(i), r10); }), "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.att_mix_v, pb.get(p + "attention.time_mix_value", {1, 1, D},
                                              from_fn([=](int64_t i) { return std::pow(tw(i), r10) + 0.3 * r01; }), "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.att_mix_r, pb.get(p + "attention.time_mix_receptance", {1, 1, D},
                                              from_fn([=](int64_t i) { return std::pow(tw(i), 0.5 * r10); }), "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.time_decay, pb.get(p + "attention.time_decay", {A}, from_fn([=](int64_t h) {
                                                 return -5 + 8 * std::pow(static_cast<double>(h) / static_cast<double>(std::max<int64_t>(A - 1, 1)),
                                                                          0.7 + 1.3 * r01);
                                               }), dims));
    // transformers writes ones_like(time_first * log(0.3) + zigzag), i.e. ones.
    LRNN_ASSIGN_OR_RETURN(B.time_first, pb.get(p + "attention.time_first", {A}, ones, dims));
    LRNN_ASSIGN_OR_RETURN(B.att_k, pb.get(p + "attention.key.weight", {A, D}, ortho(p + "attention.key.weight", A, D), dims));
    LRNN_ASSIGN_OR_RETURN(B.att_v, pb.get(p + "attention.value.weight", {A, D}, ortho(p + "attention.value.weight", A, D), dims));
    LRNN_ASSIGN_OR_RETURN(B.att_r, pb.get(p + "attention.receptance.weight", {A, D}, ortho(p + "attention.receptance.weight", A, D), dims));
    LRNN_ASSIGN_OR_RETURN(B.att_o, pb.get(p + "attention.output.weight", {D, A}, ortho(p + "attention.output.weight", D, A), dims));
    LRNN_ASSIGN_OR_RETURN(B.ffn_mix_k, pb.get(p + "feed_forward.time_mix_key", {1, 1, D}, from_fn([=](int64_t i) { return std::pow(tw(i), r10); }), "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.ffn_mix_r, pb.get(p + "feed_forward.time_mix_receptance", {1, 1, D},
                                              from_fn([=](int64_t i) { return std::pow(tw(i), r10); }), "hidden_size"));
    LRNN_ASSIGN_OR_RETURN(B.ffn_k, pb.get(p + "feed_forward.key.weight", {F, D}, ortho(p + "feed_forward.key.weight", F, D), ffn));
    LRNN_ASSIGN_OR_RETURN(B.ffn_r, pb.get(p + "feed_forward.receptance.weight", {D, D}, ortho(p + "feed_forward.receptance.weight", D, D), ffn));
    LRNN_ASSIGN_OR_RETURN(B.ffn_v, pb.get(p + "feed_forward.value.weight", {D, F}, ortho(p + "feed_forward.value.weight", D, F), ffn));
    m->blocks.push_back(std::move(B));
  }
  LRNN_ASSIGN_OR_RETURN(m->ln_out_w, pb.get("rwkv.ln_out.weight", {D}, ones, "hidden_size"));
  LRNN_ASSIGN_OR_RETURN(m->ln_out_b, pb.get("rwkv.ln_out.bias", {D}, zeros, "hidden_size"));
  LRNN_ASSIGN_OR_RETURN(bool tie, c.get_bool("tie_word_embeddings", false));
  if (tie) {
    m->head = m->embed;
  } else {
    LRNN_ASSIGN_OR_RETURN(m->head, pb.get("head.weight", {V, D}, ortho("head.weight", V, D, 0.5), "vocab_size, hidden_size"));
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_TRAINABLE(rwkv4, "rwkv", build)

}  // namespace lrnn::train
