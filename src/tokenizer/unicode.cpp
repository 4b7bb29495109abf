// Unicode lookups over the generated tables, and normalization forms NFC/NFD/NFKC/NFKD
// (UAX #15: full decomposition, canonical ordering, canonical composition; Hangul by the
// algorithm of section 3.12 of the Unicode standard).
#include "tokenizer/unicode.h"

#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

#include <algorithm>
#include <vector>

namespace lrnn::tok {

namespace ud = unicode_data;

namespace {

std::uint32_t range_lookup(const ud::class_range* table, std::size_t n, char32_t cp) {
  const ud::class_range* end = table + n;
  const ud::class_range* it =
      std::upper_bound(table, end, static_cast<std::uint32_t>(cp),
                       [](std::uint32_t v, const ud::class_range& r) { return v < r.first; });
  if (it == table) return 0;
  --it;
  return cp <= it->last ? it->value : 0;
}

const ud::decomposition* find_decomposition(const ud::decomposition* table, std::size_t n, char32_t cp) {
  const ud::decomposition* end = table + n;
  const ud::decomposition* it = std::lower_bound(
      table, end, static_cast<std::uint32_t>(cp), [](const ud::decomposition& d, std::uint32_t v) { return d.cp < v; });
  return (it != end && it->cp == cp) ? it : nullptr;
}

constexpr char32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
constexpr char32_t l_count = 19, v_count = 21, t_count = 28, n_count = v_count * t_count, s_count = l_count * n_count;

// Invalid input bytes travel through normalization as this marker | byte: a starter that
// never composes, written back unchanged.
constexpr char32_t raw_byte_flag = 0x80000000u;

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= l_base && a < l_base + l_count && b >= v_base && b < v_base + v_count)
    return s_base + ((a - l_base) * v_count + (b - v_base)) * t_count;
  if (a >= s_base && a < s_base + s_count && (a - s_base) % t_count == 0 && b > t_base && b < t_base + t_count)
    return a + (b - t_base);
  const ud::composition* end = ud::compositions + ud::composition_count;
  const ud::composition* it = std::lower_bound(ud::compositions, end, std::pair<std::uint32_t, std::uint32_t>(a, b),
                                               [](const ud::composition& c, const std::pair<std::uint32_t, std::uint32_t>& v) {
                                                 return c.first < v.first || (c.first == v.first && c.second < v.second);
                                               });
  return (it != end && it->first == a && it->second == b) ? it->composite : 0;
}

std::uint8_t ccc_of(char32_t cp) { return (cp & raw_byte_flag) ? 0 : combining_class(cp); }

