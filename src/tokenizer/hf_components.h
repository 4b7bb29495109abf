// The components of a tokenizer.json around its BPE model: normalizers, pre-tokenizers,
// post-processor and decoders, parsed into flat step lists and applied with HF tokenizers'
// semantics. Supported: normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace (string pattern),
// Strip, Sequence; pre-tokenizers ByteLevel, Split (GPT-2 / Llama-3 / Qwen2 patterns,
// Isolated), Digits, Metaspace, Sequence; post-processors TemplateProcessing, Roberta,
// Bert, ByteLevel, Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace, Sequence. Anything else is an `unsupported` error naming the component.
#pragma once

#include "io/json.h"
#include "lrnn/status.h"
#include "tokenizer/split_patterns.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace lrnn::tok::hf {

struct normalizer_step {
  enum class type { unicode, prepend, replace, strip };
  type t = type::unicode;
  normal_form form = normal_form::nfc;
  std::string a, b;  // prepend: a; replace: a -> b
  bool left = false, right = false;
};

enum class prepend_scheme { always, first, never };

struct pre_tokenizer_step {
  enum class type { split, digits, byte_level, metaspace };
  type t = type::split;
  split_pattern pattern = split_pattern::gpt2;
  bool flag = false;              // digits: individual; byte_level: use_regex; metaspace: split
  bool add_prefix_space = false;  // byte_level
  std::string replacement;        // metaspace ("▁")
  prepend_scheme scheme = prepend_scheme::always;
};

struct decoder_step {
  enum class type { byte_level, replace, byte_fallback, fuse, strip, metaspace };
  type t = type::byte_level;
  std::string a, b;        // replace: a -> b; strip: a = content; metaspace: a = replacement
  std::size_t start = 0, stop = 0;
  bool prepend = true;     // metaspace: the first token's replacement characters are dropped
};

struct post_processor {
  std::vector<token_id> prefix, suffix;  // added around a single sequence
};

// `where` names the file in errors. Null or missing JSON gives an empty list.
result<std::vector<normalizer_step>> parse_normalizer(const io::json* j, const std::string& where);
result<std::vector<pre_tokenizer_step>> parse_pre_tokenizer(const io::json* j, const std::string& where);
result<std::vector<decoder_step>> parse_decoder(const io::json* j, const std::string& where);
result<post_processor> parse_post_processor(const io::json* j, const std::string& where);

std::string apply_normalizers(std::string_view s, const std::vector<normalizer_step>& steps);

// Splits one segment into words. `at_text_start`: the segment begins at offset 0 of the
// input (Metaspace's "first" scheme). Pieces point into `s` or into `storage`. Returns
// whether the pieces are raw bytes for a byte-level vocabulary (ByteLevel ran last).
bool pre_tokenize(std::string_view s, bool at_text_start, const std::vector<pre_tokenizer_step>& steps,
                  std::vector<std::string_view>& pieces, std::deque<std::string>& storage);

// Runs the decoder chain over token strings and joins the result.
std::string apply_decoders(std::vector<std::string> tokens, const std::vector<decoder_step>& steps);

}  // namespace lrnn::tok::hf
