// xLSTM in Hugging Face transformers' format (model_type "xlstm", e.g. NX-AI/xLSTM-7b):
// embedding -> N x (x += mLSTM(RMSNorm(x)); x += SwiGLU FFN(RMSNorm(x))) -> RMSNorm -> head,
// logits soft-capped. The mLSTM cell is decay_attn with the scalar gate logsigmoid(f~), the
// exponential input gate and the normaliser (OPS.md 1.4). Reference:
// transformers/models/xlstm/modeling_xlstm.py (its native kernels, which start from m = 0).
#include "models/fla_common.h"
#include "models/xlstm_config.h"
#include "ops/dense/dense.h"

#include <cmath>
#include <optional>

namespace lrnn::models {
namespace {

// x += b over the last dimension.
void add_bias(tensor& x, const tensor& b) {
  if (!b.defined()) return;
  const int64_t C = b.numel(), rows = x.numel() / C;
  float* xp = x.data<float>();
  const float* bp = b.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < C; ++i) xp[r * C + i] += bp[i];
}

result<tensor> rms_norm(const tensor& x, const tensor& w, const tensor& b, double eps) {
  LRNN_ASSIGN_OR_RETURN(tensor y, fla::rms_norm(x, w, eps));
  add_bias(y, b);
  return y;
}

// Rows [start, start + n) of a fused [out, in] weight or [out] bias.
result<tensor> rows(const tensor& t, int64_t start, int64_t n) {
  if (!t.defined()) return tensor();
  LRNN_ASSIGN_OR_RETURN(tensor s, t.slice(0, start, start + n));
  return s.contiguous();
}

struct xlstm_block {
  tensor norm_mlstm, norm_mlstm_b, norm_ffn, norm_ffn_b;
  tensor q, q_b, k, k_b, v, v_b, o, o_b, ig, ig_b, fg, fg_b, mh_norm, mh_norm_b, out, out_b;
  tensor up_gate, up_gate_b, up, up_b, down, down_b;
};

class xlstm_model final : public model {
 public:
  xlstm_config c;
  tensor embed, out_norm, lm_head;
  std::vector<xlstm_block> blocks;
  uint64_t bytes = 0;
  std::string type = "xlstm";

  const std::string& model_type() const override { return type; }
  int64_t vocab_size() const override { return c.vocab; }
  uint64_t weight_bytes() const override { return bytes; }

