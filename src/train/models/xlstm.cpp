// Trainable xLSTM in HF transformers' format (model_type "xlstm"), the computation of
// models/xlstm.cpp over autograd vars (same config reader, models/xlstm_config.h): RMSNorm
// blocks of an mLSTM layer (ag::decay_attn with the scalar gate logsigmoid(f~), the exponential
// input gate and the normaliser; multi-head norm; sigmoid output gate) and a SwiGLU FFN, output
// RMSNorm, optionally soft-capped logits. weight_mode "fused" keeps the fused matrices as the
// parameters and slices them in the forward. Fresh weights as transformers'
// xLSTMPreTrainedModel._init_weights (small_init / wang_init, zero gate weights, input-gate bias
// -10, forget-gate bias linspace(3, 6)). As there, every Linear whose name contains "gate" starts
// at zero, proj_up_gate included.
#include "models/xlstm_config.h"
#include "ops/decay_attn/autograd.h"
#include "ops/dense/autograd.h"
#include "train/models/arch_util.h"

#include <cmath>

namespace lrnn::train {
namespace {

using models::xlstm_config;

struct block {
  ag::var norm_mlstm, norm_mlstm_b, norm_ffn, norm_ffn_b;
  // single: one var each; fused: qkvo / ifg / upz hold the fused matrices.
  ag::var q, q_b, k, k_b, v, v_b, o, o_b, ig, ig_b, fg, fg_b;
  ag::var qkvo, qkvo_b, ifg, ifg_b, upz, upz_b;
  ag::var up_gate, up_gate_b, up, up_b, down, down_b, mh_norm, mh_norm_b, out, out_b;
};

// Rows [a, b) of a fused weight / bias (undefined stays undefined).
result<ag::var> rows(const ag::var& t, int64_t a, int64_t b) {
  if (!t.defined()) return ag::var();
  return ag::slice(t, 0, a, b);
}

class xlstm_trainable final : public trainable_model {
 public:
  xlstm_config c;
  io::config cfg;
  ag::var embed, out_norm, lm_head;
  std::vector<block> blocks;
  std::vector<parameter> params;
  std::string type = "xlstm";

  const std::string& model_type() const override { return type; }
  int64_t vocab_size() const override { return c.vocab; }
  std::vector<parameter>& parameters() override { return params; }
  const io::config& config() const override { return cfg; }

