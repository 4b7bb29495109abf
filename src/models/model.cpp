// The model registry, load_model(), and model_state helpers (select/stack, save/load).
#include "models/model.h"

#include "io/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <mutex>

namespace lrnn::models {

const char* compute_form_name(compute_form f) {
  switch (f) {
    case compute_form::automatic: return "auto";
    case compute_form::chunk: return "chunk";
    case compute_form::recurrent: return "recurrent";
    case compute_form::parallel: return "parallel";
  }
  return "?";
}

result<compute_form> compute_form_from_name(const std::string& name) {
  for (compute_form f : {compute_form::automatic, compute_form::chunk, compute_form::recurrent, compute_form::parallel})
    if (name == compute_form_name(f)) return f;
  return make_error(status_code::invalid_argument, "unknown form '{}': expected auto, chunk, recurrent or parallel", name);
}

uint64_t model_state::nbytes() const {
  uint64_t n = 0;
  for (const auto& [k, t] : tensors) n += t.nbytes();
  return n;
}

result<model_state> model_state::select(int64_t b) const {
  if (b < 0 || b >= batch) return make_error(status_code::invalid_argument, "state: row {} of a batch of {}", b, batch);
  model_state out;
  out.batch = 1;
  for (const auto& [k, t] : tensors) {
    LRNN_ASSIGN_OR_RETURN(tensor row, t.slice(0, b, b + 1));
    LRNN_ASSIGN_OR_RETURN(tensor c, row.clone());
    out.tensors.emplace(k, std::move(c));
  }
  return out;
}

result<model_state> model_state::stack(const std::vector<model_state>& states) {
  if (states.empty()) return make_error(status_code::invalid_argument, "state: stacking no states");
  model_state out;
  for (const auto& s : states) out.batch += s.batch;
  for (const auto& [k, t0] : states[0].tensors) {
    shape_t shape = t0.shape();
    shape[0] = out.batch;
    LRNN_ASSIGN_OR_RETURN(tensor dst, tensor::empty(shape, t0.type()));
    int64_t row = 0;
    for (const auto& s : states) {
      auto it = s.tensors.find(k);
      if (it == s.tensors.end()) return make_error(status_code::invalid_argument, "state: '{}' missing in a stacked state", k);
      LRNN_ASSIGN_OR_RETURN(tensor part, dst.slice(0, row, row + s.batch));
      LRNN_TRY(part.copy_from(it->second));
      row += s.batch;
    }
    out.tensors.emplace(k, std::move(dst));
  }
  return out;
}

status save_state(const std::string& path, const model_state& st, const std::string& model_type,
                  const std::string& config_fingerprint) {
  io::named_tensors ts(st.tensors.begin(), st.tensors.end());
  std::map<std::string, std::string> meta = {{"format", "lrnn-state"},
                                             {"model_type", model_type},
                                             {"config_fingerprint", config_fingerprint},
                                             {"batch", std::to_string(st.batch)}};
  return io::write_safetensors(path, ts, meta);
}

result<model_state> load_state(const std::string& path, const std::string& model_type,
                               const std::string& config_fingerprint) {
  LRNN_ASSIGN_OR_RETURN(io::safetensors_file f, io::safetensors_file::open(path));
  const auto& meta = f.metadata();
  auto field = [&](const char* k) -> std::string {
    auto it = meta.find(k);
    return it == meta.end() ? std::string() : it->second;
  };
  if (field("format") != "lrnn-state")
    return make_error(status_code::parse_error, "{}: not an lrnn state file (no __metadata__ format=lrnn-state)", path);
  if (field("model_type") != model_type)
    return make_error(status_code::invalid_argument, "{}: state of a '{}' model, this model is '{}'", path,
                      field("model_type"), model_type);
  if (field("config_fingerprint") != config_fingerprint)
    return make_error(status_code::invalid_argument, "{}: state was saved with a different model config", path);
  model_state st;
  try {
    st.batch = std::stoll(field("batch"));
  } catch (...) {
    return make_error(status_code::parse_error, "{}: bad batch in the state metadata", path);
  }
  for (const auto& ti : f.tensors()) {
    LRNN_ASSIGN_OR_RETURN(tensor t, f.get(ti.name));
    LRNN_ASSIGN_OR_RETURN(tensor c, t.clone());  // own the memory, not the mapping
    if (c.dim() == 0 || c.size(0) != st.batch)
      return make_error(status_code::parse_error, "{}: state tensor '{}' is {}, expected batch {} first", path, ti.name,
                        c.describe(), st.batch);
    st.tensors.emplace(ti.name, std::move(c));
  }
  return st;
}

namespace {
std::map<std::string, model_builder>& registry() {
  static std::map<std::string, model_builder> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

void register_model(const std::string& model_type, model_builder builder) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[model_type] = std::move(builder);
}

std::vector<std::string> registered_model_types() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> out;
  for (const auto& [k, v] : registry()) out.push_back(k);
  return out;
}

result<std::unique_ptr<model>> load_model(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path cfg_path = fs::path(dir) / "config.json";
  if (!fs::is_directory(dir)) return make_error(status_code::not_found, "{}: not a model directory", dir);
  if (!fs::exists(cfg_path)) return make_error(status_code::not_found, "{}: no config.json", dir);
  LRNN_ASSIGN_OR_RETURN(io::config cfg, io::config::read(cfg_path.string()));
  LRNN_ASSIGN_OR_RETURN(std::string type, cfg.get_string("model_type"));
  model_builder builder;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(type);
    if (it != registry().end()) builder = it->second;
  }
  if (!builder) {
    std::string known;
    for (const auto& t : registered_model_types()) known += (known.empty() ? "" : ", ") + t;
    return make_error(status_code::unsupported, "{}: model_type '{}' is not supported (supported: {})", cfg_path.string(),
                      type, known.empty() ? "none" : known);
  }
  LRNN_ASSIGN_OR_RETURN(io::checkpoint ck, io::checkpoint::open(dir));
  LRNN_ASSIGN_OR_RETURN(auto m, builder(load_context{dir, cfg, ck}));
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the canonical JSON of the config
  for (unsigned char ch : cfg.raw().dump(-1, ' ', false, io::json::error_handler_t::replace)) h = (h ^ ch) * 1099511628211ull;
  m->set_config_fingerprint(fmt::format("{:016x}", h));
  return m;
}

}  // namespace lrnn::models
