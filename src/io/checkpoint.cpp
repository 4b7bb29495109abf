// Single-file and sharded safetensors checkpoints (see checkpoint.h).
#include "io/checkpoint.h"

#include "io/json.h"

#include <filesystem>
#include <fstream>
#include <iterator>

namespace lrnn::io {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t max_index_bytes = 100'000'000;

template <typename... Args>
status index_error(const std::string& index, fmt::format_string<Args...> f, Args&&... args) {
  return status(status_code::parse_error, index + ": " + fmt::format(f, std::forward<Args>(args)...));
}

// A shard must be a file directly inside the model directory.
bool is_plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

result<std::string> read_text(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return make_error(status_code::io_error, "{}: cannot read: {}", path, ec.message());
  if (size > max_index_bytes)
    return make_error(status_code::parse_error, "{}: {} bytes, over the limit of {}", path, size, max_index_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(status_code::io_error, "{}: cannot open", path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return make_error(status_code::io_error, "{}: read failed", path);
  return text;
}

}  // namespace

result<checkpoint> checkpoint::open(const std::string& dir) {
  checkpoint ck;
  ck.dir_ = dir;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    LRNN_ASSIGN_OR_RETURN(safetensors_file f, safetensors_file::open(dir));
    ck.files_.push_back(std::move(f));
  } else if (!fs::is_directory(dir, ec)) {
    return make_error(status_code::not_found, "{}: no such directory", dir);
  } else if (const std::string single = (fs::path(dir) / "model.safetensors").string(); fs::exists(single, ec)) {
    LRNN_ASSIGN_OR_RETURN(safetensors_file f, safetensors_file::open(single));
    ck.files_.push_back(std::move(f));
  } else {
    const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
    if (!fs::exists(index, ec))
      return make_error(status_code::not_found, "{}: no model.safetensors or model.safetensors.index.json", dir);
    LRNN_ASSIGN_OR_RETURN(std::string text, read_text(index));
    LRNN_ASSIGN_OR_RETURN(json root, parse_json(text, index));
    if (!root.is_object()) return index_error(index, "expected a JSON object, got a JSON {}", json_type_name(root));
    if (auto dup = find_duplicate_key(text)) {
      if (dup->path.size() == 1 && dup->path[0] == "weight_map")
        return index_error(index, "tensor '{}' is listed twice in weight_map", dup->key);
      return index_error(index, "key '{}' appears twice", dup->key);
    }
    const auto meta = root.find("metadata");
    if (meta != root.end() && !meta->is_null()) {
      if (!meta->is_object()) return index_error(index, "metadata is a JSON {}, expected an object", json_type_name(*meta));
      for (auto it = meta->begin(); it != meta->end(); ++it)
        ck.metadata_[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    }
    const auto wm = root.find("weight_map");
    if (wm == root.end()) return index_error(index, "missing \"weight_map\"");
    if (!wm->is_object()) return index_error(index, "weight_map is a JSON {}, expected an object", json_type_name(*wm));
    if (wm->empty()) return index_error(index, "weight_map lists no tensors");

    std::map<std::string, std::vector<std::string>> by_shard;  // shard -> tensors listed in it
    std::map<std::string, std::string> shard_of;               // tensor -> shard
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        return index_error(index, "weight_map entry for tensor '{}' is a JSON {}, expected a file name", it.key(),
                           json_type_name(it.value()));
      const std::string& shard = it.value().get_ref<const std::string&>();
      if (!is_plain_file_name(shard))
        return index_error(index, "tensor '{}' maps to '{}', which is not a plain file name in the directory", it.key(),
                           shard);
      by_shard[shard].push_back(it.key());
      shard_of[it.key()] = shard;
    }
    for (const auto& [shard, listed] : by_shard) {
      const std::string path = (fs::path(dir) / shard).string();
      if (!fs::exists(path, ec))
        return make_error(status_code::not_found, "{}: shard '{}' (listed for tensor '{}') does not exist", index, shard,
                          listed.front());
      LRNN_ASSIGN_OR_RETURN(safetensors_file f, safetensors_file::open(path));
      for (const std::string& name : listed)
        if (!f.contains(name))
          return index_error(index, "tensor '{}' is listed in shard '{}', but that file does not hold it", name, shard);
      ck.files_.push_back(std::move(f));
    }
    // Every shard tensor must be listed, and for its own shard (else it would be in two).
    size_t k = 0;
    for (const auto& [shard, listed] : by_shard) {
      for (const tensor_info& ti : ck.files_[k].tensors()) {
        const auto s = shard_of.find(ti.name);
        if (s == shard_of.end())
          return index_error(index, "shard '{}' holds tensor '{}', which weight_map does not list", shard, ti.name);
        if (s->second != shard)
          return index_error(index, "tensor '{}' is in both shard '{}' and shard '{}'", ti.name, s->second, shard);
      }
      ++k;
    }
  }

  for (size_t k = 0; k < ck.files_.size(); ++k) {
    for (const tensor_info& ti : ck.files_[k].tensors()) {
      ck.where_.emplace(ti.name, k);
      ck.total_bytes_ += ti.nbytes();
    }
  }
  if (ck.files_.size() == 1 && ck.metadata_.empty()) ck.metadata_ = ck.files_[0].metadata();
  return ck;
}

std::vector<std::string> checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, k] : where_) out.push_back(name);
  return out;
}

const tensor_info* checkpoint::info(const std::string& name) const {
  const auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second].info(name);
}

result<tensor> checkpoint::get(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) return make_error(status_code::not_found, "{}: no tensor '{}' in the checkpoint", dir_, name);
  return files_[it->second].get(name);
}

const safetensors_file* checkpoint::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  return it == where_.end() ? nullptr : &files_[it->second];
}

}  // namespace lrnn::io
