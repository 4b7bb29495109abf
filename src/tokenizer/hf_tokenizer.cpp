// tokenizer.json tokenizer (see hf_tokenizer.h): the added-token split, the
// normalize / pre-tokenize / BPE pipeline, post-processing and decoding, mirroring HF
// tokenizers' TokenizerImpl and AddedVocabulary.
#include "tokenizer/hf_tokenizer.h"

#include "io/json.h"
#include "lrnn/log.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/file_util.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/hf_components.h"
#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace lrnn::tok {

namespace {

using io::json;

struct added_token {
  std::string content;  // as matched: normalized when `normalized` is set
  token_id id = 0;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};

// Leftmost-longest matching of a set of strings (HF uses Aho-Corasick with the same
// match semantics). Edges: (node << 8 | byte) -> (child << 32 | token index + 1, or 0).
class token_trie {
 public:
  struct match {
    std::size_t start, end, index;
  };

  bool empty() const { return count_ == 0; }

  void add(std::string_view s, std::size_t index) {
    if (s.empty()) return;
    first_[static_cast<unsigned char>(s[0])] = true;
    std::uint64_t node = 0;
    for (std::size_t k = 0; k < s.size(); ++k) {
      const std::uint64_t key = (node << 8) | static_cast<unsigned char>(s[k]);
      const std::uint64_t* e = edges_.find(key);
      std::uint64_t v = e ? *e : (nodes_++ << 32);
      if (k + 1 == s.size()) v = (v & ~std::uint64_t{0xFFFFFFFFu}) | static_cast<std::uint32_t>(index + 1);
      if (!e || k + 1 == s.size()) edges_.insert_or_assign(key, v);
      node = v >> 32;
    }
    ++count_;
  }

  std::optional<match> find(std::string_view text, std::size_t pos) const {
    for (std::size_t i = pos; i < text.size(); ++i) {
      if (!first_[static_cast<unsigned char>(text[i])]) continue;
      std::uint64_t node = 0;
      std::optional<match> best;
      for (std::size_t j = i; j < text.size(); ++j) {
        const std::uint64_t* e = edges_.find((node << 8) | static_cast<unsigned char>(text[j]));
        if (!e) break;
        node = *e >> 32;
        if (const auto idx = static_cast<std::uint32_t>(*e & 0xFFFFFFFFu); idx != 0) best = match{i, j + 1, idx - 1};
      }
      if (best) return best;
    }
    return std::nullopt;
  }

