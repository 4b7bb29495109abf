// Normalizers, pre-tokenizers, post-processors and decoders of tokenizer.json (see
// hf_components.h); each mirrors the HF tokenizers component of the same name.
#include "tokenizer/hf_components.h"

#include "tokenizer/bpe_model.h"
#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

namespace lrnn::tok::hf {

namespace {

using io::json;

const json* field(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

struct ctx {
  const std::string& where;
  const char* component;  // "normalizer", "pre_tokenizer", ...
};

status type_error(const ctx& c, const char* key, const json* v, const char* expected) {
  return make_error(status_code::parse_error, "{}: {}.{} is {}, expected {}", c.where, c.component, key,
                    v ? io::json_type_name(*v) : "missing", expected);
}

result<std::string> get_string(const json& obj, const char* key, const ctx& c) {
  const json* v = field(obj, key);
  if (!v || !v->is_string()) return type_error(c, key, v, "a string");
  return v->get<std::string>();
}

result<std::string> get_string_or(const json& obj, const char* key, const std::string& fallback, const ctx& c) {
  const json* v = field(obj, key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_string()) return type_error(c, key, v, "a string");
  return v->get<std::string>();
}

result<bool> get_bool_or(const json& obj, const char* key, bool fallback, const ctx& c) {
  const json* v = field(obj, key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_boolean()) return type_error(c, key, v, "a boolean");
  return v->get<bool>();
}

result<std::size_t> get_count_or(const json& obj, const char* key, std::size_t fallback, const ctx& c) {
  const json* v = field(obj, key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_number_unsigned() || v->get<std::uint64_t>() > (1u << 20)) return type_error(c, key, v, "a small non-negative integer");
  return static_cast<std::size_t>(v->get<std::uint64_t>());
}

result<std::string> get_type(const json& j, const ctx& c) {
  if (!j.is_object()) return make_error(status_code::parse_error, "{}: {} is {}, expected an object", c.where, c.component, io::json_type_name(j));
  return get_string(j, "type", c);
}

result<const json*> get_array(const json& obj, const char* key, const ctx& c) {
  const json* v = field(obj, key);
  if (!v || !v->is_array()) return type_error(c, key, v, "an array");
  return v;
}

// {"String": "x"} patterns; {"Regex": ...} is reported as unsupported by the caller.
result<std::string> string_pattern(const json& obj, const ctx& c, const std::string& type) {
  const json* p = field(obj, "pattern");
  if (!p || !p->is_object()) return type_error(c, "pattern", p, "an object");
  if (field(*p, "Regex"))
    return make_error(status_code::unsupported, "{}: {} '{}' with a Regex pattern is not supported (only String patterns)",
                      c.where, c.component, type);
  LRNN_ASSIGN_OR_RETURN(std::string s, get_string(*p, "String", c));
  if (s.empty()) return make_error(status_code::parse_error, "{}: {} '{}' has an empty pattern", c.where, c.component, type);
  return s;
}

result<prepend_scheme> get_prepend_scheme(const json& j, const ctx& c) {
  if (const json* ps = field(j, "prepend_scheme"); ps && !ps->is_null()) {
    if (!ps->is_string()) return type_error(c, "prepend_scheme", ps, "a string");
    const std::string& s = ps->get_ref<const std::string&>();
    if (s == "always") return prepend_scheme::always;
    if (s == "first") return prepend_scheme::first;
    if (s == "never") return prepend_scheme::never;
    return make_error(status_code::parse_error, "{}: {}.prepend_scheme '{}' is not one of always, first, never", c.where,
                      c.component, s);
  }
  LRNN_ASSIGN_OR_RETURN(const bool add, get_bool_or(j, "add_prefix_space", true, c));
  return add ? prepend_scheme::always : prepend_scheme::never;
}

result<std::string> single_char(const json& j, const char* key, const std::string& fallback, const ctx& c) {
  LRNN_ASSIGN_OR_RETURN(std::string s, get_string_or(j, key, fallback, c));
  if (s.empty() || !utf8::is_valid(s) || utf8::decode(s, 0).len != s.size())
    return make_error(status_code::parse_error, "{}: {}.{} '{}' must be a single character", c.where, c.component, key, s);
  return s;
}

status parse_normalizer_into(const json& j, const ctx& c, std::vector<normalizer_step>& out) {
  if (j.is_null()) return {};
  LRNN_ASSIGN_OR_RETURN(const std::string type, get_type(j, c));
  normalizer_step st;
  if (type == "Sequence") {
    LRNN_ASSIGN_OR_RETURN(const json* arr, get_array(j, "normalizers", c));
    for (const json& e : *arr) LRNN_TRY(parse_normalizer_into(e, c, out));
    return {};
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    st.t = normalizer_step::type::unicode;
    st.form = type == "NFC" ? normal_form::nfc : type == "NFD" ? normal_form::nfd : type == "NFKC" ? normal_form::nfkc : normal_form::nfkd;
  } else if (type == "Prepend") {
    st.t = normalizer_step::type::prepend;
    LRNN_ASSIGN_OR_RETURN(st.a, get_string(j, "prepend", c));
  } else if (type == "Replace") {
    st.t = normalizer_step::type::replace;
    LRNN_ASSIGN_OR_RETURN(st.a, string_pattern(j, c, type));
    LRNN_ASSIGN_OR_RETURN(st.b, get_string(j, "content", c));
  } else if (type == "Strip") {
    st.t = normalizer_step::type::strip;
    LRNN_ASSIGN_OR_RETURN(st.left, get_bool_or(j, "strip_left", false, c));
    LRNN_ASSIGN_OR_RETURN(st.right, get_bool_or(j, "strip_right", false, c));
  } else {
    return make_error(status_code::unsupported,
                      "{}: normalizer '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Sequence)",
                      c.where, type);
  }
  out.push_back(std::move(st));
  return {};
}

status parse_pre_tokenizer_into(const json& j, const ctx& c, std::vector<pre_tokenizer_step>& out) {
  if (j.is_null()) return {};
  LRNN_ASSIGN_OR_RETURN(const std::string type, get_type(j, c));
  pre_tokenizer_step st;
  if (type == "Sequence") {
    LRNN_ASSIGN_OR_RETURN(const json* arr, get_array(j, "pretokenizers", c));
    for (const json& e : *arr) LRNN_TRY(parse_pre_tokenizer_into(e, c, out));
    return {};
  }
  if (type == "ByteLevel") {
    st.t = pre_tokenizer_step::type::byte_level;
    LRNN_ASSIGN_OR_RETURN(st.add_prefix_space, get_bool_or(j, "add_prefix_space", true, c));
    LRNN_ASSIGN_OR_RETURN(st.flag, get_bool_or(j, "use_regex", true, c));
  } else if (type == "Split") {
    st.t = pre_tokenizer_step::type::split;
    const json* p = field(j, "pattern");
    if (!p || !p->is_object()) return type_error(c, "pattern", p, "an object");
    if (field(*p, "String"))
      return make_error(status_code::unsupported, "{}: pre-tokenizer 'Split' with a String pattern is not supported", c.where);
    LRNN_ASSIGN_OR_RETURN(const std::string regex, get_string(*p, "Regex", c));
    const auto pat = split_pattern_from_regex(regex);
    if (!pat)
      return make_error(status_code::unsupported,
                        "{}: unsupported pre-tokenizer pattern '{}' in 'Split' (supported: the GPT-2, Llama-3 and Qwen2 patterns)",
                        c.where, regex);
    st.pattern = *pat;
    LRNN_ASSIGN_OR_RETURN(const std::string behavior, get_string_or(j, "behavior", "Isolated", c));
    if (behavior != "Isolated")
      return make_error(status_code::unsupported, "{}: pre-tokenizer 'Split' behavior '{}' is not supported (only Isolated)",
                        c.where, behavior);
    LRNN_ASSIGN_OR_RETURN(const bool invert, get_bool_or(j, "invert", false, c));
    if (invert) return make_error(status_code::unsupported, "{}: pre-tokenizer 'Split' with invert=true is not supported", c.where);
  } else if (type == "Digits") {
    st.t = pre_tokenizer_step::type::digits;
    LRNN_ASSIGN_OR_RETURN(st.flag, get_bool_or(j, "individual_digits", false, c));
  } else if (type == "Metaspace") {
    st.t = pre_tokenizer_step::type::metaspace;
    LRNN_ASSIGN_OR_RETURN(st.replacement, single_char(j, "replacement", "\xE2\x96\x81", c));
    LRNN_ASSIGN_OR_RETURN(st.scheme, get_prepend_scheme(j, c));
    LRNN_ASSIGN_OR_RETURN(st.flag, get_bool_or(j, "split", true, c));
  } else {
    return make_error(status_code::unsupported,
                      "{}: pre-tokenizer '{}' is not supported (supported: ByteLevel, Split, Digits, Metaspace, Sequence)",
                      c.where, type);
  }
  out.push_back(std::move(st));
  return {};
}

status parse_decoder_into(const json& j, const ctx& c, std::vector<decoder_step>& out) {
  if (j.is_null()) return {};
  LRNN_ASSIGN_OR_RETURN(const std::string type, get_type(j, c));
  decoder_step st;
  if (type == "Sequence") {
    LRNN_ASSIGN_OR_RETURN(const json* arr, get_array(j, "decoders", c));
    for (const json& e : *arr) LRNN_TRY(parse_decoder_into(e, c, out));
    return {};
  }
  if (type == "ByteLevel") {
    st.t = decoder_step::type::byte_level;
  } else if (type == "Replace") {
    st.t = decoder_step::type::replace;
    LRNN_ASSIGN_OR_RETURN(st.a, string_pattern(j, c, type));
    LRNN_ASSIGN_OR_RETURN(st.b, get_string(j, "content", c));
  } else if (type == "ByteFallback") {
    st.t = decoder_step::type::byte_fallback;
  } else if (type == "Fuse") {
    st.t = decoder_step::type::fuse;
  } else if (type == "Strip") {
    st.t = decoder_step::type::strip;
    LRNN_ASSIGN_OR_RETURN(st.a, single_char(j, "content", " ", c));
    LRNN_ASSIGN_OR_RETURN(st.start, get_count_or(j, "start", 0, c));
    LRNN_ASSIGN_OR_RETURN(st.stop, get_count_or(j, "stop", 0, c));
  } else if (type == "Metaspace") {
    st.t = decoder_step::type::metaspace;
    LRNN_ASSIGN_OR_RETURN(st.a, single_char(j, "replacement", "\xE2\x96\x81", c));
    LRNN_ASSIGN_OR_RETURN(const prepend_scheme scheme, get_prepend_scheme(j, c));
    st.prepend = scheme != prepend_scheme::never;
  } else {
    return make_error(status_code::unsupported,
                      "{}: decoder '{}' is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, "
                      "Metaspace, Sequence)",
                      c.where, type);
  }
  out.push_back(std::move(st));
  return {};
}

result<token_id> small_id(const json& v, const ctx& c, const char* what) {
  if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= (1 << 24))
    return make_error(status_code::parse_error, "{}: {} {} is {}, expected a token id", c.where, c.component, what, v.dump());
  return static_cast<token_id>(v.get<std::int64_t>());
}

status parse_post_processor_into(const json& j, const ctx& c, post_processor& pp) {
  if (j.is_null()) return {};
  LRNN_ASSIGN_OR_RETURN(const std::string type, get_type(j, c));
  if (type == "Sequence") {
    LRNN_ASSIGN_OR_RETURN(const json* arr, get_array(j, "processors", c));
    for (const json& e : *arr) LRNN_TRY(parse_post_processor_into(e, c, pp));
    return {};
  }
  if (type == "ByteLevel") return {};
  std::vector<token_id> prefix, suffix;
  if (type == "TemplateProcessing") {
    LRNN_ASSIGN_OR_RETURN(const json* single, get_array(j, "single", c));
    const json* specials = field(j, "special_tokens");
    bool seen_sequence = false;
    for (const json& item : *single) {
      if (const json* st = field(item, "SpecialToken")) {
        LRNN_ASSIGN_OR_RETURN(const std::string name, get_string(*st, "id", c));
        const json* spec = specials ? field(*specials, name.c_str()) : nullptr;
        const json* ids = spec ? field(*spec, "ids") : nullptr;
        if (!ids || !ids->is_array())
          return make_error(status_code::parse_error, "{}: post_processor template uses '{}', missing from special_tokens", c.where, name);
        for (const json& v : *ids) {
          LRNN_ASSIGN_OR_RETURN(const token_id id, small_id(v, c, "special token id"));
          (seen_sequence ? suffix : prefix).push_back(id);
        }
      } else if (const json* seq = field(item, "Sequence")) {
        LRNN_ASSIGN_OR_RETURN(const std::string name, get_string(*seq, "id", c));
        if (name != "A") return make_error(status_code::parse_error, "{}: post_processor single template uses sequence '{}'", c.where, name);
        seen_sequence = true;
      } else {
        return make_error(status_code::parse_error, "{}: post_processor template item {} is neither SpecialToken nor Sequence",
                          c.where, item.dump());
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const json* v = field(j, key);
      if (!v || !v->is_array() || v->size() != 2) return type_error(c, key, v, "[token, id]");
      LRNN_ASSIGN_OR_RETURN(const token_id id, small_id((*v)[1], c, key));
      (std::string_view(key) == "cls" ? prefix : suffix).push_back(id);
    }
  } else {
    return make_error(status_code::unsupported,
                      "{}: post-processor '{}' is not supported (supported: TemplateProcessing, RobertaProcessing, "
                      "BertProcessing, ByteLevel, Sequence)",
                      c.where, type);
  }
  pp.prefix.insert(pp.prefix.begin(), prefix.begin(), prefix.end());
  pp.suffix.insert(pp.suffix.end(), suffix.begin(), suffix.end());
  return {};
}

std::string concat(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size() + b.size());
  out.append(a);
  out.append(b);
  return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  for (std::size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos);
  s.swap(out);
}

std::string strip_white_space(std::string_view s, bool left, bool right) {
  std::size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      const utf8::decoded d = utf8::decode(s, b);
      if (d.cp == utf8::invalid || !is_white_space(d.cp)) break;
      b += d.len;
    }
  }
  if (right) {
    while (e > b) {
      std::size_t k = e - 1;
      while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80 && e - k < 4) --k;
      const utf8::decoded d = utf8::decode(s, k);
      if (d.cp == utf8::invalid || k + d.len != e || !is_white_space(d.cp)) break;
      e = k;
    }
  }
  return std::string(s.substr(b, e - b));
}

