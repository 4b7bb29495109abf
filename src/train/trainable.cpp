// Trainable models: the registry, fresh weights from a seeded RNG (std::mt19937_64 with our own
// uniform and normal transforms, so the same seed gives the same weights on every platform),
// loading from a model directory and saving in the format models::load_model() reads.
#include "train/trainable.h"

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/weights.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <random>
#include <unistd.h>

namespace lrnn::train {

namespace {

std::map<std::string, trainable_builder>& registry() {
  static std::map<std::string, trainable_builder> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

// Uniform in [0, 1) from the top 53 bits; normal by Box-Muller (one value per pair of uniforms).
class seeded_rng {
 public:
  explicit seeded_rng(uint64_t seed) : g_(seed) {}
  double uniform() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::mt19937_64 g_;
};

class init_source final : public param_source {
 public:
  init_source(uint64_t seed, dtype dt) : rng_(seed), dt_(dt) {}
  result<tensor> get(const std::string& name, const shape_t& shape, const param_init& init, const std::string&) override {
    const int64_t n = shape_numel(shape);
    if (init.k == param_init::kind::custom) {
      if (!init.fill) return make_error(status_code::internal, "parameter '{}': custom init without a fill function", name);
      LRNN_ASSIGN_OR_RETURN(tensor t, tensor::zeros(shape, dtype::f32));
      init.fill(t);
      return t.to(dt_);
    }
    std::vector<double> v(static_cast<size_t>(n));
    for (auto& x : v) {
      switch (init.k) {
        case param_init::kind::normal: x = init.a * rng_.normal(); break;
        case param_init::kind::uniform: x = init.a + (init.b - init.a) * rng_.uniform(); break;
        case param_init::kind::constant: x = init.a; break;
        case param_init::kind::custom: break;
      }
    }
    return tensor::from_doubles(v, shape, dt_);
  }

 private:
  seeded_rng rng_;
  dtype dt_;
};

class checkpoint_source final : public param_source {
 public:
  checkpoint_source(models::weight_loader& w, dtype dt) : w_(w), dt_(dt) {}
  result<tensor> get(const std::string& name, const shape_t& shape, const param_init&, const std::string& why) override {
    LRNN_ASSIGN_OR_RETURN(tensor t, w_.get(name, shape, why));
    if (dt_ == dtype::f32) return t;
    LRNN_ASSIGN_OR_RETURN(tensor c, t.to(dt_));
    return c.contiguous();
  }

 private:
  models::weight_loader& w_;
  dtype dt_;
};

result<trainable_builder> builder_for(const io::config& config) {
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(config));
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find(common.model_type);
  if (it == registry().end()) {
    std::string known;
    for (const auto& [k, v] : registry()) known += (known.empty() ? "" : ", ") + k;
    return make_error(status_code::unsupported, "{}: model_type '{}' cannot be trained (trainable: {})", config.source(),
                      common.model_type, known.empty() ? "none" : known);
  }
  return it->second;
}

status check_dtype(dtype dt) {
  if (dt != dtype::f32 && dt != dtype::f64)
    return make_error(status_code::unsupported, "trainable models hold f32 or f64 parameters, not {}", dtype_name(dt));
  return {};
}

status write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(status_code::io_error, "{}: cannot create {}", path, tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return make_error(status_code::io_error, "{}: write failed", tmp);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return make_error(status_code::io_error, "{}: fsync failed", tmp);
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error(status_code::io_error, "{}: rename from {} failed", path, tmp);
  }
  return {};
}

}  // namespace

void register_trainable(const std::string& model_type, trainable_builder builder) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[model_type] = std::move(builder);
}

std::vector<std::string> trainable_model_types() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> out;
  for (const auto& [k, v] : registry()) out.push_back(k);
  return out;
}

result<std::unique_ptr<trainable_model>> create_trainable(const io::config& config, uint64_t seed, dtype dt) {
  LRNN_TRY(check_dtype(dt));
  LRNN_ASSIGN_OR_RETURN(trainable_builder b, builder_for(config));
  init_source src(seed, dt);
  return b(config, src);
}

result<std::unique_ptr<trainable_model>> load_trainable(const std::string& dir, dtype dt) {
  LRNN_TRY(check_dtype(dt));
  LRNN_ASSIGN_OR_RETURN(io::config config, io::config::read(dir + "/config.json"));
  LRNN_ASSIGN_OR_RETURN(trainable_builder b, builder_for(config));
  LRNN_ASSIGN_OR_RETURN(io::checkpoint ck, io::checkpoint::open(dir));
  models::weight_loader w(ck, config.source());
  checkpoint_source src(w, dt);
  LRNN_ASSIGN_OR_RETURN(auto m, b(config, src));
  LRNN_ASSIGN_OR_RETURN(bool tied, config.get_bool("tie_word_embeddings", false));
  for (const std::string& name : w.unused()) {
    if (tied && name == "lm_head.weight") continue;  // a tied head saved anyway: the embedding is used
    return make_error(status_code::unsupported, "{}: tensor '{}' is not used by lrnn's trainable {} (a config option not implemented?)",
                      dir, name, m->model_type());
  }
  return m;
}

status save_trainable(trainable_model& m, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(status_code::io_error, "{}: cannot create the directory: {}", dir, ec.message());
  io::named_tensors ts;
  for (const parameter& p : m.parameters()) {
    LRNN_ASSIGN_OR_RETURN(tensor f, p.v.value().to(dtype::f32));
    LRNN_ASSIGN_OR_RETURN(f, f.contiguous());
    ts.emplace_back(p.name, f);
  }
  LRNN_TRY(io::write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}}));
  io::json j = m.config().raw();
  j["model_type"] = m.model_type();
  return write_file_atomic(dir + "/config.json", j.dump(2) + "\n");
}

}  // namespace lrnn::train
