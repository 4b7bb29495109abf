// libFuzzer target for config.json access: parses arbitrary text with config::from_json_text,
// then calls every typed getter on the common keys and on the config's own keys (one level
// into nested objects), and read_common_model_config. Errors must be parse_errors naming the source.
#include "io/config.h"

#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void check_result(const lrnn::result<T>& r) {
  if (r.ok()) return;
  check(r.error().code() == lrnn::status_code::parse_error);
  check(r.error().message().rfind("fuzz.json: ", 0) == 0);
}

void exercise(const lrnn::io::config& c, const std::string& key) {
  check_result(c.get_int(key));
  check_result(c.get_int(key, 7));
  check_result(c.get_int(key, 7, 1, 1024));
  check_result(c.get_int_in_range(key, 0, 1 << 20));
  check_result(c.get_float(key));
  check_result(c.get_float(key, 0.5));
  check_result(c.get_bool(key));
  check_result(c.get_bool(key, true));
  check_result(c.get_string(key));
  check_result(c.get_string(key, "d"));
  check_result(c.get_int_list(key));
  check_result(c.get_int_list(key, {1}));
  check_result(c.get_string_list(key));
  check_result(c.get_string_list(key, {"d"}));
  check_result(c.get_optional_int(key));
  check_result(c.get_optional_float(key));
  check_result(c.get_optional_bool(key));
  check_result(c.get_optional_string(key));
  const lrnn::status s = c.require_positive(key);
  check(s.ok() || s.code() == lrnn::status_code::parse_error);
  auto g = c.get_int(key);
  if (g.ok()) check(c.has(key));
  auto d = c.get_int(key, 7);
  check(d.ok() || c.has(key));
}

constexpr const char* known_keys[] = {
    "model_type",    "vocab_size",  "hidden_size", "num_hidden_layers",   "d_model",   "n_layer",     "num_blocks",
    "embedding_dim", "torch_dtype", "dtype",       "tie_word_embeddings", "value_dim", "block_types", "rope_parameters",
    "architectures", "norm_eps",    "head_dim",    "intermediate_size"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lrnn;
  auto c = io::config::from_json_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  check_result(c);
  if (!c.ok()) return 0;
  for (const char* key : known_keys) exercise(*c, key);
  int n = 0;
  for (const std::string& key : c->keys()) {
    if (++n > 32) break;
    exercise(*c, key);
    auto sub = c->get_object(key);
    check_result(sub);
    if (!sub.ok()) continue;
    int m = 0;
    for (const std::string& inner : sub->keys()) {
      if (++m > 16) break;
      exercise(*sub, inner);
    }
  }
  auto common = io::read_common_model_config(*c);
  check_result(common);
  if (common.ok()) {
    check(!common->model_type.empty());
    check(common->vocab_size >= 1 && common->hidden_size >= 1 && common->num_hidden_layers >= 1);
  }
  return 0;
}
