// Unicode normalization forms for tokenizer.json normalizers (NFC, NFD, NFKC, NFKD).
// Character classes and White_Space are in unicode_tables.h. Invalid UTF-8 bytes pass
// through unchanged and block composition across them.
#pragma once

#include "tokenizer/unicode_tables.h"

#include <string>
#include <string_view>

namespace lrnn::tok {

enum class normal_form { nfc, nfd, nfkc, nfkd };

std::string normalize(std::string_view s, normal_form form);

}  // namespace lrnn::tok
