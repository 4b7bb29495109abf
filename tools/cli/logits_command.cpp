// `lrnn logits`: full-sequence logits of a model for token ids from a .npy file, written as
// float32 [B, T, vocab] .npy — the parity check against reference implementations.
#include "command.h"

#include "io/npy.h"
#include "models/model.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace lrnn::cli {
namespace {

struct logits_options {
  std::string model, ids_npy, out, form = "auto", compare;
};

// Max |a - b| and the fraction of positions whose argmax agrees (a, b: [B, T, V]).
result<std::pair<double, double>> compare_logits(const tensor& a, const tensor& b) {
  if (a.shape() != b.shape())
    return make_error(status_code::invalid_argument, "--compare: reference logits are {}, ours are {}", b.describe(), a.describe());
  const auto x = a.to_doubles(), y = b.to_doubles();
  const int64_t V = a.size(-1), rows = V ? a.numel() / V : 0;
  double worst = 0;
  int64_t agree = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ia = 0, ib = 0;
    for (int64_t v = 0; v < V; ++v) {
      worst = std::max(worst, std::fabs(x[r * V + v] - y[r * V + v]));
      if (x[r * V + v] > x[r * V + ia]) ia = v;
      if (y[r * V + v] > y[r * V + ib]) ib = v;
    }
    agree += ia == ib;
  }
  return std::make_pair(worst, rows ? static_cast<double>(agree) / static_cast<double>(rows) : 1.0);
}

status run_logits(const logits_options& o) {
  LRNN_ASSIGN_OR_RETURN(models::compute_form form, models::compute_form_from_name(o.form));
  LRNN_ASSIGN_OR_RETURN(auto m, models::load_model(o.model));
  LRNN_ASSIGN_OR_RETURN(tensor ids, io::read_npy(o.ids_npy));
  if (ids.dim() != 2 || (ids.type() != dtype::i64 && ids.type() != dtype::i32))
    return make_error(status_code::invalid_argument, "{}: expected int64 [B, T] token ids, got {}", o.ids_npy, ids.describe());
  if (ids.size(0) == 0 || ids.size(1) == 0) return make_error(status_code::invalid_argument, "{}: no tokens", o.ids_npy);
  LRNN_ASSIGN_OR_RETURN(ids, ids.to(dtype::i64));
  LRNN_ASSIGN_OR_RETURN(auto st, m->initial_state(ids.size(0)));
  const auto t0 = std::chrono::steady_clock::now();
  LRNN_ASSIGN_OR_RETURN(tensor logits, m->forward(ids, st, form));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.out.empty()) LRNN_TRY(io::write_npy(o.out, logits));
  if (!o.compare.empty()) {
    LRNN_ASSIGN_OR_RETURN(tensor ref, io::read_npy(o.compare));
    LRNN_ASSIGN_OR_RETURN(auto cmp, compare_logits(logits, ref));
    std::printf("max |logits - reference| = %.3g, top-1 agreement %.1f%% (%s)\n", cmp.first, 100.0 * cmp.second,
                o.compare.c_str());
  }
  std::fprintf(stderr, "lrnn logits: %s %s -> %s (%s form, %.1f tokens/s)\n", m->model_type().c_str(),
               shape_to_string(ids.shape()).c_str(), o.out.empty() ? "(not written)" : o.out.c_str(), o.form.c_str(),
               static_cast<double>(ids.numel()) / std::max(s, 1e-9));
  return {};
}

runner setup(CLI::App& app, const global_options&) {
  auto o = std::make_shared<logits_options>();
  app.add_option("--model", o->model, "model directory (config.json + safetensors)")->required();
  app.add_option("--ids-npy", o->ids_npy, "token ids, int64 [B, T] .npy")->required();
  app.add_option("--out", o->out, "output .npy: float32 [B, T, vocab]");
  app.add_option("--compare", o->compare, "reference logits .npy: print max abs difference and top-1 agreement");
  app.add_option("--form", o->form, "token-mixer form: auto | chunk | recurrent | parallel")
      ->check(CLI::IsMember({"auto", "chunk", "recurrent", "parallel"}));
  return [o] { return run_logits(*o); };
}

}  // namespace

LRNN_CLI_COMMAND(logits, "logits", "Compute a model's logits for token ids (.npy in, .npy out)", setup);

}  // namespace lrnn::cli
