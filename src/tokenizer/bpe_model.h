// The BPE model of tokenizer.json: vocabulary, ranked merges, and the encoding of one
// pre-tokenized word with the semantics of HF tokenizers' BPE (merges applied lowest rank
// first, leftmost first among equal ranks; byte fallback, unknown-token fusing,
// ignore_merges). Short words take the lowest-rank pair by a scan; long ones use a heap
// over a linked list of symbols, O(n log n). A bounded cache keeps encoded words.
#pragma once

#include "io/json.h"
#include "lrnn/status.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/tokenizer.h"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lrnn::tok {

// GPT-2's bytes_to_unicode(): the printable character that stands for each byte in
// byte-level vocabularies ("Ġ" for the space byte).
char32_t byte_to_unicode(unsigned char b);
// The inverse; nullopt for characters outside the 256-character alphabet.
std::optional<unsigned char> unicode_to_byte(char32_t cp);
// Maps every byte of `bytes` to its character (UTF-8).
std::string bytes_to_unicode_string(std::string_view bytes);
// The bytes a byte-level token string stands for; nullopt if a character is not in the
// alphabet (then the token is not byte-level, e.g. an added token).
std::optional<std::string> unicode_string_to_bytes(std::string_view token);

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using string_id_map = std::unordered_map<std::string, token_id, string_hash, std::equal_to<>>;

// Encoded words by their text: an open-addressing table over byte and id arenas, cleared
// when full. Not thread-safe; the tokenizer hands it to one encode call at a time.
class word_cache {
 public:
  static std::uint64_t hash(std::string_view word);
  // Appends the cached ids of `word` to `out`; false when absent.
  bool find(std::string_view word, std::uint64_t h, std::vector<token_id>& out) const;
  void insert(std::string_view word, std::uint64_t h, const token_id* ids, std::size_t n);

  static constexpr std::size_t max_word = 255, max_entries = 1 << 16;

 private:
  struct slot {
    std::uint64_t hash = 0;
    std::uint32_t key_off = 0, ids_off = 0;
    std::uint16_t key_len = 0, ids_len = 0;
    bool used = false;
  };
  std::vector<slot> slots_;  // 2 * max_entries, allocated on first insert
  std::string keys_;
  std::vector<token_id> ids_;
  std::size_t count_ = 0;
};

// Scratch buffers of one encode call (kept out of thread_local storage, which costs a TLS
// lookup per access in a shared library).
struct bpe_scratch {
  std::vector<token_id> ids;
  std::vector<std::uint32_t> lens, ranks;
  std::vector<token_id> merged;
  std::string mapped;
  struct symbol {
    token_id id;
    std::int32_t prev, next;
    std::uint32_t len;
  };
  struct candidate {
    std::uint32_t rank;
    std::int32_t pos;
    token_id new_id;
  };
  std::vector<symbol> sym;
  std::vector<candidate> heap;
};

class bpe_model {
 public:
  // Reads model.vocab, model.merges and the options from the "model" object. Ids are
  // bounded so that a hostile file cannot ask for a huge table.
  static result<std::unique_ptr<bpe_model>> from_json(const io::json& model, const std::string& source);

  // Appends the ids of one word. With `byte_level`, `word` is raw bytes standing for their
  // bytes_to_unicode characters; otherwise it is a string in the vocabulary's alphabet.
  void encode_word(std::string_view word, bool byte_level, std::vector<token_id>& out, word_cache* cache,
                   bpe_scratch& scratch) const;

  const std::string& token(token_id id) const { return tokens_[static_cast<std::size_t>(id)]; }
  bool has_id(token_id id) const {
    return id >= 0 && static_cast<std::size_t>(id) < present_.size() && present_[static_cast<std::size_t>(id)];
  }
  std::optional<token_id> find(std::string_view token) const {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? std::nullopt : std::optional<token_id>(it->second);
  }
  std::size_t id_bound() const { return tokens_.size(); }
  std::size_t vocab_count() const { return vocab_.size(); }
  std::size_t merge_count() const { return merges_.size(); }
  std::optional<token_id> unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  void encode_symbols(std::string_view word, bool byte_level, std::vector<token_id>& out, bpe_scratch& scratch) const;
  void initial_symbols(std::string_view word, std::vector<token_id>& ids, std::vector<std::uint32_t>& lens) const;
  void merge_small(bpe_scratch& s, std::vector<token_id>& out) const;
  void merge_heap(bpe_scratch& s, std::vector<token_id>& out) const;
  const std::uint64_t* find_merge(token_id a, token_id b) const {
    return merges_.find((static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b));
  }

  string_id_map vocab_;      // token string -> id
  string_id_map byte_vocab_; // byte-level tokens by the bytes they stand for
  std::vector<std::string> tokens_;
  std::vector<bool> present_;
  flat_map_u64 merges_;  // (left << 32 | right) -> (rank << 32 | merged id)
  flat_map_u64 char_ids_;  // code point of each one-character token -> id
  std::array<token_id, 256> byte_initial_{};  // id of each byte's character, -1 if absent
  bool all_bytes_present_ = false;
  std::array<token_id, 256> fallback_ids_{};  // <0xNN> ids, -1 if absent
  std::optional<token_id> unk_id_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
};

}  // namespace lrnn::tok
