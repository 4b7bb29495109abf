// Corpus reading, tokenization into shards, the train/validation split and batch sampling (data.h).
#include "train/data.h"

#include "io/json.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lrnn::train {

namespace fs = std::filesystem;

uint64_t fnv1a(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string binary_reason(std::string_view s) {
  std::size_t nul = 0, invalid = 0;
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) ++nul;
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      ++invalid;
      ++i;
    } else {
      i += static_cast<std::size_t>(len);
    }
  }
  if (nul) return fmt::format("{} NUL byte{}", nul, nul == 1 ? "" : "s");
  if (invalid * 10 > s.size()) return fmt::format("{} of {} bytes are not valid UTF-8", invalid, s.size());
  return {};
}

namespace {

result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(status_code::io_error, "{}: cannot open ({})", path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return make_error(status_code::io_error, "{}: read failed", path);
  return ss.str();
}

}  // namespace

result<corpus> read_corpus(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return make_error(status_code::not_found, "data.path '{}': no such file or folder", path);
  corpus c;
  if (fs::is_directory(st)) {
    std::vector<std::string> files;
    for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) files.push_back(it->path().string());
    }
    if (ec) return make_error(status_code::io_error, "data.path '{}': cannot list ({})", path, ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      LRNN_ASSIGN_OR_RETURN(std::string t, read_file(f));
      if (t.empty() || !binary_reason(t).empty()) {
        c.skipped.push_back(f);
        continue;
      }
      if (!c.text.empty() && c.text.back() != '\n') c.text.push_back('\n');
      c.text += t;
      c.files.push_back(f);
    }
    if (c.text.empty())
      return make_error(status_code::invalid_argument, "data.path '{}': the folder holds no text ({} file(s), all empty or binary)", path,
                        files.size());
  } else {
    LRNN_ASSIGN_OR_RETURN(c.text, read_file(path));
    if (c.text.empty()) return make_error(status_code::invalid_argument, "data.path '{}': the corpus is empty", path);
    const std::string why = binary_reason(c.text);
    if (!why.empty()) return make_error(status_code::invalid_argument, "data.path '{}': looks like a binary file ({}), expected UTF-8 text", path, why);
    c.files.push_back(path);
  }
  return c;
}

status write_token_file(const std::string& path, const std::vector<uint32_t>& tokens, int width) {
  std::string bytes(tokens.size() * static_cast<std::size_t>(width), '\0');
  for (std::size_t i = 0; i < tokens.size(); ++i)
    for (int k = 0; k < width; ++k) bytes[i * width + k] = static_cast<char>((tokens[i] >> (8 * k)) & 0xff);
  return write_file_atomic(path, bytes);
}

result<std::vector<uint32_t>> read_token_file(const std::string& path, int width) {
  LRNN_ASSIGN_OR_RETURN(const std::string bytes, read_file(path));
  if (bytes.size() % static_cast<std::size_t>(width) != 0)
    return make_error(status_code::parse_error, "{}: {} bytes is not a whole number of {}-byte tokens", path, bytes.size(), width);
  std::vector<uint32_t> t(bytes.size() / static_cast<std::size_t>(width));
  for (std::size_t i = 0; i < t.size(); ++i) {
    uint32_t x = 0;
    for (int k = 0; k < width; ++k) x |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i * width + k])) << (8 * k);
    t[i] = x;
  }
  return t;
}

void split_train_val(const std::vector<uint32_t>& tokens, double f, std::vector<uint32_t>& train, std::vector<uint32_t>& val) {
  constexpr std::size_t block = 4096;
  train.clear();
  val.clear();
  const std::size_t nblocks = (tokens.size() + block - 1) / block;
  // With fewer blocks than 1/f the rule would give validation nothing: use the last block then.
  const bool tail_only = static_cast<double>(nblocks) * f < 1.0;
  for (std::size_t i = 0; i < nblocks; ++i) {
    const auto begin = tokens.begin() + static_cast<std::ptrdiff_t>(i * block);
    const auto end = tokens.begin() + static_cast<std::ptrdiff_t>(std::min(tokens.size(), (i + 1) * block));
    const bool to_val = tail_only ? false : std::floor((i + 1) * f) > std::floor(i * f);
    (to_val ? val : train).insert((to_val ? val : train).end(), begin, end);
  }
  if (tail_only) {  // the last ceil(f * n) tokens
    const std::size_t n = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(f * static_cast<double>(tokens.size()))));
    const std::size_t cut = tokens.size() - std::min(n, tokens.size());
    val.assign(train.begin() + static_cast<std::ptrdiff_t>(cut), train.end());
    train.resize(cut);
  }
}

