// RWKV world vocabulary parser and greedy longest-match trie tokenizer (see rwkv_tokenizer.h).
#include "tokenizer/rwkv_tokenizer.h"

#include "tokenizer/file_util.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/utf8.h"

#include <charconv>
#include <unordered_map>

namespace lrnn::tok {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

result<std::string> parse_python_literal(std::string_view lit) {
  bool is_bytes = false;
  if (!lit.empty() && (lit[0] == 'b' || lit[0] == 'B')) {
    is_bytes = true;
    lit.remove_prefix(1);
  }
  if (lit.size() < 2 || (lit[0] != '\'' && lit[0] != '"') || lit.back() != lit[0])
    return make_error(status_code::parse_error, "expected a quoted Python {} literal", is_bytes ? "bytes" : "str");
  const char quote = lit[0];
  const std::string_view body = lit.substr(1, lit.size() - 2);
  std::string out;
  for (std::size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (c == quote) return make_error(status_code::parse_error, "unescaped {} inside the literal", quote);
    if (c != '\\') {
      if (is_bytes && static_cast<unsigned char>(c) >= 0x80)
        return make_error(status_code::parse_error, "non-ASCII byte in a bytes literal");
      out.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= body.size()) return make_error(status_code::parse_error, "literal ends in a backslash");
    const char e = body[i + 1];
    i += 2;
    auto read_hex = [&](std::size_t digits) -> result<std::uint32_t> {
      if (i + digits > body.size()) return make_error(status_code::parse_error, "truncated \\{} escape", e);
      std::uint32_t v = 0;
      for (std::size_t k = 0; k < digits; ++k) {
        const int h = hex_value(body[i + k]);
        if (h < 0) return make_error(status_code::parse_error, "bad hex digit in \\{} escape", e);
        v = v * 16 + static_cast<std::uint32_t>(h);
      }
      i += digits;
      return v;
    };
    switch (e) {
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': {
        LRNN_ASSIGN_OR_RETURN(const std::uint32_t v, read_hex(2));
        if (is_bytes) out.push_back(static_cast<char>(v));
        else utf8::append(out, v);
        break;
      }
      case 'u':
      case 'U': {
        if (is_bytes) {  // not an escape in bytes literals: kept as written
          out.push_back('\\');
          out.push_back(e);
          break;
        }
        LRNN_ASSIGN_OR_RETURN(const std::uint32_t v, read_hex(e == 'u' ? 4 : 8));
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
          return make_error(status_code::parse_error, "\\{} escape U+{:X} is not a Unicode scalar value", e, v);
        utf8::append(out, v);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          std::uint32_t v = static_cast<std::uint32_t>(e - '0');
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k, ++i)
            v = v * 8 + static_cast<std::uint32_t>(body[i] - '0');
          if (is_bytes) {
            if (v > 0xFF) return make_error(status_code::parse_error, "octal escape out of range in a bytes literal");
            out.push_back(static_cast<char>(v));
          } else {
            utf8::append(out, v);
          }
        } else {  // Python keeps unknown escapes as written
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  if (!is_bytes && !utf8::is_valid(out)) return make_error(status_code::parse_error, "str literal is not valid UTF-8");
  return out;
}

namespace {

constexpr token_id max_rwkv_id = 1 << 20;  // the real vocabulary has 65536 ids

class rwkv_tokenizer final : public tokenizer {
 public:
  tokenizer_kind kind() const override { return tokenizer_kind::rwkv_world; }
  std::string describe() const override {
    return fmt::format("RWKV world vocabulary ({}), {} tokens", source_, token_count_);
  }
  std::size_t vocab_size() const override { return tokens_.size(); }

  result<std::vector<token_id>> encode(std::string_view text, const encode_options&) const override {
    std::vector<token_id> ids;
    ids.reserve(text.size() / 3 + 1);
    for (std::size_t i = 0; i < text.size();) {
      std::uint64_t node = 0;
      token_id best = -1;
      std::size_t best_end = i;
      for (std::size_t j = i; j < text.size(); ++j) {
        const std::uint64_t* child = edges_.find((node << 8) | static_cast<unsigned char>(text[j]));
        if (!child) break;
        node = *child >> 32;
        const auto id = static_cast<std::int32_t>(*child & 0xFFFFFFFFu);
        if (id >= 0) {
          best = id;
          best_end = j + 1;
        }
      }
      if (best < 0)
        return make_error(status_code::invalid_argument, "{}: byte 0x{:02X} at offset {} has no token in the vocabulary",
                          source_, static_cast<unsigned char>(text[i]), i);
      ids.push_back(best);
      i = best_end;
    }
    return ids;
  }

  result<std::string> decode(std::span<const token_id> ids, const decode_options& opt) const override {
    std::string out;
    for (token_id id : ids) {
      if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || (!present_[id] && id != 0))
        return make_error(status_code::invalid_argument, "{}: token id {} is not in the vocabulary", source_, id);
      if (id == 0 && !present_[0]) continue;  // end-of-text has no text
      out += tokens_[id];
    }
    return out;
  }

  std::optional<std::string> id_to_token(token_id id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) return std::nullopt;
    if (!present_[id]) return id == 0 ? std::optional<std::string>("<|endoftext|>") : std::nullopt;
    return tokens_[id];
  }
  std::optional<token_id> token_to_id(std::string_view token) const override {
    auto it = by_bytes_.find(std::string(token));
    if (it != by_bytes_.end()) return it->second;
    if (token == "<|endoftext|>" && !present_[0]) return 0;
    return std::nullopt;
  }
  bool is_special(token_id id) const override { return id == 0 && !present_.empty() && !present_[0]; }

  status build(std::string_view text) {
    tokens_.assign(1, std::string());
    present_.assign(1, false);
    std::size_t line_no = 0;
    std::uint64_t node_count = 1;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t eol = text.find('\n', pos);
      if (eol == std::string_view::npos) eol = text.size();
      std::string_view line = text.substr(pos, eol - pos);
      pos = eol + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      auto err = [&](const std::string& what) {
        return make_error(status_code::parse_error, "{}:{}: {} (expected `<id> <Python literal> <byte length>`)", source_,
                          line_no, what);
      };
      const std::size_t first = line.find(' '), last = line.rfind(' ');
      if (first == std::string_view::npos || first == last) return err("fewer than three fields");
      token_id id = 0;
      const std::string_view id_s = line.substr(0, first), len_s = line.substr(last + 1);
      auto [p1, e1] = std::from_chars(id_s.data(), id_s.data() + id_s.size(), id);
      if (e1 != std::errc() || p1 != id_s.data() + id_s.size() || id < 0 || id >= max_rwkv_id)
        return err(fmt::format("bad token id '{}'", id_s));
      std::size_t len = 0;
      auto [p2, e2] = std::from_chars(len_s.data(), len_s.data() + len_s.size(), len);
      if (e2 != std::errc() || p2 != len_s.data() + len_s.size()) return err(fmt::format("bad length '{}'", len_s));
      auto lit = parse_python_literal(line.substr(first + 1, last - first - 1));
      if (!lit.ok()) return err(lit.error().message());
      std::string bytes = std::move(lit).value();
      if (bytes.empty()) return err("empty token");
      if (bytes.size() != len)
        return err(fmt::format("token {} has {} bytes but the length field says {}", id, bytes.size(), len));
      if (static_cast<std::size_t>(id) >= tokens_.size()) {
        tokens_.resize(static_cast<std::size_t>(id) + 1);
        present_.resize(static_cast<std::size_t>(id) + 1, false);
      }
      if (present_[id]) return err(fmt::format("token id {} appears twice", id));
      if (!by_bytes_.emplace(bytes, id).second)
        return err(fmt::format("token {} repeats the bytes of token {}", id, by_bytes_[bytes]));
      // Trie: an edge value packs (child node << 32) | (token id of the child or -1).
      std::uint64_t node = 0;
      for (std::size_t k = 0; k < bytes.size(); ++k) {
        const std::uint64_t key = (node << 8) | static_cast<unsigned char>(bytes[k]);
        const std::uint64_t* child = edges_.find(key);
        const bool last_byte = k + 1 == bytes.size();
        if (!child) {
          const std::uint64_t v = (node_count++ << 32) | (last_byte ? static_cast<std::uint32_t>(id) : 0xFFFFFFFFu);
          edges_.insert_or_assign(key, v);
          node = v >> 32;
        } else {
          std::uint64_t v = *child;
          if (last_byte) {
            v = (v & ~std::uint64_t{0xFFFFFFFFu}) | static_cast<std::uint32_t>(id);
            edges_.insert_or_assign(key, v);
          }
          node = v >> 32;
        }
      }
      tokens_[id] = std::move(bytes);
      present_[id] = true;
      ++token_count_;
    }
    if (token_count_ == 0) return make_error(status_code::parse_error, "{}: no tokens", source_);
    if (!present_[0]) specials_.eos = 0;
    return {};
  }

  std::string source_;

 private:
  std::vector<std::string> tokens_;  // by id; bytes
  std::vector<bool> present_;
  std::unordered_map<std::string, token_id> by_bytes_;
  flat_map_u64 edges_;  // (node << 8 | byte) -> (child << 32 | id)
  std::size_t token_count_ = 0;
};

}  // namespace

result<std::unique_ptr<tokenizer>> load_rwkv_tokenizer_from_text(std::string_view text, const std::string& source) {
  auto t = std::make_unique<rwkv_tokenizer>();
  t->source_ = source;
  LRNN_TRY(t->build(text));
  return std::unique_ptr<tokenizer>(std::move(t));
}

result<std::unique_ptr<tokenizer>> load_rwkv_tokenizer(const std::string& path) {
  LRNN_ASSIGN_OR_RETURN(const std::string text, read_file_bytes(path));
  return load_rwkv_tokenizer_from_text(text, path);
}

}  // namespace lrnn::tok
