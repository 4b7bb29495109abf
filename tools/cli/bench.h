// `lrnn bench op NAME`: op benchmarks register here with LRNN_BENCH_OP (one file per family,
// tools/cli/bench_*.cpp) and report rows; bench_command.cpp times the machine's SGEMM in the same
// run and prints a table (ms, GFLOP/s, fraction of SGEMM) or JSON.
#pragma once

#include "lrnn/status.h"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lrnn::cli::bench {

struct options {
  std::string variant;  // op-specific ("gla", "retnet", ...); empty: the op's default
  int64_t B = 4, T = 4096, H = 8, K = 128, V = 128, chunk = 64;
  std::vector<std::string> forms;  // empty: the op's default list
  int repeats = 3;
};

struct row {
  std::string name;  // "chunk fwd", "recurrent fwd+bwd"
  double ms = 0;     // median over repeats
  double flops = 0;  // nominal FLOPs of the algorithm (0: not a FLOP-bound row)
  double bytes = 0;  // bytes the op must read + write (memory-bound rows): GB/s against memcpy
};

using op_fn = std::function<status(const options&, std::vector<row>& rows, std::string& description)>;

struct op_registration {
  op_registration(const std::string& name, op_fn fn);
};
const std::vector<std::pair<std::string, op_fn>>& ops();

// `lrnn bench decode ARCH`: a synthetic checkpoint's prefill and decode speed against the
// memory-bandwidth floor of decoding (bench_decode.cpp).
struct decode_options {
  std::string params = "100M";  // total parameters, embeddings included
  int64_t hidden = 768, vocab = 32000, prompt = 512, tokens = 128;
  std::string keep;  // write the checkpoint here and keep it (default: a temporary folder)
};
status run_decode(const std::string& arch, const decode_options& o, bool json);

// `lrnn bench train-step ARCH`: a fresh trainable model's training step (forward, cross-entropy,
// backward, clip + AdamW) timed by phase and by op, against the same run's SGEMM (bench_train_step.cpp).
struct train_step_options {
  std::optional<int64_t> d_model, layers, heads, vocab;  // unset: the --config file's, else 256 / 4 / 4 / 256
  int64_t seq = 256, batch = 8;
  int steps = 5, warmup = 1;
  std::string config;  // a model config.json or a `lrnn train` config (its "model" object)
  std::string form = "chunk";
  bool no_profile = false;
};
status run_train_step(const std::string& arch, const train_step_options& o, bool json);

// Median wall time in ms of `repeats` calls of f (after one warm-up call when warm_up).
double time_ms(int repeats, const std::function<void()>& f, bool warm_up = true);

}  // namespace lrnn::cli::bench

#define LRNN_BENCH_OP(ident, name, fn) static ::lrnn::cli::bench::op_registration lrnn_bench_op_##ident(name, fn)
