// NumPy .npy files (format versions 1.0, 2.0, 3.0): a reader that treats every byte as
// untrusted (strict parser for the header dict, exact size checks, fuzzed), and an atomic
// writer whose output matches numpy.save byte for byte. Little-endian hosts only.
#pragma once

#include "lrnn/tensor.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lrnn::io {

// Reads a .npy file into a contiguous CPU tensor. Fortran-order files come back in C order.
// Errors: not_found / io_error for the file itself, parse_error (message starting with
// `path`) for its content.
result<tensor> read_npy(const std::string& path);

// Parses .npy bytes held in memory; `source_name` starts every error message.
result<tensor> parse_npy(const uint8_t* data, size_t size, const std::string& source_name);

// Writes `t` (any shape, strides, device; every dtype NumPy has, so not bf16) in C order as
// numpy.save would: header v1.0 (v2.0 when longer than 65535 bytes), data at a multiple of
// 64 bytes. Atomic: a temporary file in the same folder, fsync, then rename over `path`.
status write_npy(const std::string& path, const tensor& t);

// The bytes write_npy would write, in memory.
result<std::vector<uint8_t>> serialize_npy(const tensor& t);

// NumPy's descr for a dtype ("<f4", "|b1", ...); nullptr for bf16, which NumPy lacks.
const char* npy_descr(dtype t);

}  // namespace lrnn::io
