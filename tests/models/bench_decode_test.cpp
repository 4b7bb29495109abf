// `lrnn bench decode`: the synthetic checkpoints it writes (config.json + safetensors under each
// loader's parameter names) still load, at the parameter count asked for, and the report is
// consistent (weights read per token, positive rates, fraction = floor / time per token); a
// kept checkpoint is a model directory the rest of the CLI accepts. Small sizes: this checks
// the tool, not the machine's speed.
#include "io/json.h"
#include "models/model.h"

#include "support/run_cli.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using ::lrnn::testing::run_cli;

TEST(bench_decode, synthetic_checkpoints_load_and_report) {
  namespace fs = std::filesystem;
  for (const char* arch : {"gla", "rwkv7", "recurrent_gemma"}) {
    const fs::path keep = fs::temp_directory_path() / (std::string("lrnn_bench_test_") + arch + "_" + std::to_string(::getpid()));
    auto r = run_cli(std::string("--threads 1 bench decode ") + arch +
                      " --params 3M --hidden 128 --vocab 512 --prompt 20 --tokens 6 --json --keep " + keep.string());
    ASSERT_EQ(r.code, 0) << arch << ": " << r.out;
    auto j = lrnn::io::parse_json(r.out, "bench decode");
    ASSERT_TRUE(j.ok()) << r.out;
    const double params = (*j)["params"].get<double>();
    EXPECT_NEAR(params, 3e6, 0.35e6) << arch;
    EXPECT_EQ((*j)["prefill_tokens"].get<int64_t>(), 20) << arch;
    EXPECT_EQ((*j)["decode_tokens"].get<int64_t>(), 6) << arch;
    EXPECT_GT((*j)["read_bandwidth_gbs"].get<double>(), 0) << arch;
    EXPECT_GT((*j)["decode_tokens_per_s"].get<double>(), 0) << arch;
    const double floor_ms = (*j)["weight_bytes_per_token"].get<double>() / ((*j)["read_bandwidth_gbs"].get<double>() * 1e6);
    EXPECT_NEAR((*j)["floor_ms_per_token"].get<double>(), floor_ms, 1e-9 * floor_ms + 1e-12) << arch;
    EXPECT_NEAR((*j)["fraction_of_floor"].get<double>(), floor_ms / (*j)["decode_ms_per_token"].get<double>(), 1e-9) << arch;

    // The kept folder is a real checkpoint: load_model reads it, and weight_bytes() matches the report.
    auto m = lrnn::models::load_model(keep.string());
    ASSERT_TRUE(m.ok()) << arch << ": " << m.error().message();
    EXPECT_EQ((*m)->model_type(), arch);
    EXPECT_EQ(static_cast<double>((*m)->weight_bytes()), (*j)["weight_bytes_per_token"].get<double>()) << arch;
    fs::remove_all(keep);
  }
  auto bad = run_cli("bench decode llama --params 1M");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("unknown architecture 'llama'"), std::string::npos) << bad.out;
  auto bad_params = run_cli("bench decode gla --params lots");
  EXPECT_EQ(bad_params.code, 1) << bad_params.out;
  EXPECT_NE(bad_params.out.find("--params 'lots'"), std::string::npos) << bad_params.out;
}

}  // namespace
