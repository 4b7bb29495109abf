// RecurrentGemma / Griffin / Hawk in HF transformers' format (model_type "recurrent_gemma"):
// residual blocks of a temporal mixer (RG-LRU recurrent block or local MQA attention, following
// block_types) and a GeLU-gated MLP, RMSNorms scaling by (1 + weight), embeddings scaled by a
// bf16 sqrt(hidden_size) and soft-capped logits. Reference: transformers
// models/recurrent_gemma/modeling_recurrent_gemma.py; the operators are conv1d, linear_scan and
// local_attn (shared OPS.md sections 4 and 5).
#include "models/fla_common.h"
#include "models/recurrent_gemma_config.h"
#include "ops/conv1d/conv1d.h"
#include "ops/dense/dense.h"
#include "ops/linear_scan/linear_scan.h"
#include "ops/local_attn/local_attn.h"

#include <cmath>
#include <cstring>

namespace lrnn::models {
namespace {

enum class block_kind { recurrent, attention };

struct rg_layer {
  block_kind kind = block_kind::recurrent;
  tensor temporal_norm, channel_norm;  // (1 + weight), precomputed
  // Recurrent block.
  tensor linear_y_w, linear_y_b, linear_x_w, linear_x_b, linear_out_w, linear_out_b;
  tensor conv_w, conv_b;               // [W, C], [C]
  tensor input_gate_w, input_gate_b;   // [H, bw, bw] (x_head @ w), [H, bw]
  tensor recurrent_gate_w, recurrent_gate_b;
  tensor recurrent_param;              // Lambda [C]
  // Attention block.
  tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  // MLP.
  tensor gate_w, gate_b, up_w, up_b, down_w, down_b;
};

// The normaliser transformers keeps as a bf16 buffer: sqrt(hidden_size) rounded to bf16
// (round to nearest even), then used in fp32.
float bf16_round(float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof(bits));
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  float r = 0;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}

// Block-diagonal gate: out[b, t, h * bw + j] = bias[h, j] + sum_i x[b, t, h * bw + i] * w[h, i, j].
tensor block_diag_linear(const tensor& x, const tensor& w, const tensor& bias) {
  const int64_t H = w.size(0), bw = w.size(1), rows = x.numel() / (H * bw);
  tensor out = tensor::empty(x.shape(), dtype::f32).value();
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const float* bp = bias.data<float>();
  float* op = out.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < H; ++h) {
      const float* xr = xp + (r * H + h) * bw;
      float* o = op + (r * H + h) * bw;
      std::memcpy(o, bp + h * bw, bw * sizeof(float));
      for (int64_t i = 0; i < bw; ++i) {
        const float xi = xr[i];
        const float* wr = wp + (h * bw + i) * bw;
        for (int64_t j = 0; j < bw; ++j) o[j] += xi * wr[j];
      }
    }
  return out;
}

result<tensor> plus_one(const tensor& w) {
  LRNN_ASSIGN_OR_RETURN(tensor r, w.clone());
  float* p = r.data<float>();
  for (int64_t i = 0; i < r.numel(); ++i) p[i] += 1.0f;
  return r;
}

