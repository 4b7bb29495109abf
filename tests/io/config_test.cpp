// config.json access: the seven fixture configs and their common fields, each typed getter
// with its exact error message, defaults, ranges, nested objects, aliases, and hostile JSON.
#include "io/config.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace lrnn::io {
namespace {

const std::string data_dir = LRNN_TEST_DATA_DIR;

config parse(const std::string& text) {
  auto c = config::from_json_text(text, "config.json");
  EXPECT_TRUE(c.ok()) << c.error().message();
  return c.ok() ? *c : config();
}

template <typename T>
void expect_error(const result<T>& r, const std::string& message) {
  ASSERT_FALSE(r.ok()) << "expected: " << message;
  EXPECT_EQ(r.error().code(), status_code::parse_error);
  EXPECT_EQ(r.error().message(), message);
}

template <typename T>
void expect_error_containing(const result<T>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << needle;
  EXPECT_EQ(r.error().code(), status_code::parse_error);
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}

struct fixture_expect {
  const char* dir;
  const char* model_type;
  int64_t vocab_size, hidden_size, num_hidden_layers;
  bool tie_word_embeddings;
};

TEST(config, reads_common_fields_of_every_fixture) {
  const fixture_expect cases[] = {
      {"fla_gated_deltanet", "gated_deltanet", 256, 128, 2, false},
      {"fla_gla", "gla", 256, 128, 2, false},
      {"fla_retnet", "retnet", 256, 128, 2, false},
      {"fla_rwkv7", "rwkv7", 256, 128, 2, false},
      {"hf_recurrentgemma", "recurrent_gemma", 256, 64, 3, true},
      {"hf_rwkv4", "rwkv", 256, 64, 2, false},
      // transformers' xLSTM builds num_blocks (2) blocks; its num_hidden_layers (32) is stale.
      {"hf_xlstm", "xlstm", 256, 64, 2, false},
  };
  for (const fixture_expect& e : cases) {
    SCOPED_TRACE(e.dir);
    const std::string path = data_dir + "/" + e.dir + "/config.json";
    auto c = config::read(path);
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->source(), path);
    auto m = read_common_model_config(*c);
    ASSERT_TRUE(m.ok()) << m.error().message();
    EXPECT_EQ(m->model_type, e.model_type);
    EXPECT_EQ(m->vocab_size, e.vocab_size);
    EXPECT_EQ(m->hidden_size, e.hidden_size);
    EXPECT_EQ(m->num_hidden_layers, e.num_hidden_layers);
    EXPECT_EQ(m->weight_dtype_name, "float32");
    EXPECT_EQ(m->weight_dtype, dtype::f32);
    EXPECT_EQ(m->tie_word_embeddings, e.tie_word_embeddings);
    // Errors name the file they came from.
    auto bad = c->get_int("model_type");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message().rfind(path + ": field 'model_type' must be an integer, got string", 0), 0u)
        << bad.error().message();
  }
}

