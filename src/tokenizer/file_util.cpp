// Whole-file reading for the tokenizer loaders (see file_util.h).
#include "tokenizer/file_util.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace lrnn::tok {

result<std::string> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return make_error(status_code::invalid_argument, "{}: is a directory, expected a file", path);
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(status_code::not_found, "{}: cannot open file", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return make_error(status_code::io_error, "{}: read failed", path);
  return ss.str();
}

}  // namespace lrnn::tok
