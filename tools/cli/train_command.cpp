// `lrnn train`: trains a model from a JSON config (src/train/train_config.h) with
// command-line overrides, writing checkpoints, logs and a loss curve under --out.
#include "command.h"

#include "io/json.h"
#include "lrnn/threads.h"
#include "train/checkpoint.h"
#include "train/loop.h"
#include "train/trainable.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

namespace lrnn::cli {

namespace {

struct train_cli_options {
  std::string config;
  std::vector<std::string> sets;
  std::string out;
  std::string resume;
  std::optional<double> minutes;
  std::optional<int64_t> steps;
  std::string arch;
  bool json = false;
  bool quiet = false;
  bool print_default = false;
};


io::json num(double x) { return std::isfinite(x) ? io::json(x) : io::json(nullptr); }

status run_train(const train_cli_options& o, const global_options& g) {
  namespace fs = std::filesystem;
  if (o.print_default) {
    std::printf("%s\n", train::default_train_config_json().dump(2).c_str());
    return {};
  }
  if (o.config.empty() && o.resume.empty())
    return make_error(status_code::invalid_argument, "train: give --config FILE.json (or --resume DIR to continue a run)");
  std::vector<std::string> sets = o.sets;
  if (!o.arch.empty()) {
    // --arch swaps the model section for the architecture's preset file next to the config
    // (<config dir>/<arch>.json holding a "model" object) when there is one, else sets model_type.
    sets.insert(sets.begin(), "model.model_type=\"" + o.arch + "\"");
  }
  if (o.minutes) sets.push_back(fmt::format("minutes={}", *o.minutes));
  if (o.steps) sets.push_back(fmt::format("steps={}", *o.steps));

  io::json j;
  std::string source;
  if (!o.config.empty()) {
    LRNN_ASSIGN_OR_RETURN(j, io::read_json_file(o.config));
    source = o.config;
    if (!o.arch.empty()) {
      const fs::path preset = fs::path(o.config).parent_path() / (o.arch + ".json");
      if (fs::exists(preset)) {
        LRNN_ASSIGN_OR_RETURN(const io::json pj, io::read_json_file(preset.string()));
        if (!pj.is_object() || !pj.contains("model") || !pj["model"].is_object())
          return make_error(status_code::parse_error, "{}: expected an object with a \"model\" object", preset.string());
        if (j.is_object()) j["model"] = pj["model"];
      } else if (j.is_object() && j.contains("model") && j["model"].is_object()) {
        // Keep only the generic size keys when switching architecture by name.
        io::json m = io::json::object();
        for (const char* k : {"hidden_size", "num_hidden_layers", "num_heads", "intermediate_size"})
          if (j["model"].contains(k)) m[k] = j["model"][k];
        j["model"] = m;
      }
    }
  } else {
    LRNN_ASSIGN_OR_RETURN(const train::loaded_checkpoint ck, train::load_checkpoint(o.resume));
    j = ck.trainer_state["config"];
    source = ck.dir + "/trainer_state.json";
  }
  if (!o.arch.empty()) {
    const auto types = train::trainable_model_types();
    if (std::find(types.begin(), types.end(), o.arch) == types.end()) {
      std::string list;
      for (const auto& t : types) list += (list.empty() ? "" : ", ") + t;
      return make_error(status_code::invalid_argument, "--arch '{}': not a trainable architecture (available: {})", o.arch, list);
    }
  }
  for (const auto& s : sets) LRNN_TRY(train::apply_override(j, s));
  LRNN_ASSIGN_OR_RETURN(train::train_config cfg, train::parse_train_config(j, source));
  if (cfg.threads == 0 && g.threads > 0) cfg.threads = g.threads;

  train::train_options opt;
  opt.config = cfg;
  opt.resume = o.resume;
  opt.out_dir = o.out;
  if (opt.out_dir.empty()) {
    if (!o.resume.empty()) {
      opt.out_dir = fs::exists(fs::path(o.resume) / "last") ? o.resume : fs::path(o.resume).lexically_normal().parent_path().string();
      if (opt.out_dir.empty()) opt.out_dir = ".";
    } else {
      opt.out_dir = "out";
    }
  }
  opt.progress = o.quiet ? nullptr : stderr;
  LRNN_ASSIGN_OR_RETURN(const train::train_summary s, train::run_training(opt));

  const double frac = s.sgemm_gflops > 0 ? s.model_gflops / s.sgemm_gflops : NAN;
  if (!o.quiet) {
    std::fprintf(stderr, "done: %lld steps (%s), %lld tokens in %.1fs of training (%.1fs total)\n", static_cast<long long>(s.steps),
                 s.stop_reason.c_str(), static_cast<long long>(s.tokens), s.train_s, s.elapsed_s);
    std::fprintf(stderr, "validation loss %.4f nats/token, perplexity %.3f, %.4f bits/byte (%.4f nats/byte)\n", s.val_loss, s.val_ppl,
                 s.val_bits_per_byte, s.val_bits_per_byte * std::log(2.0));
    std::fprintf(stderr,
                 "throughput %.0f tokens/s; model FLOPs/token = 6 x %lld matmul parameters = %.3g (mixer terms not counted) -> %.2f GFLOP/s "
                 "= %.1f%% of this run's SGEMM 1024^3 rate (%.1f GFLOP/s, %d threads)\n",
                 s.tokens_per_s, static_cast<long long>(s.matmul_parameters), s.flops_per_token, s.model_gflops, frac * 100, s.sgemm_gflops,
                 s.threads);
    std::fprintf(stderr, "checkpoint: %s (also %s/last); log: %s/log.csv, curve: %s/loss.svg\n", s.checkpoint.c_str(), opt.out_dir.c_str(),
                 opt.out_dir.c_str(), opt.out_dir.c_str());
  }
  if (o.json) {
    io::json r = {{"steps", s.steps},
                  {"start_step", s.start_step},
                  {"stop_reason", s.stop_reason},
                  {"tokens", s.tokens},
                  {"train_loss", num(s.train_loss)},
                  {"val_loss", num(s.val_loss)},
                  {"val_ppl", num(s.val_ppl)},
                  {"val_bits_per_byte", num(s.val_bits_per_byte)},
                  {"train_s", s.train_s},
                  {"elapsed_s", s.elapsed_s},
                  {"tokens_per_s", s.tokens_per_s},
                  {"parameters", s.parameters},
                  {"matmul_parameters", s.matmul_parameters},
                  {"flops_per_token", s.flops_per_token},
                  {"flops_formula", "6 * matmul_parameters"},
                  {"model_gflops", s.model_gflops},
                  {"sgemm_gflops", s.sgemm_gflops},
                  {"fraction_of_sgemm", num(frac)},
                  {"threads", s.threads},
                  {"checkpoint", s.checkpoint},
                  {"out", opt.out_dir}};
    std::printf("%s\n", r.dump().c_str());
  }
  return {};
}

runner setup_train(CLI::App& app, const global_options& g) {
  auto o = std::make_shared<train_cli_options>();
  app.add_option("--config", o->config, "training config (JSON; see --print-default-config)");
  app.add_option("--set", o->sets, "override a config key, e.g. --set optimizer.lr=1e-3 (repeatable)");
  app.add_option("--out", o->out, "output folder (checkpoints, logs, data shards; default: out)");
  app.add_option("--resume", o->resume, "continue from a checkpoint or an output folder's last checkpoint");
  app.add_option("--minutes", o->minutes, "wall-clock budget in minutes (same as --set minutes=N)")->check(CLI::PositiveNumber);
  app.add_option("--steps", o->steps, "optimizer steps (same as --set steps=N)")->check(CLI::NonNegativeNumber);
  app.add_option("--arch", o->arch, "architecture (model_type); uses <config dir>/<arch>.json's model section when present");
  app.add_flag("--json", o->json, "print one JSON object with the results on stdout");
  app.add_flag("--quiet", o->quiet, "no progress output");
  app.add_flag("--print-default-config", o->print_default, "print the default config (every key) and exit");
  const global_options* gp = &g;
  return [o, gp] { return run_train(*o, *gp); };
}

}  // namespace

LRNN_CLI_COMMAND(train, "train", "train a model on a text corpus (config file + overrides; checkpoints, logs, loss curve)", setup_train);

}  // namespace lrnn::cli
