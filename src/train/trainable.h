// Trainable models: the architectures of src/models written over autograd vars, built either
// from a checkpoint (fine-tuning, resuming) or from a config with fresh random weights, and
// saved in the same config.json + safetensors format that models::load_model() reads — so
// `lrnn generate` runs a model `lrnn train` wrote.
//
// One file per architecture under src/train/models/, one registration line each
// (LRNN_REGISTER_TRAINABLE). The forward over a whole sequence from a zero state must equal
// the inference model's logits (tests check this on the real-format fixtures).
#pragma once

#include "io/config.h"
#include "lrnn/autograd.h"
#include "models/model.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lrnn::train {

// How a fresh parameter is initialised (as the reference implementation does it).
struct param_init {
  enum class kind { normal, uniform, constant, custom } k = kind::normal;
  double a = 0.02;  // normal: std; uniform: low; constant: value
  double b = 0.0;   // uniform: high
  // custom: fills a contiguous f32 tensor of the parameter's shape (e.g. RWKV's layer-dependent decays).
  std::function<void(tensor&)> fill;
  static param_init normal(double std) { return {kind::normal, std, 0.0, {}}; }
  static param_init uniform(double lo, double hi) { return {kind::uniform, lo, hi, {}}; }
  static param_init constant(double v) { return {kind::constant, v, 0.0, {}}; }
  static param_init zeros() { return constant(0.0); }
  static param_init ones() { return constant(1.0); }
  static param_init custom(std::function<void(tensor&)> f) { return {kind::custom, 0.0, 0.0, std::move(f)}; }
};

// Where an architecture's builder gets each parameter: read from a checkpoint (shape checked,
// errors name the tensor and the expectation) or freshly initialised with a seeded RNG.
class param_source {
 public:
  virtual ~param_source() = default;
  // `why` explains the expected shape ("hidden_size=128"); `init` is used when initialising.
  virtual result<tensor> get(const std::string& name, const shape_t& shape, const param_init& init, const std::string& why) = 0;
};

struct parameter {
  std::string name;  // checkpoint name, e.g. "model.layers.0.attn.q_proj.weight"
  ag::var v;         // requires_grad leaf, f32 (f64 in gradient checks)
};

class trainable_model {
 public:
  virtual ~trainable_model() = default;
  virtual const std::string& model_type() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Every trainable parameter, in a fixed order, named as in the checkpoint.
  virtual std::vector<parameter>& parameters() = 0;
  // ids int64 [B, T] -> logits [B, T, vocab], from a zero state. form: chunk (default for
  // training), recurrent or parallel where the mixer has them (all must agree).
  virtual result<ag::var> forward(const tensor& ids, models::compute_form form) = 0;
  // The config.json that models::load_model() reads back for this model.
  virtual const io::config& config() const = 0;
};

// Builds `config`'s model_type from `src`. The builder asks `src` for every parameter.
using trainable_builder = std::function<result<std::unique_ptr<trainable_model>>(const io::config& config, param_source& src)>;
void register_trainable(const std::string& model_type, trainable_builder builder);
std::vector<std::string> trainable_model_types();  // sorted

// Fresh weights from the config (seeded; the same seed gives the same weights). dt: f32 or f64.
result<std::unique_ptr<trainable_model>> create_trainable(const io::config& config, uint64_t seed, dtype dt = dtype::f32);
// From a model directory (config.json + safetensors), as models::load_model reads it.
result<std::unique_ptr<trainable_model>> load_trainable(const std::string& dir, dtype dt = dtype::f32);
// Writes dir/config.json and dir/model.safetensors (f32) atomically (temp file, fsync, rename).
status save_trainable(trainable_model& m, const std::string& dir);

}  // namespace lrnn::train

#define LRNN_REGISTER_TRAINABLE(ident, model_type, builder)                                   \
  namespace {                                                                                 \
  [[maybe_unused]] const bool lrnn_trainable_registered_##ident =                             \
      (::lrnn::train::register_trainable(model_type, builder), true);                         \
  }