// The characters of `s`, each as its bytes (an invalid byte is a character of its own).
std::vector<std::string_view> chars_of(std::string_view s) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8::decode(s, i).len;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xNN>" -> the byte, as HF's ByteFallback decoder reads it (u8::from_str_radix).
std::optional<unsigned char> byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  const int h = hex_digit(t[3]), l = hex_digit(t[4]);
  if (t[3] == '+' && l >= 0) return static_cast<unsigned char>(l);
  if (h < 0 || l < 0) return std::nullopt;
  return static_cast<unsigned char>(h * 16 + l);
}

}  // namespace

result<std::vector<normalizer_step>> parse_normalizer(const json* j, const std::string& where) {
  std::vector<normalizer_step> out;
  if (j) LRNN_TRY(parse_normalizer_into(*j, ctx{where, "normalizer"}, out));
  return out;
}

result<std::vector<pre_tokenizer_step>> parse_pre_tokenizer(const json* j, const std::string& where) {
  std::vector<pre_tokenizer_step> out;
  if (j) LRNN_TRY(parse_pre_tokenizer_into(*j, ctx{where, "pre_tokenizer"}, out));
  for (std::size_t k = 0; k + 1 < out.size(); ++k) {
    if (out[k].t == pre_tokenizer_step::type::byte_level || out[k].t == pre_tokenizer_step::type::metaspace)
      return make_error(status_code::unsupported, "{}: pre-tokenizer '{}' is supported only as the last of a Sequence", where,
                        out[k].t == pre_tokenizer_step::type::byte_level ? "ByteLevel" : "Metaspace");
  }
  return out;
}

