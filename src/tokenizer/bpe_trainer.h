// Training a byte-level BPE tokenizer on a corpus and writing it as a Hugging Face
// tokenizer.json that tokenizer/hf_tokenizer reads: GPT-2 style pre-tokenisation (the
// ByteLevel pre-tokenizer with its built-in regex, no prefix space), the GPT-2 byte-to-unicode
// alphabet as the 256 base tokens (id = byte value), then one token per learned merge.
// With no merges the result is the plain byte-level tokenizer (256 tokens, id = byte).
#pragma once

#include "lrnn/status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lrnn::tok {

struct bpe_training_result {
  // Merges in order as pairs of token strings in the byte-to-unicode alphabet.
  std::vector<std::pair<std::string, std::string>> merges;
  std::string tokenizer_json;  // the whole file
  std::size_t vocab_size() const { return 256 + merges.size(); }
};

// The GPT-2 byte-to-unicode mapping: byte b -> the UTF-8 text of its printable stand-in.
const std::string& byte_to_unicode(uint8_t b);

// Learns merges until the vocabulary reaches `vocab_size` (>= 256) or no pair occurs at least
// `min_frequency` times. Deterministic: ties go to the lexicographically smallest pair.
// Errors: vocab_size < 256 or > 1<<24 (invalid_argument).
result<bpe_training_result> train_byte_level_bpe(std::string_view corpus, std::size_t vocab_size, std::size_t min_frequency = 2);

// tokenizer.json text for the given merges (empty: the byte-level tokenizer).
std::string byte_level_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges);

}  // namespace lrnn::tok
