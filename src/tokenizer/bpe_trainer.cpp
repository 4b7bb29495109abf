// Byte-level BPE training (see bpe_trainer.h). Words are the GPT-2 pre-tokenizer's pieces,
// counted once; merges update only the words that contain the merged pair.
#include "tokenizer/bpe_trainer.h"

#include "io/json.h"
#include "tokenizer/split_patterns.h"

#include <algorithm>
#include <array>
#include <unordered_map>

namespace lrnn::tok {

namespace {

std::array<std::string, 256> make_byte_table() {
  std::array<std::string, 256> t;
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = direct[b] ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++);
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {  // every code point here is < 0x800
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    t[b] = s;
  }
  return t;
}

uint64_t pair_key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

}  // namespace

const std::string& byte_to_unicode(uint8_t b) {
  static const std::array<std::string, 256> table = make_byte_table();
  return table[b];
}

std::string byte_level_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges) {
  io::json vocab = io::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<uint8_t>(b))] = b;
  io::json merge_list = io::json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    merge_list.push_back(a + " " + b);
  }
  io::json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = io::json::array();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", merge_list}};
  return j.dump(1) + "\n";
}

result<bpe_training_result> train_byte_level_bpe(std::string_view corpus, std::size_t vocab_size, std::size_t min_frequency) {
  if (vocab_size < 256 || vocab_size > (1u << 24))
    return make_error(status_code::invalid_argument, "BPE vocab_size {} is out of range (expected 256 .. 16777216)", vocab_size);
  min_frequency = std::max<std::size_t>(min_frequency, 1);

  // Unique pre-tokenized words with their counts.
  std::unordered_map<std::string_view, int64_t> word_counts;
  {
    std::vector<std::string_view> pieces;
    std::size_t pos = 0;
    while (pos < corpus.size()) {  // line by line keeps the piece buffer small
      std::size_t end = corpus.find('\n', pos);
      end = end == std::string_view::npos ? corpus.size() : end + 1;
      pieces.clear();
      split_isolated(corpus.substr(pos, end - pos), split_pattern::gpt2, pieces);
      for (std::string_view p : pieces) ++word_counts[p];
      pos = end;
    }
  }
  std::vector<std::pair<std::string_view, int64_t>> sorted(word_counts.begin(), word_counts.end());
  std::sort(sorted.begin(), sorted.end());  // deterministic word order
  std::vector<std::vector<int>> words;
  std::vector<int64_t> counts;
  words.reserve(sorted.size());
  for (const auto& [w, c] : sorted) {
    std::vector<int> s(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) s[i] = static_cast<uint8_t>(w[i]);
    words.push_back(std::move(s));
    counts.push_back(c);
  }

  std::vector<std::string> token(256);
  for (int b = 0; b < 256; ++b) token[b] = byte_to_unicode(static_cast<uint8_t>(b));

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int>> where;
  auto add_pairs = [&](int w, int64_t sign) {
    const auto& s = words[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count[k] += sign * counts[w];
      if (sign > 0) where[k].push_back(w);
    }
  };
  for (int w = 0; w < static_cast<int>(words.size()); ++w) add_pairs(w, +1);

  bpe_training_result out;
  std::vector<int> seen(words.size(), -1);
  while (token.size() < vocab_size) {
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [k, c] : pair_count) {
      if (c <= 0) continue;
      if (c > best_count) {
        best = k, best_count = c;
      } else if (c == best_count) {
        const int a = static_cast<int>(k >> 32), b = static_cast<int>(k & 0xffffffffu);
        const int ba = static_cast<int>(best >> 32), bb = static_cast<int>(best & 0xffffffffu);
        if (std::tie(token[a], token[b]) < std::tie(token[ba], token[bb])) best = k;
      }
    }
    if (best_count < static_cast<int64_t>(min_frequency)) break;
    const int a = static_cast<int>(best >> 32), b = static_cast<int>(best & 0xffffffffu);
    const int merged = static_cast<int>(token.size());
    token.push_back(token[a] + token[b]);
    out.merges.emplace_back(token[a], token[b]);
    const std::vector<int> affected = std::move(where[best]);
    where.erase(best);
    for (int w : affected) {
      if (seen[w] == merged) continue;
      seen[w] = merged;
      auto& s = words[w];
      bool has = false;
      for (std::size_t i = 0; i + 1 < s.size(); ++i) has |= s[i] == a && s[i + 1] == b;
      if (!has) continue;
      add_pairs(w, -1);
      std::vector<int> t;
      t.reserve(s.size());
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          t.push_back(merged);
          i += 2;
        } else {
          t.push_back(s[i++]);
        }
      }
      s = std::move(t);
      add_pairs(w, +1);
    }
    pair_count.erase(best);
  }
  out.tokenizer_json = byte_level_tokenizer_json(out.merges);
  return out;
}

}  // namespace lrnn::tok