result<std::vector<decoder_step>> parse_decoder(const json* j, const std::string& where) {
  std::vector<decoder_step> out;
  if (j) LRNN_TRY(parse_decoder_into(*j, ctx{where, "decoder"}, out));
  return out;
}

result<post_processor> parse_post_processor(const json* j, const std::string& where) {
  post_processor pp;
  if (j) LRNN_TRY(parse_post_processor_into(*j, ctx{where, "post_processor"}, pp));
  return pp;
}

std::string apply_normalizers(std::string_view in, const std::vector<normalizer_step>& steps) {
  std::string s(in);
  for (const normalizer_step& st : steps) {
    switch (st.t) {
      case normalizer_step::type::unicode: s = normalize(s, st.form); break;
      case normalizer_step::type::prepend:
        if (!s.empty()) s = concat(st.a, s);
        break;
      case normalizer_step::type::replace: replace_all(s, st.a, st.b); break;
      case normalizer_step::type::strip: s = strip_white_space(s, st.left, st.right); break;
    }
  }
  return s;
}

bool pre_tokenize(std::string_view s, bool at_text_start, const std::vector<pre_tokenizer_step>& steps,
                  std::vector<std::string_view>& pieces, std::deque<std::string>& storage) {
  const std::size_t base = pieces.size();
  pieces.push_back(s);
  std::vector<std::string_view> next;
  bool byte_level = false;
  for (const pre_tokenizer_step& st : steps) {
    next.clear();
    for (std::size_t k = base; k < pieces.size(); ++k) {
      std::string_view p = pieces[k];
      switch (st.t) {
        case pre_tokenizer_step::type::split: split_isolated(p, st.pattern, next); break;
        case pre_tokenizer_step::type::digits: split_digits(p, st.flag, next); break;
        case pre_tokenizer_step::type::byte_level:
          if (st.add_prefix_space && !p.empty() && p[0] != ' ') {
            std::string spaced;
            spaced.reserve(p.size() + 1);
            spaced.push_back(' ');
            spaced.append(p);
            storage.push_back(std::move(spaced));
            p = storage.back();
          }
          if (st.flag) split_isolated(p, split_pattern::gpt2, next);
          else next.push_back(p);
          byte_level = true;
          break;
        case pre_tokenizer_step::type::metaspace: {
          std::string m(p);
          replace_all(m, " ", st.replacement);
          const bool starts = m.compare(0, st.replacement.size(), st.replacement) == 0;
          const bool first_piece = at_text_start && k == base;
          if (!starts && (st.scheme == prepend_scheme::always || (st.scheme == prepend_scheme::first && first_piece)))
            m = concat(st.replacement, m);
          storage.push_back(std::move(m));
          const std::string_view v = storage.back();
          if (!st.flag) {
            next.push_back(v);
            break;
          }
          std::size_t start = 0;
          for (std::size_t hit = v.find(st.replacement, 1); hit != std::string_view::npos;
               hit = v.find(st.replacement, hit + 1)) {
            if (hit > start) next.push_back(v.substr(start, hit - start));
            start = hit;
          }
          if (start < v.size()) next.push_back(v.substr(start));
          break;
        }
      }
    }
    pieces.resize(base);
    pieces.insert(pieces.end(), next.begin(), next.end());
  }
  return byte_level;
}

