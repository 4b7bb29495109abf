// The `lrnn` binary end to end: --help/--version, `info` on every fixture (tables and --json),
// and one-line errors with a non-zero exit for bad input.
#include "io/json.h"
#include "io/npy.h"

#include "support/run_cli.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>

namespace {

using ::lrnn::testing::run_cli;

const std::string data_dir = LRNN_TEST_DATA_DIR;
const char* fixtures[] = {"fla_gated_deltanet", "fla_gla", "fla_retnet", "fla_rwkv7",
                          "hf_recurrentgemma", "hf_rwkv4", "hf_xlstm"};

TEST(cli, help_and_version) {
  auto h = run_cli("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("info"), std::string::npos);
  auto v = run_cli("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("lrnn "), std::string::npos);
  auto ih = run_cli("info --help");
  EXPECT_EQ(ih.code, 0);
  EXPECT_NE(ih.out.find("--json"), std::string::npos);
  EXPECT_NE(run_cli("").code, 0);                  // a subcommand is required
  EXPECT_EQ(run_cli("no-such-command").code, 2);  // usage error
}

TEST(cli, info_prints_every_fixture) {
  for (const char* f : fixtures) {
    auto r = run_cli("info " + data_dir + "/" + f);
    EXPECT_EQ(r.code, 0) << f << "\n" << r.out;
    EXPECT_NE(r.out.find("model_type"), std::string::npos) << f;
    EXPECT_NE(r.out.find("parameters"), std::string::npos) << f;
  }
}

TEST(cli, info_json_matches_the_checkpoint) {
  for (const char* f : fixtures) {
    auto r = run_cli("info --json " + data_dir + "/" + f);
    ASSERT_EQ(r.code, 0) << f << "\n" << r.out;
    auto j = lrnn::io::parse_json(r.out, "info --json");
    ASSERT_TRUE(j.ok()) << j.error().message();
    const auto& o = *j;
    EXPECT_EQ(o["config"]["model_type"], o["model_type"]);
    ASSERT_TRUE(o["tensors"].is_array());
    EXPECT_EQ(o["num_tensors"].get<size_t>(), o["tensors"].size());
    uint64_t bytes = 0, params = 0;
    for (const auto& t : o["tensors"]) {
      bytes += t["bytes"].get<uint64_t>();
      uint64_t n = 1;
      for (const auto& d : t["shape"]) n *= d.get<uint64_t>();
      params += n;
      EXPECT_EQ(t["dtype"], "F32");
    }
    EXPECT_EQ(o["total_bytes"].get<uint64_t>(), bytes);
    EXPECT_EQ(o["total_parameters"].get<uint64_t>(), params);
    EXPECT_EQ(bytes, params * 4);  // the fixtures are fp32
  }
}

TEST(cli, info_errors_are_one_line_and_nonzero) {
  auto missing = run_cli("info /nonexistent/model");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("/nonexistent/model"), std::string::npos) << missing.out;
  EXPECT_EQ(std::count(missing.out.begin(), missing.out.end(), '\n'), 1) << missing.out;

  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("lrnn_cli_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(data_dir + "/fla_gla/model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "config.json") << "{\"model_type\": \"gla\", \"vocab_size\": \"many\"}";
  auto bad_cfg = run_cli("info " + dir.string());
  EXPECT_EQ(bad_cfg.code, 1);
  EXPECT_NE(bad_cfg.out.find("vocab_size"), std::string::npos) << bad_cfg.out;
  EXPECT_EQ(std::count(bad_cfg.out.begin(), bad_cfg.out.end(), '\n'), 1) << bad_cfg.out;

  std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc) << "short";
  auto bad_st = run_cli("info " + dir.string());
  EXPECT_EQ(bad_st.code, 1);
  EXPECT_NE(bad_st.out.find("model.safetensors"), std::string::npos) << bad_st.out;
  fs::remove_all(dir);
}

}  // namespace

namespace {

lrnn::io::json run_json(const std::string& args) {
  auto r = run_cli(args);
  EXPECT_EQ(r.code, 0) << r.out;
  auto j = lrnn::io::parse_json(r.out, args);
  EXPECT_TRUE(j.ok()) << r.out;
  return j.ok() ? *j : lrnn::io::json();
}

// Decoding keeps memory flat: in one run, the process's peak RSS after 4096 generated tokens
// equals its peak after 256 within 1% (133 KiB of this 13 MiB process; a per-token leak of 40
// bytes would add 150 KiB). Comparing two fresh processes instead mixed in run-to-run noise of
// up to 412 KiB when the suite ran in parallel. Two runs of different length also keep the same
// state size.
TEST(cli_generate, memory_does_not_grow_with_length) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer keeps freed memory in quarantine (up to 256 MiB): RSS is not the program's";
#endif
  const std::string base = "--threads 1 generate --model " + data_dir + "/fla_gla --ids 1,2,3 --greedy --json -n ";
  auto a = run_json(base + "256");
  auto b = run_json(base + "4096");
  ASSERT_EQ(b["ids"][0].size(), 4096u);
  EXPECT_EQ(a["state_bytes"], b["state_bytes"]);
  const auto& at = b["peak_rss_at_tokens"];
  ASSERT_TRUE(at.contains("256") && at.contains("4096")) << b.dump();
  const double pa = at["256"].get<double>(), pb = at["4096"].get<double>();
  EXPECT_GT(pa, 1e6);
  EXPECT_LE(pb, pa * 1.01) << "peak after 256: " << pa << ", after 4096: " << pb;
}

TEST(cli_generate, save_and_load_state_equals_one_run) {
  const std::string state = std::filesystem::temp_directory_path() / ("lrnn_cli_state_" + std::to_string(::getpid()));
  const std::string m = "generate --model " + data_dir + "/fla_gla --json --seed 3 --temperature 0.7 ";
  auto one = run_json(m + "--ids 4,5,6,7,8 -n 20");
  auto saved = run_json(m + "--ids 4,5,6,7,8 -n 1 --save-state " + state);
  auto cont = run_json(m + "-n 20 --load-state " + state);
  EXPECT_EQ(one["ids"], cont["ids"]);
  EXPECT_EQ(one["ids"][0][0], saved["ids"][0][0]);
  std::filesystem::remove(state);
}

TEST(cli_generate, bad_input_is_one_line_and_nonzero) {
  const std::string m = "generate --model " + data_dir + "/fla_gla ";
  for (const std::string& args : {m + "--ids 1,99999", m + "--ids 1,x", m + "", m + "--ids 1 --top-p 0",
                                  std::string("generate --model /nonexistent --ids 1"),
                                  m + "--ids 1 --load-state /nonexistent.safetensors"}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  }
}

TEST(cli_logits, writes_the_reference_logits) {
  const std::string out = std::filesystem::temp_directory_path() / ("lrnn_logits_" + std::to_string(::getpid()) + ".npy");
  auto r = run_cli("logits --model " + data_dir + "/fla_gla --ids-npy " + data_dir + "/fla_gla/input_ids.npy --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  auto got = lrnn::io::read_npy(out);
  auto ref = lrnn::io::read_npy(data_dir + "/fla_gla/logits.npy");
  ASSERT_TRUE(got.ok() && ref.ok());
  EXPECT_LE(lrnn::max_abs_diff(*got, *ref), 1e-4);
  std::filesystem::remove(out);
}

}  // namespace
