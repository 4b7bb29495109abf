// BPE model of tokenizer.json (see bpe_model.h): loading vocab and merges, and the
// per-word merge loop mirroring HF tokenizers' Word::merge_all.
#include "tokenizer/bpe_model.h"

#include "tokenizer/utf8.h"

#include <algorithm>
#include <cstring>

namespace lrnn::tok {

namespace {

struct byte_tables {
  std::array<char32_t, 256> to_char{};
  std::unordered_map<char32_t, unsigned char> to_byte;
  byte_tables() {
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable[b] ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<unsigned char>(b);
    }
  }
};

const byte_tables& tables() {
  static const byte_tables t;
  return t;
}

const io::json* field(const io::json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

result<bool> optional_bool(const io::json& obj, const char* key, bool fallback, const std::string& where) {
  const io::json* v = field(obj, key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_boolean())
    return make_error(status_code::parse_error, "{}: {}.{} is {}, expected a boolean", where, "model", key,
                      io::json_type_name(*v));
  return v->get<bool>();
}

// Ids must be small enough for dense tables; real vocabularies are dense from 0.
constexpr std::int64_t max_token_id = 1 << 24;

}  // namespace

char32_t byte_to_unicode(unsigned char b) { return tables().to_char[b]; }

std::optional<unsigned char> unicode_to_byte(char32_t cp) {
  const auto& m = tables().to_byte;
  auto it = m.find(cp);
  return it == m.end() ? std::nullopt : std::optional<unsigned char>(it->second);
}

std::string bytes_to_unicode_string(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8::append(out, byte_to_unicode(static_cast<unsigned char>(c)));
  return out;
}

std::optional<std::string> unicode_string_to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size();) {
    const utf8::decoded d = utf8::decode(token, i);
    if (d.cp == utf8::invalid) return std::nullopt;
    const auto b = unicode_to_byte(d.cp);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    i += d.len;
  }
  return out;
}

