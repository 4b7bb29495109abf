// JSON from untrusted files: nlohmann-json without exceptions escaping, a nesting-depth
// guard (deep nesting would recurse in nlohmann's destructor and printers), and typed
// field access whose errors name the file, the field and the expectation.
#pragma once

#include "lrnn/status.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lrnn::io {

using json = nlohmann::json;

inline constexpr int max_json_depth = 64;

// Parses `text`; `source` names it in errors ("config.json"). Rejects nesting deeper than
// max_json_depth, invalid UTF-8 and trailing garbage.
result<json> parse_json(std::string_view text, const std::string& source);
result<json> read_json_file(const std::string& path);

// nlohmann keeps only the last of repeated keys; formats where a repeat means a corrupt or
// ambiguous file (safetensors headers, checkpoint indexes) look for one first. `path` holds
// the keys of the enclosing objects ("[]" for an array element), outermost first.
struct duplicate_key {
  std::string key;
  std::vector<std::string> path;
};
// The first key repeated within one object of `text`, which parse_json has accepted.
std::optional<duplicate_key> find_duplicate_key(std::string_view text);

// "string", "integer", "number", "boolean", "array", "object", "null".
const char* json_type_name(const json& j);

}  // namespace lrnn::io
