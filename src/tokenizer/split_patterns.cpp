// The pre-tokenizer pattern matchers (see split_patterns.h). Each match_* function returns
// the end of the match the regex engine would find at position i (alternatives tried in
// order, each quantifier greedy with backtracking), or i when no alternative matches.
#include "tokenizer/split_patterns.h"

#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

#include <array>

namespace lrnn::tok {

namespace {

// What the patterns ask of a character. `kind`: letter, number, space (White_Space) or
// other (everything else, invalid bytes included).
enum class kind : unsigned char { other, letter, number, space };

struct ch {
  char32_t cp;
  std::size_t len;
  kind k;
};

constexpr std::array<kind, 128> make_ascii_kinds() {
  std::array<kind, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) t[c] = kind::letter;
    else if (c >= '0' && c <= '9') t[c] = kind::number;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) t[c] = kind::space;
    else t[c] = kind::other;
  }
  return t;
}
constexpr std::array<kind, 128> ascii_kinds = make_ascii_kinds();

inline ch char_at(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {b, 1, ascii_kinds[b]};
  const utf8::decoded d = utf8::decode(s, i);
  if (d.cp == utf8::invalid) return {d.cp, 1, kind::other};
  if (is_white_space(d.cp)) return {d.cp, d.len, kind::space};
  switch (class_of(d.cp)) {
    case char_class::letter: return {d.cp, d.len, kind::letter};
    case char_class::number: return {d.cp, d.len, kind::number};
    case char_class::other:
    case char_class::mark:
    case char_class::connector: return {d.cp, d.len, kind::other};
  }
  return {d.cp, d.len, kind::other};
}

// End of the run of characters of kind k starting at p.
inline std::size_t run_end(std::string_view s, std::size_t p, kind k) {
  while (p < s.size()) {
    const ch c = char_at(s, p);
    if (c.k != k) break;
    p += c.len;
  }
  return p;
}

// \s+(?!\S)|\s+ at i, where s[i] is whitespace.
inline std::size_t match_trailing_space(std::string_view s, std::size_t i) {
  std::size_t p = i, last = i;
  while (p < s.size()) {
    const ch c = char_at(s, p);
    if (c.k != kind::space) break;
    last = p;
    p += c.len;
  }
  if (p == s.size()) return p;    // whitespace up to the end: the lookahead holds
  return last > i ? last : p;     // leave the last space to the next word, if that leaves any
}

std::size_t match_gpt2(std::string_view s, std::size_t i) {
  const std::size_t n = s.size();
  const ch c = char_at(s, i);
  if (c.cp == '\'' && i + 1 < n) {
    const char a = s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < n) {
      const char b = s[i + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
  }
  std::size_t p = i;
  ch d = c;
  if (c.cp == ' ' && i + 1 < n) {
    p = i + 1;
    d = char_at(s, p);
  }
  if (d.k != kind::space) return run_end(s, p + d.len, d.k);  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
  if (c.k == kind::space) return match_trailing_space(s, i);
  return i;
}

inline bool is_ci(char32_t cp, char lower) { return cp == static_cast<char32_t>(lower) || cp == static_cast<char32_t>(lower - 32); }

std::size_t match_llama3(std::string_view s, std::size_t i, std::size_t max_digits) {
  const std::size_t n = s.size();
  const ch c = char_at(s, i);
  if (c.cp == '\'' && i + 1 < n) {  // (?i:'s|'t|'re|'ve|'m|'ll|'d), with simple case folding
    const ch a = char_at(s, i + 1);
    if (is_ci(a.cp, 's') || a.cp == 0x17F || is_ci(a.cp, 't') || is_ci(a.cp, 'm') || is_ci(a.cp, 'd'))
      return i + 1 + a.len;
    if (i + 2 < n && (is_ci(a.cp, 'r') || is_ci(a.cp, 'v') || is_ci(a.cp, 'l'))) {
      const ch b = char_at(s, i + 2);
      if ((is_ci(a.cp, 'l') && is_ci(b.cp, 'l')) || (!is_ci(a.cp, 'l') && is_ci(b.cp, 'e'))) return i + 2 + b.len;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.k != kind::letter && c.k != kind::number && c.cp != '\r' && c.cp != '\n' && i + c.len < n) {
    const ch d = char_at(s, i + c.len);
    if (d.k == kind::letter) return run_end(s, i + c.len + d.len, kind::letter);
  }
  if (c.k == kind::letter) return run_end(s, i + c.len, kind::letter);
  if (c.k == kind::number) {  // \p{N}{1,max_digits}
    std::size_t p = i + c.len;
    for (std::size_t k = 1; k < max_digits && p < n; ++k) {
      const ch d = char_at(s, p);
      if (d.k != kind::number) break;
      p += d.len;
    }
    return p;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  std::size_t p = i;
  ch d = c;
  if (c.cp == ' ' && i + 1 < n) {
    p = i + 1;
    d = char_at(s, p);
  }
  if (d.k == kind::other) {
    std::size_t e = run_end(s, p + d.len, kind::other);
    while (e < n && (s[e] == '\r' || s[e] == '\n')) ++e;
    return e;
  }
  if (c.k != kind::space) return i;
  // \s*[\r\n]+ : up to the last CR or LF of the whitespace run
  std::size_t q = i, after_newline = 0;
  while (q < n) {
    const ch e = char_at(s, q);
    if (e.k != kind::space) break;
    q += e.len;
    if (e.cp == '\r' || e.cp == '\n') after_newline = q;
  }
  if (after_newline != 0) return after_newline;
  return match_trailing_space(s, i);
}

constexpr std::string_view gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view llama3_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view qwen2_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

std::optional<split_pattern> split_pattern_from_regex(std::string_view regex) {
  if (regex == gpt2_regex) return split_pattern::gpt2;
  if (regex == llama3_regex) return split_pattern::llama3;
  if (regex == qwen2_regex) return split_pattern::qwen2;
  return std::nullopt;
}

const char* split_pattern_regex(split_pattern p) {
  switch (p) {
    case split_pattern::gpt2: return gpt2_regex.data();
    case split_pattern::llama3: return llama3_regex.data();
    case split_pattern::qwen2: return qwen2_regex.data();
  }
  return "";
}

void split_isolated(std::string_view s, split_pattern p, std::vector<std::string_view>& out) {
  std::size_t gap = 0;  // start of unmatched text
  for (std::size_t i = 0; i < s.size();) {
    std::size_t e = i;
    switch (p) {
      case split_pattern::gpt2: e = match_gpt2(s, i); break;
      case split_pattern::llama3: e = match_llama3(s, i, 3); break;
      case split_pattern::qwen2: e = match_llama3(s, i, 1); break;
    }
    if (e == i) {
      i += char_at(s, i).len;
      continue;
    }
    if (gap < i) out.push_back(s.substr(gap, i - gap));
    out.push_back(s.substr(i, e - i));
    i = gap = e;
  }
  if (gap < s.size()) out.push_back(s.substr(gap));
}

void split_digits(std::string_view s, bool individual, std::vector<std::string_view>& out) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size();) {
    const ch c = char_at(s, i);
    if (c.k != kind::number) {
      i += c.len;
      continue;
    }
    const std::size_t e = individual ? i + c.len : run_end(s, i + c.len, kind::number);
    if (start < i) out.push_back(s.substr(start, i - start));
    out.push_back(s.substr(i, e - i));
    i = start = e;
  }
  if (start < s.size()) out.push_back(s.substr(start));
}

}  // namespace lrnn::tok
