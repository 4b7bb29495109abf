// UTF-8 validity, lossy repair and incomplete-tail detection (see utf8.h).
#include "tokenizer/utf8.h"

namespace lrnn::tok::utf8 {

namespace {

// Length a sequence led by b0 needs (0 if b0 cannot lead), and the allowed range of its
// second byte (Unicode Table 3-7, well-formed byte sequences).
struct lead_info {
  int need;
  unsigned char lo, hi;
};

lead_info lead(unsigned char b0) {
  if (b0 < 0x80) return {1, 0, 0};
  if (b0 >= 0xC2 && b0 <= 0xDF) return {2, 0x80, 0xBF};
  if (b0 == 0xE0) return {3, 0xA0, 0xBF};
  if (b0 == 0xED) return {3, 0x80, 0x9F};
  if (b0 >= 0xE1 && b0 <= 0xEF) return {3, 0x80, 0xBF};
  if (b0 == 0xF0) return {4, 0x90, 0xBF};
  if (b0 >= 0xF1 && b0 <= 0xF3) return {4, 0x80, 0xBF};
  if (b0 == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes from s[i] that form a valid (possibly incomplete) prefix of a sequence,
// and whether that sequence is complete.
struct prefix_info {
  std::size_t len;
  bool complete;
};

prefix_info valid_prefix(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const lead_info l = lead(b0);
  if (l.need == 0) return {0, false};
  if (l.need == 1) return {1, true};
  std::size_t k = 1;
  for (; k < static_cast<std::size_t>(l.need) && i + k < s.size(); ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char lo = k == 1 ? l.lo : 0x80, hi = k == 1 ? l.hi : 0xBF;
    if (b < lo || b > hi) return {k, false};
  }
  return {k, k == static_cast<std::size_t>(l.need)};
}

}  // namespace

bool is_valid(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const prefix_info p = valid_prefix(s, i);
    if (!p.complete) return false;
    i += p.len;
  }
  return true;
}

std::string to_valid_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const prefix_info p = valid_prefix(s, i);
    if (p.complete) {
      out.append(s.substr(i, p.len));
      i += p.len;
    } else {
      out.append("\xEF\xBF\xBD");
      i += p.len == 0 ? 1 : p.len;
    }
  }
  return out;
}

std::size_t incomplete_tail(std::string_view s) {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const std::size_t i = n - back;
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const prefix_info p = valid_prefix(s, i);
    return (!p.complete && p.len == back) ? back : 0;
  }
  return 0;
}

}  // namespace lrnn::tok::utf8