std::string dataset_fingerprint(const corpus& c, const data_config& cfg) {
  const std::string settings = fmt::format("tokenizer={};vocab={};val={}", cfg.tokenizer, cfg.tokenizer == "bpe" ? cfg.vocab_size : 256,
                                           cfg.val_fraction);
  return fmt::format("{:016x}-{:016x}", fnv1a(c.text), fnv1a(settings));
}

result<dataset> prepare_dataset(const data_config& cfg, const std::string& data_dir, const std::string& tokenizer_json) {
  LRNN_ASSIGN_OR_RETURN(corpus c, read_corpus(cfg.path));
  dataset d;
  d.tokenizer = cfg.tokenizer;
  d.fingerprint = dataset_fingerprint(c, cfg);

  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return make_error(status_code::io_error, "{}: cannot create ({})", data_dir, ec.message());
  const std::string meta_path = data_dir + "/data.json";

  // Reuse shards made from the same corpus with the same settings.
  if (fs::exists(meta_path)) {
    auto meta = io::read_json_file(meta_path);
    if (meta.ok() && meta.value().is_object() && meta.value().value("fingerprint", "") == d.fingerprint) {
      const io::json& m = meta.value();
      const int width = m.value("dtype", "") == "uint16" ? 2 : 4;
      auto tj = read_file(data_dir + "/tokenizer.json");
      auto tr = read_token_file(data_dir + "/train.bin", width);
      auto va = read_token_file(data_dir + "/val.bin", width);
      // A resumed run reuses the shards only when they were made with its own tokenizer.
      const bool same_tokenizer = tokenizer_json.empty() || (tj.ok() && tj.value() == tokenizer_json);
      if (same_tokenizer && tj.ok() && tr.ok() && va.ok() && static_cast<int64_t>(tr.value().size()) == m.value("train_tokens", int64_t{-1}) &&
          static_cast<int64_t>(va.value().size()) == m.value("val_tokens", int64_t{-1})) {
        d.tokenizer_json = std::move(tj).value();
        d.train = std::move(tr).value();
        d.val = std::move(va).value();
        d.vocab_size = m.value("vocab_size", int64_t{0});
        d.val_bytes = m.value("val_bytes", 0.0);
        d.reused = true;
        return d;
      }
    }
  }

  if (!tokenizer_json.empty()) {
    d.tokenizer_json = tokenizer_json;
  } else if (cfg.tokenizer == "bpe") {
    LRNN_ASSIGN_OR_RETURN(tok::bpe_training_result bpe, tok::train_byte_level_bpe(c.text, static_cast<std::size_t>(cfg.vocab_size)));
    d.tokenizer_json = std::move(bpe.tokenizer_json);
  } else {
    d.tokenizer_json = tok::byte_level_tokenizer_json({});
  }
  LRNN_TRY(write_file_atomic(data_dir + "/tokenizer.json", d.tokenizer_json));
  LRNN_ASSIGN_OR_RETURN(auto tk, tok::load_tokenizer(data_dir + "/tokenizer.json"));
  d.vocab_size = static_cast<int64_t>(tk->vocab_size());

  std::vector<uint32_t> all;
  std::vector<uint32_t> byte_count;  // UTF-8 bytes behind each token (for bits per byte)
  if (cfg.tokenizer == "byte" && tokenizer_json.empty()) {
    all.assign(c.text.begin(), c.text.end());
    for (auto& t : all) t &= 0xff;
  } else {
    // Line by line keeps memory small; the pre-tokenizer never joins across '\n' boundaries
    // that matter for counting (the shard is the concatenation of the line encodings).
    std::size_t pos = 0;
    while (pos < c.text.size()) {
      std::size_t end = c.text.find('\n', pos);
      end = end == std::string::npos ? c.text.size() : end + 1;
      LRNN_ASSIGN_OR_RETURN(auto ids, tk->encode(std::string_view(c.text).substr(pos, end - pos)));
      for (auto id : ids) all.push_back(static_cast<uint32_t>(id));
      pos = end;
    }
  }
  split_train_val(all, cfg.val_fraction, d.train, d.val);
  {
    std::vector<tok::token_id> v(d.val.begin(), d.val.end());
    LRNN_ASSIGN_OR_RETURN(const std::string text, tk->decode(v));
    d.val_bytes = static_cast<double>(text.size());
  }
  const int width = d.vocab_size <= 65535 ? 2 : 4;
  LRNN_TRY(write_token_file(data_dir + "/train.bin", d.train, width));
  LRNN_TRY(write_token_file(data_dir + "/val.bin", d.val, width));
  io::json meta;
  meta["format"] = "lrnn-tokens-v1";
  meta["dtype"] = width == 2 ? "uint16" : "uint32";
  meta["vocab_size"] = d.vocab_size;
  meta["tokenizer"] = cfg.tokenizer;
  meta["train_tokens"] = d.train.size();
  meta["val_tokens"] = d.val.size();
  meta["val_bytes"] = d.val_bytes;
  meta["corpus_bytes"] = c.text.size();
  meta["files"] = c.files;
  meta["skipped_files"] = c.skipped;
  meta["fingerprint"] = d.fingerprint;
  LRNN_TRY(write_file_atomic(meta_path, meta.dump(1) + "\n"));
  return d;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

status check_batch(const std::vector<uint32_t>& tokens, int64_t T, const char* which) {
  if (static_cast<int64_t>(tokens.size()) < T + 1)
    return make_error(status_code::invalid_argument,
                      "the {} split has {} tokens, fewer than batch.seq_len + 1 = {}: use a larger corpus, a shorter seq_len{}", which,
                      tokens.size(), T + 1, std::string(which) == "validation" ? " or a larger data.val_fraction" : "");
  return {};
}

status fill_rows(const std::vector<uint32_t>& tokens, int64_t B, int64_t T, const std::vector<int64_t>& starts, tensor& ids, tensor& targets) {
  if (!ids.defined() || ids.shape() != shape_t{B, T}) {
    LRNN_ASSIGN_OR_RETURN(ids, tensor::empty({B, T}, dtype::i64));
  }
  if (!targets.defined() || targets.shape() != shape_t{B, T}) {
    LRNN_ASSIGN_OR_RETURN(targets, tensor::empty({B, T}, dtype::i64));
  }
  int64_t* x = ids.data<int64_t>();
  int64_t* y = targets.data<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      x[b * T + t] = tokens[static_cast<std::size_t>(starts[b] + t)];
      y[b * T + t] = tokens[static_cast<std::size_t>(starts[b] + t + 1)];
    }
  return {};
}

}  // namespace