  result<ag::var> forward(const tensor& ids, models::compute_form form) override {
    if (ids.dim() != 2) return make_error(status_code::invalid_argument, "xlstm: ids must be [B, T], got {}", shape_to_string(ids.shape()));
    ops::decay_attn_form df = ops::decay_attn_form::chunk;
    if (form == models::compute_form::recurrent) df = ops::decay_attn_form::recurrent;
    if (form == models::compute_form::parallel) df = ops::decay_attn_form::parallel;
    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, embed));
    for (const block& b : blocks) {
      LRNN_ASSIGN_OR_RETURN(ag::var x, norm(h, b.norm_mlstm, b.norm_mlstm_b));
      LRNN_ASSIGN_OR_RETURN(ag::var a, mlstm(b, x, df));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, a));
      LRNN_ASSIGN_OR_RETURN(ag::var y, norm(h, b.norm_ffn, b.norm_ffn_b));
      LRNN_ASSIGN_OR_RETURN(ag::var f, ffn(b, y));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, f));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var n, ag::rms_norm(h, out_norm, c.norm_eps));
    LRNN_ASSIGN_OR_RETURN(ag::var logits, ag::linear(n, lm_head));
    if (c.logit_soft_cap) return ag::softcap(logits, *c.logit_soft_cap);
    return logits;
  }

 private:
  result<ag::var> norm(const ag::var& x, const ag::var& w, const ag::var& b) const {
    LRNN_ASSIGN_OR_RETURN(ag::var y, ag::rms_norm(x, w, c.norm_eps));
    if (b.defined()) return ag::add(y, b);
    return y;
  }

  result<ag::var> mlstm(const block& b, const ag::var& x, ops::decay_attn_form df) const {
    const int64_t B = x.size(0), T = x.size(1), QK = c.qk_dim, V = c.v_dim, H = c.H;
    ag::var qw = b.q, qb = b.q_b, kw = b.k, kb = b.k_b, vw = b.v, vb = b.v_b, ow = b.o, ob = b.o_b;
    ag::var iw = b.ig, ib = b.ig_b, fw = b.fg, fb = b.fg_b;
    if (c.fused) {
      LRNN_ASSIGN_OR_RETURN(qw, rows(b.qkvo, 0, QK));
      LRNN_ASSIGN_OR_RETURN(kw, rows(b.qkvo, QK, 2 * QK));
      LRNN_ASSIGN_OR_RETURN(vw, rows(b.qkvo, 2 * QK, 2 * QK + V));
      LRNN_ASSIGN_OR_RETURN(ow, rows(b.qkvo, 2 * QK + V, 2 * QK + 2 * V));
      LRNN_ASSIGN_OR_RETURN(qb, rows(b.qkvo_b, 0, QK));
      LRNN_ASSIGN_OR_RETURN(kb, rows(b.qkvo_b, QK, 2 * QK));
      LRNN_ASSIGN_OR_RETURN(vb, rows(b.qkvo_b, 2 * QK, 2 * QK + V));
      LRNN_ASSIGN_OR_RETURN(ob, rows(b.qkvo_b, 2 * QK + V, 2 * QK + 2 * V));
      LRNN_ASSIGN_OR_RETURN(iw, rows(b.ifg, 0, H));
      LRNN_ASSIGN_OR_RETURN(fw, rows(b.ifg, H, 2 * H));
      LRNN_ASSIGN_OR_RETURN(ib, rows(b.ifg_b, 0, H));
      LRNN_ASSIGN_OR_RETURN(fb, rows(b.ifg_b, H, 2 * H));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var qx, ag::linear(x, qw, qb));
    LRNN_ASSIGN_OR_RETURN(ag::var kx, ag::linear(x, kw, kb));
    LRNN_ASSIGN_OR_RETURN(ag::var vx, ag::linear(x, vw, vb));
    LRNN_ASSIGN_OR_RETURN(ag::var ix, ag::linear(x, iw, ib));  // [B, T, H]
    LRNN_ASSIGN_OR_RETURN(ag::var fx, ag::linear(x, fw, fb));  // [B, T, H]
    if (c.gate_soft_cap) {
      LRNN_ASSIGN_OR_RETURN(ix, ag::softcap(ix, *c.gate_soft_cap));
      LRNN_ASSIGN_OR_RETURN(fx, ag::softcap(fx, *c.gate_soft_cap));
    }
    LRNN_ASSIGN_OR_RETURN(fx, ag::activation(fx, ops::activation::logsigmoid));
    LRNN_ASSIGN_OR_RETURN(ag::var q4, ag::reshape(qx, {B, T, H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(ag::var k4, ag::reshape(kx, {B, T, H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(ag::var v4, ag::reshape(vx, {B, T, H, c.Vh}));
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_scalar;
    spec.input_gate = ops::input_gate_kind::exponential;
    spec.normalizer = true;
    spec.eps = c.eps;
    LRNN_ASSIGN_OR_RETURN(ag::var o4, ag::decay_attn(spec, q4, k4, v4, fx, ix, ag::var(), df));
    LRNN_ASSIGN_OR_RETURN(ag::var hv, ag::reshape(o4, {B, T, V}));
    LRNN_ASSIGN_OR_RETURN(hv, ag::group_norm(hv, H, b.mh_norm, b.mh_norm_b, c.norm_eps));
    LRNN_ASSIGN_OR_RETURN(ag::var gate, ag::linear(x, ow, ob));
    LRNN_ASSIGN_OR_RETURN(gate, ag::activation(gate, ops::activation::sigmoid));
    LRNN_ASSIGN_OR_RETURN(hv, ag::mul(hv, gate));
    return ag::linear(hv, b.out, b.out_b);
  }

  result<ag::var> ffn(const block& b, const ag::var& x) const {
    ag::var gw = b.up_gate, gb = b.up_gate_b, uw = b.up, ub = b.up_b;
    if (c.fused) {
      LRNN_ASSIGN_OR_RETURN(gw, rows(b.upz, 0, c.up_dim));
      LRNN_ASSIGN_OR_RETURN(uw, rows(b.upz, c.up_dim, 2 * c.up_dim));
      LRNN_ASSIGN_OR_RETURN(gb, rows(b.upz_b, 0, c.up_dim));
      LRNN_ASSIGN_OR_RETURN(ub, rows(b.upz_b, c.up_dim, 2 * c.up_dim));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var g, ag::linear(x, gw, gb));
    LRNN_ASSIGN_OR_RETURN(g, ag::activation(g, ops::activation::silu));
    LRNN_ASSIGN_OR_RETURN(ag::var u, ag::linear(x, uw, ub));
    LRNN_ASSIGN_OR_RETURN(g, ag::mul(g, u));
    return ag::linear(g, b.down, b.down_b);
  }
};

param_init from_fn(std::function<double(int64_t)> f) {
  return param_init::custom([f](tensor& t) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(f(i));
  });
}

result<std::unique_ptr<trainable_model>> build(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(xlstm_config c, models::read_xlstm_config(config));
  auto m = std::make_unique<xlstm_trainable>();
  m->c = c;
  m->cfg = config;
  arch::param_builder pb(src, m->params);
  const int64_t D = c.D, H = c.H;
  const param_init small = param_init::normal(std::sqrt(2.0 / (5.0 * static_cast<double>(D))));
  const param_init zeros = param_init::zeros(), ones = param_init::ones();
  const double Ld = static_cast<double>(c.L);
  const param_init wang_down = param_init::normal(2.0 / Ld / std::sqrt(static_cast<double>(c.up_dim)));
  const param_init wang_out = param_init::normal(2.0 / Ld / std::sqrt(static_cast<double>(D)));
  const param_init ig_bias = param_init::constant(-10.0);
  const param_init fg_bias = from_fn([H](int64_t i) { return H > 1 ? 3.0 + 3.0 * static_cast<double>(i) / static_cast<double>(H - 1) : 3.0; });
  const std::string dims = fmt::format("hidden_size={}, num_heads={}, qk_dim_factor={}, v_dim_factor={}", D, H, c.qk_dim_factor, c.v_dim_factor);
  const std::string ffn_why = fmt::format("hidden_size={}, ffn_proj_factor and ffn_round_up_to_multiple_of -> {}", D, c.up_dim);
  const std::string d_why = fmt::format("hidden_size={}", D);
  auto lin = [&](const std::string& name, int64_t out, int64_t in, bool bias, const param_init& w_init, const param_init& b_init,
                 const std::string& why, ag::var& w, ag::var& b) -> status {
    LRNN_ASSIGN_OR_RETURN(w, pb.get(name + ".weight", {out, in}, w_init, why));
    if (bias) {
      LRNN_ASSIGN_OR_RETURN(b, pb.get(name + ".bias", {out}, b_init, why));
    }
    return {};
  };
  LRNN_ASSIGN_OR_RETURN(m->embed, pb.get("backbone.embeddings.weight", {c.vocab, D}, small, fmt::format("vocab_size={}, hidden_size={}", c.vocab, D)));
  for (int64_t l = 0; l < c.L; ++l) {
    const std::string p = fmt::format("backbone.blocks.{}.", l);
    const std::string ml = p + "mlstm_layer.";
    block b;
    LRNN_ASSIGN_OR_RETURN(b.norm_mlstm, pb.get(p + "norm_mlstm.weight", {D}, ones, d_why));
    if (c.bias) {
      LRNN_ASSIGN_OR_RETURN(b.norm_mlstm_b, pb.get(p + "norm_mlstm.bias", {D}, zeros, d_why + ", use_bias=true"));
    }
    if (c.fused) {
      LRNN_TRY(lin(ml + "qkv_opreact", 2 * c.qk_dim + 2 * c.v_dim, D, c.bias, small, zeros, dims, b.qkvo, b.qkvo_b));
      LRNN_TRY(lin(ml + "ifgate_preact", 2 * H, D, true, zeros,
                   from_fn([H](int64_t i) { return i < H ? -10.0 : (H > 1 ? 3.0 + 3.0 * static_cast<double>(i - H) / static_cast<double>(H - 1) : 3.0); }),
                   dims, b.ifg, b.ifg_b));
    } else {
      LRNN_TRY(lin(ml + "q", c.qk_dim, D, c.bias, small, zeros, dims, b.q, b.q_b));
      LRNN_TRY(lin(ml + "k", c.qk_dim, D, c.bias, small, zeros, dims, b.k, b.k_b));
      LRNN_TRY(lin(ml + "v", c.v_dim, D, c.bias, small, zeros, dims, b.v, b.v_b));
      LRNN_TRY(lin(ml + "ogate_preact", c.v_dim, D, c.bias, zeros, zeros, dims, b.o, b.o_b));
      LRNN_TRY(lin(ml + "igate_preact", H, D, true, zeros, ig_bias, dims, b.ig, b.ig_b));
      LRNN_TRY(lin(ml + "fgate_preact", H, D, true, zeros, fg_bias, dims, b.fg, b.fg_b));
    }
    LRNN_ASSIGN_OR_RETURN(b.mh_norm, pb.get(ml + "multihead_norm.weight", {c.v_dim}, ones, dims));
    if (c.bias) {
      LRNN_ASSIGN_OR_RETURN(b.mh_norm_b, pb.get(ml + "multihead_norm.bias", {c.v_dim}, zeros, dims + ", use_bias=true"));
    }
    LRNN_TRY(lin(ml + "out_proj", D, c.v_dim, c.bias, wang_out, zeros, dims, b.out, b.out_b));
    LRNN_ASSIGN_OR_RETURN(b.norm_ffn, pb.get(p + "norm_ffn.weight", {D}, ones, d_why));
    if (c.bias) {
      LRNN_ASSIGN_OR_RETURN(b.norm_ffn_b, pb.get(p + "norm_ffn.bias", {D}, zeros, d_why + ", use_bias=true"));
    }
    if (c.fused) {
      LRNN_TRY(lin(p + "ffn.proj_up_gate_z", 2 * c.up_dim, D, c.bias, zeros, zeros, ffn_why, b.upz, b.upz_b));
    } else {
      LRNN_TRY(lin(p + "ffn.proj_up_gate", c.up_dim, D, c.bias, zeros, zeros, ffn_why, b.up_gate, b.up_gate_b));
      LRNN_TRY(lin(p + "ffn.proj_up", c.up_dim, D, c.bias, small, zeros, ffn_why, b.up, b.up_b));
    }
    LRNN_TRY(lin(p + "ffn.proj_down", D, c.up_dim, c.bias, wang_down, zeros, ffn_why, b.down, b.down_b));
    m->blocks.push_back(std::move(b));
  }
  LRNN_ASSIGN_OR_RETURN(m->out_norm, pb.get("backbone.out_norm.weight", {D}, ones, d_why));
  if (c.tie) {
    m->lm_head = m->embed;
  } else {
    LRNN_ASSIGN_OR_RETURN(m->lm_head, pb.get("lm_head.weight", {c.vocab, D}, small, fmt::format("vocab_size={}, hidden_size={}", c.vocab, D)));
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_TRAINABLE(xlstm, "xlstm", build)

}  // namespace lrnn::train
