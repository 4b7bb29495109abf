// `lrnn info <model-dir>`: a checkpoint's config and tensor table (name, dtype, shape, bytes),
// human readable or as one JSON object (--json).
#include "command.h"

#include "io/checkpoint.h"
#include "io/config.h"

#include <cstdio>
#include <filesystem>

namespace lrnn::cli {
namespace {

struct info_options {
  std::string path;
  bool json = false;
  bool all_config = false;
};

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, units[u]);
}

status run_info(const info_options& o) {
  namespace fs = std::filesystem;
  LRNN_ASSIGN_OR_RETURN(io::checkpoint ck, io::checkpoint::open(o.path));
  const fs::path dir = fs::is_directory(o.path) ? fs::path(o.path) : fs::path(o.path).parent_path();
  const fs::path cfg_path = dir / "config.json";
  std::optional<io::config> cfg;
  std::optional<io::common_model_config> common;
  if (fs::exists(cfg_path)) {
    LRNN_ASSIGN_OR_RETURN(io::config c, io::config::read(cfg_path.string()));
    LRNN_ASSIGN_OR_RETURN(io::common_model_config m, io::read_common_model_config(c));
    cfg = std::move(c);
    common = m;
  }
  const auto names = ck.names();
  uint64_t params = 0;
  for (const auto& n : names) params += static_cast<uint64_t>(shape_numel(ck.info(n)->shape));

  if (o.json) {
    io::json out;
    out["path"] = o.path;
    out["config"] = cfg ? cfg->raw() : io::json(nullptr);
    if (common) {
      out["model_type"] = common->model_type;
      out["vocab_size"] = common->vocab_size;
      out["hidden_size"] = common->hidden_size;
      out["num_hidden_layers"] = common->num_hidden_layers;
    }
    io::json files = io::json::array();
    for (const auto& f : ck.files()) files.push_back(fs::path(f.path()).filename().string());
    out["files"] = files;
    out["metadata"] = ck.metadata();
    io::json ts = io::json::array();
    for (const auto& n : names) {
      const io::tensor_info* ti = ck.info(n);
      ts.push_back({{"name", n},
                    {"dtype", safetensors_dtype_name(ti->type)},
                    {"shape", ti->shape},
                    {"bytes", ti->nbytes()},
                    {"file", fs::path(ck.file_of(n)->path()).filename().string()}});
    }
    out["tensors"] = ts;
    out["num_tensors"] = names.size();
    out["total_parameters"] = params;
    out["total_bytes"] = ck.total_bytes();
    std::printf("%s\n", out.dump(2, ' ', false, io::json::error_handler_t::replace).c_str());
    return {};
  }

  std::printf("%s\n", o.path.c_str());
  if (common) {
    std::printf("  model_type         %s\n", common->model_type.c_str());
    std::printf("  vocab_size         %lld\n", static_cast<long long>(common->vocab_size));
    std::printf("  hidden_size        %lld\n", static_cast<long long>(common->hidden_size));
    std::printf("  num_hidden_layers  %lld\n", static_cast<long long>(common->num_hidden_layers));
    if (!common->weight_dtype_name.empty()) std::printf("  weight dtype       %s\n", common->weight_dtype_name.c_str());
    std::printf("\nconfig.json\n");
    for (const auto& k : cfg->keys()) {
      const auto& v = cfg->raw()[k];
      std::string s = v.dump(-1, ' ', false, io::json::error_handler_t::replace);
      if (!o.all_config && s.size() > 60) s = s.substr(0, 57) + "...";
      std::printf("  %-34s %s\n", k.c_str(), s.c_str());
    }
  } else {
    std::printf("  (no config.json beside the weights)\n");
  }
  std::printf("\ntensors (%zu in %zu file%s)\n", names.size(), ck.files().size(), ck.files().size() == 1 ? "" : "s");
  size_t w = 4;
  for (const auto& n : names) w = std::max(w, n.size());
  std::printf("  %-*s  %-5s  %-20s  %12s\n", static_cast<int>(w), "name", "dtype", "shape", "bytes");
  for (const auto& n : names) {
    const io::tensor_info* ti = ck.info(n);
    std::printf("  %-*s  %-5s  %-20s  %12llu\n", static_cast<int>(w), n.c_str(), safetensors_dtype_name(ti->type),
                shape_to_string(ti->shape).c_str(), static_cast<unsigned long long>(ti->nbytes()));
  }
  std::printf("\n  %llu parameters, %s\n", static_cast<unsigned long long>(params), human_bytes(ck.total_bytes()).c_str());
  return {};
}

runner setup(CLI::App& app, const global_options&) {
  auto o = std::make_shared<info_options>();
  app.add_option("model", o->path, "model directory (config.json + model.safetensors or sharded index) or a .safetensors file")
      ->required();
  app.add_flag("--json", o->json, "print one JSON object (config, tensors, totals) instead of tables");
  app.add_flag("--full", o->all_config, "print long config values in full");
  return [o] { return run_info(*o); };
}

}  // namespace

LRNN_CLI_COMMAND(info, "info", "Show a checkpoint's config and tensor table (name, dtype, shape, bytes)", setup);

}  // namespace lrnn::cli