TEST(config, typed_getters_on_fixtures) {
  auto gdn = config::read(data_dir + "/fla_gated_deltanet/config.json");
  ASSERT_TRUE(gdn.ok());
  EXPECT_EQ(gdn->get_int("head_dim").value(), 64);
  EXPECT_EQ(gdn->get_float("norm_eps").value(), 1e-6);
  EXPECT_EQ(gdn->get_float("expand_v").value(), 2.0);
  EXPECT_EQ(gdn->get_float("hidden_size").value(), 128.0);  // integers are numbers too
  EXPECT_EQ(gdn->get_bool("use_gate").value(), true);
  EXPECT_EQ(gdn->get_bool("allow_neg_eigval").value(), false);
  EXPECT_EQ(gdn->get_string("hidden_act").value(), "swish");
  EXPECT_EQ(gdn->get_string_list("architectures").value(), std::vector<std::string>{"GatedDeltaNetForCausalLM"});
  EXPECT_FALSE(gdn->has("num_v_heads"));  // null
  EXPECT_FALSE(gdn->has("no_such_field"));
  EXPECT_TRUE(gdn->has("num_heads"));
  EXPECT_EQ(gdn->get_int("num_v_heads", 2).value(), 2);
  EXPECT_EQ(gdn->get_optional_int("intermediate_size").value(), std::nullopt);
  EXPECT_EQ(gdn->get_optional_int("num_heads").value(), 2);
  const std::vector<std::string> keys = gdn->keys();
  EXPECT_EQ(keys.size(), 34u);
  EXPECT_EQ(keys.front(), "allow_neg_eigval");
  EXPECT_EQ(keys.back(), "vocab_size");
  EXPECT_TRUE(gdn->require_positive("hidden_size").ok());
  const std::string p = data_dir + "/fla_gated_deltanet/config.json";
  expect_error(gdn->get_int("expand_v"), p + ": field 'expand_v' must be an integer, got number 2.0");
  expect_error(gdn->get_int("num_v_heads"), p + ": required field 'num_v_heads' is null");

  auto rwkv7 = config::read(data_dir + "/fla_rwkv7/config.json");
  ASSERT_TRUE(rwkv7.ok());
  EXPECT_EQ(rwkv7->get_int_list("value_dim").value(), (std::vector<int64_t>{128, 128}));

  auto rg = config::read(data_dir + "/hf_recurrentgemma/config.json");
  ASSERT_TRUE(rg.ok());
  EXPECT_EQ(rg->get_string_list("block_types").value(),
            (std::vector<std::string>{"recurrent", "recurrent", "attention"}));
  EXPECT_EQ(rg->get_float("logits_soft_cap").value(), 30.0);
  auto rope = rg->get_object("rope_parameters");
  ASSERT_TRUE(rope.ok()) << rope.error().message();
  EXPECT_EQ(rope->get_float("rope_theta").value(), 10000.0);
  EXPECT_EQ(rope->get_string("rope_type").value(), "default");
  expect_error(rope->get_int("rope_type"), rg->source() +
                                               ": field 'rope_parameters.rope_type' must be an integer, got string "
                                               "\"default\"");
  expect_error(rope->get_int("missing"), rg->source() + ": missing required field 'rope_parameters.missing'");
  expect_error(
      rg->get_object("block_types"),
      rg->source() + ": field 'block_types' must be an object, got array [\"recurrent\",\"recurrent\",\"attention\"]");
}

TEST(config, exact_type_error_messages) {
  const config c = parse(R"({"hidden_size": "abc", "n": 1.5, "b": 1, "s": 5, "l": [1, "x"], "sl": ["a", 2],
                             "o": {"k": 1}, "big": 18446744073709551615, "neg": -7, "t": true, "nul": null})");
  expect_error(c.get_int("hidden_size"), "config.json: field 'hidden_size' must be an integer, got string \"abc\"");
  expect_error(c.get_int("n"), "config.json: field 'n' must be an integer, got number 1.5");
  expect_error(c.get_int("t"), "config.json: field 't' must be an integer, got boolean true");
  expect_error(c.get_int("o"), "config.json: field 'o' must be an integer, got object {\"k\":1}");
  expect_error(c.get_int("big"), "config.json: field 'big' is out of the int64 range, got 18446744073709551615");
  EXPECT_EQ(c.get_int("neg").value(), -7);
  expect_error(c.get_float("hidden_size"), "config.json: field 'hidden_size' must be a number, got string \"abc\"");
  EXPECT_EQ(c.get_float("big").value(), 18446744073709551615.0);
  expect_error(c.get_bool("b"), "config.json: field 'b' must be a boolean, got integer 1");
  expect_error(c.get_string("s"), "config.json: field 's' must be a string, got integer 5");
  expect_error(c.get_int_list("l"), "config.json: field 'l' must be a list of integers, got string \"x\" at index 1");
  expect_error(c.get_int_list("s"), "config.json: field 's' must be a list of integers, got integer 5");
  expect_error(c.get_string_list("sl"), "config.json: field 'sl' must be a list of strings, got integer 2 at index 1");
  expect_error(c.get_string_list("hidden_size"),
               "config.json: field 'hidden_size' must be a list of strings, got string \"abc\"");
  expect_error(c.get_int("vocab_size"), "config.json: missing required field 'vocab_size'");
  expect_error(c.get_float("nul"), "config.json: required field 'nul' is null");
  expect_error(c.get_string("nul"), "config.json: required field 'nul' is null");
  expect_error(c.get_object("nul"), "config.json: required field 'nul' is null");
  EXPECT_EQ(c.get_int_list("big_list_absent", {3, 4}).value(), (std::vector<int64_t>{3, 4}));
}