status sample_batch(const std::vector<uint32_t>& tokens, int64_t B, int64_t T, uint64_t seed, int64_t step, int64_t micro, tensor& ids,
                    tensor& targets) {
  LRNN_TRY(check_batch(tokens, T, "training"));
  const uint64_t range = tokens.size() - static_cast<uint64_t>(T);  // starts in [0, n - T - 1]
  std::vector<int64_t> starts(static_cast<std::size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t h = splitmix64(splitmix64(splitmix64(seed ^ 0x5851f42d4c957f2dull) ^ static_cast<uint64_t>(step)) ^
                                  (static_cast<uint64_t>(micro) << 32 | static_cast<uint64_t>(b)));
    starts[static_cast<std::size_t>(b)] = static_cast<int64_t>(h % range);
  }
  return fill_rows(tokens, B, T, starts, ids, targets);
}

status validation_batch(const std::vector<uint32_t>& tokens, int64_t B, int64_t T, int64_t index, int64_t count, tensor& ids, tensor& targets) {
  LRNN_TRY(check_batch(tokens, T, "validation"));
  const int64_t range = static_cast<int64_t>(tokens.size()) - T;  // starts in [0, range - 1]
  const int64_t rows = B * count;
  std::vector<int64_t> starts(static_cast<std::size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = index * B + b;
    starts[static_cast<std::size_t>(b)] = static_cast<int64_t>((static_cast<double>(r) / static_cast<double>(rows)) * static_cast<double>(range - 1));
  }
  return fill_rows(tokens, B, T, starts, ids, targets);
}

}  // namespace lrnn::train
