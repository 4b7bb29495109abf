// config.json typed access and the common model fields (see config.h). Every content error
// is a parse_error that starts with the source name and quotes the offending value.
#include "io/config.h"

#include <limits>
#include <utility>

namespace lrnn::io {

namespace {

constexpr size_t max_value_chars = 60;

// A value for an error message, cut short if long ("\"abc\"", "[1,2,3]", "null").
std::string show(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > max_value_chars) s = s.substr(0, max_value_chars) + "...";
  return s;
}

}  // namespace

result<config> config::read(const std::string& path) {
  LRNN_ASSIGN_OR_RETURN(json j, read_json_file(path));
  return from_json(std::move(j), path);
}

result<config> config::from_json_text(std::string_view text, const std::string& source) {
  LRNN_ASSIGN_OR_RETURN(json j, parse_json(text, source));
  return from_json(std::move(j), source);
}

result<config> config::from_json(json j, const std::string& source) {
  if (!j.is_object())
    return make_error(status_code::parse_error, "{}: expected a JSON object at the top level, got {}", source,
                      json_type_name(j));
  return config(std::move(j), source, "");
}

const json* config::find(const std::string& key) const {
  auto it = j_.find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool config::has(const std::string& key) const { return find(key) != nullptr; }

std::vector<std::string> config::keys() const {
  std::vector<std::string> out;
  out.reserve(j_.size());
  for (auto it = j_.begin(); it != j_.end(); ++it) out.push_back(it.key());
  return out;
}

status config::missing(const std::string& key) const {
  auto it = j_.find(key);
  if (it != j_.end())
    return make_error(status_code::parse_error, "{}: required field '{}{}' is null", source_, prefix_, key);
  return make_error(status_code::parse_error, "{}: missing required field '{}{}'", source_, prefix_, key);
}

status config::wrong_type(const std::string& key, const char* expected, const json& got) const {
  return make_error(status_code::parse_error, "{}: field '{}{}' must be {}, got {} {}", source_, prefix_, key, expected,
                    json_type_name(got), show(got));
}

result<int64_t> config::to_int(const std::string& key, const json& v) const {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return make_error(status_code::parse_error, "{}: field '{}{}' is out of the int64 range, got {}", source_,
                        prefix_, key, u);
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return wrong_type(key, "an integer", v);
}

result<double> config::to_float(const std::string& key, const json& v) const {
  if (v.is_number()) return v.get<double>();
  return wrong_type(key, "a number", v);
}

status config::check_range(const std::string& key, int64_t v, int64_t min_value, int64_t max_value) const {
  if (v >= min_value && v <= max_value) return {};
  if (max_value == std::numeric_limits<int64_t>::max())
    return make_error(status_code::parse_error, "{}: field '{}{}' must be >= {}, got {}", source_, prefix_, key,
                      min_value, v);
  return make_error(status_code::parse_error, "{}: field '{}{}' must be in [{}, {}], got {}", source_, prefix_, key,
                    min_value, max_value, v);
}

result<int64_t> config::get_int(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  return to_int(key, *v);
}

result<int64_t> config::get_int(const std::string& key, int64_t default_value) const {
  const json* v = find(key);
  if (!v) return default_value;
  return to_int(key, *v);
}

result<int64_t> config::get_int(const std::string& key, int64_t default_value, int64_t min_value,
                                int64_t max_value) const {
  const json* v = find(key);
  if (!v) return default_value;
  LRNN_ASSIGN_OR_RETURN(int64_t x, to_int(key, *v));
  LRNN_TRY(check_range(key, x, min_value, max_value));
  return x;
}

result<int64_t> config::get_int_in_range(const std::string& key, int64_t min_value, int64_t max_value) const {
  LRNN_ASSIGN_OR_RETURN(int64_t x, get_int(key));
  LRNN_TRY(check_range(key, x, min_value, max_value));
  return x;
}

result<double> config::get_float(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  return to_float(key, *v);
}

result<double> config::get_float(const std::string& key, double default_value) const {
  const json* v = find(key);
  if (!v) return default_value;
  return to_float(key, *v);
}

result<bool> config::get_bool(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  if (!v->is_boolean()) return wrong_type(key, "a boolean", *v);
  return v->get<bool>();
}

result<bool> config::get_bool(const std::string& key, bool default_value) const {
  if (!find(key)) return default_value;
  return get_bool(key);
}

result<std::string> config::get_string(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

result<std::string> config::get_string(const std::string& key, const std::string& default_value) const {
  if (!find(key)) return default_value;
  return get_string(key);
}

result<std::vector<int64_t>> config::get_int_list(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  if (!v->is_array()) return wrong_type(key, "a list of integers", *v);
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!e.is_number_integer())
      return make_error(status_code::parse_error, "{}: field '{}{}' must be a list of integers, got {} {} at index {}",
                        source_, prefix_, key, json_type_name(e), show(e), i);
    LRNN_ASSIGN_OR_RETURN(int64_t x, to_int(fmt::format("{}[{}]", key, i), e));
    out.push_back(x);
  }
  return out;
}

result<std::vector<int64_t>> config::get_int_list(const std::string& key,
                                                  const std::vector<int64_t>& default_value) const {
  if (!find(key)) return default_value;
  return get_int_list(key);
}

result<std::vector<std::string>> config::get_string_list(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  if (!v->is_array()) return wrong_type(key, "a list of strings", *v);
  std::vector<std::string> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!e.is_string())
      return make_error(status_code::parse_error, "{}: field '{}{}' must be a list of strings, got {} {} at index {}",
                        source_, prefix_, key, json_type_name(e), show(e), i);
    out.push_back(e.get<std::string>());
  }
  return out;
}