result<std::unique_ptr<bpe_model>> bpe_model::from_json(const io::json& model, const std::string& source) {
  auto m = std::make_unique<bpe_model>();
  const std::string where = source;
  if (const io::json* d = field(model, "dropout"); d && !d->is_null()) {
    if (!d->is_number()) return make_error(status_code::parse_error, "{}: model.dropout is {}, expected a number", where, io::json_type_name(*d));
    if (d->get<double>() != 0.0)
      return make_error(status_code::unsupported, "{}: BPE dropout {} is not supported (encoding must be deterministic)", where, d->get<double>());
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const io::json* v = field(model, key);
    if (v && !v->is_null() && !(v->is_string() && v->get_ref<const std::string&>().empty()))
      return make_error(status_code::unsupported, "{}: BPE model.{} is not supported", where, key);
  }
  LRNN_ASSIGN_OR_RETURN(m->byte_fallback_, optional_bool(model, "byte_fallback", false, where));
  LRNN_ASSIGN_OR_RETURN(m->fuse_unk_, optional_bool(model, "fuse_unk", false, where));
  LRNN_ASSIGN_OR_RETURN(m->ignore_merges_, optional_bool(model, "ignore_merges", false, where));

  const io::json* vocab = field(model, "vocab");
  if (!vocab || !vocab->is_object())
    return make_error(status_code::parse_error, "{}: model.vocab is {}, expected an object of token -> id", where,
                      vocab ? io::json_type_name(*vocab) : "missing");
  const std::int64_t id_limit = std::min<std::int64_t>(max_token_id, 4 * static_cast<std::int64_t>(vocab->size()) + 65536);
  m->vocab_.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const io::json& v = it.value();
    if (!v.is_number_integer())
      return make_error(status_code::parse_error, "{}: model.vocab['{}'] is {}, expected an integer id", where, it.key(),
                        io::json_type_name(v));
    const std::int64_t id = v.get<std::int64_t>();
    if (id < 0 || id >= id_limit)
      return make_error(status_code::parse_error, "{}: model.vocab['{}'] = {} is out of range [0, {})", where, it.key(), id, id_limit);
    const auto uid = static_cast<std::size_t>(id);
    if (uid >= m->tokens_.size()) {
      m->tokens_.resize(uid + 1);
      m->present_.resize(uid + 1, false);
    }
    m->tokens_[uid] = it.key();
    m->present_[uid] = true;
    m->vocab_[it.key()] = static_cast<token_id>(id);
  }
  for (const auto& [tok_str, id] : m->vocab_) {
    if (auto bytes = unicode_string_to_bytes(tok_str)) m->byte_vocab_.emplace(std::move(*bytes), id);
    const utf8::decoded d = utf8::decode(tok_str, 0);
    if (d.cp != utf8::invalid && d.len == tok_str.size()) m->char_ids_.insert_or_assign(d.cp, static_cast<std::uint64_t>(id));
  }
  m->all_bytes_present_ = true;
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::append(ch, byte_to_unicode(static_cast<unsigned char>(b)));
    auto it = m->vocab_.find(ch);
    m->byte_initial_[b] = it == m->vocab_.end() ? -1 : it->second;
    if (it == m->vocab_.end()) m->all_bytes_present_ = false;
    auto fb = m->vocab_.find(fmt::format("<0x{:02X}>", b));
    m->fallback_ids_[b] = fb == m->vocab_.end() ? -1 : fb->second;
  }

  if (const io::json* unk = field(model, "unk_token"); unk && !unk->is_null()) {
    if (!unk->is_string()) return make_error(status_code::parse_error, "{}: model.unk_token is {}, expected a string", where, io::json_type_name(*unk));
    auto it = m->vocab_.find(unk->get_ref<const std::string&>());
    // HF accepts an unk_token missing from the vocabulary and fails only when it is needed;
    // lrnn then drops the character, as HF does without an unk_token.
    if (it != m->vocab_.end()) m->unk_id_ = it->second;
  }

  const io::json* merges = field(model, "merges");
  if (merges && !merges->is_null() && !merges->is_array())
    return make_error(status_code::parse_error, "{}: model.merges is {}, expected an array", where, io::json_type_name(*merges));
  if (merges && merges->is_array()) {
    std::uint32_t rank = 0;
    for (const io::json& mj : *merges) {
      std::string a, b;
      if (mj.is_string()) {
        const std::string& s = mj.get_ref<const std::string&>();
        const std::size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          return make_error(status_code::parse_error, "{}: merge {} '{}' is not two tokens separated by one space", where, rank, s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
        a = mj[0].get<std::string>();
        b = mj[1].get<std::string>();
      } else {
        return make_error(status_code::parse_error, "{}: merge {} is {}, expected \"a b\" or [\"a\", \"b\"]", where, rank,
                          io::json_type_name(mj));
      }
      auto ia = m->vocab_.find(a), ib = m->vocab_.find(b), iab = m->vocab_.find(a + b);
      if (ia == m->vocab_.end() || ib == m->vocab_.end())
        return make_error(status_code::parse_error, "{}: merge {} ('{}', '{}') uses a token missing from model.vocab", where, rank, a, b);
      if (iab == m->vocab_.end())
        return make_error(status_code::parse_error, "{}: merge {} ('{}', '{}') makes '{}', which is missing from model.vocab", where,
                          rank, a, b, a + b);
      const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(ia->second)) << 32) |
                                static_cast<std::uint32_t>(ib->second);
      m->merges_.insert_or_assign(key, (static_cast<std::uint64_t>(rank) << 32) | static_cast<std::uint32_t>(iab->second));
      ++rank;
    }
  }
  return m;
}

