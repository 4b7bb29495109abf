// Models: the interface every architecture implements, the per-sequence recurrent state, and
// the registry (model_type -> builder). An architecture is one file that registers itself with
// LRNN_REGISTER_MODEL; load_model() reads config.json + safetensors and picks the builder.
#pragma once

#include "io/checkpoint.h"
#include "io/config.h"
#include "lrnn/tensor.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lrnn::models {

// How the token mixers compute a forward over several tokens. automatic: chunk for prefill,
// parallel for very short inputs, recurrent for single tokens.
enum class compute_form { automatic, chunk, recurrent, parallel };
const char* compute_form_name(compute_form f);
result<compute_form> compute_form_from_name(const std::string& name);

// Everything a batch of sequences carries between calls: recurrent states, conv caches,
// local-attention ring buffers, token-shift inputs. Named tensors whose first dimension is
// the batch; fp32. Its size does not grow with the number of tokens processed (local
// attention caches are bounded by their window).
struct model_state {
  std::map<std::string, tensor> tensors;
  int64_t batch = 0;  // models that need positions keep them as a tensor [B] in `tensors`
  uint64_t nbytes() const;
  // Row b of every tensor as a batch-1 state / the reverse (for batched prompts of different length).
  result<model_state> select(int64_t b) const;
  static result<model_state> stack(const std::vector<model_state>& states);
};

// Writes / reads a state as a safetensors file with metadata (model_type, batch,
// and a fingerprint of the model config so a state is not loaded into another model).
status save_state(const std::string& path, const model_state& st, const std::string& model_type,
                  const std::string& config_fingerprint);
result<model_state> load_state(const std::string& path, const std::string& model_type,
                               const std::string& config_fingerprint);

class model {
 public:
  virtual ~model() = default;
  virtual const std::string& model_type() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Zero state for `batch` sequences.
  virtual result<model_state> initial_state(int64_t batch) const = 0;
  // ids int64 [B, T] -> logits f32 [B, T, vocab]; advances `state` by T tokens.
  virtual result<tensor> forward(const tensor& ids, model_state& state, compute_form form) = 0;
  // Bytes of weights read per decoded token (the memory-bandwidth floor of decoding).
  virtual uint64_t weight_bytes() const = 0;
  // A string that changes whenever the config does (guards load_state).
  const std::string& config_fingerprint() const { return fingerprint_; }
  void set_config_fingerprint(std::string f) { fingerprint_ = std::move(f); }

 private:
  std::string fingerprint_;
};

struct load_context {
  std::string dir;
  const io::config& config;
  const io::checkpoint& weights;
};

using model_builder = std::function<result<std::unique_ptr<model>>(const load_context&)>;

void register_model(const std::string& model_type, model_builder builder);
std::vector<std::string> registered_model_types();  // sorted

// Opens dir/config.json and the weights, and builds the model its model_type names.
result<std::unique_ptr<model>> load_model(const std::string& dir);

}  // namespace lrnn::models

#define LRNN_REGISTER_MODEL(ident, model_type, builder)                                        \
  namespace {                                                                                  \
  [[maybe_unused]] const bool lrnn_model_registered_##ident =                                  \
      (::lrnn::models::register_model(model_type, builder), true);                             \
  }
