// Logging with levels to stderr. The level comes from set_log_level() (the CLI's
// --log-level) or the LRNN_LOG environment variable: error, warn, info, debug.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>

namespace lrnn {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };

void set_log_level(log_level l);
log_level current_log_level();
std::optional<log_level> log_level_from_name(std::string_view name);
void log_message(log_level l, const std::string& msg);

template <typename... Args>
void log(log_level l, fmt::format_string<Args...> f, Args&&... args) {
  if (static_cast<int>(l) <= static_cast<int>(current_log_level())) log_message(l, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace lrnn

#define LRNN_LOG_ERROR(...) ::lrnn::log(::lrnn::log_level::error, __VA_ARGS__)
#define LRNN_LOG_WARN(...) ::lrnn::log(::lrnn::log_level::warn, __VA_ARGS__)
#define LRNN_LOG_INFO(...) ::lrnn::log(::lrnn::log_level::info, __VA_ARGS__)
#define LRNN_LOG_DEBUG(...) ::lrnn::log(::lrnn::log_level::debug, __VA_ARGS__)