void bpe_model::initial_symbols(std::string_view word, std::vector<token_id>& ids, std::vector<std::uint32_t>& lens) const {
  std::optional<std::pair<token_id, std::uint32_t>> unk;  // pending unknown run
  for (std::size_t i = 0; i < word.size();) {
    const utf8::decoded d = utf8::decode(word, i);
    const std::string_view s = word.substr(i, d.len);
    const auto n = static_cast<std::uint32_t>(d.len);
    i += d.len;
    if (const std::uint64_t* id = d.cp == utf8::invalid ? nullptr : char_ids_.find(d.cp)) {
      if (unk) {
        ids.push_back(unk->first);
        lens.push_back(unk->second);
        unk.reset();
      }
      ids.push_back(static_cast<token_id>(*id));
      lens.push_back(n);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && fallback_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : s) {
          ids.push_back(fallback_ids_[static_cast<unsigned char>(c)]);
          lens.push_back(1);
        }
        continue;
      }
    }
    if (unk_id_) {
      if (unk && fuse_unk_) {
        unk->second += n;
      } else {
        if (unk) {
          ids.push_back(unk->first);
          lens.push_back(unk->second);
        }
        unk = std::make_pair(*unk_id_, n);
      }
    }
  }
  if (unk) {
    ids.push_back(unk->first);
    lens.push_back(unk->second);
  }
}

// Repeatedly merges the adjacent pair of lowest rank, leftmost among equal ranks. This is
// the order HF's heap produces: its stale-entry check compares merged ids, and a pair at a
// position can only change into a longer string, hence a different id.
void bpe_model::merge_small(bpe_scratch& s, std::vector<token_id>& out) const {
  constexpr std::uint32_t none = ~std::uint32_t{0};
  std::vector<token_id>& ids = s.ids;
  std::vector<std::uint32_t>& ranks = s.ranks;
  std::vector<token_id>& merged = s.merged;
  std::size_t n = ids.size();
  ranks.resize(n);
  merged.resize(n);
  auto pair_rank = [&](std::size_t k) {
    const std::uint64_t* v = find_merge(ids[k], ids[k + 1]);
    ranks[k] = v ? static_cast<std::uint32_t>(*v >> 32) : none;
    merged[k] = v ? static_cast<token_id>(*v & 0xFFFFFFFFu) : 0;
  };
  for (std::size_t k = 0; k + 1 < n; ++k) pair_rank(k);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t k = 1; k + 1 < n; ++k)
      if (ranks[k] < ranks[best]) best = k;
    if (ranks[best] == none) break;
    ids[best] = merged[best];
    for (std::size_t k = best + 1; k + 1 < n; ++k) {
      ids[k] = ids[k + 1];
      ranks[k] = ranks[k + 1];
      merged[k] = merged[k + 1];
    }
    --n;
    if (best > 0) pair_rank(best - 1);
    if (best + 1 < n) pair_rank(best);
  }
  out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n));
}

// HF tokenizers' Word::merge_all: a min-heap of (rank, position) over a linked list.
void bpe_model::merge_heap(bpe_scratch& s, std::vector<token_id>& out) const {
  using candidate = bpe_scratch::candidate;
  const std::size_t n = s.ids.size();
  auto later = [](const candidate& a, const candidate& b) { return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos); };
  std::vector<bpe_scratch::symbol>& sym = s.sym;
  std::vector<candidate>& heap = s.heap;
  sym.resize(n);
  heap.clear();
  for (std::size_t k = 0; k < n; ++k)
    sym[k] = {s.ids[k], static_cast<std::int32_t>(k) - 1, k + 1 < n ? static_cast<std::int32_t>(k + 1) : -1, s.lens[k]};
  auto push = [&](std::int32_t pos, std::uint64_t v) {
    heap.push_back({static_cast<std::uint32_t>(v >> 32), pos, static_cast<token_id>(v & 0xFFFFFFFFu)});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (std::size_t k = 0; k + 1 < n; ++k)
    if (const std::uint64_t* v = find_merge(sym[k].id, sym[k + 1].id)) push(static_cast<std::int32_t>(k), *v);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const candidate top = heap.back();
    heap.pop_back();
    bpe_scratch::symbol& cur = sym[static_cast<std::size_t>(top.pos)];
    if (cur.len == 0 || cur.next < 0) continue;
    const std::int32_t next_pos = cur.next;
    const bpe_scratch::symbol right = sym[static_cast<std::size_t>(next_pos)];
    const std::uint64_t* v = find_merge(cur.id, right.id);
    if (!v || static_cast<token_id>(*v & 0xFFFFFFFFu) != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    sym[static_cast<std::size_t>(next_pos)].len = 0;
    if (right.next >= 0) sym[static_cast<std::size_t>(right.next)].prev = top.pos;
    if (cur.prev >= 0)
      if (const std::uint64_t* pv = find_merge(sym[static_cast<std::size_t>(cur.prev)].id, cur.id)) push(cur.prev, *pv);
    if (cur.next >= 0)
      if (const std::uint64_t* nv = find_merge(cur.id, sym[static_cast<std::size_t>(cur.next)].id)) push(top.pos, *nv);
  }
  for (std::size_t k = 0; k < n; ++k)
    if (sym[k].len != 0) out.push_back(sym[k].id);
}