 private:
  flat_map_u64 edges_;
  std::array<bool, 256> first_{};
  std::uint64_t nodes_ = 1;
  std::size_t count_ = 0;
};

// A piece of input: text, or an added token's id.
struct segment {
  std::string_view text;
  std::size_t offset = 0;  // in the string that was split
  std::optional<token_id> id;
};

bool is_word_char(char32_t cp) {
  if (cp == utf8::invalid) return false;
  if (cp == '_') return true;
  switch (class_of(cp)) {
    case char_class::letter:
    case char_class::number:
    case char_class::mark:
    case char_class::connector: return true;
    case char_class::other: return false;
  }
  return false;
}

// The character that ends just before byte offset `end` (> 0); an invalid byte is one
// character of its own.
utf8::decoded char_before(std::string_view s, std::size_t end) {
  std::size_t k = end - 1;
  while (k > 0 && end - k < 4 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  const utf8::decoded d = utf8::decode(s, k);
  return k + d.len == end ? d : utf8::decoded{utf8::invalid, 1};
}

bool ws_at(std::string_view s, std::size_t i, std::size_t* len) {
  const utf8::decoded d = utf8::decode(s, i);
  *len = d.len;
  return d.cp != utf8::invalid && is_white_space(d.cp);
}

class hf_tokenizer final : public tokenizer {
 public:
  tokenizer_kind kind() const override { return tokenizer_kind::bpe_json; }
  std::string describe() const override {
    return fmt::format("tokenizer.json BPE{} ({}), {} tokens, {} merges, {} added tokens", byte_level_ ? " (byte-level)" : "",
                       source_, model_->vocab_count(), model_->merge_count(), added_.size());
  }
  std::size_t vocab_size() const override { return id_bound_; }

  result<std::vector<token_id>> encode(std::string_view text, const encode_options& opt) const override {
    std::vector<token_id> ids;
    ids.reserve(text.size() / 3 + 4);
    std::unique_lock<std::mutex> lock(cache_mutex_, std::try_to_lock);
    word_cache* cache = lock.owns_lock() ? &cache_ : nullptr;
    bpe_scratch scratch;
    std::vector<segment> outer, inner;
    std::vector<std::string_view> pieces;
    std::deque<std::string> storage;
    split_added(text, raw_trie_, opt.parse_special, outer);
    for (const segment& seg : outer) {
      if (seg.id) {
        ids.push_back(*seg.id);
        continue;
      }
      std::string normalized;
      std::string_view norm = seg.text;
      if (!normalizers_.empty()) {
        normalized = hf::apply_normalizers(seg.text, normalizers_);
        norm = normalized;
      }
      inner.clear();
      if (normalized_trie_.empty()) inner.push_back({norm, 0, std::nullopt});
      else split_added(norm, normalized_trie_, opt.parse_special, inner);
      for (const segment& sub : inner) {
        if (sub.id) {
          ids.push_back(*sub.id);
          continue;
        }
        if (sub.text.empty()) continue;
        pieces.clear();
        storage.clear();
        const bool at_start = seg.offset == 0 && sub.offset == 0;
        const bool byte_level = hf::pre_tokenize(sub.text, at_start, pre_tokenizers_, pieces, storage);
        for (std::string_view p : pieces) model_->encode_word(p, byte_level, ids, cache, scratch);
      }
    }
    if (opt.add_special && (!post_.prefix.empty() || !post_.suffix.empty())) {
      ids.insert(ids.begin(), post_.prefix.begin(), post_.prefix.end());
      ids.insert(ids.end(), post_.suffix.begin(), post_.suffix.end());
    }
    return ids;
  }

  result<std::string> decode(std::span<const token_id> ids, const decode_options& opt) const override {
    const bool bytes_direct = byte_level_decoder_;  // byte-level decoder: precomputed bytes per id
    std::string out;
    std::vector<std::string> tokens;
    if (!bytes_direct) tokens.reserve(ids.size());
    for (token_id id : ids) {
      const added_token* a = added_for(id);
      if (!a && !model_->has_id(id))
        return make_error(status_code::invalid_argument, "{}: token id {} is not in the vocabulary (size {})", source_, id,
                          id_bound_);
      if (opt.skip_special && is_special(id)) continue;
      if (bytes_direct) {
        if (a) {
          if (auto b = unicode_string_to_bytes(a->content)) out += *b;
          else out += a->content;
        } else {
          out += decoded_bytes_[static_cast<std::size_t>(id)];
        }
      } else {
        tokens.push_back(a ? a->content : model_->token(id));
      }
    }
    if (bytes_direct) return out;
    return hf::apply_decoders(std::move(tokens), decoders_);
  }

  std::optional<std::string> id_to_token(token_id id) const override {
    if (const added_token* a = added_for(id)) return a->content;
    if (model_->has_id(id)) return model_->token(id);
    return std::nullopt;
  }
  std::optional<token_id> token_to_id(std::string_view token) const override {
    for (const added_token& a : added_)
      if (a.content == token) return a.id;
    return model_->find(token);
  }
  bool is_special(token_id id) const override {
    const added_token* a = added_for(id);
    return a && a->special;
  }

  status load(std::string_view text) {
    LRNN_ASSIGN_OR_RETURN(const json root, io::parse_json(text, source_));
    if (!root.is_object()) return make_error(status_code::parse_error, "{}: top level is {}, expected an object", source_, io::json_type_name(root));
    auto field = [&](const char* key) -> const json* {
      auto it = root.find(key);
      return it == root.end() ? nullptr : &*it;
    };
    const json* model = field("model");
    if (!model || !model->is_object())
      return make_error(status_code::parse_error, "{}: 'model' is {}, expected an object", source_,
                        model ? io::json_type_name(*model) : "missing");
    if (auto t = model->find("type"); t != model->end()) {
      if (!t->is_string()) return make_error(status_code::parse_error, "{}: model.type is {}, expected a string", source_, io::json_type_name(*t));
      if (t->get_ref<const std::string&>() != "BPE")
        return make_error(status_code::unsupported, "{}: model type '{}' is not supported (supported: BPE)", source_,
                          t->get_ref<const std::string&>());
    } else if (!model->contains("merges")) {
      return make_error(status_code::unsupported, "{}: model has no type and no merges; only BPE models are supported", source_);
    }
    LRNN_ASSIGN_OR_RETURN(model_, bpe_model::from_json(*model, source_));
    LRNN_ASSIGN_OR_RETURN(normalizers_, hf::parse_normalizer(field("normalizer"), source_));
    LRNN_ASSIGN_OR_RETURN(pre_tokenizers_, hf::parse_pre_tokenizer(field("pre_tokenizer"), source_));
    LRNN_ASSIGN_OR_RETURN(post_, hf::parse_post_processor(field("post_processor"), source_));
    LRNN_ASSIGN_OR_RETURN(decoders_, hf::parse_decoder(field("decoder"), source_));
    byte_level_ = !pre_tokenizers_.empty() && pre_tokenizers_.back().t == hf::pre_tokenizer_step::type::byte_level;
    LRNN_TRY(load_added_tokens(field("added_tokens")));

    id_bound_ = model_->id_bound();
    for (const added_token& a : added_) id_bound_ = std::max(id_bound_, static_cast<std::size_t>(a.id) + 1);
    for (token_id id : post_.prefix) LRNN_TRY(check_known(id, "post_processor"));
    for (token_id id : post_.suffix) LRNN_TRY(check_known(id, "post_processor"));

    if (decoders_.size() == 1 && decoders_[0].t == hf::decoder_step::type::byte_level) {
      byte_level_decoder_ = true;
      decoded_bytes_.resize(model_->id_bound());
      for (std::size_t id = 0; id < model_->id_bound(); ++id) {
        if (!model_->has_id(static_cast<token_id>(id))) continue;
        const std::string& t = model_->token(static_cast<token_id>(id));
        auto b = unicode_string_to_bytes(t);
        decoded_bytes_[id] = b ? std::move(*b) : t;
      }
    }
    find_specials();
    return {};
  }

  std::string source_;

 private:
  status check_known(token_id id, const char* where) const {
    if (added_for(id) || model_->has_id(id)) return {};
    return make_error(status_code::parse_error, "{}: {} uses token id {}, which is not in the vocabulary", source_, where, id);
  }

  const added_token* added_for(token_id id) const {
    auto it = added_by_id_.find(id);
    return it == added_by_id_.end() ? nullptr : &added_[it->second];
  }

  status load_added_tokens(const json* arr) {
    if (!arr || arr->is_null()) return {};
    if (!arr->is_array()) return make_error(status_code::parse_error, "{}: added_tokens is {}, expected an array", source_, io::json_type_name(*arr));
    std::unordered_map<std::string, token_id> by_content;
    token_id max_added = -1;
    for (const json& e : *arr) {
      if (!e.is_object()) return make_error(status_code::parse_error, "{}: added_tokens entry is {}, expected an object", source_, io::json_type_name(e));
      added_token a;
      auto id = e.find("id");
      auto content = e.find("content");
      if (id == e.end() || !id->is_number_integer() || id->get<std::int64_t>() < 0 || id->get<std::int64_t>() >= (1 << 24))
        return make_error(status_code::parse_error, "{}: added_tokens entry {} has no valid 'id'", source_, e.dump());
      if (content == e.end() || !content->is_string() || content->get_ref<const std::string&>().empty())
        return make_error(status_code::parse_error, "{}: added_tokens entry {} has no non-empty 'content'", source_, e.dump());
      const auto file_id = static_cast<token_id>(id->get<std::int64_t>());
      a.content = content->get<std::string>();
      auto flag = [&](const char* key, bool fallback, bool& out) -> status {
        auto it = e.find(key);
        if (it == e.end() || it->is_null()) {
          out = fallback;
          return {};
        }
        if (!it->is_boolean())
          return make_error(status_code::parse_error, "{}: added token '{}' field '{}' is {}, expected a boolean", source_, a.content,
                            key, io::json_type_name(*it));
        out = it->get<bool>();
        return {};
      };
      LRNN_TRY(flag("special", false, a.special));
      LRNN_TRY(flag("single_word", false, a.single_word));
      LRNN_TRY(flag("lstrip", false, a.lstrip));
      LRNN_TRY(flag("rstrip", false, a.rstrip));
      LRNN_TRY(flag("normalized", !a.special, a.normalized));
      // HF tokenizers ignores the file's id: a token already in the vocabulary keeps that
      // id, a new one gets the next id after the vocabulary and earlier added tokens.
      if (auto it = by_content.find(a.content); it != by_content.end()) {
        a.id = it->second;
      } else if (auto mid = model_->find(a.content)) {
        a.id = *mid;
      } else {
        const auto vocab_n = static_cast<token_id>(model_->vocab_count());
        a.id = max_added < 0 ? vocab_n : (max_added >= vocab_n || vocab_n == 0 ? max_added + 1 : vocab_n);
      }
      if (a.id != file_id)
        LRNN_LOG_WARN("{}: added token '{}' has id {} in the file; using {} as HF tokenizers does", source_, a.content, file_id, a.id);
      by_content[a.content] = a.id;
      max_added = std::max(max_added, a.id);
      if (a.normalized && !normalizers_.empty()) a.content = hf::apply_normalizers(a.content, normalizers_);
      if (a.content.empty()) continue;
      if (auto it = added_by_id_.find(a.id); it != added_by_id_.end()) {
        added_[it->second] = std::move(a);  // a later entry for the same token replaces the earlier one
      } else {
        added_by_id_.emplace(a.id, added_.size());
        added_.push_back(std::move(a));
      }
    }
    for (std::size_t k = 0; k < added_.size(); ++k) (added_[k].normalized ? normalized_trie_ : raw_trie_).add(added_[k].content, k);
    return {};
  }

  void find_specials() {
    specials_.unk = model_->unk_id();
    auto by_name = [&](std::initializer_list<const char*> names) -> std::optional<token_id> {
      for (const char* n : names)
        for (const added_token& a : added_)
          if (a.special && a.content == n) return a.id;
      return std::nullopt;
    };
    specials_.bos = post_.prefix.size() == 1 ? std::optional<token_id>(post_.prefix[0])
                                             : by_name({"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"});
    specials_.eos = by_name({"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"});
    specials_.pad = by_name({"<pad>", "<|padding|>", "[PAD]"});
  }

  // HF AddedVocabulary::find_matches over `text`.
  void split_added(std::string_view text, const token_trie& trie, bool parse_special, std::vector<segment>& out) const {
    std::size_t start_offset = 0, pos = 0;
    while (auto m = trie.find(text, pos)) {
      pos = m->end;
      const added_token& a = added_[m->index];
      if (a.special && !parse_special) continue;
      std::size_t start = m->start, stop = m->end;
      if (a.single_word) {
        const bool start_ok = start == 0 || !is_word_char(char_before(text, start).cp);
        const bool stop_ok = stop == text.size() || !is_word_char(utf8::decode(text, stop).cp);
        if (!start_ok || !stop_ok) continue;
      }
      if (a.lstrip) {
        std::size_t s = start;
        while (s > 0) {
          const utf8::decoded c = char_before(text, s);
          if (c.cp == utf8::invalid || !is_white_space(c.cp)) break;
          s -= c.len;
        }
        start = std::max(s, start_offset);
      }
      if (a.rstrip) {
        std::size_t len = 0;
        while (stop < text.size() && ws_at(text, stop, &len)) stop += len;
      }
      start = std::max(start, start_offset);
      if (start_offset < start) out.push_back({text.substr(start_offset, start - start_offset), start_offset, std::nullopt});
      out.push_back({text.substr(start, stop - start), start, a.id});
      start_offset = stop;
      pos = std::max(pos, stop);
    }
    if (start_offset < text.size()) out.push_back({text.substr(start_offset), start_offset, std::nullopt});
  }

  std::unique_ptr<bpe_model> model_;
  std::vector<hf::normalizer_step> normalizers_;
  std::vector<hf::pre_tokenizer_step> pre_tokenizers_;
  hf::post_processor post_;
  std::vector<hf::decoder_step> decoders_;
  std::vector<added_token> added_;
  std::unordered_map<token_id, std::size_t> added_by_id_;
  token_trie raw_trie_, normalized_trie_;
  std::vector<std::string> decoded_bytes_;  // by model id, when the decoder is ByteLevel alone
  bool byte_level_decoder_ = false;  // decoder is ByteLevel alone: decoded_bytes_ is filled
  std::size_t id_bound_ = 0;
  bool byte_level_ = false;
  mutable std::mutex cache_mutex_;
  mutable word_cache cache_;
};

}  // namespace

result<std::unique_ptr<tokenizer>> load_hf_tokenizer_from_json(std::string_view json_text, const std::string& source) {
  auto t = std::make_unique<hf_tokenizer>();
  t->source_ = source;
  try {
    LRNN_TRY(t->load(json_text));
  } catch (const std::bad_alloc&) {
    return make_error(status_code::out_of_memory, "{}: out of memory while loading the tokenizer", source);
  } catch (const std::exception& e) {
    return make_error(status_code::parse_error, "{}: malformed tokenizer.json: {}", source, e.what());
  }
  return std::unique_ptr<tokenizer>(std::move(t));
}

result<std::unique_ptr<tokenizer>> load_hf_tokenizer(const std::string& path) {
  LRNN_ASSIGN_OR_RETURN(const std::string text, read_file_bytes(path));
  return load_hf_tokenizer_from_json(text, path);
}

}  // namespace lrnn::tok