TEST(config, long_values_are_cut_short_in_messages) {
  const config c = parse(R"({"x": ")" + std::string(1000, 'a') + R"("})");
  auto r = c.get_int("x");
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.error().message().size(), 150u);
  EXPECT_NE(r.error().message().find("aaa..."), std::string::npos);
}

TEST(config, defaults_apply_to_absent_and_null_but_not_wrong_types) {
  const config c = parse(R"({"a": null, "s": "x", "i": 3, "f": 0.5, "b": false, "l": [1, 2], "sl": ["p"]})");
  EXPECT_EQ(c.get_int("a", 5).value(), 5);
  EXPECT_EQ(c.get_int("absent", 5).value(), 5);
  EXPECT_EQ(c.get_int("i", 5).value(), 3);
  expect_error(c.get_int("s", 5), "config.json: field 's' must be an integer, got string \"x\"");
  EXPECT_EQ(c.get_float("a", 1.25).value(), 1.25);
  EXPECT_EQ(c.get_float("i", 1.25).value(), 3.0);
  EXPECT_EQ(c.get_float("f", 1.25).value(), 0.5);
  expect_error(c.get_float("s", 1.25), "config.json: field 's' must be a number, got string \"x\"");
  EXPECT_EQ(c.get_bool("a", true).value(), true);
  EXPECT_EQ(c.get_bool("b", true).value(), false);
  expect_error(c.get_bool("i", true), "config.json: field 'i' must be a boolean, got integer 3");
  EXPECT_EQ(c.get_string("a", "d").value(), "d");
  EXPECT_EQ(c.get_string("s", "d").value(), "x");
  expect_error(c.get_string("i", "d"), "config.json: field 'i' must be a string, got integer 3");
  EXPECT_EQ(c.get_int_list("a", {9}).value(), std::vector<int64_t>{9});
  EXPECT_EQ(c.get_int_list("l", {9}).value(), (std::vector<int64_t>{1, 2}));
  expect_error(c.get_int_list("sl", {9}),
               "config.json: field 'sl' must be a list of integers, got string \"p\" at index 0");
  EXPECT_EQ(c.get_string_list("a", {"q"}).value(), std::vector<std::string>{"q"});
  EXPECT_EQ(c.get_string_list("sl", {"q"}).value(), std::vector<std::string>{"p"});
  expect_error(c.get_string_list("l", {"q"}),
               "config.json: field 'l' must be a list of strings, got integer 1 at index 0");
  EXPECT_EQ(c.get_optional_float("f").value(), 0.5);
  EXPECT_EQ(c.get_optional_bool("a").value(), std::nullopt);
  EXPECT_EQ(c.get_optional_string("s").value(), "x");
  expect_error(c.get_optional_string("i"), "config.json: field 'i' must be a string, got integer 3");
  EXPECT_TRUE(c.has("s"));
  EXPECT_FALSE(c.has("a"));
  EXPECT_EQ(c.keys(), (std::vector<std::string>{"a", "b", "f", "i", "l", "s", "sl"}));
}