void bpe_model::encode_symbols(std::string_view word, bool byte_level, std::vector<token_id>& out, bpe_scratch& s) const {
  if (ignore_merges_) {
    const string_id_map& m = byte_level ? byte_vocab_ : vocab_;
    if (auto it = m.find(word); it != m.end()) {
      out.push_back(it->second);
      return;
    }
  }
  s.ids.clear();
  s.lens.clear();
  if (byte_level && all_bytes_present_) {
    for (char c : word) s.ids.push_back(byte_initial_[static_cast<unsigned char>(c)]);
    s.lens.assign(s.ids.size(), 1);
  } else if (byte_level) {
    s.mapped = bytes_to_unicode_string(word);
    initial_symbols(s.mapped, s.ids, s.lens);
  } else {
    initial_symbols(word, s.ids, s.lens);
  }
  constexpr std::size_t small_word = 48;
  if (s.ids.size() <= 1 || merges_.size() == 0) out.insert(out.end(), s.ids.begin(), s.ids.end());
  else if (s.ids.size() <= small_word) merge_small(s, out);
  else merge_heap(s, out);
}

void bpe_model::encode_word(std::string_view word, bool byte_level, std::vector<token_id>& out, word_cache* cache,
                            bpe_scratch& scratch) const {
  if (word.empty()) return;
  const bool cacheable = cache && word.size() <= word_cache::max_word;
  std::uint64_t h = 0;
  if (cacheable) {
    h = word_cache::hash(word);
    if (cache->find(word, h, out)) return;
  }
  const std::size_t before = out.size();
  encode_symbols(word, byte_level, out, scratch);
  if (cacheable) cache->insert(word, h, out.data() + before, out.size() - before);
}

std::uint64_t word_cache::hash(std::string_view w) {
  std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ (w.size() * 0xC2B2AE3D27D4EB4FULL);
  std::size_t i = 0;
  for (; i + 8 <= w.size(); i += 8) {
    std::uint64_t v;
    std::memcpy(&v, w.data() + i, 8);
    h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
  }
  std::uint64_t v = 0;
  std::memcpy(&v, w.data() + i, w.size() - i);
  h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
  return h ^ (h >> 29);
}

bool word_cache::find(std::string_view word, std::uint64_t h, std::vector<token_id>& out) const {
  if (slots_.empty()) return false;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (!s.used) return false;
    if (s.hash == h && s.key_len == word.size() && std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
      out.insert(out.end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.ids_len);
      return true;
    }
  }
}

void word_cache::insert(std::string_view word, std::uint64_t h, const token_id* ids, std::size_t n) {
  if (word.size() > max_word || n > 0xFFFF) return;
  if (slots_.empty()) slots_.resize(2 * max_entries);
  if (count_ >= max_entries) {
    std::fill(slots_.begin(), slots_.end(), slot{});
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  while (slots_[i].used) i = (i + 1) & mask;
  slots_[i] = {h, static_cast<std::uint32_t>(keys_.size()), static_cast<std::uint32_t>(ids_.size()),
               static_cast<std::uint16_t>(word.size()), static_cast<std::uint16_t>(n), true};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + n);
  ++count_;
}

}  // namespace lrnn::tok