  result<model_state> initial_state(int64_t batch) const override {
    if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
    model_state st;
    st.batch = batch;
    for (int64_t l = 0; l < c.L; ++l) {
      const std::string p = fmt::format("blocks.{}.", l);
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "s"], tensor::zeros({batch, c.H, c.Kh, c.Vh}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "n"], tensor::zeros({batch, c.H, c.Kh}, dtype::f32));
      LRNN_ASSIGN_OR_RETURN(st.tensors[p + "m"], tensor::zeros({batch, c.H}, dtype::f32));
    }
    return st;
  }

  result<tensor> mlstm(const xlstm_block& b, const tensor& x, model_state& st, const std::string& p, compute_form form) const {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor qx, ops::linear(x, b.q, b.q_b));  // [B, T, H * Kh]
    LRNN_ASSIGN_OR_RETURN(tensor kx, ops::linear(x, b.k, b.k_b));
    LRNN_ASSIGN_OR_RETURN(tensor vx, ops::linear(x, b.v, b.v_b));  // [B, T, H * Vh]
    LRNN_ASSIGN_OR_RETURN(tensor ix, ops::linear(x, b.ig, b.ig_b));  // [B, T, H]
    LRNN_ASSIGN_OR_RETURN(tensor fx, ops::linear(x, b.fg, b.fg_b));  // [B, T, H]
    if (c.gate_soft_cap) {
      ops::softcap_inplace(ix, static_cast<float>(*c.gate_soft_cap));
      ops::softcap_inplace(fx, static_cast<float>(*c.gate_soft_cap));
    }
    ops::apply_activation(fx, ops::activation::logsigmoid);
    ops::decay_attn_inputs in;
    LRNN_ASSIGN_OR_RETURN(in.q, qx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.k, kx.view({B, T, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(in.v, vx.view({B, T, c.H, c.Vh}));
    in.g = fx;
    in.i = ix;
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_scalar;
    spec.input_gate = ops::input_gate_kind::exponential;
    spec.normalizer = true;
    spec.eps = c.eps;
    ops::decay_attn_state init;
    LRNN_ASSIGN_OR_RETURN(init.s, fla::state_tensor(st, p + "s", {B, c.H, c.Kh, c.Vh}));
    LRNN_ASSIGN_OR_RETURN(init.n, fla::state_tensor(st, p + "n", {B, c.H, c.Kh}));
    LRNN_ASSIGN_OR_RETURN(init.m, fla::state_tensor(st, p + "m", {B, c.H}));
    LRNN_ASSIGN_OR_RETURN(auto res, ops::decay_attn_forward(spec, in, init, fla::decay_form(form, T)));
    st.tensors[p + "s"] = res.final_state.s;
    st.tensors[p + "n"] = res.final_state.n;
    st.tensors[p + "m"] = res.final_state.m;
    LRNN_ASSIGN_OR_RETURN(tensor h, res.o.view({B, T, c.v_dim}));
    LRNN_ASSIGN_OR_RETURN(h, ops::group_norm(h, c.H, b.mh_norm, b.mh_norm_b, c.norm_eps));
    LRNN_ASSIGN_OR_RETURN(tensor gate, ops::linear(x, b.o, b.o_b));  // [B, T, v_dim]
    ops::apply_activation(gate, ops::activation::sigmoid);
    LRNN_TRY(ops::mul_inplace(h, gate));
    return ops::linear(h, b.out, b.out_b);
  }

  result<tensor> ffn(const xlstm_block& b, const tensor& x) const {
    LRNN_ASSIGN_OR_RETURN(tensor g, ops::linear(x, b.up_gate, b.up_gate_b));  // [B, T, up_dim]
    LRNN_ASSIGN_OR_RETURN(tensor u, ops::linear(x, b.up, b.up_b));
    ops::apply_activation(g, ops::activation::silu);
    LRNN_TRY(ops::mul_inplace(g, u));
    return ops::linear(g, b.down, b.down_b);
  }

  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override {
    LRNN_TRY(fla::check_ids(ids, st, c.vocab));
    LRNN_ASSIGN_OR_RETURN(tensor h, ops::embedding(ids, embed));  // [B, T, D]
    for (int64_t l = 0; l < c.L; ++l) {
      const xlstm_block& b = blocks[l];
      LRNN_ASSIGN_OR_RETURN(tensor x, rms_norm(h, b.norm_mlstm, b.norm_mlstm_b, c.norm_eps));
      LRNN_ASSIGN_OR_RETURN(tensor a, mlstm(b, x, st, fmt::format("blocks.{}.", l), form));
      LRNN_TRY(ops::add_inplace(h, a));
      LRNN_ASSIGN_OR_RETURN(tensor y, rms_norm(h, b.norm_ffn, b.norm_ffn_b, c.norm_eps));
      LRNN_ASSIGN_OR_RETURN(tensor f, ffn(b, y));
      LRNN_TRY(ops::add_inplace(h, f));
    }
    LRNN_ASSIGN_OR_RETURN(tensor n, fla::rms_norm(h, out_norm, c.norm_eps));
    LRNN_ASSIGN_OR_RETURN(tensor logits, ops::linear(n, lm_head));  // [B, T, vocab]
    if (c.logit_soft_cap) ops::softcap_inplace(logits, static_cast<float>(*c.logit_soft_cap));
    return logits;
  }
};

// Loads one linear layer (weight [out, in], bias [out] when `bias`); `alias` is an older name.
struct linear_loader {
  weight_loader& w;
  const std::string& why;
  result<std::pair<tensor, tensor>> operator()(const std::string& prefix, const std::string& name, const std::string& alias,
                                               int64_t out, int64_t in, bool bias) const {
    const std::string n = !alias.empty() && !w.has(prefix + name + ".weight") && w.has(prefix + alias + ".weight") ? alias : name;
    std::pair<tensor, tensor> r;
    LRNN_ASSIGN_OR_RETURN(r.first, w.get(prefix + n + ".weight", {out, in}, why));
    if (bias) {
      LRNN_ASSIGN_OR_RETURN(r.second, w.get(prefix + n + ".bias", {out}, why + ", use_bias=true"));
    }
    return r;
  }
};

result<std::unique_ptr<model>> build_xlstm(const load_context& ctx) {
  auto m = std::make_unique<xlstm_model>();
  LRNN_ASSIGN_OR_RETURN(m->c, read_xlstm_config(ctx.config));
  const xlstm_config& c = m->c;
  weight_loader w(ctx.weights, ctx.config.source());
  const std::string dims = fmt::format("hidden_size={}, num_heads={}, qk_dim_factor={}, v_dim_factor={}", c.D, c.H,
                                       c.qk_dim_factor, c.v_dim_factor);
  const std::string ffn_why = fmt::format("hidden_size={}, ffn_proj_factor and ffn_round_up_to_multiple_of -> {}", c.D, c.up_dim);
  const std::string frame_why = fmt::format("vocab_size={}, hidden_size={}", c.vocab, c.D);
  const std::string d_why = fmt::format("hidden_size={}", c.D);
  LRNN_ASSIGN_OR_RETURN(m->embed, w.get("backbone.embeddings.weight", {c.vocab, c.D}, frame_why));
  LRNN_ASSIGN_OR_RETURN(m->out_norm, w.get("backbone.out_norm.weight", {c.D}, d_why));
  if (c.tie && !w.has("lm_head.weight")) m->lm_head = m->embed;
  else {
    LRNN_ASSIGN_OR_RETURN(m->lm_head, w.get("lm_head.weight", {c.vocab, c.D}, frame_why));
  }
  linear_loader lin{w, dims};
  linear_loader ffn_lin{w, ffn_why};
  for (int64_t l = 0; l < c.L; ++l) {
    const std::string p = fmt::format("backbone.blocks.{}.", l);
    const std::string ml = p + "mlstm_layer.";
    xlstm_block b;
    LRNN_ASSIGN_OR_RETURN(b.norm_mlstm, w.get(p + "norm_mlstm.weight", {c.D}, d_why));
    LRNN_ASSIGN_OR_RETURN(b.norm_ffn, w.get(p + "norm_ffn.weight", {c.D}, d_why));
    if (c.bias) {
      LRNN_ASSIGN_OR_RETURN(b.norm_mlstm_b, w.get(p + "norm_mlstm.bias", {c.D}, d_why + ", use_bias=true"));
      LRNN_ASSIGN_OR_RETURN(b.norm_ffn_b, w.get(p + "norm_ffn.bias", {c.D}, d_why + ", use_bias=true"));
    }
    if (c.fused) {
      LRNN_ASSIGN_OR_RETURN(auto qkvo, lin(ml, "qkv_opreact", "", 2 * c.qk_dim + 2 * c.v_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(b.q, rows(qkvo.first, 0, c.qk_dim));
      LRNN_ASSIGN_OR_RETURN(b.k, rows(qkvo.first, c.qk_dim, c.qk_dim));
      LRNN_ASSIGN_OR_RETURN(b.v, rows(qkvo.first, 2 * c.qk_dim, c.v_dim));
      LRNN_ASSIGN_OR_RETURN(b.o, rows(qkvo.first, 2 * c.qk_dim + c.v_dim, c.v_dim));
      LRNN_ASSIGN_OR_RETURN(b.q_b, rows(qkvo.second, 0, c.qk_dim));
      LRNN_ASSIGN_OR_RETURN(b.k_b, rows(qkvo.second, c.qk_dim, c.qk_dim));
      LRNN_ASSIGN_OR_RETURN(b.v_b, rows(qkvo.second, 2 * c.qk_dim, c.v_dim));
      LRNN_ASSIGN_OR_RETURN(b.o_b, rows(qkvo.second, 2 * c.qk_dim + c.v_dim, c.v_dim));
      LRNN_ASSIGN_OR_RETURN(auto ifg, lin(ml, "ifgate_preact", "", 2 * c.H, c.D, true));
      LRNN_ASSIGN_OR_RETURN(b.ig, rows(ifg.first, 0, c.H));
      LRNN_ASSIGN_OR_RETURN(b.fg, rows(ifg.first, c.H, c.H));
      LRNN_ASSIGN_OR_RETURN(b.ig_b, rows(ifg.second, 0, c.H));
      LRNN_ASSIGN_OR_RETURN(b.fg_b, rows(ifg.second, c.H, c.H));
      LRNN_ASSIGN_OR_RETURN(auto upz, ffn_lin(p + "ffn.", "proj_up_gate_z", "", 2 * c.up_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(b.up_gate, rows(upz.first, 0, c.up_dim));
      LRNN_ASSIGN_OR_RETURN(b.up, rows(upz.first, c.up_dim, c.up_dim));
      LRNN_ASSIGN_OR_RETURN(b.up_gate_b, rows(upz.second, 0, c.up_dim));
      LRNN_ASSIGN_OR_RETURN(b.up_b, rows(upz.second, c.up_dim, c.up_dim));
    } else {
      LRNN_ASSIGN_OR_RETURN(std::tie(b.q, b.q_b), lin(ml, "q", "query", c.qk_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.k, b.k_b), lin(ml, "k", "key", c.qk_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.v, b.v_b), lin(ml, "v", "value", c.v_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.o, b.o_b), lin(ml, "ogate_preact", "", c.v_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.ig, b.ig_b), lin(ml, "igate_preact", "", c.H, c.D, true));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.fg, b.fg_b), lin(ml, "fgate_preact", "", c.H, c.D, true));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.up_gate, b.up_gate_b), ffn_lin(p + "ffn.", "proj_up_gate", "", c.up_dim, c.D, c.bias));
      LRNN_ASSIGN_OR_RETURN(std::tie(b.up, b.up_b), ffn_lin(p + "ffn.", "proj_up", "", c.up_dim, c.D, c.bias));
    }
    LRNN_ASSIGN_OR_RETURN(std::tie(b.down, b.down_b), ffn_lin(p + "ffn.", "proj_down", "", c.D, c.up_dim, c.bias));
    LRNN_ASSIGN_OR_RETURN(b.mh_norm, w.get(ml + "multihead_norm.weight", {c.v_dim}, dims));
    if (c.bias) {
      LRNN_ASSIGN_OR_RETURN(b.mh_norm_b, w.get(ml + "multihead_norm.bias", {c.v_dim}, dims + ", use_bias=true"));
    }
    LRNN_ASSIGN_OR_RETURN(std::tie(b.out, b.out_b), lin(ml, "out_proj", "", c.D, c.v_dim, c.bias));
    m->blocks.push_back(std::move(b));
  }
  if (auto extra = w.unused(); !extra.empty())
    return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's xlstm (a config option not implemented?)",
                      ctx.dir, extra.front());
  m->bytes = w.bytes_loaded() - m->embed.nbytes() + static_cast<uint64_t>(c.D) * 4;
  if (m->lm_head.data<float>() == m->embed.data<float>()) m->bytes += m->lm_head.nbytes();
  return std::unique_ptr<model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_MODEL(xlstm, "xlstm", build_xlstm)

}  // namespace lrnn::models
