// Status / result<T>: the error channel for everything a user can cause (DESIGN.md section 7),
// and LRNN_ASSERT for broken invariants. Library code never calls exit().
#pragma once

#include <fmt/format.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace lrnn {

enum class status_code {
  ok,
  invalid_argument,  // a value the caller passed is wrong (shape, dtype, option)
  not_found,         // a file, tensor or key does not exist
  io_error,          // reading or writing failed
  parse_error,       // malformed file or request content
  unsupported,       // valid but not implemented / not built in
  out_of_memory,
  internal,
};

const char* status_code_name(status_code c);

class [[nodiscard]] status {
 public:
  status() = default;
  status(status_code code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok_status() { return {}; }
  bool ok() const { return code_ == status_code::ok; }
  status_code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "parse_error: safetensors: ..." — one line for a CLI or a log.
  std::string to_string() const;
  // Prefixes the message with context ("loading model.safetensors: ...").
  status with_context(const std::string& context) const;

 private:
  status_code code_ = status_code::ok;
  std::string message_;
};

template <typename... Args>
status make_error(status_code code, fmt::format_string<Args...> f, Args&&... args) {
  return status(code, fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  result(status s) : v_(std::move(s)) {      // NOLINT
    if (std::get<status>(v_).ok()) v_ = status(status_code::internal, "result built from an ok status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const status& error() const {
    static const status ok_s;
    return ok() ? ok_s : std::get<status>(v_);
  }
  status get_status() const { return ok() ? status() : std::get<status>(v_); }
  T& value() & { check(); return std::get<T>(v_); }
  const T& value() const& { check(); return std::get<T>(v_); }
  T&& value() && { check(); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void check() const;
  std::variant<T, status> v_;
};

[[noreturn]] void assert_fail(const char* cond, const char* file, int line, const std::string& msg);

template <typename T>
void result<T>::check() const {
  if (!ok()) assert_fail("result.ok()", __FILE__, __LINE__, "value() on an error: " + std::get<status>(v_).to_string());
}

}  // namespace lrnn

// Broken invariant: prints the condition, a formatted message and file:line, then aborts.
#define LRNN_ASSERT(cond, ...)                                                         \
  do {                                                                                 \
    if (!(cond)) ::lrnn::assert_fail(#cond, __FILE__, __LINE__, ::fmt::format("" __VA_ARGS__)); \
  } while (0)

#define LRNN_CONCAT_INNER(a, b) a##b
#define LRNN_CONCAT(a, b) LRNN_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` (a status) is an error.
#define LRNN_TRY(expr)                            \
  do {                                            \
    ::lrnn::status lrnn_try_s_ = (expr);          \
    if (!lrnn_try_s_.ok()) return lrnn_try_s_;    \
  } while (0)

// `LRNN_ASSIGN_OR_RETURN(auto x, make_x());` — unwraps a result<T> or returns its status.
// It expands to several statements: put it in braces under an if/else.
#define LRNN_ASSIGN_OR_RETURN(decl, expr) \
  LRNN_ASSIGN_OR_RETURN_IMPL(LRNN_CONCAT(lrnn_res_, __LINE__), decl, expr)
#define LRNN_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.get_status();           \
  decl = std::move(tmp).value()
