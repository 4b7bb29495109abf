// UTF-8 helpers for the tokenizers: decoding one code point with a defined result for
// invalid bytes, encoding, validity checks, lossy repair (U+FFFD for invalid sequences,
// as WHATWG / Rust's from_utf8_lossy do) and the length of a trailing incomplete sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lrnn::tok::utf8 {

inline constexpr char32_t invalid = 0xFFFFFFFF;  // marks an invalid byte in decode()

struct decoded {
  char32_t cp;     // `invalid` when s[i] does not start a valid sequence
  std::size_t len;  // bytes consumed: 1..4 (1 for an invalid byte)
};

// Decodes the code point at s[i] (i < s.size()). Overlong forms, surrogates, values past
// U+10FFFF and truncated sequences yield {invalid, 1}.
inline decoded decode(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1};
  const std::size_t n = s.size() - i;
  auto cont = [&](std::size_t k) { return k < n && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
  auto byte = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (cont(1)) return {(static_cast<char32_t>(b0 & 0x1F) << 6) | byte(1), 2};
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (cont(1) && cont(2)) {
      const char32_t cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (byte(1) << 6) | byte(2);
      if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) return {cp, 3};
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (cont(1) && cont(2) && cont(3)) {
      const char32_t cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (byte(1) << 12) | (byte(2) << 6) | byte(3);
      if (cp >= 0x10000 && cp <= 0x10FFFF) return {cp, 4};
    }
  }
  return {invalid, 1};
}

// Appends the UTF-8 encoding of cp (a valid scalar value).
inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid(std::string_view s);

// Replaces every maximal invalid subpart with U+FFFD (Unicode's "best practice", the
// behaviour of Rust's String::from_utf8_lossy and of Python's errors="replace").
std::string to_valid_lossy(std::string_view s);

// Bytes at the end of s that form the beginning of a valid sequence still missing
// continuation bytes (0..3); such bytes may be completed by what follows.
std::size_t incomplete_tail(std::string_view s);

}  // namespace lrnn::tok::utf8
