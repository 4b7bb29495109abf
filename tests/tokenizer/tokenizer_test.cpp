// Tokenizer unit tests: UTF-8 helpers, Unicode normalization, the pre-tokenizer pattern
// matchers, RWKV literal parsing, special tokens, empty input, the streaming decoder,
// model-directory discovery, error messages for unsupported or malformed files, and the
// `lrnn tokenize` command.
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/rwkv_tokenizer.h"
#include "tokenizer/split_patterns.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

#include "io/json.h"
#include "tokenizer/file_util.h"

#include "support/run_cli.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <random>
#include <thread>

namespace lrnn::tok {
namespace {

namespace fs = std::filesystem;
const std::string data_dir = LRNN_TEST_DATA_DIR;

std::unique_ptr<tokenizer> must_load(const std::string& path) {
  auto t = load_tokenizer(path);
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<std::string> split(std::string_view s, split_pattern p) {
  std::vector<std::string_view> v;
  split_isolated(s, p, v);
  return {v.begin(), v.end()};
}

// A fresh directory under the build's temp folder, removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() / ("lrnn_tok_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
};

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

std::string fixture_json() {
  auto s = read_file_bytes(data_dir + "/tok_bpe/tokenizer.json");
  EXPECT_TRUE(s.ok());
  return s.ok() ? *s : std::string();
}

TEST(tokenizer_utf8, lossy_repair_and_incomplete_tails) {
  EXPECT_EQ(utf8::to_valid_lossy("abc"), "abc");
  EXPECT_EQ(utf8::to_valid_lossy("a\xE2\x82z"), "a\xEF\xBF\xBDz");  // one U+FFFD for a maximal subpart
  EXPECT_EQ(utf8::to_valid_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::to_valid_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8::incomplete_tail("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("ab\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_tail("ab\xE2\x82\xAC"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("ab\x80"), 0u);      // a stray continuation byte is not incomplete
  EXPECT_EQ(utf8::incomplete_tail("ab\xE0\x80"), 0u);  // E0 80 can never be completed
  EXPECT_TRUE(utf8::is_valid("日本語🙂"));
  EXPECT_FALSE(utf8::is_valid("\xF4\x90\x80\x80"));  // past U+10FFFF
}

TEST(tokenizer_unicode, normalization_forms) {
  struct row {
    const char *in, *nfc, *nfd, *nfkc, *nfkd;
  };
  const row rows[] = {
      {"e\xCC\x81", "\xC3\xA9", "e\xCC\x81", "\xC3\xA9", "e\xCC\x81"},
      {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81", "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81",
       "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"},
      {"a\xCC\x81\xCC\xA8", "\xC4\x85\xCC\x81", "a\xCC\xA8\xCC\x81", "\xC4\x85\xCC\x81", "a\xCC\xA8\xCC\x81"},  // reordering
      {"\xE2\x84\xAB", "\xC3\x85", "A\xCC\x8A", "\xC3\x85", "A\xCC\x8A"},                                     // singleton
      {"\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC", "\xE0\xA4\x95\xE0\xA4\xBC", "\xE0\xA4\x95\xE0\xA4\xBC",
       "\xE0\xA4\x95\xE0\xA4\xBC"},  // composition exclusion
      {"\xEF\xAC\x81", "\xEF\xAC\x81", "\xEF\xAC\x81", "fi", "fi"},
      {"\xE1\xBA\x9B\xCC\xA3", "\xE1\xBA\x9B\xCC\xA3", "\xC5\xBF\xCC\xA3\xCC\x87", "\xE1\xB9\xA9", "s\xCC\xA3\xCC\x87"},
      {"\xC2\xBD", "\xC2\xBD", "\xC2\xBD", "1\xE2\x81\x84" "2", "1\xE2\x81\x84" "2"},
      {"\xE3\x80\x80", "\xE3\x80\x80", "\xE3\x80\x80", " ", " "},
      {"x\xFFy\xCC\x81", "x\xFF\xC3\xBD", "x\xFFy\xCC\x81", "x\xFF\xC3\xBD", "x\xFFy\xCC\x81"},  // invalid byte passes
  };
  for (const row& r : rows) {
    EXPECT_EQ(normalize(r.in, normal_form::nfc), r.nfc) << r.in;
    EXPECT_EQ(normalize(r.in, normal_form::nfd), r.nfd) << r.in;
    EXPECT_EQ(normalize(r.in, normal_form::nfkc), r.nfkc) << r.in;
    EXPECT_EQ(normalize(r.in, normal_form::nfkd), r.nfkd) << r.in;
  }
  // Every code point: NFC and NFD are idempotent and NFC(NFD(x)) == NFC(x).
  for (char32_t cp = 0xA0; cp < 0x30000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s;
    utf8::append(s, cp);
    const std::string c = normalize(s, normal_form::nfc), d = normalize(s, normal_form::nfd);
    ASSERT_EQ(normalize(c, normal_form::nfc), c) << std::hex << static_cast<std::uint32_t>(cp);
    ASSERT_EQ(normalize(d, normal_form::nfd), d) << std::hex << static_cast<std::uint32_t>(cp);
    ASSERT_EQ(normalize(d, normal_form::nfc), c) << std::hex << static_cast<std::uint32_t>(cp);
  }
}

TEST(tokenizer_split, gpt2_pattern) {
  using v = std::vector<std::string>;
  EXPECT_EQ(split("Hello world's  end", split_pattern::gpt2), (v{"Hello", " world", "'s", " ", " end"}));
  EXPECT_EQ(split("a  \n\tb   ", split_pattern::gpt2), (v{"a", "  \n", "\t", "b", "   "}));
  EXPECT_EQ(split(" 123abc!!?  ", split_pattern::gpt2), (v{" 123", "abc", "!!?", "  "}));
  EXPECT_EQ(split("I'M", split_pattern::gpt2), (v{"I", "'", "M"}));  // case-sensitive
  EXPECT_EQ(split("x\xFF\xFEy", split_pattern::gpt2), (v{"x", "\xFF\xFE", "y"}));
  EXPECT_TRUE(split("", split_pattern::gpt2).empty());
}

TEST(tokenizer_split, llama3_and_qwen2_patterns) {
  using v = std::vector<std::string>;
  EXPECT_EQ(split("I'M don't 12345", split_pattern::llama3), (v{"I", "'M", " don", "'t", " ", "123", "45"}));
  EXPECT_EQ(split("12345", split_pattern::qwen2), (v{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split("(hello) \n\n  x", split_pattern::llama3), (v{"(hello", ")", " \n\n", " ", " x"}));
  EXPECT_EQ(split("a.\r\n\r\nb", split_pattern::llama3), (v{"a", ".\r\n\r\n", "b"}));
  EXPECT_EQ(split("\tword", split_pattern::llama3), (v{"\tword"}));
  EXPECT_EQ(split("'\xC5\xBF", split_pattern::llama3), (v{"'\xC5\xBF"}));  // (?i) 's matches long s
}

TEST(tokenizer_split, regex_strings_are_recognised) {
  for (split_pattern p : {split_pattern::gpt2, split_pattern::llama3, split_pattern::qwen2})
    EXPECT_EQ(split_pattern_from_regex(split_pattern_regex(p)), p);
  EXPECT_FALSE(split_pattern_from_regex(R"(\w+|[^\w\s]+)"));
}

TEST(tokenizer_rwkv, python_literals) {
  EXPECT_EQ(*parse_python_literal(R"('abc')"), "abc");
  EXPECT_EQ(*parse_python_literal(R"("it's")"), "it's");
  EXPECT_EQ(*parse_python_literal(R"('\n\t\\\'\x41\u00e9')"), "\n\t\\'A\xC3\xA9");
  EXPECT_EQ(*parse_python_literal(R"(b'\x00\xff')"), std::string("\x00\xFF", 2));
  EXPECT_EQ(*parse_python_literal(R"(b'\u1234')"), "\\u1234");
  EXPECT_EQ(*parse_python_literal("'\xE6\x97\xA5'"), "\xE6\x97\xA5");
  EXPECT_EQ(*parse_python_literal(R"('\U0001F642')"), "\xF0\x9F\x99\x82");
  for (const char* bad : {"abc", "'abc", "'a'b'", R"('\x4')", R"('\ud800')", "b'\xC3\xA9'", "'\\'", R"('\U00110000')"})
    EXPECT_FALSE(parse_python_literal(bad).ok()) << bad;
}

TEST(tokenizer_rwkv, vocabulary_errors_name_the_line) {
  auto check = [](const std::string& text, const std::string& expect) {
    auto t = load_rwkv_tokenizer_from_text(text, "vocab.txt");
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.error().message().find(expect), std::string::npos) << t.error().message();
  };
  check("1 'a' 2\n", "vocab.txt:1: token 1 has 1 bytes but the length field says 2");
  check("1 'a' 1\n1 'b' 1\n", "vocab.txt:2: token id 1 appears twice");
  check("1 'a' 1\n2 'a' 1\n", "repeats the bytes");
  check("x 'a' 1\n", "bad token id");
  check("1 'a'\n", "fewer than three fields");
  check("", "no tokens");
  check("99999999 'a' 1\n", "bad token id");
}

TEST(tokenizer_rwkv, greedy_longest_match_and_bytes) {
  auto t = load_rwkv_tokenizer_from_text("1 'a' 1\n2 'b' 1\n3 'ab' 2\n4 'abb' 3\n5 b'\\xff' 1\n", "v");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*(*t)->encode("abbab\xFF"), (std::vector<token_id>{4, 3, 5}));
  EXPECT_EQ(*(*t)->decode(std::vector<token_id>{4, 0, 5}), "abb\xFF");
  EXPECT_FALSE((*t)->encode("abc").ok());  // 'c' has no token
  EXPECT_FALSE((*t)->decode(std::vector<token_id>{6}).ok());
  EXPECT_EQ((*t)->specials().eos, 0);
}

TEST(tokenizer_special, added_tokens_match_before_bpe) {
  auto t = must_load(data_dir + "/tokenizer/bpe_llama3.json");
  ASSERT_TRUE(t);
  const token_id bot = *t->token_to_id("<|begin_of_text|>");
  const token_id eot = *t->token_to_id("<|eot_id|>");
  EXPECT_TRUE(t->is_special(bot));
  EXPECT_FALSE(t->is_special(*t->token_to_id("<tool>")));
  auto ids = *t->encode("<|begin_of_text|>hi<|eot_id|>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), bot);
  EXPECT_EQ(ids.back(), eot);
  EXPECT_EQ(*t->decode(ids), "<|begin_of_text|>hi<|eot_id|>");
  decode_options skip;
  skip.skip_special = true;
  EXPECT_EQ(*t->decode(ids, skip), "hi");
  encode_options plain;
  plain.parse_special = false;
  auto as_text = *t->encode("<|eot_id|>", plain);
  EXPECT_GT(as_text.size(), 1u);
  EXPECT_EQ(*t->decode(as_text), "<|eot_id|>");
  encode_options with_bos;
  with_bos.add_special = true;
  EXPECT_EQ(t->encode("hi", with_bos)->front(), bot);
  EXPECT_EQ(t->specials().bos, bot);
}

TEST(tokenizer_special, empty_input_and_bad_ids) {
  for (const std::string& path : {data_dir + "/tok_bpe/tokenizer.json", data_dir + "/tok_spm/tokenizer.model",
                                  data_dir + "/tokenizer/rwkv_vocab_test.txt", data_dir + "/tokenizer/bpe_llama2.json"}) {
    auto t = must_load(path);
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->encode("")->empty()) << path;
    EXPECT_EQ(*t->decode(std::vector<token_id>{}), "") << path;
    const auto bad = t->decode(std::vector<token_id>{static_cast<token_id>(t->vocab_size())});
    ASSERT_FALSE(bad.ok()) << path;
    EXPECT_EQ(bad.error().code(), status_code::invalid_argument);
    EXPECT_FALSE(t->decode(std::vector<token_id>{-1}).ok()) << path;
    EXPECT_FALSE(t->describe().empty());
  }
}

TEST(tokenizer_stream, never_splits_a_character) {
  // Byte-level BPE splits these characters into byte tokens; the stream must hold them back.
  for (const std::string& path : {data_dir + "/tok_bpe/tokenizer.json", data_dir + "/tok_spm/tokenizer.model",
                                  data_dir + "/tokenizer/rwkv_vocab_test.txt", data_dir + "/tokenizer/bpe_llama2.json",
                                  data_dir + "/tokenizer/bpe_metaspace.json"}) {
    auto t = must_load(path);
    ASSERT_TRUE(t);
    const std::string text = "Grüße 日本語 🙂👨‍👩‍👧 e\xCC\x81 and more words to pass the window of eight ids, ok?";
    const auto ids = *t->encode(text);
    stream_decoder sd(*t);
    std::string joined;
    for (token_id id : ids) {
      auto piece = sd.put(id);
      ASSERT_TRUE(piece.ok());
      EXPECT_TRUE(utf8::is_valid(*piece)) << path;
      joined += *piece;
    }
    joined += sd.flush();
    EXPECT_EQ(joined, utf8::to_valid_lossy(*t->decode(ids))) << path;
  }
}

TEST(tokenizer_stream, bad_id_is_reported_and_skipped) {
  auto t = must_load(data_dir + "/tok_bpe/tokenizer.json");
  ASSERT_TRUE(t);
  stream_decoder sd(*t);
  EXPECT_EQ(*sd.put(39), "H");
  EXPECT_EQ(sd.put(100000).error().code(), status_code::invalid_argument);
  EXPECT_EQ(*sd.put(463), "el");
}

TEST(tokenizer_stream, invalid_bytes_become_replacement_characters) {
  auto t = must_load(data_dir + "/tok_bpe/tokenizer.json");
  ASSERT_TRUE(t);
  const std::string text = "ok\xE2\x82 then\xFF end \xF0\x9F";  // invalid in the middle, incomplete at the end
  const auto ids = *t->encode(text);
  EXPECT_EQ(*t->decode(ids), text);
  stream_decoder sd(*t);
  std::string joined;
  for (token_id id : ids) joined += *sd.put(id);
  EXPECT_EQ(joined, "ok\xEF\xBF\xBD then\xEF\xBF\xBD end ");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.flush(), "");
}

TEST(tokenizer_threads, concurrent_encodes_agree_with_serial) {
  auto t = must_load(data_dir + "/tokenizer/bpe_llama3.json");
  ASSERT_TRUE(t);
  std::vector<std::string> texts;
  for (int k = 0; k < 200; ++k)
    texts.push_back("line " + std::to_string(k * 7919) + " of some text, with words like tokenizer" + std::string(k % 7, ' ') +
                    "日本" + std::to_string(k));
  std::vector<std::vector<token_id>> serial;
  for (const std::string& s : texts) serial.push_back(*t->encode(s));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 5; ++rep)
        for (std::size_t k = w; k < texts.size(); ++k)
          if (*t->encode(texts[k]) != serial[k]) ++mismatches;
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(tokenizer_load, added_token_ids_follow_hf) {
  io::json j = *io::parse_json(fixture_json(), "fixture");
  const std::size_t n = j["model"]["vocab"].size();
  // The file's ids are ignored: "Hello" is in the vocabulary, the others come after it.
  j["added_tokens"] = {{{"id", 5}, {"content", "<a>"}, {"special", true}},
                       {{"id", 0}, {"content", "!"}, {"special", true}},
                       {{"id", 7}, {"content", "<b>"}, {"special", false}}};
  auto t = load_hf_tokenizer_from_json(j.dump(), "tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ((*t)->token_to_id("<a>"), static_cast<token_id>(n));
  EXPECT_EQ((*t)->token_to_id("!"), 0);
  EXPECT_EQ((*t)->token_to_id("<b>"), static_cast<token_id>(n + 1));
  EXPECT_EQ((*t)->vocab_size(), n + 2);
  EXPECT_EQ(*(*t)->encode("<a>x<b>"), (std::vector<token_id>{static_cast<token_id>(n), 87, static_cast<token_id>(n + 1)}));
}

TEST(tokenizer_load, model_directory_discovery) {
  temp_dir d;
  auto none = load_tokenizer_for_model_dir(d.path.string());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), status_code::not_found);
  EXPECT_NE(none.error().message().find("--tokenizer"), std::string::npos);

  fs::copy_file(data_dir + "/tokenizer/rwkv_vocab_test.txt", d.path / "rwkv_vocab_v20230424.txt");
  EXPECT_EQ((*load_tokenizer_for_model_dir(d.path.string()))->kind(), tokenizer_kind::rwkv_world);
  fs::copy_file(data_dir + "/tok_spm/tokenizer.model", d.path / "tokenizer.model");
  EXPECT_EQ((*load_tokenizer_for_model_dir(d.path.string()))->kind(), tokenizer_kind::sentencepiece);

  // An unsupported tokenizer.json falls back to tokenizer.model.
  io::json j = *io::parse_json(fixture_json(), "fixture");
  j["normalizer"] = {{"type", "Lowercase"}};
  write_file(d.path / "tokenizer.json", j.dump());
  EXPECT_EQ((*load_tokenizer_for_model_dir(d.path.string()))->kind(), tokenizer_kind::sentencepiece);

  fs::copy_file(data_dir + "/tok_bpe/tokenizer.json", d.path / "tokenizer.json", fs::copy_options::overwrite_existing);
  write_file(d.path / "tokenizer_config.json", R"({"eos_token": {"content": "!"}, "bos_token": "\""})");
  auto t = load_tokenizer_for_model_dir(d.path.string());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->kind(), tokenizer_kind::bpe_json);
  EXPECT_EQ((*t)->specials().eos, 0);
  EXPECT_EQ((*t)->specials().bos, 1);

  auto explicit_t = load_tokenizer_for_model_dir(d.path.string(), data_dir + "/tok_spm/tokenizer.model");
  EXPECT_EQ((*explicit_t)->kind(), tokenizer_kind::sentencepiece);
  EXPECT_EQ(load_tokenizer_for_model_dir(d.path.string(), "/nonexistent/tok.json").error().code(), status_code::not_found);
  EXPECT_EQ(load_tokenizer_for_model_dir((d.path / "missing").string()).error().code(), status_code::not_found);
}

TEST(tokenizer_load, unsupported_components_are_named) {
  const io::json base = *io::parse_json(fixture_json(), "fixture");
  auto expect_error = [&](const std::function<void(io::json&)>& edit, status_code code, const std::string& text) {
    io::json j = base;
    edit(j);
    auto t = load_hf_tokenizer_from_json(j.dump(), "tokenizer.json");
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_EQ(t.error().code(), code) << t.error().to_string();
    EXPECT_NE(t.error().message().find(text), std::string::npos) << t.error().message();
  };
  expect_error([](io::json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, status_code::unsupported, "normalizer 'Lowercase'");
  expect_error([](io::json& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; }, status_code::unsupported, "BertNormalizer");
  expect_error([](io::json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, status_code::unsupported, "pre-tokenizer 'Whitespace'");
  expect_error(
      [](io::json& j) {
        j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}, {"invert", false}};
      },
      status_code::unsupported, "unsupported pre-tokenizer pattern '\\w+'");
  expect_error([](io::json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, status_code::unsupported, "decoder 'WordPiece'");
  expect_error([](io::json& j) { j["post_processor"] = {{"type", "Weird"}}; }, status_code::unsupported, "post-processor 'Weird'");
  expect_error([](io::json& j) { j["model"]["type"] = "Unigram"; }, status_code::unsupported, "model type 'Unigram'");
  expect_error([](io::json& j) { j["model"]["dropout"] = 0.1; }, status_code::unsupported, "dropout");
  expect_error([](io::json& j) { j["model"]["merges"].push_back(io::json::array({"zzz", "q"})); }, status_code::parse_error,
               "missing from model.vocab");
  expect_error([](io::json& j) { j["model"]["vocab"]["\xC4\xA0"] = "x"; }, status_code::parse_error, "expected an integer id");
  expect_error([](io::json& j) { j["model"]["vocab"]["huge"] = 1 << 30; }, status_code::parse_error, "out of range");
  expect_error([](io::json& j) { j["model"] = 3; }, status_code::parse_error, "'model' is integer");
  expect_error([](io::json& j) { j["added_tokens"] = {{{"content", "x"}}}; }, status_code::parse_error, "no valid 'id'");
  expect_error(
      [](io::json& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Digits"}}}}};
      },
      status_code::unsupported, "only as the last");
  auto bad_json = load_hf_tokenizer_from_json("{\"model\": ", "tokenizer.json");
  EXPECT_EQ(bad_json.error().code(), status_code::parse_error);
}

TEST(tokenizer_cli, tokenize_encodes_decodes_and_prints_json) {
  auto run = [](const std::string& args) { return ::lrnn::testing::run_cli(args).out; };
  const std::string tok = "--tokenizer " + data_dir + "/tok_bpe/tokenizer.json";
  EXPECT_EQ(run("tokenize " + tok + " --text 'Hello, world!' --json"), "{\"ids\":[39,463,304,11,292,267,525,0]}\n");
  EXPECT_EQ(run("tokenize " + tok + " --text 'Hello, world!'"), "39 463 304 11 292 267 525 0\n");
  EXPECT_EQ(run("tokenize " + tok + " --decode --text '39 463 304 11 292 267 525 0' --json"), "{\"text\":\"Hello, world!\"}\n");
  EXPECT_EQ(run("tokenize " + tok + " --decode --text '[39, 463]'"), "Hel");
  EXPECT_NE(run("tokenize " + tok + " --decode --text '1 x'").find("error: 'x' is not a token id"), std::string::npos);
  EXPECT_NE(run("tokenize --tokenizer /nonexistent.json --text hi").find("error"), std::string::npos);
  EXPECT_NE(run("tokenize " + tok + " --text hi --bench --bench-seconds 0.01").find("MB/s"), std::string::npos);
}

}  // namespace
}  // namespace lrnn::tok
