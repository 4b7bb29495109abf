// The RWKV "world" tokenizer: a vocabulary file in the rwkv_vocab_v20230424.txt line
// format (`<id> <Python str or bytes literal> <byte length>`) and the greedy longest-match
// trie encoder over bytes. Any byte string is encodable when all 256 single bytes are in
// the vocabulary; decoding concatenates the tokens' bytes. Id 0 is end-of-text.
#pragma once

#include "tokenizer/tokenizer.h"

namespace lrnn::tok {

// `source` names the vocabulary in errors.
result<std::unique_ptr<tokenizer>> load_rwkv_tokenizer_from_text(std::string_view text, const std::string& source);
result<std::unique_ptr<tokenizer>> load_rwkv_tokenizer(const std::string& path);

// Parses one Python string literal as the RWKV vocabulary writes them: '...', "...",
// b'...', b"..." with escapes \\ \' \" \n \t \r \0 \a \b \f \v \xNN \uNNNN \UNNNNNNNN
// (str literals are encoded as UTF-8; \u is not an escape in bytes literals).
result<std::string> parse_python_literal(std::string_view lit);

}  // namespace lrnn::tok
