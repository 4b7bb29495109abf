// SentencePiece .model files (Gemma, RecurrentGemma, Llama-2 and many others) through
// libsentencepiece, behind the tokenizer interface. Encoding and decoding are the
// library's; invalid UTF-8 input is handled as the library does (replaced, never a crash).
// Control and unknown pieces count as special tokens.
#pragma once

#include "tokenizer/tokenizer.h"

namespace lrnn::tok {

result<std::unique_ptr<tokenizer>> load_sentencepiece_tokenizer_from_bytes(std::string_view model_proto,
                                                                           const std::string& source);
result<std::unique_ptr<tokenizer>> load_sentencepiece_tokenizer(const std::string& path);

}  // namespace lrnn::tok