class recurrent_gemma_model final : public model {
 public:
  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab_; }
  uint64_t weight_bytes() const override { return weight_bytes_; }

  result<model_state> initial_state(int64_t batch) const override {
    if (batch <= 0) return make_error(status_code::invalid_argument, "batch must be >= 1, got {}", batch);
    model_state st;
    st.batch = batch;
    LRNN_ASSIGN_OR_RETURN(st.tensors["pos"], tensor::zeros({batch}, dtype::i64));
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string p = fmt::format("layers.{}.", l);
      if (layers_[l].kind == block_kind::recurrent) {
        LRNN_ASSIGN_OR_RETURN(st.tensors[p + "h"], tensor::zeros({batch, lru_}, dtype::f32));
        LRNN_ASSIGN_OR_RETURN(st.tensors[p + "conv"], tensor::zeros({batch, conv_width_ - 1, lru_}, dtype::f32));
      } else {
        LRNN_ASSIGN_OR_RETURN(st.tensors[p + "k_cache"], tensor::zeros({batch, cache_len(), kv_heads_, head_dim_}, dtype::f32));
        LRNN_ASSIGN_OR_RETURN(st.tensors[p + "v_cache"], tensor::zeros({batch, cache_len(), kv_heads_, head_dim_}, dtype::f32));
        LRNN_ASSIGN_OR_RETURN(st.tensors[p + "count"], tensor::zeros({batch}, dtype::i64));
        LRNN_ASSIGN_OR_RETURN(st.tensors[p + "start"], tensor::zeros({batch}, dtype::i64));
      }
    }
    return st;
  }

  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override {
    LRNN_TRY(fla::check_ids(ids, st, vocab_));
    const int64_t B = ids.size(0), T = ids.size(1);
    // Segment positions: each sequence continues from the tokens it has seen; 0 starts a document.
    LRNN_ASSIGN_OR_RETURN(auto start, fla::positions(st, "pos", B));
    std::vector<int64_t> pos(static_cast<size_t>(B * T));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) pos[b * T + t] = start[b] + t;
    const tensor segment_pos = tensor::from_vector(pos, {B, T}, dtype::i64);

    LRNN_ASSIGN_OR_RETURN(tensor h, ops::embedding(ids, embed_));
    ops::scale_inplace(h, normalizer_);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const rg_layer& L = layers_[l];
      const std::string p = fmt::format("layers.{}.", l);
      LRNN_ASSIGN_OR_RETURN(tensor x, fla::rms_norm(h, L.temporal_norm, eps_));
      tensor mixed;
      if (L.kind == block_kind::recurrent) {
        LRNN_ASSIGN_OR_RETURN(mixed, recurrent_block(L, x, segment_pos, st, p, form));
      } else {
        LRNN_ASSIGN_OR_RETURN(mixed, attention_block(L, x, segment_pos, st, p));
      }
      LRNN_TRY(ops::add_inplace(h, mixed));
      LRNN_ASSIGN_OR_RETURN(tensor y, fla::rms_norm(h, L.channel_norm, eps_));
      LRNN_ASSIGN_OR_RETURN(tensor g, ops::linear(y, L.gate_w, L.gate_b));
      LRNN_ASSIGN_OR_RETURN(tensor u, ops::linear(y, L.up_w, L.up_b));
      ops::apply_activation(g, act_);
      LRNN_TRY(ops::mul_inplace(g, u));
      LRNN_ASSIGN_OR_RETURN(tensor mo, ops::linear(g, L.down_w, L.down_b));
      LRNN_TRY(ops::add_inplace(h, mo));
    }
    fla::advance_positions(st, "pos", T);
    LRNN_ASSIGN_OR_RETURN(tensor n, fla::rms_norm(h, final_norm_, eps_));
    LRNN_ASSIGN_OR_RETURN(tensor logits, ops::linear(n, lm_head_));
    ops::softcap_inplace(logits, soft_cap_);
    return logits;
  }

  static result<std::unique_ptr<model>> build(const load_context& ctx);

 private:
  // transformers attends to the current token and the previous attention_window_size - 1
  // (i - j < W); local_attn's window counts the distance (i - j <= window), so its cache holds W - 1.
  int64_t cache_len() const { return window_ - 1; }

  // y = gelu(linear_y x); u = RG-LRU(conv1d(linear_x x)); out = linear_out(u * y).
  result<tensor> recurrent_block(const rg_layer& L, const tensor& x, const tensor& segment_pos, model_state& st,
                                 const std::string& p, compute_form form) const {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor y, ops::linear(x, L.linear_y_w, L.linear_y_b));
    ops::apply_activation(y, act_);
    LRNN_ASSIGN_OR_RETURN(tensor xb, ops::linear(x, L.linear_x_w, L.linear_x_b));
    LRNN_ASSIGN_OR_RETURN(tensor cache, fla::state_tensor(st, p + "conv", {B, conv_width_ - 1, lru_}));
    ops::conv1d_inputs cin;
    cin.x = xb;
    cin.weight = L.conv_w;
    cin.bias = L.conv_b;
    LRNN_ASSIGN_OR_RETURN(auto conv, ops::conv1d_forward(ops::conv1d_spec{}, cin, cache, ops::conv1d_form::cpu, true));
    st.tensors[p + "conv"] = conv.final_cache;

    ops::linear_scan_inputs in;
    in.x = conv.y;
    in.gate_x = block_diag_linear(conv.y, L.input_gate_w, L.input_gate_b);
    in.gate_a = block_diag_linear(conv.y, L.recurrent_gate_w, L.recurrent_gate_b);
    in.a_param = L.recurrent_param;
    in.segment_pos = segment_pos;
    LRNN_ASSIGN_OR_RETURN(tensor h0, fla::state_tensor(st, p + "h", {B, lru_}));
    ops::linear_scan_spec spec;
    spec.gate = ops::scan_gate::rg_lru;
    spec.c = 8.0;
    const bool step = form == compute_form::recurrent || (form == compute_form::automatic && T == 1);
    LRNN_ASSIGN_OR_RETURN(auto scan, ops::linear_scan_forward(spec, in, h0, step ? ops::linear_scan_form::recurrent
                                                                                  : ops::linear_scan_form::scan));
    st.tensors[p + "h"] = scan.final_state;
    LRNN_TRY(ops::mul_inplace(scan.y, y));
    return ops::linear(scan.y, L.linear_out_w, L.linear_out_b);
  }

  // Local MQA: q, k, v projections, RoPE on the leading part of each head (in local_attn),
  // softmax over the window, o projection.
  result<tensor> attention_block(const rg_layer& L, const tensor& x, const tensor& segment_pos, model_state& st,
                                 const std::string& p) const {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(tensor q, ops::linear(x, L.q_w, L.q_b));
    LRNN_ASSIGN_OR_RETURN(tensor k, ops::linear(x, L.k_w, L.k_b));
    LRNN_ASSIGN_OR_RETURN(tensor v, ops::linear(x, L.v_w, L.v_b));
    ops::local_attn_inputs in;
    LRNN_ASSIGN_OR_RETURN(in.q, q.view({B, T, heads_, head_dim_}));
    LRNN_ASSIGN_OR_RETURN(in.k, k.view({B, T, kv_heads_, head_dim_}));
    LRNN_ASSIGN_OR_RETURN(in.v, v.view({B, T, kv_heads_, head_dim_}));
    in.positions = segment_pos;
    ops::local_attn_state cache;
    LRNN_ASSIGN_OR_RETURN(cache.k_cache, fla::state_tensor(st, p + "k_cache", {B, cache_len(), kv_heads_, head_dim_}));
    LRNN_ASSIGN_OR_RETURN(cache.v_cache, fla::state_tensor(st, p + "v_cache", {B, cache_len(), kv_heads_, head_dim_}));
    LRNN_ASSIGN_OR_RETURN(auto count, fla::positions(st, p + "count", B));
    LRNN_ASSIGN_OR_RETURN(auto doc, fla::positions(st, p + "start", B));
    cache.count = tensor::from_vector(count, {B}, dtype::i64);
    cache.start = tensor::from_vector(doc, {B}, dtype::i64);
    ops::local_attn_spec spec;
    spec.window = cache_len();
    spec.scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
    spec.rope = ops::rope_kind::half;
    spec.rotary_fraction = rotary_fraction_;
    spec.max_wavelength = rope_theta_;
    LRNN_ASSIGN_OR_RETURN(auto out, ops::local_attn_forward(spec, in, cache, ops::local_attn_form::parallel));
    st.tensors[p + "k_cache"] = out.final_state.k_cache;
    st.tensors[p + "v_cache"] = out.final_state.v_cache;
    st.tensors[p + "count"] = out.final_state.count;
    st.tensors[p + "start"] = out.final_state.start;
    LRNN_ASSIGN_OR_RETURN(tensor o, out.o.view({B, T, heads_ * head_dim_}));
    return ops::linear(o, L.o_w, L.o_b);
  }

  std::string type_ = "recurrent_gemma";
  int64_t vocab_ = 0, D_ = 0, lru_ = 0, heads_ = 0, kv_heads_ = 0, head_dim_ = 0, conv_width_ = 4, window_ = 2048;
  double eps_ = 1e-6, rope_theta_ = 10000.0, rotary_fraction_ = 0.5;
  float normalizer_ = 1.0f, soft_cap_ = 30.0f;
  ops::activation act_ = ops::activation::gelu_tanh;
  tensor embed_, final_norm_, lm_head_;
  std::vector<rg_layer> layers_;
  uint64_t weight_bytes_ = 0;
};

