// Trainable RecurrentGemma / Griffin / Hawk in HF transformers' format (model_type
// "recurrent_gemma"), the computation of models/recurrent_gemma.cpp over autograd vars: RMSNorms
// scaling by (1 + weight), the bf16-rounded sqrt(hidden_size) embedding scale, recurrent blocks
// (gelu(linear_y) * RG-LRU(conv1d(linear_x)) -> linear_out, through ag::conv1d and
// ag::linear_scan) and local MQA blocks (ag::local_attn), a GeLU-gated MLP, soft-capped logits.
// Parameter names and fresh-weight init follow transformers' modeling_recurrent_gemma.py.
#include "models/recurrent_gemma_config.h"
#include "ops/conv1d/autograd.h"
#include "ops/dense/autograd.h"
#include "ops/linear_scan/autograd.h"
#include "ops/local_attn/autograd.h"
#include "train/models/arch_util.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

namespace lrnn::train {
namespace {

using models::recurrent_gemma_config;

// transformers keeps sqrt(hidden_size) as a bf16 buffer: round to nearest even, used in fp32.
float bf16_round(float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof(bits));
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  float r = 0;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}

struct layer {
  bool recurrent = true;
  ag::var temporal_norm, channel_norm;
  ag::var linear_y_w, linear_y_b, linear_x_w, linear_x_b, linear_out_w, linear_out_b;
  ag::var conv_w, conv_b;  // [C, 1, W] as stored, [C]
  ag::var input_gate_w, input_gate_b, recurrent_gate_w, recurrent_gate_b, recurrent_param;
  ag::var q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  ag::var gate_w, gate_b, up_w, up_b, down_w, down_b;
};

class recurrent_gemma_trainable final : public trainable_model {
 public:
  recurrent_gemma_config c;
  io::config cfg;
  ag::var embed, final_norm, lm_head;
  std::vector<layer> layers;
  std::vector<parameter> params;

  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return c.vocab; }
  std::vector<parameter>& parameters() override { return params; }
  const io::config& config() const override { return cfg; }

