// `lrnn bench train-step ARCH [--d-model --layers --heads --seq --batch --vocab --steps --config FILE
// --form chunk|recurrent|parallel --no-profile] [--json]`: one training step of a fresh trainable
// model (create_trainable from a config, random token ids) timed phase by phase (forward,
// cross-entropy, backward, clip + AdamW) and op by op (the autograd profiler, include/lrnn/autograd.h),
// with tokens/s and model GFLOP/s (6 x matmul parameters per token, as `lrnn train` reports it)
// against the machine's SGEMM measured in the same run.
#include "bench.h"

#include "io/config.h"
#include "lrnn/autograd.h"
#include "lrnn/threads.h"
#include "ops/dense/autograd.h"
#include "train/optimizer.h"
#include "train/trainable.h"

#include <cblas.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

namespace lrnn::cli::bench {
namespace {

using clk = std::chrono::steady_clock;
double ms_since(clk::time_point a) { return std::chrono::duration<double, std::milli>(clk::now() - a).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// SGEMM 1024^3 with all lrnn threads (the yardstick `lrnn train` uses), and the GEMM shapes a
// step of this model is made of: [tokens, D] x [D, D] at the model's width.
double sgemm_gflops(int64_t M, int64_t N, int64_t K, int repeats) {
  std::vector<float> a(static_cast<size_t>(M * K), 0.5f), b(static_cast<size_t>(K * N), 0.25f), c(static_cast<size_t>(M * N));
  const double ms = time_ms(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, a.data(),
                static_cast<int>(K), b.data(), static_cast<int>(K), 0.0f, c.data(), static_cast<int>(N));
  });
  return 2.0 * static_cast<double>(M) * N * K / (ms * 1e6);
}

result<io::json> model_json(const std::string& arch, const train_step_options& o) {
  io::json m = io::json::object();
  if (!o.config.empty()) {
    std::ifstream f(o.config);
    if (!f) return make_error(status_code::not_found, "bench train-step: cannot open --config {}", o.config);
    io::json j;
    try {
      j = io::json::parse(f);
    } catch (const std::exception& e) {
      return make_error(status_code::parse_error, "bench train-step: {}: {}", o.config, e.what());
    }
    m = j.contains("model") && j["model"].is_object() ? j["model"] : j;
  }
  if (!arch.empty() && arch != "config") m["model_type"] = arch;
  if (!m.contains("model_type")) return make_error(status_code::invalid_argument, "bench train-step: no architecture (ARCH or --config)");
  if (o.d_model) m["hidden_size"] = *o.d_model;
  if (o.layers) m["num_hidden_layers"] = *o.layers;
  if (o.heads) m["num_heads"] = *o.heads;
  if (o.vocab || !m.contains("vocab_size")) m["vocab_size"] = o.vocab.value_or(256);
  if (!m.contains("hidden_size")) m["hidden_size"] = 256;
  if (!m.contains("num_hidden_layers")) m["num_hidden_layers"] = 4;
  if (!m.contains("num_heads")) m["num_heads"] = 4;
  return m;
}

}  // namespace

