// Level-filtered logging to stderr, serialised across threads.
#include "lrnn/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace lrnn {

static log_level initial_level() {
  if (const char* e = std::getenv("LRNN_LOG"))
    if (auto l = log_level_from_name(e)) return *l;
  return log_level::warn;
}

static std::atomic<int> g_level{static_cast<int>(initial_level())};

void set_log_level(log_level l) { g_level = static_cast<int>(l); }
log_level current_log_level() { return static_cast<log_level>(g_level.load()); }

std::optional<log_level> log_level_from_name(std::string_view name) {
  if (name == "error") return log_level::error;
  if (name == "warn" || name == "warning") return log_level::warn;
  if (name == "info") return log_level::info;
  if (name == "debug") return log_level::debug;
  return std::nullopt;
}

void log_message(log_level l, const std::string& msg) {
  static std::mutex mu;
  static const char* names[] = {"error", "warn", "info", "debug"};
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "lrnn %s: %s\n", names[static_cast<int>(l)], msg.c_str());
}

}  // namespace lrnn