void decompose_into(std::string_view s, bool compat, std::vector<char32_t>& out) {
  for (std::size_t i = 0; i < s.size();) {
    const utf8::decoded d = utf8::decode(s, i);
    if (d.cp == utf8::invalid) {
      out.push_back(raw_byte_flag | static_cast<unsigned char>(s[i]));
    } else if (d.cp >= s_base && d.cp < s_base + s_count) {
      const char32_t si = d.cp - s_base;
      out.push_back(l_base + si / n_count);
      out.push_back(v_base + (si % n_count) / t_count);
      if (si % t_count != 0) out.push_back(t_base + si % t_count);
    } else {
      const ud::decomposition* dec = nullptr;
      if (d.cp >= 0xA0) {
        if (compat) dec = find_decomposition(ud::compat_decompositions, ud::compat_decomposition_count, d.cp);
        if (!dec) dec = find_decomposition(ud::canonical_decompositions, ud::canonical_decomposition_count, d.cp);
      }
      if (dec) {
        out.insert(out.end(), ud::decomposition_data + dec->offset, ud::decomposition_data + dec->offset + dec->length);
      } else {
        out.push_back(d.cp);
      }
    }
    i += d.len;
  }
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (std::size_t i = 0; i < out.size();) {
    if (ccc_of(out[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < out.size() && ccc_of(out[j]) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(out.begin() + i, out.begin() + j,
                       [](char32_t a, char32_t b) { return ccc_of(a) < ccc_of(b); });
    i = j;
  }
}

void compose(std::vector<char32_t>& v) {
  if (v.empty()) return;
  std::size_t starter = 0, out = 1;
  bool have_starter = ccc_of(v[0]) == 0 && !(v[0] & raw_byte_flag);
  int last_class = ccc_of(v[0]) == 0 ? 0 : 256;
  for (std::size_t i = 1; i < v.size(); ++i) {
    const char32_t ch = v[i];
    const int cls = ccc_of(ch);
    const char32_t composite =
        (have_starter && !(ch & raw_byte_flag) && (last_class < cls || last_class == 0)) ? compose_pair(v[starter], ch) : 0;
    if (composite != 0) {
      v[starter] = composite;
      continue;
    }
    if (cls == 0) {
      starter = out;
      have_starter = !(ch & raw_byte_flag);
    }
    last_class = cls;
    v[out++] = ch;
  }
  v.resize(out);
}

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace

char_class class_of(char32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return char_class::letter;
    if (cp >= '0' && cp <= '9') return char_class::number;
    return char_class::other;
  }
  return static_cast<char_class>(range_lookup(ud::class_ranges, ud::class_range_count, cp));
}

bool is_white_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  return static_cast<std::uint8_t>(range_lookup(ud::ccc_ranges, ud::ccc_range_count, cp));
}

std::string normalize(std::string_view s, normal_form form) {
  if (all_ascii(s)) return std::string(s);
  bool compat = false, composed = false;
  const ud::class_range* unsafe = ud::nfc_unsafe;
  std::size_t unsafe_count = ud::nfc_unsafe_count;
  switch (form) {
    case normal_form::nfc: composed = true; break;
    case normal_form::nfd: unsafe = ud::nfd_unsafe, unsafe_count = ud::nfd_unsafe_count; break;
    case normal_form::nfkc: compat = composed = true, unsafe = ud::nfkc_unsafe, unsafe_count = ud::nfkc_unsafe_count; break;
    case normal_form::nfkd: compat = true, unsafe = ud::nfkd_unsafe, unsafe_count = ud::nfkd_unsafe_count; break;
  }
  // The text is cut before every "safe" character (a starter the form keeps and that
  // cannot compose with what precedes it); each piece is normalized on its own, and a
  // piece of one safe character is copied.
  auto is_unsafe = [&](char32_t cp) { return cp != utf8::invalid && cp >= 0x80 && range_lookup(unsafe, unsafe_count, cp) != 0; };
  std::string out;
  out.reserve(s.size() + 8);
  std::vector<char32_t> v;
  for (std::size_t i = 0; i < s.size();) {
    // A run of ASCII is copied up to its last character, which may start a piece.
    std::size_t run = i;
    while (run < s.size() && static_cast<unsigned char>(s[run]) < 0x80) ++run;
    if (run - i > 1) {
      out.append(s.substr(i, run - i - 1));
      i = run - 1;
    }
    const std::size_t start = i;
    const utf8::decoded first = utf8::decode(s, i);
    i += first.len;
    bool changed = is_unsafe(first.cp);
    while (i < s.size()) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (b < 0x80) break;
      const utf8::decoded d = utf8::decode(s, i);
      if (!is_unsafe(d.cp)) break;
      changed = true;
      i += d.len;
    }
    if (!changed) {
      out.append(s.substr(start, i - start));
      continue;
    }
    v.clear();
    decompose_into(s.substr(start, i - start), compat, v);
    if (composed) compose(v);
    for (char32_t cp : v) {
      if (cp & raw_byte_flag) out.push_back(static_cast<char>(cp & 0xFF));
      else utf8::append(out, cp);
    }
  }
  return out;
}

}  // namespace lrnn::tok
