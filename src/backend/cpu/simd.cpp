// Runtime SIMD dispatch (simd.h).
#include "backend/cpu/simd.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace lrnn::cpu {

namespace {
bool detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}
bool env_baseline() {
  const char* e = std::getenv("LRNN_SIMD");
  return e && std::strcmp(e, "baseline") == 0;
}
std::atomic<bool>& forced() {
  static std::atomic<bool> f{env_baseline()};
  return f;
}
}  // namespace

bool cpu_has_avx2_fma() {
  static const bool has = detect();
  return has;
}

bool use_avx2() { return cpu_has_avx2_fma() && !forced().load(std::memory_order_relaxed); }

void force_baseline(bool on) { forced().store(on, std::memory_order_relaxed); }

const char* simd_path_name() { return use_avx2() ? "avx2+fma" : "baseline"; }

}  // namespace lrnn::cpu