TEST(config, range_checks) {
  const config c = parse(R"({"zero": 0, "neg": -1, "ten": 10, "s": "x"})");
  EXPECT_EQ(c.get_int("ten", 1, 1, 10).value(), 10);
  EXPECT_EQ(c.get_int("absent", 100, 1, 10).value(), 100);
  expect_error(c.get_int("ten", 1, 1, 9), "config.json: field 'ten' must be in [1, 9], got 10");
  expect_error(c.get_int("s", 1, 1, 9), "config.json: field 's' must be an integer, got string \"x\"");
  expect_error(c.get_int_in_range("zero", 1, 9), "config.json: field 'zero' must be in [1, 9], got 0");
  expect_error(c.get_int_in_range("absent", 1, 9), "config.json: missing required field 'absent'");
  EXPECT_EQ(c.require_positive("zero").message(), "config.json: field 'zero' must be >= 1, got 0");
  EXPECT_EQ(c.require_positive("neg").message(), "config.json: field 'neg' must be >= 1, got -1");
  EXPECT_EQ(c.require_positive("absent").message(), "config.json: missing required field 'absent'");
  EXPECT_TRUE(c.require_positive("ten").ok());
}

TEST(config, rejects_hostile_and_malformed_json) {
  expect_error_containing(config::from_json_text(std::string(100000, '['), "config.json"),
                          "config.json: JSON nested deeper than");
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  expect_error_containing(config::from_json_text(objects, "config.json"), "nested deeper than");
  expect_error_containing(config::from_json_text("{\"a\": 1", "config.json"), "config.json: invalid JSON");
  expect_error_containing(config::from_json_text("{\"a\": 1} x", "config.json"), "config.json: invalid JSON");
  expect_error_containing(config::from_json_text("", "config.json"), "config.json: invalid JSON");
  expect_error_containing(config::from_json_text("{\"a\": \"\xff\"}", "config.json"), "config.json: invalid JSON");
  expect_error(config::from_json_text("[1, 2]", "config.json"),
               "config.json: expected a JSON object at the top level, got array");
  expect_error(config::from_json_text("null", "config.json"),
               "config.json: expected a JSON object at the top level, got null");
  auto missing = config::read(data_dir + "/no_such_dir/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), status_code::not_found);
  // 64 levels are fine.
  std::string deep = "{\"x\": " + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_TRUE(config::from_json_text(deep, "config.json").ok());
}

TEST(config, common_fields_accept_aliases) {
  auto mamba = read_common_model_config(parse(R"({"model_type": "mamba", "d_model": 768, "n_layer": 24,
                                                  "vocab_size": 50280, "torch_dtype": "bfloat16"})"));
  ASSERT_TRUE(mamba.ok()) << mamba.error().message();
  EXPECT_EQ(mamba->hidden_size, 768);
  EXPECT_EQ(mamba->num_hidden_layers, 24);
  EXPECT_EQ(mamba->vocab_size, 50280);
  EXPECT_EQ(mamba->weight_dtype, dtype::bf16);
  EXPECT_EQ(mamba->tie_word_embeddings, std::nullopt);

  auto gpt = read_common_model_config(
      parse(R"({"model_type": "rwkv5", "n_embd": 64, "num_layers": 3, "n_vocab": 100, "dtype": "torch.float16"})"));
  ASSERT_TRUE(gpt.ok()) << gpt.error().message();
  EXPECT_EQ(gpt->hidden_size, 64);
  EXPECT_EQ(gpt->num_hidden_layers, 3);
  EXPECT_EQ(gpt->vocab_size, 100);
  EXPECT_EQ(gpt->weight_dtype, dtype::f16);

  auto agree = read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 64, "d_model": 64,
                                                  "num_hidden_layers": 2, "n_layer": 2, "vocab_size": 9,
                                                  "dtype": "float32", "torch_dtype": "float32"})"));
  ASSERT_TRUE(agree.ok()) << agree.error().message();

  auto exotic = read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 64, "num_hidden_layers": 2,
                                                   "vocab_size": 9, "dtype": "float8_e4m3fn"})"));
  ASSERT_TRUE(exotic.ok()) << exotic.error().message();
  EXPECT_EQ(exotic->weight_dtype_name, "float8_e4m3fn");
  EXPECT_EQ(exotic->weight_dtype, std::nullopt);

  auto xlstm_hidden = read_common_model_config(
      parse(R"({"model_type": "xlstm", "hidden_size": 32, "num_hidden_layers": 4, "vocab_size": 9})"));
  ASSERT_TRUE(xlstm_hidden.ok()) << xlstm_hidden.error().message();
  EXPECT_EQ(xlstm_hidden->hidden_size, 32);
  EXPECT_EQ(xlstm_hidden->num_hidden_layers, 4);
}

