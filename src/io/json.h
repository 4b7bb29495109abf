// JSON from untrusted files: nlohmann-json without exceptions escaping, a nesting-depth
// guard (deep nesting would recurse in nlohmann's destructor and printers), and typed
// field access whose errors name the file, the field and the expectation.
#pragma once

#include "lrnn/status.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace lrnn::io {

using json = nlohmann::json;

inline constexpr int max_json_depth = 64;

// Parses `text`; `source` names it in errors ("config.json"). Rejects nesting deeper than
// max_json_depth, invalid UTF-8 and trailing garbage.
result<json> parse_json(std::string_view text, const std::string& source);
result<json> read_json_file(const std::string& path);

// "string", "integer", "number", "boolean", "array", "object", "null".
const char* json_type_name(const json& j);

}  // namespace lrnn::io
