// Tokenizer loading by file type and model directory, and the streaming decoder
// (see tokenizer.h).
#include "tokenizer/tokenizer.h"

#include "io/json.h"
#include "lrnn/log.h"
#include "tokenizer/file_util.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/rwkv_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/utf8.h"

#include <filesystem>

namespace lrnn::tok {

namespace fs = std::filesystem;

const char* tokenizer_kind_name(tokenizer_kind k) {
  switch (k) {
    case tokenizer_kind::bpe_json: return "bpe_json";
    case tokenizer_kind::sentencepiece: return "sentencepiece";
    case tokenizer_kind::rwkv_world: return "rwkv_world";
  }
  return "unknown";
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// tokenizer_config.json names bos/eos/pad/unk as strings or {"content": ...} objects.
void apply_tokenizer_config(tokenizer& t, const fs::path& dir) {
  const fs::path cfg = dir / "tokenizer_config.json";
  if (!is_file(cfg)) return;
  auto j = io::read_json_file(cfg.string());
  if (!j.ok() || !j->is_object()) {
    LRNN_LOG_WARN("{}: ignored ({})", cfg.string(), j.ok() ? "not an object" : j.error().message());
    return;
  }
  special_ids s = t.specials();
  auto lookup = [&](const char* key, std::optional<token_id>& slot) {
    auto it = j->find(key);
    if (it == j->end()) return;
    const io::json* v = &*it;
    if (v->is_object()) {
      auto c = v->find("content");
      v = c == v->end() ? nullptr : &*c;
    }
    if (!v || !v->is_string()) return;
    if (auto id = t.token_to_id(v->get_ref<const std::string&>())) slot = id;
  };
  lookup("bos_token", s.bos);
  lookup("eos_token", s.eos);
  lookup("pad_token", s.pad);
  lookup("unk_token", s.unk);
  t.set_specials(s);
}

std::optional<fs::path> find_rwkv_vocab(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("rwkv_vocab", 0) == 0 && ends_with(name, ".txt") && is_file(e.path())) return e.path();
  }
  return std::nullopt;
}

}  // namespace

result<std::unique_ptr<tokenizer>> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_tokenizer_for_model_dir(path);
  if (ends_with(path, ".json")) return load_hf_tokenizer(path);
  if (ends_with(path, ".model")) return load_sentencepiece_tokenizer(path);
  if (ends_with(path, ".txt")) return load_rwkv_tokenizer(path);
  // Unknown extension: look at the content.
  LRNN_ASSIGN_OR_RETURN(const std::string bytes, read_file_bytes(path));
  const std::size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && bytes[first] == '{') return load_hf_tokenizer_from_json(bytes, path);
  if (first != std::string::npos && bytes[first] >= '0' && bytes[first] <= '9') return load_rwkv_tokenizer_from_text(bytes, path);
  return load_sentencepiece_tokenizer_from_bytes(bytes, path);
}

result<std::unique_ptr<tokenizer>> load_tokenizer_for_model_dir(const std::string& dir,
                                                                const std::optional<std::string>& explicit_path) {
  if (explicit_path) {
    std::error_code ec;
    if (!fs::exists(*explicit_path, ec))
      return make_error(status_code::not_found, "tokenizer '{}' does not exist", *explicit_path);
    return load_tokenizer(*explicit_path);
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return make_error(status_code::not_found, "model directory '{}' does not exist", dir);
  const fs::path d(dir);
  const fs::path json_path = d / "tokenizer.json", spm_path = d / "tokenizer.model";
  if (is_file(json_path)) {
    auto t = load_hf_tokenizer(json_path.string());
    if (t.ok()) {
      apply_tokenizer_config(**t, d);
      return t;
    }
    if (t.error().code() == status_code::unsupported && is_file(spm_path)) {
      LRNN_LOG_WARN("{}; using {} instead", t.error().message(), spm_path.string());
      return load_sentencepiece_tokenizer(spm_path.string());
    }
    return t;
  }
  if (is_file(spm_path)) return load_sentencepiece_tokenizer(spm_path.string());
  if (auto rwkv = find_rwkv_vocab(d)) return load_rwkv_tokenizer(rwkv->string());
  return make_error(status_code::not_found,
                    "no tokenizer in '{}' (looked for tokenizer.json, tokenizer.model, rwkv_vocab*.txt); pass --tokenizer PATH",
                    dir);
}

namespace {

constexpr std::string_view replacement_char = "\xEF\xBF\xBD";

bool ends_with_replacement(std::string_view s) {
  return s.size() >= replacement_char.size() && s.substr(s.size() - replacement_char.size()) == replacement_char;
}

}  // namespace

result<std::string> stream_decoder::put(token_id id) {
  constexpr std::size_t max_window = 8, max_replacement_holds = 4;
  window_.push_back(id);
  auto decoded = tok_->decode(window_, opt_);
  if (!decoded.ok()) {
    window_.pop_back();  // a bad id is reported once; the stream goes on without it
    return decoded.get_status();
  }
  std::string text = std::move(decoded).value();
  // A decode that rewrote text already returned (not expected of the supported decoders)
  // continues from the returned length.
  const std::size_t done = std::min(emitted_, text.size());
  const std::string_view pending = std::string_view(text).substr(done);
  std::size_t hold = utf8::incomplete_tail(pending);
  // Decoders that repair bytes themselves (SentencePiece, ByteFallback) show an incomplete
  // character as U+FFFD; hold it back while the next ids may still complete it.
  if (hold == 0 && ends_with_replacement(pending) && replacement_holds_ < max_replacement_holds) {
    hold = pending.size();
    ++replacement_holds_;
  } else if (hold == 0) {
    replacement_holds_ = 0;
  }
  std::string out = utf8::to_valid_lossy(pending.substr(0, pending.size() - hold));
  emitted_ = done + pending.size() - hold;
  window_text_ = std::move(text);
  if (hold == 0 && window_.size() >= max_window) LRNN_TRY(shrink_window());
  return out;
}

status stream_decoder::shrink_window() {
  // Keep the shortest suffix (at most 4 ids: one character) that decodes on its own to
  // clean text; it is the context that makes the next decode consistent with this one.
  for (std::size_t k = 1; k <= 4 && k < window_.size(); ++k) {
    const std::span<const token_id> suffix(window_.data() + window_.size() - k, k);
    LRNN_ASSIGN_OR_RETURN(std::string t, tok_->decode(suffix, opt_));
    if (!utf8::is_valid(t) || t.find(replacement_char) != std::string::npos) continue;
    window_.erase(window_.begin(), window_.end() - static_cast<std::ptrdiff_t>(k));
    window_text_ = std::move(t);
    emitted_ = window_text_.size();
    return {};
  }
  return {};
}

std::string stream_decoder::flush() {
  std::string out = utf8::to_valid_lossy(std::string_view(window_text_).substr(std::min(emitted_, window_text_.size())));
  window_.clear();
  window_text_.clear();
  emitted_ = 0;
  replacement_holds_ = 0;
  return out;
}

}  // namespace lrnn::tok
