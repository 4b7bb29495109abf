// Typed access to a Hugging Face / fla style config.json: getters whose errors name the
// file, the field and the expectation, and the fields every model reads (model_type, sizes,
// dtype, tied embeddings) under the aliases that real configs use.
#pragma once

#include "io/json.h"
#include "lrnn/dtype.h"
#include "lrnn/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lrnn::io {

// A JSON object plus the name of its source ("config.json"). Every content error is a
// parse_error: "config.json: field 'hidden_size' must be an integer, got string \"abc\"".
// Absent and null fields are the same to the getters: a required getter reports both, a
// getter with a default returns the default for both; a present field of the wrong type is
// always an error.
class config {
 public:
  config() = default;

  static result<config> read(const std::string& path);
  static result<config> from_json_text(std::string_view text, const std::string& source);
  // `j` must be an object.
  static result<config> from_json(json j, const std::string& source);

  const std::string& source() const { return source_; }
  const json& raw() const { return j_; }

  // Present and not null.
  bool has(const std::string& key) const;
  // Every key of the object, null-valued ones included, in sorted order.
  std::vector<std::string> keys() const;

  result<int64_t> get_int(const std::string& key) const;
  result<int64_t> get_int(const std::string& key, int64_t default_value) const;
  // With a range check [min_value, max_value] on a present value (the default is not checked).
  result<int64_t> get_int(const std::string& key, int64_t default_value, int64_t min_value, int64_t max_value) const;
  // Required, with a range check.
  result<int64_t> get_int_in_range(const std::string& key, int64_t min_value, int64_t max_value) const;
  // Accepts integers too.
  result<double> get_float(const std::string& key) const;
  result<double> get_float(const std::string& key, double default_value) const;
  result<bool> get_bool(const std::string& key) const;
  result<bool> get_bool(const std::string& key, bool default_value) const;
  result<std::string> get_string(const std::string& key) const;
  result<std::string> get_string(const std::string& key, const std::string& default_value) const;
  result<std::vector<int64_t>> get_int_list(const std::string& key) const;
  result<std::vector<int64_t>> get_int_list(const std::string& key, const std::vector<int64_t>& default_value) const;
  result<std::vector<std::string>> get_string_list(const std::string& key) const;
  result<std::vector<std::string>> get_string_list(const std::string& key,
                                                   const std::vector<std::string>& default_value) const;

  // nullopt when absent or null ("intermediate_size": null means "derive it").
  result<std::optional<int64_t>> get_optional_int(const std::string& key) const;
  result<std::optional<double>> get_optional_float(const std::string& key) const;
  result<std::optional<bool>> get_optional_bool(const std::string& key) const;
  result<std::optional<std::string>> get_optional_string(const std::string& key) const;

  // A nested object as a config; its errors name the path ("field 'rope_parameters.rope_theta'").
  result<config> get_object(const std::string& key) const;

  // Required integer field >= 1.
  status require_positive(const std::string& key) const;

 private:
  config(json j, std::string source, std::string prefix)
      : j_(std::move(j)), source_(std::move(source)), prefix_(std::move(prefix)) {}
  // The value, or nullptr when absent or null.
  const json* find(const std::string& key) const;
  status missing(const std::string& key) const;
  status wrong_type(const std::string& key, const char* expected, const json& got) const;
  result<int64_t> to_int(const std::string& key, const json& v) const;
  result<double> to_float(const std::string& key, const json& v) const;
  status check_range(const std::string& key, int64_t v, int64_t min_value, int64_t max_value) const;

  json j_ = json::object();
  std::string source_;
  std::string prefix_;  // "rope_parameters." inside get_object results
};

// The fields every model builder needs, whatever the config's dialect.
struct common_model_config {
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  // From "dtype" (transformers >= 4.56) or "torch_dtype": the dtype the weights were saved
  // in. The name is kept as written; weight_dtype is nullopt when absent or not a dtype
  // lrnn has (the safetensors header is what decides how weights load).
  std::string weight_dtype_name;
  std::optional<dtype> weight_dtype;
  // Absent in the config: nullopt (the default differs between architectures).
  std::optional<bool> tie_word_embeddings;
};

// Reads model_type (required string) and, under their aliases, vocab_size (vocab_size,
// n_vocab), hidden_size (hidden_size, d_model, n_embd, embedding_dim), num_hidden_layers
// (num_hidden_layers, n_layer, num_layers, n_layers, num_blocks); each must lie in
// [1, max_config_*] so that products of sizes cannot overflow downstream. Where
// several aliases are present they must agree, except for model_type "xlstm", whose model
// is built from embedding_dim and num_blocks (its saved num_hidden_layers is a stale default).
result<common_model_config> read_common_model_config(const config& c);
inline constexpr int64_t max_config_vocab_size = (int64_t{1} << 31) - 1;
inline constexpr int64_t max_config_hidden_size = int64_t{1} << 20;
inline constexpr int64_t max_config_layers = int64_t{1} << 16;

// "float32" / "torch.float32" -> f32, also float64, float16, bfloat16 and the short names.
std::optional<dtype> dtype_from_torch_name(std::string_view name);

}  // namespace lrnn::io
