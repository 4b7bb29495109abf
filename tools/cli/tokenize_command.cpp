// `lrnn tokenize`: encode text to ids or decode ids to text with any supported tokenizer
// (tokenizer.json, SentencePiece .model, RWKV world vocabulary, or a model directory);
// `--bench` measures single-threaded encode throughput on the input.
#include "command.h"

#include "io/json.h"
#include "tokenizer/file_util.h"
#include "tokenizer/tokenizer.h"

#include <chrono>
#include <cstdio>
#include <optional>

namespace lrnn::cli {

namespace {

struct tokenize_options {
  std::string tokenizer;
  std::optional<std::string> text, file;
  bool decode = false, json = false, add_special = false, no_parse_special = false, skip_special = false;
  bool info = false, bench = false, bench_lines = false;
  double bench_seconds = 2.0;
};

// Ids as written by `lrnn tokenize`: integers separated by spaces, commas or newlines,
// optionally inside [ ] or {"ids": [ ]}.
result<std::vector<tok::token_id>> parse_ids(const std::string& s) {
  std::string_view v = s;
  const std::size_t brace = v.find_first_not_of(" \t\r\n");
  if (brace != std::string_view::npos && v[brace] == '{') {
    LRNN_ASSIGN_OR_RETURN(const io::json j, io::parse_json(v, "ids"));
    auto it = j.find("ids");
    if (it == j.end() || !it->is_array()) return make_error(status_code::invalid_argument, "ids: expected {{\"ids\": [...]}}");
    std::vector<tok::token_id> ids;
    for (const io::json& e : *it) {
      if (!e.is_number_integer() || e.get<std::int64_t>() < INT32_MIN || e.get<std::int64_t>() > INT32_MAX)
        return make_error(status_code::invalid_argument, "ids: {} is not a token id", e.dump());
      ids.push_back(static_cast<tok::token_id>(e.get<std::int64_t>()));
    }
    return ids;
  }
  std::vector<tok::token_id> ids;
  std::size_t i = 0;
  auto sep = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '[' || c == ']'; };
  while (i < v.size()) {
    if (sep(v[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < v.size() && !sep(v[j])) ++j;
    const std::string word(v.substr(i, j - i));
    char* end = nullptr;
    const long long x = std::strtoll(word.c_str(), &end, 10);
    if (end != word.c_str() + word.size() || x < INT32_MIN || x > INT32_MAX)
      return make_error(status_code::invalid_argument, "'{}' is not a token id (expected integers separated by spaces)", word);
    ids.push_back(static_cast<tok::token_id>(x));
    i = j;
  }
  return ids;
}

// Encodes `text` in one call, or line by line (each line with its '\n'); returns the token count.
result<std::size_t> encode_all(const tok::tokenizer& t, std::string_view text, const tok::encode_options& eo, bool lines) {
  if (!lines) {
    LRNN_ASSIGN_OR_RETURN(const auto ids, t.encode(text, eo));
    return ids.size();
  }
  std::size_t n = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    end = end == std::string_view::npos ? text.size() : end + 1;
    LRNN_ASSIGN_OR_RETURN(const auto ids, t.encode(text.substr(pos, end - pos), eo));
    n += ids.size();
    pos = end;
  }
  return n;
}

status run_bench(const tok::tokenizer& t, const std::string& text, const tok::encode_options& eo, double seconds, bool lines) {
  if (text.empty()) return make_error(status_code::invalid_argument, "--bench needs non-empty input");
  using clock = std::chrono::steady_clock;
  // The first pass runs with an empty word cache ("cold"); the repetitions find it filled.
  const auto c0 = clock::now();
  LRNN_ASSIGN_OR_RETURN(const std::size_t warm, encode_all(t, text, eo, lines));
  const double cold = std::chrono::duration<double>(clock::now() - c0).count();
  std::size_t reps = 0;
  double best = 1e30, total = 0;
  while (total < seconds || reps < 3) {
    const auto t0 = clock::now();
    LRNN_ASSIGN_OR_RETURN(const std::size_t count, encode_all(t, text, eo, lines));
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (count != warm) return make_error(status_code::internal, "encode is not deterministic");
    best = std::min(best, dt);
    total += dt;
    ++reps;
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("tokenizer: %s\nbytes: %zu  tokens: %zu  reps: %zu\n"
              "encode%s: cold %.2f MB/s, warm best %.2f MB/s, mean %.2f MB/s, %.0f tokens/s (1 thread)\n",
              t.describe().c_str(), text.size(), warm, reps, lines ? " line by line" : "", mb / cold, mb / best,
              mb * static_cast<double>(reps) / total, static_cast<double>(warm) / best);
  return {};
}

status run_tokenize(const tokenize_options& o) {
  LRNN_ASSIGN_OR_RETURN(const auto t, tok::load_tokenizer(o.tokenizer));
  if (o.info) {
    const tok::special_ids& s = t->specials();
    auto show = [&](const char* name, std::optional<tok::token_id> id) {
      if (id) std::printf("%s: %d %s\n", name, *id, t->id_to_token(*id).value_or("?").c_str());
    };
    std::printf("%s\nkind: %s\nvocab_size: %zu\n", t->describe().c_str(), tok::tokenizer_kind_name(t->kind()), t->vocab_size());
    show("bos", s.bos);
    show("eos", s.eos);
    show("pad", s.pad);
    show("unk", s.unk);
    if (!o.text && !o.file) return {};
  }
  if (!o.text && !o.file) return make_error(status_code::invalid_argument, "give the input with --text or --file");
  std::string input;
  if (o.text) {
    input = *o.text;
  } else {
    LRNN_ASSIGN_OR_RETURN(input, tok::read_file_bytes(*o.file));
  }
  tok::encode_options eo;
  eo.add_special = o.add_special;
  eo.parse_special = !o.no_parse_special;
  if (o.bench || o.bench_lines) return run_bench(*t, input, eo, o.bench_seconds, o.bench_lines);
  if (o.decode) {
    LRNN_ASSIGN_OR_RETURN(const auto ids, parse_ids(input));
    tok::decode_options dopt;
    dopt.skip_special = o.skip_special;
    LRNN_ASSIGN_OR_RETURN(const std::string text, t->decode(ids, dopt));
    if (o.json) {
      const io::json j = {{"text", text}};
      std::printf("%s\n", j.dump(-1, ' ', false, io::json::error_handler_t::replace).c_str());
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
    }
    return {};
  }
  LRNN_ASSIGN_OR_RETURN(const auto ids, t->encode(input, eo));
  if (o.json) {
    const io::json j = {{"ids", ids}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::string line;
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if (k) line.push_back(' ');
      line += std::to_string(ids[k]);
    }
    std::printf("%s\n", line.c_str());
  }
  return {};
}

runner setup_tokenize(CLI::App& app, const global_options&) {
  auto o = std::make_shared<tokenize_options>();
  app.add_option("--tokenizer", o->tokenizer,
                 "tokenizer.json, SentencePiece .model, RWKV vocabulary .txt, or a model directory")
      ->required();
  auto* text = app.add_option("--text", o->text, "input text (ids with --decode)");
  auto* file = app.add_option("--file", o->file, "read the input from this file");
  text->excludes(file);
  app.add_flag("--decode", o->decode, "decode ids (integers, JSON array or {\"ids\": [...]}) to text");
  app.add_flag("--json", o->json, "print {\"ids\": [...]} or {\"text\": ...}");
  app.add_flag("--add-special", o->add_special, "add the tokens the tokenizer puts around a sequence (e.g. BOS)");
  app.add_flag("--no-parse-special", o->no_parse_special, "encode special tokens written in the text as plain text");
  app.add_flag("--skip-special", o->skip_special, "leave special tokens out of decoded text");
  app.add_flag("--info", o->info, "print the tokenizer's kind, size and special tokens");
  app.add_flag("--bench", o->bench, "measure encode throughput (MB/s, one thread) on the input");
  app.add_flag("--bench-lines", o->bench_lines, "like --bench, one encode call per line");
  app.add_option("--bench-seconds", o->bench_seconds, "time to spend in --bench")->check(CLI::PositiveNumber);
  return [o] { return run_tokenize(*o); };
}

}  // namespace

LRNN_CLI_COMMAND(tokenize, "tokenize", "Encode text to token ids or decode ids to text", setup_tokenize);

}  // namespace lrnn::cli
