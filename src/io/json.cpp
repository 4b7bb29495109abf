// Guarded JSON parsing (see json.h).
#include "io/json.h"

#include <fstream>
#include <sstream>
#include <unordered_set>

namespace lrnn::io {

// Depth of [ and { outside strings; stops early once past the limit.
static int nesting_depth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) return max_depth;
    } else if (c == ']' || c == '}') --depth;
  }
  return max_depth;
}

result<json> parse_json(std::string_view text, const std::string& source) {
  if (nesting_depth(text, max_json_depth) > max_json_depth)
    return make_error(status_code::parse_error, "{}: JSON nested deeper than {} levels", source, max_json_depth);
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again with exceptions only to obtain nlohmann's position and reason.
    try {
      json again = json::parse(text.begin(), text.end());
      (void)again;
    } catch (const json::exception& e) {
      return make_error(status_code::parse_error, "{}: invalid JSON: {}", source, e.what());
    }
    return make_error(status_code::parse_error, "{}: invalid JSON", source);
  }
  return j;
}

result<json> read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(status_code::not_found, "{}: cannot open file", path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return make_error(status_code::io_error, "{}: read failed", path);
  return parse_json(ss.str(), path);
}

namespace {

// SAX handler that stops at the first key seen twice in the same object.
class duplicate_key_finder {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  std::optional<duplicate_key> found;

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(number_integer_t) { return true; }
  bool number_unsigned(number_unsigned_t) { return true; }
  bool number_float(number_float_t, const string_t&) { return true; }
  bool string(string_t&) { return true; }
  bool binary(binary_t&) { return true; }
  bool start_object(std::size_t) {
    levels_.push_back({true, {}, {}});
    return true;
  }
  bool key(string_t& k) {
    level& l = levels_.back();
    if (!l.keys.insert(k).second) {
      duplicate_key d{k, {}};
      for (size_t i = 0; i + 1 < levels_.size(); ++i) d.path.push_back(levels_[i].is_object ? levels_[i].last_key : "[]");
      found = std::move(d);
      return false;
    }
    l.last_key = k;
    return true;
  }
  bool end_object() {
    levels_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    levels_.push_back({false, {}, {}});
    return true;
  }
  bool end_array() {
    levels_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  struct level {
    bool is_object;
    std::unordered_set<std::string> keys;
    std::string last_key;
  };
  std::vector<level> levels_;
};

}  // namespace

std::optional<duplicate_key> find_duplicate_key(std::string_view text) {
  if (nesting_depth(text, max_json_depth) > max_json_depth) return std::nullopt;
  duplicate_key_finder finder;
  json::sax_parse(text.begin(), text.end(), &finder);
  return std::move(finder.found);
}

const char* json_type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::boolean: return "boolean";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::null: return "null";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "invalid";
  }
  return "unknown";
}

}  // namespace lrnn::io
