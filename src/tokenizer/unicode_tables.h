// Unicode data for the tokenizers: raw generated tables (unicode_tables.cpp, made by
// tools/make_unicode_tables.py) and the lookups built on them — character classes for the
// pre-tokenizer patterns and White_Space, plus the data of Unicode normalization.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lrnn::tok {

// General-category class of a code point, as the pre-tokenizer patterns need it.
enum class char_class : std::uint8_t {
  other = 0,
  letter = 1,       // \p{L}
  number = 2,       // \p{N}
  mark = 3,         // \p{M}
  connector = 4,    // \p{Pc}
};

char_class class_of(char32_t cp);
// The White_Space property (what \s matches in the Unicode regex engines, and Rust's
// char::is_whitespace).
bool is_white_space(char32_t cp);
// Canonical combining class (0 for starters).
std::uint8_t combining_class(char32_t cp);

namespace unicode_data {

struct class_range {
  std::uint32_t first, last, value;
};
struct decomposition {
  std::uint32_t cp, offset, length;  // into decomposition_data
};
struct composition {
  std::uint32_t first, second, composite;
};

extern const char* const unicode_version;
extern const class_range class_ranges[];
extern const std::size_t class_range_count;
extern const class_range ccc_ranges[];
extern const std::size_t ccc_range_count;
extern const std::uint32_t decomposition_data[];
extern const decomposition canonical_decompositions[];
extern const std::size_t canonical_decomposition_count;
// Only where the compatibility decomposition differs from the canonical one.
extern const decomposition compat_decompositions[];
extern const std::size_t compat_decomposition_count;
extern const composition compositions[];  // sorted by (first, second)
extern const std::size_t composition_count;
// Per form, the code points (beyond ASCII) before which text may not be cut and normalized
// piecewise: non-starters, characters the form changes, characters that compose with a
// preceding one.
extern const class_range nfc_unsafe[], nfd_unsafe[], nfkc_unsafe[], nfkd_unsafe[];
extern const std::size_t nfc_unsafe_count, nfd_unsafe_count, nfkc_unsafe_count, nfkd_unsafe_count;

}  // namespace unicode_data
}  // namespace lrnn::tok