TEST(config, common_fields_errors) {
  const std::string base = R"("hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 9)";
  expect_error(read_common_model_config(parse("{" + base + "}")), "config.json: missing required field 'model_type'");
  expect_error(read_common_model_config(parse(R"({"model_type": 3, )" + base + "}")),
               "config.json: field 'model_type' must be a string, got integer 3");
  expect_error(read_common_model_config(parse(R"({"model_type": "", )" + base + "}")),
               "config.json: field 'model_type' must not be empty");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "num_hidden_layers": 2, "vocab_size": 9})")),
               "config.json: missing required field 'hidden_size' (also looked for 'd_model', 'n_embd', "
               "'embedding_dim')");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 64, "vocab_size": 9})")),
               "config.json: missing required field 'num_hidden_layers' (also looked for 'n_layer', 'num_layers', "
               "'n_layers', 'num_blocks')");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 64, "num_hidden_layers": 2})")),
               "config.json: missing required field 'vocab_size' (also looked for 'n_vocab')");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 64, "d_model": 32,
                                                 "num_hidden_layers": 2, "vocab_size": 9})")),
               "config.json: fields 'hidden_size' (64) and 'd_model' (32) disagree");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "hidden_size": "64",
                                                 "num_hidden_layers": 2, "vocab_size": 9})")),
               "config.json: field 'hidden_size' must be an integer, got string \"64\"");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 0,
                                                 "num_hidden_layers": 2, "vocab_size": 9})")),
               "config.json: field 'hidden_size' must be in [1, 1048576], got 0");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", "hidden_size": 64,
                                                 "num_hidden_layers": 2, "vocab_size": 9999999999})")),
               "config.json: field 'vocab_size' must be in [1, 2147483647], got 9999999999");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", )" + base + R"(, "dtype": 4})")),
               "config.json: field 'dtype' must be a string, got integer 4");
  expect_error(read_common_model_config(
                   parse(R"({"model_type": "m", )" + base + R"(, "dtype": "float32", "torch_dtype": "bfloat16"})")),
               "config.json: fields 'dtype' (\"float32\") and 'torch_dtype' (\"bfloat16\") disagree");
  expect_error(read_common_model_config(parse(R"({"model_type": "m", )" + base + R"(, "tie_word_embeddings": 1})")),
               "config.json: field 'tie_word_embeddings' must be a boolean, got integer 1");
  // A null alias is absent: the next one is used.
  auto nulls = read_common_model_config(parse(R"({"model_type": "m", "hidden_size": null, "d_model": 8,
                                                  "num_hidden_layers": 2, "vocab_size": 9, "dtype": null})"));
  ASSERT_TRUE(nulls.ok()) << nulls.error().message();
  EXPECT_EQ(nulls->hidden_size, 8);
  EXPECT_EQ(nulls->weight_dtype, std::nullopt);
}

TEST(config, torch_dtype_names) {
  EXPECT_EQ(dtype_from_torch_name("float32"), dtype::f32);
  EXPECT_EQ(dtype_from_torch_name("torch.bfloat16"), dtype::bf16);
  EXPECT_EQ(dtype_from_torch_name("half"), dtype::f16);
  EXPECT_EQ(dtype_from_torch_name("float64"), dtype::f64);
  EXPECT_EQ(dtype_from_torch_name("auto"), std::nullopt);
  EXPECT_EQ(dtype_from_torch_name(""), std::nullopt);
}

}  // namespace
}  // namespace lrnn::io
