// weight_loader: named, shape-checked f32 weights (see weights.h).
#include "models/weights.h"

#include <filesystem>

namespace lrnn::models {

result<tensor> weight_loader::get_optional(const std::string& name, const shape_t& expected, const std::string& why) {
  if (!ck_.contains(name)) return tensor();
  return get(name, expected, why);
}

result<tensor> weight_loader::get(const std::string& name, const shape_t& expected, const std::string& why) {
  const io::safetensors_file* f = ck_.file_of(name);
  if (!f)
    return make_error(status_code::not_found, "{}: tensor '{}' is missing (expected shape {}{}; {})", ck_.dir(), name,
                      shape_to_string(expected), why.empty() ? "" : " from " + why, "the config asks for it");
  const std::string file = std::filesystem::path(f->path()).filename().string();
  const io::tensor_info* ti = ck_.info(name);
  if (ti->shape != expected)
    return make_error(status_code::invalid_argument, "{}: tensor '{}' has shape {}, expected {} ({} in {})", file, name,
                      shape_to_string(ti->shape), shape_to_string(expected), why, config_source_);
  if (!is_floating(ti->type))
    return make_error(status_code::invalid_argument, "{}: tensor '{}' has dtype {}, expected a float dtype", file, name,
                      safetensors_dtype_name(ti->type));
  LRNN_ASSIGN_OR_RETURN(tensor t, ck_.get(name));
  LRNN_ASSIGN_OR_RETURN(tensor f32, t.to(dtype::f32));
  LRNN_ASSIGN_OR_RETURN(tensor c, f32.contiguous());
  used_.insert(name);
  bytes_ += c.nbytes();
  return c;
}

std::vector<std::string> weight_loader::unused() const {
  std::vector<std::string> out;
  for (const auto& n : ck_.names())
    if (!used_.count(n)) out.push_back(n);
  return out;
}

}  // namespace lrnn::models
