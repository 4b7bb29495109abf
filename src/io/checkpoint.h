// Model checkpoints on disk: a directory with model.safetensors, or with shards listed by
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}).
// The index is checked against the shards: every listed tensor is in its shard, every shard
// tensor is listed, and no tensor is in two shards.
#pragma once

#include "io/safetensors.h"

#include <map>
#include <string>
#include <vector>

namespace lrnn::io {

class checkpoint {
 public:
  // `dir` is a model directory (or a single .safetensors file). Errors: not_found when the
  // directory has neither file or a shard is missing; parse_error for a bad index or shard.
  static result<checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const tensor_info* info(const std::string& name) const;
  result<tensor> get(const std::string& name) const;
  // The file a tensor lives in (nullptr when there is no such tensor).
  const safetensors_file* file_of(const std::string& name) const;
  const std::vector<safetensors_file>& files() const { return files_; }
  // Data bytes of all tensors together.
  uint64_t total_bytes() const { return total_bytes_; }
  // The index's "metadata" (string values as they are, other values as JSON text), or the
  // single file's "__metadata__".
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string dir_;
  std::vector<safetensors_file> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
  std::map<std::string, std::string> metadata_;
  uint64_t total_bytes_ = 0;
};

}  // namespace lrnn::io