result<std::unique_ptr<model>> recurrent_gemma_model::build(const load_context& ctx) {
  const io::config& c = ctx.config;
  const std::string& src = c.source();
  auto m = std::make_unique<recurrent_gemma_model>();
  LRNN_ASSIGN_OR_RETURN(recurrent_gemma_config rc, read_recurrent_gemma_config(c));
  m->vocab_ = rc.vocab;
  m->D_ = rc.D;
  const int64_t D = m->D_;
  m->heads_ = rc.heads;
  m->kv_heads_ = rc.kv_heads;
  m->head_dim_ = rc.head_dim;
  m->lru_ = rc.lru;
  m->conv_width_ = rc.conv_width;
  m->window_ = rc.window;
  m->eps_ = rc.eps;
  m->soft_cap_ = static_cast<float>(rc.soft_cap);
  m->act_ = rc.act;
  m->rope_theta_ = rc.rope_theta;
  m->rotary_fraction_ = rc.rotary_fraction;
  const bool attn_bias = rc.attn_bias;
  const int64_t inter_full = rc.inter_full, F = rc.F;
  const std::vector<std::string>& block_types = rc.block_types;
  const float normalizer = bf16_round(static_cast<float>(std::sqrt(static_cast<double>(D))));
  m->normalizer_ = normalizer;

  weight_loader w(ctx.weights, src);
  const std::string dims = fmt::format("hidden_size={}", D);
  const std::string lw = fmt::format("hidden_size={}, lru_width={}", D, m->lru_);
  const std::string aw = fmt::format("hidden_size={}, num_attention_heads={}, num_key_value_heads={}, head_dim={}", D, m->heads_,
                                     m->kv_heads_, m->head_dim_);
  const std::string fw = fmt::format("hidden_size={}, intermediate_size={} (// 2 = {})", D, inter_full, F);
  LRNN_ASSIGN_OR_RETURN(m->embed_, w.get("model.embed_tokens.weight", {m->vocab_, D}, fmt::format("vocab_size={}, {}", m->vocab_, dims)));
  LRNN_ASSIGN_OR_RETURN(tensor fn, w.get("model.final_norm.weight", {D}, dims));
  LRNN_ASSIGN_OR_RETURN(m->final_norm_, plus_one(fn));
  LRNN_ASSIGN_OR_RETURN(bool tie, c.get_bool("tie_word_embeddings", true));
  const bool tied = tie && !w.has("lm_head.weight");
  if (tied) {
    m->lm_head_ = m->embed_;
  } else {
    LRNN_ASSIGN_OR_RETURN(m->lm_head_, w.get("lm_head.weight", {m->vocab_, D}, fmt::format("vocab_size={}, {}", m->vocab_, dims)));
  }
  const int64_t H = m->heads_, bw = m->lru_ / m->heads_, C = m->lru_, Wc = m->conv_width_;
  for (int64_t l = 0; l < rc.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::string tb = p + "temporal_block.";
    rg_layer L;
    L.kind = block_types[static_cast<size_t>(l) % block_types.size()] == "recurrent" ? block_kind::recurrent : block_kind::attention;
    LRNN_ASSIGN_OR_RETURN(tensor tn, w.get(p + "temporal_pre_norm.weight", {D}, dims));
    LRNN_ASSIGN_OR_RETURN(L.temporal_norm, plus_one(tn));
    LRNN_ASSIGN_OR_RETURN(tensor cn, w.get(p + "channel_pre_norm.weight", {D}, dims));
    LRNN_ASSIGN_OR_RETURN(L.channel_norm, plus_one(cn));
    if (L.kind == block_kind::recurrent) {
      LRNN_ASSIGN_OR_RETURN(L.linear_y_w, w.get(tb + "linear_y.weight", {C, D}, lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_y_b, w.get(tb + "linear_y.bias", {C}, lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_x_w, w.get(tb + "linear_x.weight", {C, D}, lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_x_b, w.get(tb + "linear_x.bias", {C}, lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_out_w, w.get(tb + "linear_out.weight", {D, C}, lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_out_b, w.get(tb + "linear_out.bias", {D}, lw));
      const std::string cw = fmt::format("lru_width={}, conv1d_width={}", C, Wc);
      LRNN_ASSIGN_OR_RETURN(tensor conv, w.get(tb + "conv_1d.weight", {C, 1, Wc}, cw));
      LRNN_ASSIGN_OR_RETURN(tensor conv2, conv.view({C, Wc}));
      LRNN_ASSIGN_OR_RETURN(tensor conv_t, conv2.transpose(0, 1));
      LRNN_ASSIGN_OR_RETURN(L.conv_w, conv_t.contiguous());
      LRNN_ASSIGN_OR_RETURN(L.conv_b, w.get(tb + "conv_1d.bias", {C}, cw));
      const std::string gw = fmt::format("num_attention_heads={}, lru_width={} (block width {})", H, C, bw);
      const std::string r = tb + "rg_lru.";
      LRNN_ASSIGN_OR_RETURN(L.input_gate_w, w.get(r + "input_gate_weight", {H, bw, bw}, gw));
      LRNN_ASSIGN_OR_RETURN(L.input_gate_b, w.get(r + "input_gate_bias", {H, bw}, gw));
      LRNN_ASSIGN_OR_RETURN(L.recurrent_gate_w, w.get(r + "recurrent_gate_weight", {H, bw, bw}, gw));
      LRNN_ASSIGN_OR_RETURN(L.recurrent_gate_b, w.get(r + "recurrent_gate_bias", {H, bw}, gw));
      LRNN_ASSIGN_OR_RETURN(L.recurrent_param, w.get(r + "recurrent_param", {C}, lw));
    } else {
      const int64_t Hd = m->head_dim_, KV = m->kv_heads_;
      LRNN_ASSIGN_OR_RETURN(L.q_w, w.get(tb + "q_proj.weight", {H * Hd, D}, aw));
      LRNN_ASSIGN_OR_RETURN(L.k_w, w.get(tb + "k_proj.weight", {KV * Hd, D}, aw));
      LRNN_ASSIGN_OR_RETURN(L.v_w, w.get(tb + "v_proj.weight", {KV * Hd, D}, aw));
      if (attn_bias) {
        LRNN_ASSIGN_OR_RETURN(L.q_b, w.get(tb + "q_proj.bias", {H * Hd}, "attention_bias=true, " + aw));
        LRNN_ASSIGN_OR_RETURN(L.k_b, w.get(tb + "k_proj.bias", {KV * Hd}, "attention_bias=true, " + aw));
        LRNN_ASSIGN_OR_RETURN(L.v_b, w.get(tb + "v_proj.bias", {KV * Hd}, "attention_bias=true, " + aw));
      }
      LRNN_ASSIGN_OR_RETURN(L.o_w, w.get(tb + "o_proj.weight", {D, H * Hd}, aw));
      LRNN_ASSIGN_OR_RETURN(L.o_b, w.get(tb + "o_proj.bias", {D}, aw));
    }
    const std::string mb = p + "mlp_block.";
    LRNN_ASSIGN_OR_RETURN(L.gate_w, w.get(mb + "gate_proj.weight", {F, D}, fw));
    LRNN_ASSIGN_OR_RETURN(L.gate_b, w.get(mb + "gate_proj.bias", {F}, fw));
    LRNN_ASSIGN_OR_RETURN(L.up_w, w.get(mb + "up_proj.weight", {F, D}, fw));
    LRNN_ASSIGN_OR_RETURN(L.up_b, w.get(mb + "up_proj.bias", {F}, fw));
    LRNN_ASSIGN_OR_RETURN(L.down_w, w.get(mb + "down_proj.weight", {D, F}, fw));
    LRNN_ASSIGN_OR_RETURN(L.down_b, w.get(mb + "down_proj.bias", {D}, fw));
    m->layers_.push_back(std::move(L));
  }
  if (auto extra = w.unused(); !extra.empty())
    return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's recurrent_gemma (a config option not implemented?)",
                      ctx.dir, extra.front());
  // Per decoded token: every weight once, one embedding row instead of the table, and the
  // table again as the LM head when it is tied.
  m->weight_bytes_ = w.bytes_loaded() - m->embed_.nbytes() + static_cast<uint64_t>(D) * 4 + (tied ? m->embed_.nbytes() : 0);
  return std::unique_ptr<model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_MODEL(recurrent_gemma, "recurrent_gemma", recurrent_gemma_model::build)

}  // namespace lrnn::models
