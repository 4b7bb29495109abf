// safetensors files: a memory-mapped reader that validates every header field (the rules of
// the reference Rust crate plus duplicate names and unknown fields) and hands out zero-copy
// tensors, and an atomic writer whose output matches the reference byte for byte.
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
#pragma once

#include "lrnn/status.h"
#include "lrnn/tensor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lrnn::io {

// The reference crate's limit on the JSON header.
inline constexpr uint64_t safetensors_max_header_bytes = 100'000'000;

struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  shape_t shape;
  uint64_t data_begin = 0;  // byte offsets into the data buffer (which follows the header)
  uint64_t data_end = 0;
  uint64_t nbytes() const { return data_end - data_begin; }
};

class safetensors_file {
 public:
  // Maps the file (never reads it whole) and validates the header. Errors: not_found /
  // io_error for the file itself, parse_error for malformed content, unsupported for a
  // valid dtype lrnn has no type for (F8_E4M3, F4, C64, ...). Messages start with `path`.
  static result<safetensors_file> open(const std::string& path);
  // The same from bytes in memory; `source_name` stands in for the path in messages.
  static result<safetensors_file> from_buffer(std::vector<uint8_t> bytes, std::string source_name);

  const std::string& path() const { return path_; }
  // Every tensor, in the order of its data in the file.
  const std::vector<tensor_info>& tensors() const { return tensors_; }
  // "__metadata__" of the header (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const tensor_info* info(const std::string& name) const;
  // A contiguous CPU tensor. It views the mapping when its data is aligned to the element
  // size (the mapping lives while any such tensor does), else it is a copy. The mapping is
  // private copy-on-write: writing to a viewed tensor never changes the file, but other views
  // of the same bytes from this file see the write (and under strict overcommit, where only
  // a read-only mapping can be had, writing faults).
  result<tensor> get(const std::string& name) const;
  uint64_t header_bytes() const { return header_bytes_; }
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  struct mapping;
  static result<safetensors_file> parse(std::shared_ptr<mapping> map, std::string source);

  std::shared_ptr<mapping> map_;
  std::string path_;
  const uint8_t* data_ = nullptr;  // start of the data buffer inside the mapping
  uint64_t header_bytes_ = 0;
  uint64_t data_bytes_ = 0;
  std::vector<tensor_info> tensors_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

using named_tensors = std::vector<std::pair<std::string, tensor>>;

// The file's bytes: tensors of any dtype, device and strides are stored contiguously, in the
// reference crate's order (element size descending, then name), so every tensor's data is
// aligned to its element size; the header is padded with spaces to a multiple of 8 bytes.
// Empty metadata writes no "__metadata__". Errors (invalid_argument): empty, repeated or
// non-UTF-8 names, the name "__metadata__", undefined tensors.
result<std::vector<uint8_t>> serialize_safetensors(const named_tensors& tensors,
                                                   const std::map<std::string, std::string>& metadata = {});
// Writes serialize_safetensors' bytes to `path` atomically: to path + ".tmp.<pid>.<n>", then
// fsync and rename. On any error the temporary file is removed and an existing `path` is left
// as it was.
status write_safetensors(const std::string& path, const named_tensors& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace lrnn::io
