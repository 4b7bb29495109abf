// Hugging Face tokenizer.json with a BPE model: byte-level BPE (GPT-2, GPT-NeoX, Llama-3,
// Qwen2 and most fla models) and SentencePiece-style BPE with byte fallback (Llama-2,
// Mistral). Added and special tokens are matched before normalization and BPE, as HF does.
// Invalid UTF-8 input: with a byte-level vocabulary each invalid byte is a character
// outside \s, \p{L}, \p{N} and is encoded as its byte token, so decode(encode(x)) == x for
// any bytes; other vocabularies follow their byte fallback / unknown-token rules.
#pragma once

#include "tokenizer/tokenizer.h"

namespace lrnn::tok {

// `source` names the file in errors ("model/tokenizer.json").
result<std::unique_ptr<tokenizer>> load_hf_tokenizer_from_json(std::string_view json_text, const std::string& source);
result<std::unique_ptr<tokenizer>> load_hf_tokenizer(const std::string& path);

}  // namespace lrnn::tok
