// The tokenizer interface: text (bytes, normally UTF-8) to token ids and back, special
// tokens, loading by file type or from a model directory, and a streaming decoder that
// never splits a UTF-8 character across its outputs. Implementations: tokenizer.json
// BPE (hf_tokenizer.h), SentencePiece .model (sentencepiece_tokenizer.h), RWKV world
// vocabulary (rwkv_tokenizer.h).
#pragma once

#include "lrnn/status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lrnn::tok {

using token_id = std::int32_t;

enum class tokenizer_kind {
  bpe_json,       // Hugging Face tokenizer.json with a BPE model
  sentencepiece,  // SentencePiece .model through libsentencepiece
  rwkv_world,     // RWKV world vocabulary, greedy longest match
};

const char* tokenizer_kind_name(tokenizer_kind k);

struct encode_options {
  // Match special tokens written in the text ("<|endoftext|>") as their ids. When false they
  // are encoded as ordinary text; non-special added tokens are matched either way.
  bool parse_special = true;
  // Add the tokens the tokenizer's post-processing adds around a sequence (BOS for
  // Llama-style and SentencePiece models). Off by default, unlike HF's Python API.
  bool add_special = false;
};

struct decode_options {
  bool skip_special = false;  // drop special tokens (BOS, EOS, pad, ...) from the text
};

// Well-known special tokens, where the tokenizer defines them.
struct special_ids {
  std::optional<token_id> bos, eos, pad, unk;
};

class tokenizer {
 public:
  virtual ~tokenizer() = default;

  virtual tokenizer_kind kind() const = 0;
  // One line for logs and `lrnn tokenize`: "tokenizer.json BPE (byte-level), 50277 tokens".
  virtual std::string describe() const = 0;
  // One past the largest id the tokenizer can produce or decode.
  virtual std::size_t vocab_size() const = 0;

  // Any bytes are accepted; invalid UTF-8 is handled per tokenizer (see each header).
  // Thread-safe.
  virtual result<std::vector<token_id>> encode(std::string_view text, const encode_options& opt = {}) const = 0;
  // The text of `ids`. Byte-level and RWKV tokenizers return the exact bytes (which are
  // valid UTF-8 whenever the ids came from valid UTF-8); SentencePiece returns what
  // libsentencepiece does. An id outside the vocabulary is an invalid_argument error.
  virtual result<std::string> decode(std::span<const token_id> ids, const decode_options& opt = {}) const = 0;

  // The vocabulary entry as the tokenizer stores it ("Ġthe", "▁the", raw bytes for RWKV).
  virtual std::optional<std::string> id_to_token(token_id id) const = 0;
  virtual std::optional<token_id> token_to_id(std::string_view token) const = 0;
  virtual bool is_special(token_id id) const = 0;
  const special_ids& specials() const { return specials_; }
  // Replaces the well-known special ids (from a model's tokenizer_config.json).
  void set_specials(const special_ids& s) { specials_ = s; }

 protected:
  special_ids specials_;
};

// Loads by file name: *.json -> tokenizer.json, *.model -> SentencePiece, *.txt -> RWKV
// world vocabulary; a directory is searched as load_tokenizer_for_model_dir does.
result<std::unique_ptr<tokenizer>> load_tokenizer(const std::string& path);

// The tokenizer of a model directory: `explicit_path` when given (file or directory),
// else tokenizer.json, else tokenizer.model, else rwkv_vocab_v20230424.txt / vocab.txt
// in `dir`. When tokenizer.json uses a component lrnn does not support and
// tokenizer.model exists, the SentencePiece model is used instead.
result<std::unique_ptr<tokenizer>> load_tokenizer_for_model_dir(const std::string& dir,
                                                                const std::optional<std::string>& explicit_path = std::nullopt);

// Streaming detokenizer for generation: feed ids one at a time, get back text that is
// always valid UTF-8 and never ends inside a character. Concatenating every put() and the
// final flush() gives utf8::to_valid_lossy(decode(all ids)).
class stream_decoder {
 public:
  explicit stream_decoder(const tokenizer& tok, decode_options opt = {}) : tok_(&tok), opt_(opt) {}

  // New complete text after `id` (possibly empty).
  result<std::string> put(token_id id);
  // Text still held back (an incomplete character at the end becomes U+FFFD); resets.
  std::string flush();

 private:
  const tokenizer* tok_;
  decode_options opt_;
  std::vector<token_id> window_;  // ids whose text is (partly) emitted
  std::string window_text_;       // decode(window_)
  std::size_t emitted_ = 0;       // bytes of window_text_ already returned
  std::size_t replacement_holds_ = 0;

  status shrink_window();
};

}  // namespace lrnn::tok
