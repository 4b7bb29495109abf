// Status formatting and the assertion handler.
#include "lrnn/status.h"

#include <cstdio>

namespace lrnn {

const char* status_code_name(status_code c) {
  switch (c) {
    case status_code::ok: return "ok";
    case status_code::invalid_argument: return "invalid_argument";
    case status_code::not_found: return "not_found";
    case status_code::io_error: return "io_error";
    case status_code::parse_error: return "parse_error";
    case status_code::unsupported: return "unsupported";
    case status_code::out_of_memory: return "out_of_memory";
    case status_code::internal: return "internal";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (ok()) return "ok";
  return message_;
}

status status::with_context(const std::string& context) const {
  if (ok()) return *this;
  return status(code_, context + ": " + message_);
}

void assert_fail(const char* cond, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "lrnn: assertion failed: %s%s%s (%s:%d)\n", cond, msg.empty() ? "" : ": ",
               msg.c_str(), file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace lrnn