  result<ag::var> forward(const tensor& ids, models::compute_form form) override {
    if (ids.dim() != 2)
      return make_error(status_code::invalid_argument, "recurrent_gemma: ids must be [B, T], got {}", shape_to_string(ids.shape()));
    const int64_t B = ids.size(0), T = ids.size(1);
    std::vector<int64_t> pos(static_cast<size_t>(B * T));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) pos[b * T + t] = t;
    const tensor segment_pos = tensor::from_vector(pos, {B, T}, dtype::i64);
    const auto scan_form = form == models::compute_form::recurrent ? ops::linear_scan_form::recurrent : ops::linear_scan_form::scan;

    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, embed));
    LRNN_ASSIGN_OR_RETURN(h, ag::scale(h, static_cast<double>(bf16_round(static_cast<float>(std::sqrt(static_cast<double>(c.D)))))));
    for (const layer& L : layers) {
      LRNN_ASSIGN_OR_RETURN(ag::var x, ag::rms_norm(h, L.temporal_norm, c.eps, 1.0));
      ag::var mixed;
      if (L.recurrent) {
        LRNN_ASSIGN_OR_RETURN(mixed, recurrent_block(L, x, segment_pos, scan_form));
      } else {
        LRNN_ASSIGN_OR_RETURN(mixed, attention_block(L, x, segment_pos));
      }
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, mixed));
      LRNN_ASSIGN_OR_RETURN(ag::var y, ag::rms_norm(h, L.channel_norm, c.eps, 1.0));
      LRNN_ASSIGN_OR_RETURN(ag::var g, ag::linear(y, L.gate_w, L.gate_b));
      LRNN_ASSIGN_OR_RETURN(g, ag::activation(g, c.act));
      LRNN_ASSIGN_OR_RETURN(ag::var u, ag::linear(y, L.up_w, L.up_b));
      LRNN_ASSIGN_OR_RETURN(ag::var gu, ag::mul(g, u));
      LRNN_ASSIGN_OR_RETURN(ag::var mo, ag::linear(gu, L.down_w, L.down_b));
      LRNN_ASSIGN_OR_RETURN(h, ag::add(h, mo));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var n, ag::rms_norm(h, final_norm, c.eps, 1.0));
    LRNN_ASSIGN_OR_RETURN(ag::var logits, ag::linear(n, lm_head));
    return ag::softcap(logits, c.soft_cap);
  }

 private:
  std::string type_ = "recurrent_gemma";

  result<ag::var> recurrent_block(const layer& L, const ag::var& x, const tensor& segment_pos, ops::linear_scan_form form) const {
    LRNN_ASSIGN_OR_RETURN(ag::var y, ag::linear(x, L.linear_y_w, L.linear_y_b));
    LRNN_ASSIGN_OR_RETURN(y, ag::activation(y, c.act));
    LRNN_ASSIGN_OR_RETURN(ag::var xb, ag::linear(x, L.linear_x_w, L.linear_x_b));
    // torch's depthwise weight [C, 1, W] -> the op's [W, C].
    LRNN_ASSIGN_OR_RETURN(ag::var cw2, ag::reshape(L.conv_w, {c.lru, c.conv_width}));
    LRNN_ASSIGN_OR_RETURN(ag::var cw, ag::transpose(cw2, 0, 1));
    LRNN_ASSIGN_OR_RETURN(ag::var conv, ag::conv1d(ops::conv1d_spec{}, xb, cw, L.conv_b));
    ag::linear_scan_vars in;
    in.x = conv;
    LRNN_ASSIGN_OR_RETURN(in.gate_x, arch::block_diag_linear(conv, L.input_gate_w, L.input_gate_b));
    LRNN_ASSIGN_OR_RETURN(in.gate_a, arch::block_diag_linear(conv, L.recurrent_gate_w, L.recurrent_gate_b));
    in.a_param = L.recurrent_param;
    in.segment_pos = segment_pos;
    ops::linear_scan_spec spec;
    spec.gate = ops::scan_gate::rg_lru;
    spec.c = 8.0;
    LRNN_ASSIGN_OR_RETURN(ag::var s, ag::linear_scan(spec, in, form));
    LRNN_ASSIGN_OR_RETURN(ag::var sy, ag::mul(s, y));
    return ag::linear(sy, L.linear_out_w, L.linear_out_b);
  }

  result<ag::var> attention_block(const layer& L, const ag::var& x, const tensor& segment_pos) const {
    const int64_t B = x.size(0), T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(ag::var q, ag::linear(x, L.q_w, L.q_b));
    LRNN_ASSIGN_OR_RETURN(ag::var k, ag::linear(x, L.k_w, L.k_b));
    LRNN_ASSIGN_OR_RETURN(ag::var v, ag::linear(x, L.v_w, L.v_b));
    LRNN_ASSIGN_OR_RETURN(q, ag::reshape(q, {B, T, c.heads, c.head_dim}));
    LRNN_ASSIGN_OR_RETURN(k, ag::reshape(k, {B, T, c.kv_heads, c.head_dim}));
    LRNN_ASSIGN_OR_RETURN(v, ag::reshape(v, {B, T, c.kv_heads, c.head_dim}));
    ops::local_attn_spec spec;
    spec.window = c.window - 1;  // transformers: i - j < attention_window_size
    spec.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    spec.rope = ops::rope_kind::half;
    spec.rotary_fraction = c.rotary_fraction;
    spec.max_wavelength = c.rope_theta;
    LRNN_ASSIGN_OR_RETURN(ag::var o, ag::local_attn(spec, q, k, v, ops::local_attn_form::parallel, segment_pos));
    LRNN_ASSIGN_OR_RETURN(o, ag::reshape(o, {B, T, c.heads * c.head_dim}));
    return ag::linear(o, L.o_w, L.o_b);
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

result<std::unique_ptr<trainable_model>> build(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(recurrent_gemma_config c, models::read_recurrent_gemma_config(config));
  auto m = std::make_unique<recurrent_gemma_trainable>();
  m->c = c;
  m->cfg = config;
  arch::param_builder pb(src, m->params);
  const int64_t D = c.D, H = c.heads, C = c.lru, Wc = c.conv_width, bw = C / H, F = c.F;
  const double std_default = std::sqrt(c.w_init_variance_scale / static_cast<double>(Wc));  // transformers' `std` (Linear, Embedding, Conv1d)
  const double std_in = std::sqrt(1.0 / static_cast<double>(D));
  const std::string dims = fmt::format("hidden_size={}", D);
  const std::string lw = fmt::format("hidden_size={}, lru_width={}", D, C);
  const std::string aw = fmt::format("hidden_size={}, num_attention_heads={}, num_key_value_heads={}, head_dim={}", D, H, c.kv_heads,
                                     c.head_dim);
  const std::string fw = fmt::format("hidden_size={}, intermediate_size={} (// 2 = {})", D, c.inter_full, F);
  LRNN_ASSIGN_OR_RETURN(m->embed, pb.get("model.embed_tokens.weight", {c.vocab, D}, param_init::normal(std_default),
                                         fmt::format("vocab_size={}, {}", c.vocab, dims)));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::string tb = p + "temporal_block.";
    layer L;
    L.recurrent = c.block_types[static_cast<size_t>(l) % c.block_types.size()] == "recurrent";
    LRNN_ASSIGN_OR_RETURN(L.temporal_norm, pb.get(p + "temporal_pre_norm.weight", {D}, param_init::zeros(), dims));
    LRNN_ASSIGN_OR_RETURN(L.channel_norm, pb.get(p + "channel_pre_norm.weight", {D}, param_init::zeros(), dims));
    if (L.recurrent) {
      const double std_out = std::sqrt(c.final_w_init_variance_scale / static_cast<double>(C));
      LRNN_ASSIGN_OR_RETURN(L.linear_y_w, pb.get(tb + "linear_y.weight", {C, D}, param_init::normal(std_in), lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_y_b, pb.get(tb + "linear_y.bias", {C}, param_init::zeros(), lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_x_w, pb.get(tb + "linear_x.weight", {C, D}, param_init::normal(std_in), lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_x_b, pb.get(tb + "linear_x.bias", {C}, param_init::zeros(), lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_out_w, pb.get(tb + "linear_out.weight", {D, C}, param_init::normal(std_out), lw));
      LRNN_ASSIGN_OR_RETURN(L.linear_out_b, pb.get(tb + "linear_out.bias", {D}, param_init::zeros(), lw));
      const std::string cw = fmt::format("lru_width={}, conv1d_width={}", C, Wc);
      LRNN_ASSIGN_OR_RETURN(L.conv_w, pb.get(tb + "conv_1d.weight", {C, 1, Wc}, param_init::normal(std_default), cw));
      LRNN_ASSIGN_OR_RETURN(L.conv_b, pb.get(tb + "conv_1d.bias", {C}, param_init::zeros(), cw));
      const std::string gw = fmt::format("num_attention_heads={}, lru_width={} (block width {})", H, C, bw);
      const std::string r = tb + "rg_lru.";
      const double std_gate = std::sqrt(c.w_init_variance_scale / static_cast<double>(bw));
      LRNN_ASSIGN_OR_RETURN(L.input_gate_w, pb.get(r + "input_gate_weight", {H, bw, bw}, param_init::normal(std_gate), gw));
      LRNN_ASSIGN_OR_RETURN(L.input_gate_b, pb.get(r + "input_gate_bias", {H, bw}, param_init::zeros(), gw));
      LRNN_ASSIGN_OR_RETURN(L.recurrent_gate_w, pb.get(r + "recurrent_gate_weight", {H, bw, bw}, param_init::normal(std_gate), gw));
      LRNN_ASSIGN_OR_RETURN(L.recurrent_gate_b, pb.get(r + "recurrent_gate_bias", {H, bw}, param_init::zeros(), gw));
      // transformers: u ~ U(0.9^2, 0.999^2), Lambda = log(u^(-1/2) - 1).
      LRNN_ASSIGN_OR_RETURN(L.recurrent_param, pb.get(r + "recurrent_param", {C}, seeded(r + "recurrent_param", [](std::mt19937_64& g) {
                                                         std::uniform_real_distribution<double> u(0.81 + 1e-8, 0.998001 + 1e-8);
                                                         return std::log(std::exp(-0.5 * std::log(u(g))) - 1.0);
                                                       }),
                                                       lw));
    } else {
      const int64_t Hd = c.head_dim, KV = c.kv_heads;
      const double std_o = std::sqrt(c.final_w_init_variance_scale / static_cast<double>(D));
      LRNN_ASSIGN_OR_RETURN(L.q_w, pb.get(tb + "q_proj.weight", {H * Hd, D}, param_init::normal(std_in), aw));
      LRNN_ASSIGN_OR_RETURN(L.k_w, pb.get(tb + "k_proj.weight", {KV * Hd, D}, param_init::normal(std_in), aw));
      LRNN_ASSIGN_OR_RETURN(L.v_w, pb.get(tb + "v_proj.weight", {KV * Hd, D}, param_init::normal(std_in), aw));
      if (c.attn_bias) {
        LRNN_ASSIGN_OR_RETURN(L.q_b, pb.get(tb + "q_proj.bias", {H * Hd}, param_init::zeros(), "attention_bias=true, " + aw));
        LRNN_ASSIGN_OR_RETURN(L.k_b, pb.get(tb + "k_proj.bias", {KV * Hd}, param_init::zeros(), "attention_bias=true, " + aw));
        LRNN_ASSIGN_OR_RETURN(L.v_b, pb.get(tb + "v_proj.bias", {KV * Hd}, param_init::zeros(), "attention_bias=true, " + aw));
      }
      LRNN_ASSIGN_OR_RETURN(L.o_w, pb.get(tb + "o_proj.weight", {D, H * Hd}, param_init::normal(std_o), aw));
      LRNN_ASSIGN_OR_RETURN(L.o_b, pb.get(tb + "o_proj.bias", {D}, param_init::zeros(), aw));
    }
    const std::string mb = p + "mlp_block.";
    LRNN_ASSIGN_OR_RETURN(L.gate_w, pb.get(mb + "gate_proj.weight", {F, D}, param_init::normal(std_default), fw));
    LRNN_ASSIGN_OR_RETURN(L.gate_b, pb.get(mb + "gate_proj.bias", {F}, param_init::zeros(), fw));
    LRNN_ASSIGN_OR_RETURN(L.up_w, pb.get(mb + "up_proj.weight", {F, D}, param_init::normal(std_default), fw));
    LRNN_ASSIGN_OR_RETURN(L.up_b, pb.get(mb + "up_proj.bias", {F}, param_init::zeros(), fw));
    LRNN_ASSIGN_OR_RETURN(L.down_w, pb.get(mb + "down_proj.weight", {D, F}, param_init::normal(std_default), fw));
    LRNN_ASSIGN_OR_RETURN(L.down_b, pb.get(mb + "down_proj.bias", {D}, param_init::zeros(), fw));
    m->layers.push_back(std::move(L));
  }
  LRNN_ASSIGN_OR_RETURN(m->final_norm, pb.get("model.final_norm.weight", {D}, param_init::zeros(), dims));
  if (c.tie_word_embeddings) {
    m->lm_head = m->embed;
  } else {
    LRNN_ASSIGN_OR_RETURN(m->lm_head, pb.get("lm_head.weight", {c.vocab, D}, param_init::normal(std_default),
                                             fmt::format("vocab_size={}, {}", c.vocab, dims)));
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}

}  // namespace

LRNN_REGISTER_TRAINABLE(recurrent_gemma, "recurrent_gemma", build)

}  // namespace lrnn::train