std::string apply_decoders(std::vector<std::string> tokens, const std::vector<decoder_step>& steps) {
  if (steps.empty()) {
    std::string out;
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      if (k) out.push_back(' ');
      out += tokens[k];
    }
    return out;
  }
  for (const decoder_step& st : steps) {
    switch (st.t) {
      case decoder_step::type::byte_level: {
        std::string joined;
        for (const std::string& t : tokens) {
          if (auto b = unicode_string_to_bytes(t)) joined += *b;
          else joined += t;
        }
        tokens.assign(1, std::move(joined));
        break;
      }
      case decoder_step::type::replace:
        for (std::string& t : tokens) replace_all(t, st.a, st.b);
        break;
      case decoder_step::type::byte_fallback: {
        std::vector<std::string> out;
        std::string bytes;
        auto flush = [&] {
          if (bytes.empty()) return;
          if (utf8::is_valid(bytes)) out.push_back(bytes);
          else
            for (std::size_t k = 0; k < bytes.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
          bytes.clear();
        };
        for (std::string& t : tokens) {
          if (auto b = byte_token(t)) {
            bytes.push_back(static_cast<char>(*b));
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case decoder_step::type::fuse: {
        std::string joined;
        for (const std::string& t : tokens) joined += t;
        tokens.assign(1, std::move(joined));
        break;
      }
      case decoder_step::type::strip:
        for (std::string& t : tokens) {
          const std::vector<std::string_view> ch = chars_of(t);
          std::size_t b = 0, e = ch.size();
          while (b < st.start && b < e && ch[b] == st.a) ++b;
          for (std::size_t k = 0; k < st.stop && e > b && ch[e - 1] == st.a; ++k) --e;
          std::string s;
          for (std::size_t k = b; k < e; ++k) s += ch[k];
          t.swap(s);
        }
        break;
      case decoder_step::type::metaspace:
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          std::string s;
          for (std::string_view c : chars_of(tokens[i])) {
            if (c != st.a) s += c;
            else if (!(i == 0 && st.prepend)) s.push_back(' ');
          }
          tokens[i].swap(s);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace lrnn::tok::hf
