// `lrnn bench op NAME [--variant ...] [--B --T --H --K --V --chunk --forms --repeats] [--json]`:
// runs a registered op benchmark (bench.h) and, in the same run, the machine's SGEMM (1024^3 on
// all threads, and 64x128 . 128x128 calls on every thread at once) as the FLOP-rate yardstick.
#include "bench.h"
#include "command.h"

#include "lrnn/threads.h"

#include <cblas.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace lrnn::cli::bench {

namespace {
std::vector<std::pair<std::string, op_fn>>& op_table() {
  static std::vector<std::pair<std::string, op_fn>> t;
  return t;
}

struct sgemm_rates {
  double big_gflops = 0;    // 1024^3, BLAS threads = lrnn threads
  double small_gflops = 0;  // 64x128 . 128x128 per call, one BLAS thread per worker, all workers at once
};

sgemm_rates measure_sgemm(int repeats) {
  sgemm_rates r;
  const int n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  const double ms = time_ms(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  });
  r.big_gflops = 2.0 * n * n * n / (ms * 1e6);
  const int M = 64, N = 128, Kd = 128, calls = 2000;
  const int workers = num_threads();
  std::vector<std::vector<float>> sa(workers, std::vector<float>(M * Kd, 0.5f)), sb(workers, std::vector<float>(Kd * N, 0.25f)),
      sc(workers, std::vector<float>(M * N));
  blas_single_thread_scope one;
  const double sms = time_ms(repeats, [&] {
    parallel_for(workers, [&](int64_t w) {
      for (int i = 0; i < calls; ++i)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, Kd, 1.0f, sa[w].data(), Kd, sb[w].data(), N, 1.0f,
                    sc[w].data(), N);
    });
  });
  r.small_gflops = 2.0 * M * N * Kd * calls * workers / (sms * 1e6);
  return r;
}

// memcpy of a 256 MiB buffer split over the threads: GB/s counting bytes read + written, the
// yardstick of memory-bound rows.
double measure_memcpy_gbs(int repeats) {
  const size_t n = size_t(256) << 20;
  std::vector<char> a(n, 1), b(n, 0);
  const int64_t parts = std::max(1, num_threads()) * 4;
  const double ms = time_ms(repeats, [&] {
    parallel_for(parts, [&](int64_t i) {
      const size_t lo = n * i / parts, hi = n * (i + 1) / parts;
      std::memcpy(b.data() + lo, a.data() + lo, hi - lo);
    });
  });
  return 2.0 * static_cast<double>(n) / (ms * 1e6);
}

