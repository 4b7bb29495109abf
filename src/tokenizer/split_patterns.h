// Hand-coded matchers for the pre-tokenizer regular expressions found in tokenizer.json
// files, equal to the regex engines' leftmost-first semantics on every input (with
// \p{L}, \p{N} from the generated Unicode tables and \s = White_Space):
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//           (also the ByteLevel pre-tokenizer's built-in pattern)
//   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2:  llama3 with \p{N} instead of \p{N}{1,3}
// An invalid UTF-8 byte counts as one character outside \s, \p{L} and \p{N}.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace lrnn::tok {

enum class split_pattern { gpt2, llama3, qwen2 };

// The pattern a tokenizer.json regex string denotes, if it is one of the supported ones.
std::optional<split_pattern> split_pattern_from_regex(std::string_view regex);
const char* split_pattern_regex(split_pattern p);

// Appends the pieces of `s` — the matches and, between them, any unmatched text — in order
// (HF's SplitDelimiterBehavior::Isolated). Empty input gives no pieces.
void split_isolated(std::string_view s, split_pattern p, std::vector<std::string_view>& out);

// The Digits pre-tokenizer: runs of \p{N} (or each \p{N} character when `individual`)
// become their own pieces.
void split_digits(std::string_view s, bool individual, std::vector<std::string_view>& out);

}  // namespace lrnn::tok