status run_train_step(const std::string& arch, const train_step_options& o, bool json) {
  LRNN_ASSIGN_OR_RETURN(const io::json mj, model_json(arch, o));
  LRNN_ASSIGN_OR_RETURN(const io::config mc, io::config::from_json(mj, "bench train-step model"));
  LRNN_ASSIGN_OR_RETURN(std::unique_ptr<train::trainable_model> model, train::create_trainable(mc, 1));
  std::vector<train::parameter>& params = model->parameters();
  const int64_t V = model->vocab_size(), B = o.batch, T = o.seq, D = mj["hidden_size"].get<int64_t>();
  int64_t n_params = 0, matmul_params = 0;
  bool tied = true;
  for (const auto& p : params) {
    const int64_t n = p.v.value().numel();
    n_params += n;
    const bool embed = p.name.find("embed") != std::string::npos && p.name.find("lm_head") == std::string::npos;
    if (p.v.dim() >= 2 && !embed) matmul_params += n;
    if (p.name.find("lm_head") != std::string::npos) tied = false;
  }
  if (tied) matmul_params += D * V;
  const double flops_per_step = 6.0 * static_cast<double>(matmul_params) * static_cast<double>(B * T);

  models::compute_form form = models::compute_form::chunk;
  if (o.form == "recurrent") form = models::compute_form::recurrent;
  else if (o.form == "parallel") form = models::compute_form::parallel;
  else if (o.form != "chunk") return make_error(status_code::invalid_argument, "bench train-step: --form {} (chunk | recurrent | parallel)", o.form);

  // Random bytes as input and targets (fixed seed): the step's cost does not depend on the text.
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> tok(0, V - 1);
  LRNN_ASSIGN_OR_RETURN(tensor ids, tensor::empty({B, T}, dtype::i64));
  LRNN_ASSIGN_OR_RETURN(tensor targets, tensor::empty({B, T}, dtype::i64));
  for (int64_t i = 0; i < B * T; ++i) {
    ids.data<int64_t>()[i] = tok(rng);
    targets.data<int64_t>()[i] = tok(rng);
  }
  train::adamw optim(&params, {0.9, 0.95, 1e-8, 0.1});

  const bool profile = !o.no_profile;
  std::vector<double> t_fwd, t_loss, t_bwd, t_opt, t_step;
  std::vector<double> losses;
  const int total = o.warmup + o.steps;
  for (int s = 0; s < total; ++s) {
    if (s == o.warmup) {
      ag::set_profiling(profile);
      ag::profile_reset();
    }
    for (auto& p : params) p.v.zero_grad();
    const auto a = clk::now();
    ag::profile_mark();
    LRNN_ASSIGN_OR_RETURN(ag::var logits, model->forward(ids, form));
    const double f_ms = ms_since(a);
    const auto b = clk::now();
    ag::profile_mark();
    LRNN_ASSIGN_OR_RETURN(ag::var loss, ag::cross_entropy(logits, targets));
    const double l_ms = ms_since(b);
    losses.push_back(loss.value().to_doubles()[0]);
    const auto c = clk::now();
    LRNN_TRY(ag::backward(loss));
    logits = ag::var();
    loss = ag::var();
    const double b_ms = ms_since(c);
    const auto d = clk::now();
    LRNN_ASSIGN_OR_RETURN(double gnorm, train::clip_grad_norm(params, 1.0));
    (void)gnorm;
    LRNN_TRY(optim.step(1e-3));
    const double o_ms = ms_since(d);
    if (s >= o.warmup) {
      t_fwd.push_back(f_ms);
      t_loss.push_back(l_ms);
      t_bwd.push_back(b_ms);
      t_opt.push_back(o_ms);
      t_step.push_back(f_ms + l_ms + b_ms + o_ms);
    }
  }
  ag::set_profiling(false);
  const std::vector<ag::op_profile> prof = ag::profile_snapshot();

  const double step_ms = median(t_step);
  const double tok_s = static_cast<double>(B * T) / (step_ms * 1e-3);
  const double model_gflops = flops_per_step / (step_ms * 1e6);
  const double sg_big = sgemm_gflops(1024, 1024, 1024, 5);
  const double sg_model = sgemm_gflops(B * T, D, D, 5);

  if (json) {
    nlohmann::json j;
    j["arch"] = mj["model_type"];
    j["model"] = mj;
    j["threads"] = num_threads();
    j["batch"] = B;
    j["seq_len"] = T;
    j["parameters"] = n_params;
    j["matmul_parameters"] = matmul_params;
    j["steps"] = o.steps;
    j["step_ms"] = step_ms;
    j["forward_ms"] = median(t_fwd);
    j["loss_ms"] = median(t_loss);
    j["backward_ms"] = median(t_bwd);
    j["optimizer_ms"] = median(t_opt);
    j["tokens_per_s"] = tok_s;
    j["model_gflops"] = model_gflops;
    j["sgemm_1024_gflops"] = sg_big;
    j["sgemm_model_gflops"] = sg_model;
    j["fraction_of_sgemm_1024"] = model_gflops / sg_big;
    j["first_loss"] = losses.front();
    j["last_loss"] = losses.back();
    for (const auto& p : prof)
      j["ops"].push_back({{"op", p.op}, {"forward_ms", p.forward_ms / o.steps}, {"backward_ms", p.backward_ms / o.steps},
                          {"forward_calls", p.forward_calls / o.steps}, {"backward_calls", p.backward_calls / o.steps}});
    std::printf("%s\n", j.dump(2).c_str());
    return {};
  }
  std::printf("train-step: %s, d_model %lld, %lld layers, vocab %lld, batch %lld x %lld tokens, %d threads, form %s\n",
              mj["model_type"].get<std::string>().c_str(), static_cast<long long>(D), static_cast<long long>(mj["num_hidden_layers"].get<int64_t>()),
              static_cast<long long>(V), static_cast<long long>(B), static_cast<long long>(T), num_threads(), o.form.c_str());
  std::printf("parameters %lld (%lld in matmuls); %.2f GFLOP per step (6 x matmul parameters x tokens); loss at step 1 %.4f\n",
              static_cast<long long>(n_params), static_cast<long long>(matmul_params), flops_per_step / 1e9, losses.front());
  std::printf("SGEMM in this run: 1024^3 %.1f GFLOP/s; %lldx%lld . %lldx%lld %.1f GFLOP/s\n\n", sg_big, static_cast<long long>(B * T),
              static_cast<long long>(D), static_cast<long long>(D), static_cast<long long>(D), sg_model);
  std::printf("step (median of %d after %d warm-up): %.1f ms = forward %.1f + loss %.1f + backward %.1f + clip/AdamW %.1f\n", o.steps,
              o.warmup, step_ms, median(t_fwd), median(t_loss), median(t_bwd), median(t_opt));
  std::printf("%.0f tokens/s; model %.2f GFLOP/s = %.0f%% of SGEMM 1024^3, %.0f%% of SGEMM at the model's shape\n", tok_s, model_gflops,
              100 * model_gflops / sg_big, 100 * model_gflops / sg_model);
  if (profile && !prof.empty()) {
    std::printf("\nper op, ms per step (mean over the %d timed steps; forward = time since the previous op):\n", o.steps);
    std::printf("  %-20s %10s %10s %10s %8s\n", "op", "forward", "backward", "total", "calls");
    double tf = 0, tb = 0;
    for (const auto& p : prof) {
      tf += p.forward_ms;
      tb += p.backward_ms;
      std::printf("  %-20s %10.2f %10.2f %10.2f %8lld\n", p.op.c_str(), p.forward_ms / o.steps, p.backward_ms / o.steps,
                  (p.forward_ms + p.backward_ms) / o.steps, static_cast<long long>(std::max(p.forward_calls, p.backward_calls) / o.steps));
    }
    std::printf("  %-20s %10.2f %10.2f %10.2f\n", "sum", tf / o.steps, tb / o.steps, (tf + tb) / o.steps);
  }
  return {};
}

}  // namespace lrnn::cli::bench
