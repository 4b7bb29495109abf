// Loading a model's weights by name with the shape the config implies: every error names the
// tensor, its shape, the expected shape and where the expectation comes from, e.g.
// "model.safetensors: tensor 'model.layers.3.attn.q_proj.weight' has shape [64, 128], expected
// [128, 128] (hidden_size=128 in config.json)".
#pragma once

#include "io/checkpoint.h"
#include "lrnn/tensor.h"

#include <set>
#include <string>

namespace lrnn::models {

class weight_loader {
 public:
  weight_loader(const io::checkpoint& ck, std::string config_source)
      : ck_(ck), config_source_(std::move(config_source)) {}

  // The tensor as contiguous f32 (converted from bf16/f16/f64), checked against `expected`.
  // `why` explains the expected shape ("hidden_size=128").
  result<tensor> get(const std::string& name, const shape_t& expected, const std::string& why);
  // Like get(), but an absent tensor gives an undefined tensor.
  result<tensor> get_optional(const std::string& name, const shape_t& expected, const std::string& why);
  bool has(const std::string& name) const { return ck_.contains(name); }
  // Names in the checkpoint that no get() asked for (a sign of a config option not implemented).
  std::vector<std::string> unused() const;
  uint64_t bytes_loaded() const { return bytes_; }

 private:
  const io::checkpoint& ck_;
  std::string config_source_;
  std::set<std::string> used_;
  uint64_t bytes_ = 0;
};

}  // namespace lrnn::models
