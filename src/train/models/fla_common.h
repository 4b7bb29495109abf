// Trainable fla-format causal LMs (GLA, RetNet, ...): embeddings -> N x (h += mixer(norm(h));
// h += mlp(norm(h))) -> norm -> head, over autograd vars, with fla's initialisation
// (fla/models/*/modeling_*.py _init_weights: Linear / Conv1d / Embedding weights
// normal(0, initializer_range), biases zero, norm weights one). A mixer asks for its parameters
// through add_param() so they are listed in checkpoint order.
#pragma once

#include "ops/dense/autograd.h"
#include "train/trainable.h"

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

// fla's output stage: per-head RMSNorm of o [B, T, heads * V] (weight [V] or undefined), times
// silu(x g_proj^T) when g_proj is defined, then o_proj.
result<ag::var> gated_head_output(const ag::var& o, int64_t heads, const ag::var& norm_w, double eps, const ag::var& x,
                                  const ag::var& g_proj, const ag::var& o_proj);

}  // namespace lrnn::train::fla