struct bench_cli {
  std::string kind, op;
  options o;
  std::string forms;
  bool json = false;
  decode_options decode;
  train_step_options train_step;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

status run_bench(bench_cli& c) {
  if (c.kind == "decode") return run_decode(c.op, c.decode, c.json);
  if (c.kind == "train-step") return run_train_step(c.op, c.train_step, c.json);
  if (c.kind != "op") return make_error(status_code::invalid_argument, "bench: unknown kind '{}', expected 'op', 'decode' or 'train-step'", c.kind);
  const op_fn* fn = nullptr;
  std::string names;
  for (const auto& [n, f] : ops()) {
    names += (names.empty() ? "" : ", ") + n;
    if (n == c.op) fn = &f;
  }
  if (!fn) return make_error(status_code::not_found, "bench: no op benchmark named '{}' (have: {})", c.op, names);
  c.o.forms = split(c.forms);
  std::vector<row> rows;
  std::string desc;
  LRNN_TRY((*fn)(c.o, rows, desc));
  const sgemm_rates sg = measure_sgemm(std::max(3, c.o.repeats));
  const bool memory_bound = std::any_of(rows.begin(), rows.end(), [](const row& r) { return r.bytes > 0; });
  const double memcpy_gbs = memory_bound ? measure_memcpy_gbs(std::max(3, c.o.repeats)) : 0;
  const row* chunk_fwd = nullptr;
  const row* rec_fwd = nullptr;
  for (const row& r : rows) {
    if (r.name == "chunk fwd") chunk_fwd = &r;
    if (r.name == "recurrent fwd") rec_fwd = &r;
  }
  const double speedup = chunk_fwd && rec_fwd ? rec_fwd->ms / chunk_fwd->ms : 0;
  if (c.json) {
    nlohmann::json j;
    j["op"] = c.op;
    j["config"] = desc;
    j["threads"] = num_threads();
    j["sgemm_1024_gflops"] = sg.big_gflops;
    j["sgemm_64x128x128_gflops"] = sg.small_gflops;
    if (memory_bound) j["memcpy_gbs"] = memcpy_gbs;
    for (const row& r : rows) {
      nlohmann::json jr;
      jr["name"] = r.name;
      jr["ms"] = r.ms;
      if (r.flops > 0) {
        const double gf = r.flops / (r.ms * 1e6);
        jr["gflops"] = gf;
        jr["fraction_of_sgemm_1024"] = gf / sg.big_gflops;
        jr["fraction_of_sgemm_64x128x128"] = gf / sg.small_gflops;
      }
      if (r.bytes > 0) {
        jr["gbs"] = r.bytes / (r.ms * 1e6);
        jr["fraction_of_memcpy"] = r.bytes / (r.ms * 1e6) / memcpy_gbs;
      }
      j["rows"].push_back(jr);
    }
    if (speedup > 0) j["chunk_over_recurrent_fwd"] = speedup;
    std::printf("%s\n", j.dump(2).c_str());
    return {};
  }
  std::printf("%s: %s, %d threads\n", c.op.c_str(), desc.c_str(), num_threads());
  std::printf("SGEMM in this run: 1024^3 %.1f GFLOP/s; 64x128 . 128x128 per call (1 BLAS thread x %d) %.1f GFLOP/s\n\n",
              sg.big_gflops, num_threads(), sg.small_gflops);
  if (memory_bound) std::printf("memcpy in this run: %.1f GB/s (bytes read + written)\n\n", memcpy_gbs);
  const bool flop_rows = std::any_of(rows.begin(), rows.end(), [](const row& r) { return r.flops > 0; });
  if (flop_rows) std::printf("  %-24s %10s %10s %12s %12s\n", "form", "ms", "GFLOP/s", "/SGEMM1024", "/SGEMMsmall");
  else std::printf("  %-24s %10s %13s %13s\n", "form", "ms", "bandwidth", "of memcpy");
  for (const row& r : rows) {
    if (r.flops > 0) {
      const double gf = r.flops / (r.ms * 1e6);
      std::printf("  %-24s %10.2f %10.1f %11.0f%% %11.0f%%\n", r.name.c_str(), r.ms, gf, 100 * gf / sg.big_gflops,
                  100 * gf / sg.small_gflops);
    } else if (r.bytes > 0) {
      const double gbs = r.bytes / (r.ms * 1e6);
      std::printf("  %-24s %10.2f %8.1f GB/s %8.0f%% of memcpy\n", r.name.c_str(), r.ms, gbs, 100 * gbs / memcpy_gbs);
    } else {
      std::printf("  %-24s %10.2f\n", r.name.c_str(), r.ms);
    }
  }
  if (speedup > 0) std::printf("\nchunk forward is %.1fx faster than the recurrent form\n", speedup);
  return {};
}

runner setup(CLI::App& app, const global_options&) {
  auto c = std::make_shared<bench_cli>();
  app.add_option("kind", c->kind, "what to benchmark: op | decode | train-step")->required();
  app.add_option("name", c->op, "op benchmark name (decay_attn, wkv4, linear_scan, conv1d, ...); for decode, the architecture (gla, rwkv7, recurrent_gemma)")->required();
  app.add_option("--variant", c->o.variant, "op variant (decay_attn: retnet | simple_gla | gla | rwkv6 | mlstm | mlstm_sig; linear_scan: rg_lru | log_a; conv1d: none | silu)");
  app.add_option("--B", c->o.B, "batch")->check(CLI::PositiveNumber);
  app.add_option("--T", c->o.T, "sequence length")->check(CLI::PositiveNumber);
  app.add_option("--H", c->o.H, "heads")->check(CLI::PositiveNumber);
  app.add_option("--K", c->o.K, "key head dim")->check(CLI::PositiveNumber);
  app.add_option("--V", c->o.V, "value head dim")->check(CLI::PositiveNumber);
  app.add_option("--chunk", c->o.chunk, "chunk size (chunk form)")->check(CLI::PositiveNumber);
  app.add_option("--forms", c->forms, "comma-separated forms (decay_attn: chunk,recurrent,parallel; wkv4: recurrent,chunk; linear_scan: recurrent,scan)");
  app.add_option("--repeats", c->o.repeats, "timed repeats (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--params", c->decode.params, "decode: parameters of the synthetic model (100M, 1.5B, ...)");
  app.add_option("--hidden", c->decode.hidden, "decode: hidden size")->check(CLI::PositiveNumber);
  app.add_option("--vocab", c->decode.vocab, "decode: vocabulary size")->check(CLI::PositiveNumber);
  app.add_option("--prompt", c->decode.prompt, "decode: prompt tokens (prefill)")->check(CLI::PositiveNumber);
  app.add_option("--tokens", c->decode.tokens, "decode: decoded tokens (batch 1)")->check(CLI::PositiveNumber);
  app.add_option("--keep", c->decode.keep, "decode: write the synthetic checkpoint to this folder and keep it");
  app.add_option("--d-model", c->train_step.d_model, "train-step: hidden size")->check(CLI::PositiveNumber);
  app.add_option("--layers", c->train_step.layers, "train-step: layers")->check(CLI::PositiveNumber);
  app.add_option("--heads", c->train_step.heads, "train-step: heads")->check(CLI::PositiveNumber);
  app.add_option("--train-vocab", c->train_step.vocab, "train-step: vocabulary size (default 256, bytes)")->check(CLI::PositiveNumber);
  app.add_option("--seq", c->train_step.seq, "train-step: tokens per sequence")->check(CLI::PositiveNumber);
  app.add_option("--batch", c->train_step.batch, "train-step: sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--steps", c->train_step.steps, "train-step: timed steps (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", c->train_step.warmup, "train-step: untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--config", c->train_step.config, "train-step: model config.json or `lrnn train` config (its \"model\")");
  app.add_option("--form", c->train_step.form, "train-step: chunk | recurrent | parallel");
  app.add_flag("--no-profile", c->train_step.no_profile, "train-step: skip the per-op timing");
  app.add_flag("--json", c->json, "print one JSON object");
  return [c] { return run_bench(*c); };
}
}  // namespace

op_registration::op_registration(const std::string& name, op_fn fn) { op_table().emplace_back(name, std::move(fn)); }
const std::vector<std::pair<std::string, op_fn>>& ops() { return op_table(); }

double time_ms(int repeats, const std::function<void()>& f, bool warm_up) {
  if (warm_up) f();
  std::vector<double> t;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace lrnn::cli::bench

namespace lrnn::cli {
LRNN_CLI_COMMAND(bench, "bench", "Benchmark an op's forms against the machine's SGEMM (`lrnn bench op decay_attn`), or a synthetic model's decoding against the memory-bandwidth floor (`lrnn bench decode gla`)",
                 bench::setup);
}  // namespace lrnn::cli
