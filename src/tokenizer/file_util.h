// Whole-file reading for the tokenizer loaders, with errors that name the path.
#pragma once

#include "lrnn/status.h"

#include <string>

namespace lrnn::tok {

result<std::string> read_file_bytes(const std::string& path);

}  // namespace lrnn::tok
