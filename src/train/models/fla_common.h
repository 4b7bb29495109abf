// Trainable fla-format causal LMs (GLA, RetNet, ...): embeddings -> N x (h += mixer(norm(h));
// h += mlp(norm(h))) -> norm -> head, over autograd vars, with fla's initialisation
// (fla/models/*/modeling_*.py _init_weights: Linear / Conv1d / Embedding weights
// normal(0, initializer_range), biases zero, norm weights one). A mixer asks for its parameters
// through add_param() so they are listed in checkpoint order.
#pragma once

#include "ops/dense/autograd.h"
#include "train/trainable.h"

#include <array>
#include <memory>

namespace lrnn::train::fla {

// Gets a parameter from `src` and appends it (requires_grad) to `params`.
result<ag::var> add_param(param_source& src, std::vector<parameter>& params, const std::string& name, const shape_t& shape,
                          const param_init& init, const std::string& why);

class mixer {
 public:
  virtual ~mixer() = default;
  // x [B, T, D] (normed) -> [B, T, D].
  virtual result<ag::var> forward(const ag::var& x, models::compute_form form) const = 0;
};

// Builds layer `prefix` ("model.layers.3.attn.")'s mixer, adding its parameters.
using mixer_builder = std::function<result<std::unique_ptr<mixer>>(param_source& src, std::vector<parameter>& params,
                                                                   const std::string& prefix)>;

class causal_lm final : public trainable_model {
 public:
  static result<std::unique_ptr<trainable_model>> build(const io::config& config, param_source& src, const std::string& type,
                                                        const mixer_builder& build_mixer);
  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab_; }
  std::vector<parameter>& parameters() override { return params_; }
  result<ag::var> forward(const tensor& ids, models::compute_form form) override;
  const io::config& config() const override { return config_; }

 private:
  struct layer {
    ag::var attn_norm, mlp_norm, gate, up, down;
    std::unique_ptr<mixer> mix;
  };
  std::string type_;
  io::config config_;
  int64_t vocab_ = 0;
  double eps_ = 1e-6;
  ag::var embed_, final_norm_, lm_head_;
  std::vector<layer> layers_;
  std::vector<parameter> params_;
};

// fla's ShortConvolution (causal depthwise conv1d with SiLU), torch layout weight [C, 1, W], bias [C].
struct short_conv {
  ag::var weight, bias;
  int64_t channels = 0, width = 0;
  result<ag::var> forward(const ag::var& x) const;
};

// fla's q/k/v projections (q_proj/k_proj [key_dim, D], v_proj [value_dim, D]) and, when enabled
// by add_convs(), their short convolutions (q_conv1d/k_conv1d/v_conv1d).
struct qkv_projection {
  ag::var q, k, v;
  short_conv q_conv, k_conv, v_conv;
  bool conv = false;

  // Adds `prefix`q_proj/k_proj/v_proj.weight, normal(std), explained by `kwhy` / `vwhy`, then, when
  // `gate` is given, the output gate `prefix`g_proj.weight [value_dim, D] into it.
  status add_projections(param_source& src, std::vector<parameter>& params, const std::string& prefix, int64_t D,
                         int64_t key_dim, int64_t value_dim, const param_init& normal, const std::string& kwhy,
                         const std::string& vwhy, ag::var* gate = nullptr);
  // Adds `prefix`{q,k,v}_conv1d.weight [C, 1, conv_size] (normal) and, with conv_bias, .bias (zeros).
  status add_convs(param_source& src, std::vector<parameter>& params, const std::string& prefix, int64_t key_dim,
                   int64_t value_dim, int64_t conv_size, bool conv_bias, const param_init& normal);
  // x [B, T, D] -> q, k [B, T, key_dim], v [B, T, value_dim]: the projections, then the convs if added.
  result<std::array<ag::var, 3>> forward(const ag::var& x) const;
};

// q, k [B, T, H * Kh] -> [B, T, H, Kh], v [B, T, H * Vh] -> [B, T, H, Vh], in place.
status split_heads(std::array<ag::var, 3>& qkv, int64_t H, int64_t Kh, int64_t Vh);

// Adds the output stage's parameters: `prefix` + norm_name [Vh] (ones) when `with_norm`, then
// `prefix`o_proj.weight [D, value_dim] (normal); returns them through norm_w / o_proj.
status add_head_output(param_source& src, std::vector<parameter>& params, const std::string& prefix, const std::string& norm_name,
                       bool with_norm, int64_t Vh, const std::string& norm_why, int64_t D, int64_t value_dim,
                       const param_init& normal, const std::string& o_why, ag::var& norm_w, ag::var& o_proj);

// fla's output stage: o [B, T, heads, V] to [B, T, heads * V], per-head RMSNorm (weight [V] or
// undefined), times silu(x g_proj^T) when g_proj is defined, then o_proj.
result<ag::var> gated_head_output(const ag::var& o, int64_t heads, const ag::var& norm_w, double eps, const ag::var& x,
                                  const ag::var& g_proj, const ag::var& o_proj);

// Builds causal_lm `type` whose layers' mixers are `Mixer`s holding config `c` (member `c`), their
// parameters added by add_params(Mixer&, normal(initializer_range), src, params, prefix) -> status.
template <typename Mixer, typename Config, typename AddParams>
result<std::unique_ptr<trainable_model>> build_lm(const io::config& config, param_source& src, const std::string& type,
                                                  const Config& c, AddParams add_params) {
  LRNN_ASSIGN_OR_RETURN(double std, config.get_float("initializer_range", 0.02));
  return causal_lm::build(config, src, type,
                          [c, std, add_params](param_source& s, std::vector<parameter>& P, const std::string& p) -> result<std::unique_ptr<mixer>> {
    auto m = std::make_unique<Mixer>();
    m->c = c;
    LRNN_TRY(add_params(*m, param_init::normal(std), s, P, p));
    return std::unique_ptr<mixer>(std::move(m));
  });
}

}  // namespace lrnn::train::fla