result<std::vector<std::string>> config::get_string_list(const std::string& key,
                                                         const std::vector<std::string>& default_value) const {
  if (!find(key)) return default_value;
  return get_string_list(key);
}

result<std::optional<int64_t>> config::get_optional_int(const std::string& key) const {
  if (!find(key)) return std::optional<int64_t>();
  LRNN_ASSIGN_OR_RETURN(int64_t x, get_int(key));
  return std::optional<int64_t>(x);
}

result<std::optional<double>> config::get_optional_float(const std::string& key) const {
  if (!find(key)) return std::optional<double>();
  LRNN_ASSIGN_OR_RETURN(double x, get_float(key));
  return std::optional<double>(x);
}

result<std::optional<bool>> config::get_optional_bool(const std::string& key) const {
  if (!find(key)) return std::optional<bool>();
  LRNN_ASSIGN_OR_RETURN(bool x, get_bool(key));
  return std::optional<bool>(x);
}

result<std::optional<std::string>> config::get_optional_string(const std::string& key) const {
  if (!find(key)) return std::optional<std::string>();
  LRNN_ASSIGN_OR_RETURN(std::string x, get_string(key));
  return std::optional<std::string>(std::move(x));
}

result<config> config::get_object(const std::string& key) const {
  const json* v = find(key);
  if (!v) return missing(key);
  if (!v->is_object()) return wrong_type(key, "an object", *v);
  return config(*v, source_, prefix_ + key + ".");
}

status config::require_positive(const std::string& key) const {
  return get_int_in_range(key, 1, std::numeric_limits<int64_t>::max()).get_status();
}

std::optional<dtype> dtype_from_torch_name(std::string_view name) {
  if (name.substr(0, 6) == "torch.") name.remove_prefix(6);
  struct entry {
    const char* name;
    dtype type;
  };
  static constexpr entry table[] = {{"float32", dtype::f32},  {"float", dtype::f32},   {"float64", dtype::f64},
                                    {"double", dtype::f64},   {"float16", dtype::f16}, {"half", dtype::f16},
                                    {"bfloat16", dtype::bf16}};
  for (const entry& e : table)
    if (name == e.name) return e.type;
  return std::nullopt;
}

namespace {

// The first present alias in `names` (each in [1, max_value]); with must_agree, every
// present alias must hold the same value.
result<int64_t> read_aliased(const config& c, std::initializer_list<const char*> names, bool must_agree,
                             int64_t max_value) {
  std::optional<int64_t> found;
  const char* found_name = nullptr;
  for (const char* name : names) {
    if (!c.has(name)) continue;
    LRNN_ASSIGN_OR_RETURN(int64_t v, c.get_int_in_range(name, 1, max_value));
    if (!found) {
      found = v;
      found_name = name;
      if (!must_agree) break;
    } else if (*found != v) {
      return make_error(status_code::parse_error, "{}: fields '{}' ({}) and '{}' ({}) disagree", c.source(), found_name,
                        *found, name, v);
    }
  }
  if (found) return *found;
  std::string others;
  bool first = true;
  for (const char* name : names) {
    if (!first) others += fmt::format("{}'{}'", others.empty() ? "" : ", ", name);
    first = false;
  }
  return make_error(status_code::parse_error, "{}: missing required field '{}' (also looked for {})", c.source(),
                    *names.begin(), others);
}

}  // namespace

result<common_model_config> read_common_model_config(const config& c) {
  common_model_config m;
  LRNN_ASSIGN_OR_RETURN(m.model_type, c.get_string("model_type"));
  if (m.model_type.empty())
    return make_error(status_code::parse_error, "{}: field 'model_type' must not be empty", c.source());
  const bool xlstm = m.model_type == "xlstm";
  LRNN_ASSIGN_OR_RETURN(m.vocab_size, read_aliased(c, {"vocab_size", "n_vocab"}, true, max_config_vocab_size));
  if (xlstm) {
    LRNN_ASSIGN_OR_RETURN(m.hidden_size,
                          read_aliased(c, {"embedding_dim", "hidden_size"}, false, max_config_hidden_size));
    LRNN_ASSIGN_OR_RETURN(m.num_hidden_layers,
                          read_aliased(c, {"num_blocks", "num_hidden_layers"}, false, max_config_layers));
  } else {
    LRNN_ASSIGN_OR_RETURN(m.hidden_size, read_aliased(c, {"hidden_size", "d_model", "n_embd", "embedding_dim"}, true,
                                                      max_config_hidden_size));
    LRNN_ASSIGN_OR_RETURN(m.num_hidden_layers,
                          read_aliased(c, {"num_hidden_layers", "n_layer", "num_layers", "n_layers", "num_blocks"},
                                       true, max_config_layers));
  }
  LRNN_ASSIGN_OR_RETURN(std::optional<std::string> dtype_field, c.get_optional_string("dtype"));
  LRNN_ASSIGN_OR_RETURN(std::optional<std::string> torch_dtype_field, c.get_optional_string("torch_dtype"));
  if (dtype_field && torch_dtype_field && *dtype_field != *torch_dtype_field)
    return make_error(status_code::parse_error, "{}: fields 'dtype' ({}) and 'torch_dtype' ({}) disagree", c.source(),
                      show(json(*dtype_field)), show(json(*torch_dtype_field)));
  if (dtype_field || torch_dtype_field) {
    m.weight_dtype_name = dtype_field ? *dtype_field : *torch_dtype_field;
    m.weight_dtype = dtype_from_torch_name(m.weight_dtype_name);
  }
  LRNN_ASSIGN_OR_RETURN(m.tie_word_embeddings, c.get_optional_bool("tie_word_embeddings"));
  return m;
}

}  // namespace lrnn::io
